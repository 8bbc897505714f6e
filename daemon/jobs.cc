#include "jobs.h"

#include <exception>
#include <thread>

#include "protocol/request_check.h"
#include "util/log.h"

namespace kg::daemon {

Job::Job(std::string key, std::string name)
    : m_key(std::move(key)), m_name(std::move(name)), m_start(std::chrono::steady_clock::now()) {}

void Job::post(const std::string& stage, const std::string& message) {
  const auto elapsed = std::chrono::steady_clock::now() - m_start;
  {
    std::lock_guard lock(m_mutex);
    m_events.push_back(Progress{m_key, stage, message,
                                std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()});
  }
  m_changed.notify_all();
}

void Job::finish(Result result) {
  {
    std::lock_guard lock(m_mutex);
    m_result = std::move(result);
  }
  m_changed.notify_all();
}

std::optional<Result> Job::wait(size_t& seen, std::vector<Progress>& events,
                                std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_mutex);
  m_changed.wait_for(lock, timeout, [&] { return m_events.size() > seen || m_result.has_value(); });
  for (; seen < m_events.size(); ++seen) {
    events.push_back(m_events[seen]);
  }
  return m_result;
}

void Slots::acquire() {
  std::unique_lock lock(m_mutex);
  ++m_waiting;
  m_freed.wait(lock, [&] { return m_free > 0; });
  --m_waiting;
  --m_free;
}

void Slots::release() {
  {
    std::lock_guard lock(m_mutex);
    ++m_free;
  }
  m_freed.notify_one();
}

int Slots::waiting() const {
  std::lock_guard lock(m_mutex);
  return m_waiting;
}

namespace {

// A taken slot, given back however the scope ends.
class SlotHold {
 public:
  explicit SlotHold(Slots& slots) : m_slots(slots) { m_slots.acquire(); }
  ~SlotHold() { m_slots.release(); }
  SlotHold(const SlotHold&) = delete;
  SlotHold& operator=(const SlotHold&) = delete;

 private:
  Slots& m_slots;
};

// What escaped a backend call, as one line: the exception's message when it has one.
std::string describe_exception(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

JobRunner::JobRunner(JobBackend& backend, Options options)
    : m_backend(backend),
      m_options(options),
      m_slots(options.jobs > 0 ? options.jobs : 1),
      m_devices(options.gpus) {}

JobRunner::~JobRunner() { wait_idle(); }

JobRunner::Ticket JobRunner::submit(JobRequest request) {
  Ticket ticket;
  const std::string key = request.key;
  ticket.immediate.key = key;
  ticket.immediate.name = request.spec->name;
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_jobs.find(key); it != m_jobs.end()) {
      ticket.job = it->second;
      ticket.joined = true;
      return ticket;
    }
  }
  // The hit path reads the cache outside the lock, so hits never wait behind a job's bookkeeping.
  // A job that stores this key between here and the insert below is harmless: the new job's
  // generate() finds the entry again and reports a cache hit.
  Expected<JobBackend::Done, Failure> hit = fail("not looked up");
  try {
    // The door: a target the generator cannot build for is this request's error, before the
    // cache is read or a job starts.
    if (auto ok = m_backend.check(request); !ok) {
      ticket.immediate.error = ok.error().message;
      return ticket;
    }
    hit = m_backend.lookup(request);
  } catch (...) {
    hit = fail("internal error while looking up " + request.spec->name + " in the cache: " +
               describe_exception(std::current_exception()));
  }
  if (hit || hit.error().kind != Failure::Kind::NotFound) {
    if (hit) {
      ticket.immediate.ok = true;
      ticket.immediate.outcome = Outcome::CacheHit;
      ticket.immediate.verification = hit->verification;
    } else {
      ticket.immediate.error = hit.error().message;
      KG_LOG_ERROR("lookup of " << key << " failed: " << printable(ticket.immediate.error));
    }
    return ticket;
  }
  std::shared_ptr<Job> job;
  try {
    job = std::make_shared<Job>(key, request.spec->name);
    std::lock_guard lock(m_mutex);
    if (auto it = m_jobs.find(key); it != m_jobs.end()) {
      ticket.job = it->second;
      ticket.joined = true;
      return ticket;
    }
    m_jobs.emplace(key, job);
    ++m_active;
  } catch (...) {
    ticket.immediate.error = "cannot start a job: " + describe_exception(std::current_exception());
    return ticket;
  }
  ticket.job = job;
  try {
    job->post("queued", "waiting for a generation slot (" + std::to_string(m_slots.limit()) + " at once)");
    std::thread(&JobRunner::run, this, job, std::move(request)).detach();
  } catch (...) {
    // No thread runs the job: end it here, for this request and any that joined meanwhile.
    Result failed;
    failed.key = key;
    failed.name = job->name();
    failed.error = "cannot start a job thread: " + describe_exception(std::current_exception());
    complete(job, std::move(failed));
  }
  return ticket;
}

Result JobRunner::execute(Job& job, const JobRequest& request) {
  SlotHold slot(m_slots);
  job.post("generating", "generating " + job.name() + " for " + request.arch);
  KG_LOG_INFO("job " << job.key() << ": generating " << job.name() << " for " << request.arch);
  JobRequest with_progress = request;
  with_progress.progress = [&job](const std::string& stage, const std::string& message) { job.post(stage, message); };
  Expected<JobBackend::Done, Failure> done = m_backend.generate(with_progress, m_devices);
  Result result;
  result.key = job.key();
  result.name = job.name();
  if (done) {
    result.ok = true;
    result.outcome = done->cache_hit ? Outcome::CacheHit : Outcome::Generated;
    result.verification = done->verification;
    KG_LOG_INFO("job " << job.key() << ": " << (done->cache_hit ? "found in the cache" : "stored") << " ("
                       << cache::verification_name(done->verification) << ")");
  } else {
    result.error = done.error().message;
  }
  return result;
}

void JobRunner::run(std::shared_ptr<Job> job, JobRequest request) noexcept {
  Result result;
  try {
    result = execute(*job, request);
  } catch (...) {
    result = Result{};
    result.error = "internal error in the job for " + job->name() + ": " +
                   describe_exception(std::current_exception());
  }
  result.key = job->key();
  result.name = job->name();
  if (!result.ok) {
    KG_LOG_ERROR("job " << job->key() << " (" << job->name() << ") failed: " << printable(result.error));
  }
  complete(job, std::move(result));
}

void JobRunner::complete(const std::shared_ptr<Job>& job, Result result) noexcept {
  const bool generated = result.ok && result.outcome == Outcome::Generated;
  {
    std::lock_guard lock(m_mutex);
    if (generated) {
      ++m_generations;
    }
    // Removed before waiters hear of it, so a request arriving after the result reads the cache
    // (or starts a new job after a failure) instead of joining a finished job.
    if (auto it = m_jobs.find(job->key()); it != m_jobs.end() && it->second == job) {
      m_jobs.erase(it);
    }
  }
  job->finish(std::move(result));
  {
    // Notified under the lock: wait_idle() cannot return (and the runner be destroyed) before
    // this thread is done with m_idle.
    std::lock_guard lock(m_mutex);
    --m_active;
    m_idle.notify_all();
  }
}

int JobRunner::active() const {
  std::lock_guard lock(m_mutex);
  return m_active;
}

int64_t JobRunner::generations() const {
  std::lock_guard lock(m_mutex);
  return m_generations;
}

void JobRunner::wait_idle() {
  std::unique_lock lock(m_mutex);
  m_idle.wait(lock, [&] { return m_active == 0; });
}

}  // namespace kg::daemon
