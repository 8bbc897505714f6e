#include "jobs.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kg::daemon {
namespace {

using namespace std::chrono_literals;

// A gate the test opens: generations wait at it, so the test decides when jobs end instead of
// guessing with sleeps.
class Gate {
 public:
  explicit Gate(bool open) : m_open(open) {}
  void open() {
    {
      std::lock_guard lock(m_mutex);
      m_open = true;
    }
    m_changed.notify_all();
  }
  void pass() {
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [&] { return m_open; });
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_changed;
  bool m_open;
};

// How a key's generation goes wrong, if it does.
enum class Fault { None, FailOnce, ThrowStd, ThrowInt, ThrowInLookup, RefuseAtTheDoor };

// A JobBackend without cache, codegen or GPU: "stores" keys in a set. Every generation waits at
// the gate; the backend counts generations and records how many ran (and verified) at once.
class FakeBackend : public JobBackend {
 public:
  explicit FakeBackend(bool gate_open = true) : m_gate(gate_open) {}

  Expected<void, Failure> check(const JobRequest& request) override {
    std::lock_guard lock(m_mutex);
    if (m_faults[request.key] == Fault::RefuseAtTheDoor) {
      return fail("the generator cannot target this: sm_75");
    }
    return {};
  }

  Expected<Done, Failure> lookup(const JobRequest& request) override {
    std::lock_guard lock(m_mutex);
    ++m_lookups;
    if (m_faults[request.key] == Fault::ThrowInLookup) {
      throw std::logic_error("lookup exploded");
    }
    if (m_stored.count(request.key) != 0) {
      return Done{true, cache::Verification::Unverified};
    }
    return fail("miss", Failure::Kind::NotFound);
  }

  Expected<Done, Failure> generate(const JobRequest& request, DeviceLocks& gpus) override {
    const std::string& key = request.key;
    enter(m_running, m_max_running);
    m_gate.pass();
    leave(m_running);
    if (request.verify) {
      std::lock_guard gpu(gpus.device(0));
      enter(m_verifying, m_max_verifying);
      leave(m_verifying);
    }
    std::lock_guard lock(m_mutex);
    ++m_calls[key];
    switch (m_faults[key]) {
      case Fault::FailOnce:
        m_faults[key] = Fault::None;
        return fail("the disk is full");
      case Fault::ThrowStd:
        throw std::runtime_error("the generator refused " + request.spec->name);
      case Fault::ThrowInt:
        throw 7;
      default:
        break;
    }
    const bool hit = m_stored.count(key) != 0;
    m_stored.insert(key);
    return Done{hit, cache::Verification::Unverified};
  }

  void set_fault(const std::string& key, Fault fault) {
    std::lock_guard lock(m_mutex);
    m_faults[key] = fault;
  }
  int lookups() {
    std::lock_guard lock(m_mutex);
    return m_lookups;
  }
  int calls(const std::string& key) {
    std::lock_guard lock(m_mutex);
    return m_calls[key];
  }
  void open_gate() { m_gate.open(); }
  // Blocks until exactly `n` generations wait at the (closed) gate at once.
  void wait_running(int n) {
    std::unique_lock lock(m_count_mutex);
    m_count_changed.wait(lock, [&] { return m_running == n; });
  }
  int max_running() {
    std::lock_guard lock(m_count_mutex);
    return m_max_running;
  }
  int max_verifying() {
    std::lock_guard lock(m_count_mutex);
    return m_max_verifying;
  }

 private:
  void enter(int& now, int& max) {
    {
      std::lock_guard lock(m_count_mutex);
      max = std::max(max, ++now);
    }
    m_count_changed.notify_all();
  }
  void leave(int& now) {
    {
      std::lock_guard lock(m_count_mutex);
      --now;
    }
    m_count_changed.notify_all();
  }

  Gate m_gate;
  int m_lookups = 0;
  std::mutex m_mutex;
  std::set<std::string> m_stored;
  std::map<std::string, int> m_calls;
  std::map<std::string, Fault> m_faults;
  std::mutex m_count_mutex;
  std::condition_variable m_count_changed;
  int m_running = 0, m_max_running = 0;
  int m_verifying = 0, m_max_verifying = 0;
};

JobRequest request(const std::string& name, const std::string& key, bool verify = false) {
  auto s = std::make_shared<spec::Spec>();
  s->name = name;
  JobRequest r;
  r.spec = s;
  r.arch = "sm_90a";
  r.key = key;
  r.verify = verify;
  return r;
}

// Waits for the ticket's result (or returns the immediate one). The wait is for an event (the
// result); the 100 ms is only how often Job::wait returns empty-handed.
Result wait_for(const JobRunner::Ticket& t, std::vector<Progress>* events_out = nullptr) {
  if (!t.job) {
    return t.immediate;
  }
  size_t seen = 0;
  std::vector<Progress> events;
  for (;;) {
    if (auto r = t.job->wait(seen, events, 100ms)) {
      if (events_out != nullptr) {
        *events_out = events;
      }
      return *r;
    }
  }
}

TEST(Jobs, OneJobPerKeyOthersJoin) {
  FakeBackend backend(/*gate_open=*/false);
  JobRunner runner(backend, {.jobs = 4});
  std::vector<JobRunner::Ticket> tickets;
  for (int i = 0; i < 32; ++i) {
    tickets.push_back(runner.submit(request("causal", "key-a")));
  }
  // All 32 arrived while the job was held at the gate: one started it, 31 joined.
  int joined = 0;
  for (const auto& t : tickets) {
    ASSERT_TRUE(t.job);
    EXPECT_EQ(t.job, tickets[0].job);
    joined += t.joined ? 1 : 0;
  }
  EXPECT_EQ(joined, 31);
  backend.open_gate();
  for (const auto& t : tickets) {
    EXPECT_TRUE(wait_for(t).ok);
  }
  EXPECT_EQ(backend.calls("key-a"), 1);
  EXPECT_EQ(runner.generations(), 1);
  // Afterwards the key is a hit, answered at once.
  auto again = runner.submit(request("causal", "key-a"));
  EXPECT_FALSE(again.job);
  EXPECT_TRUE(again.immediate.ok);
  EXPECT_EQ(again.immediate.outcome, Outcome::CacheHit);
}

TEST(Jobs, ConcurrencyIsBounded) {
  FakeBackend backend(/*gate_open=*/false);
  JobRunner runner(backend, {.jobs = 2});
  std::vector<JobRunner::Ticket> tickets;
  for (int i = 0; i < 8; ++i) {
    tickets.push_back(runner.submit(request("k", "key-" + std::to_string(i))));
  }
  // Every job is either generating (held at the gate) or waiting for a slot; none can finish.
  backend.wait_running(2);
  while (runner.queued() != 6) {
    std::this_thread::yield();
  }
  EXPECT_EQ(backend.max_running(), 2);
  EXPECT_EQ(runner.active(), 8);
  backend.open_gate();
  for (auto& t : tickets) {
    Result r = wait_for(t);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.outcome, Outcome::Generated);
  }
  EXPECT_EQ(backend.max_running(), 2);
  EXPECT_EQ(runner.generations(), 8);
}

TEST(Jobs, ProgressStartsQueuedThenGenerating) {
  FakeBackend backend;
  JobRunner runner(backend, {.jobs = 1});
  auto t = runner.submit(request("causal", "key-p"));
  ASSERT_TRUE(t.job);
  std::vector<Progress> events;
  EXPECT_TRUE(wait_for(t, &events).ok);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].stage, "queued");
  EXPECT_EQ(events[1].stage, "generating");
  EXPECT_EQ(events[1].key, "key-p");
}

TEST(Jobs, FailuresAreNotRemembered) {
  FakeBackend backend;
  JobRunner runner(backend, {.jobs = 1});
  backend.set_fault("key-f", Fault::FailOnce);
  Result first = wait_for(runner.submit(request("causal", "key-f")));
  EXPECT_FALSE(first.ok);
  EXPECT_EQ(first.error, "the disk is full");
  EXPECT_EQ(first.outcome, Outcome::None);
  Result second = wait_for(runner.submit(request("causal", "key-f")));
  EXPECT_TRUE(second.ok);
  EXPECT_EQ(backend.calls("key-f"), 2);
  EXPECT_EQ(runner.generations(), 1);
}

TEST(Jobs, AJobFinishesWithoutWaiters) {
  FakeBackend backend(/*gate_open=*/false);
  JobRunner runner(backend, {.jobs = 1});
  runner.submit(request("orphan", "key-o"));  // ticket dropped at once
  EXPECT_EQ(runner.active(), 1);              // held at the gate: it cannot have finished
  backend.open_gate();
  runner.wait_idle();
  EXPECT_EQ(runner.active(), 0);
  EXPECT_EQ(backend.calls("key-o"), 1);
  EXPECT_TRUE(runner.submit(request("orphan", "key-o")).immediate.ok);
}

TEST(Jobs, VerificationsShareNoGpuButGenerationOverlaps) {
  FakeBackend backend(/*gate_open=*/false);
  JobRunner runner(backend, {.jobs = 4, .gpus = 1});
  std::vector<JobRunner::Ticket> tickets;
  for (int i = 0; i < 4; ++i) {
    tickets.push_back(runner.submit(request("k", "gpu-" + std::to_string(i), /*verify=*/true)));
  }
  backend.wait_running(4);  // all four generate at once
  backend.open_gate();
  for (auto& t : tickets) {
    EXPECT_TRUE(wait_for(t).ok);
  }
  EXPECT_EQ(backend.max_verifying(), 1);
  EXPECT_EQ(backend.max_running(), 4);
}

// A job that throws, of any type, ends as an error for all its waiters, frees its slot and its
// table entry, and leaves every other job running and the runner usable.
TEST(Jobs, AThrowingJobFailsAloneAndFreesItsSlot) {
  for (Fault fault : {Fault::ThrowStd, Fault::ThrowInt}) {
    FakeBackend backend(/*gate_open=*/false);
    JobRunner runner(backend, {.jobs = 2});
    backend.set_fault("bad", fault);
    auto good = runner.submit(request("good", "good"));
    auto bad = runner.submit(request("bad", "bad"));
    auto bad_joiner = runner.submit(request("bad", "bad"));
    ASSERT_TRUE(bad_joiner.joined);
    backend.wait_running(2);
    backend.open_gate();
    for (const auto* t : {&bad, &bad_joiner}) {
      Result r = wait_for(*t);
      EXPECT_FALSE(r.ok);
      EXPECT_EQ(r.key, "bad");
      EXPECT_EQ(r.name, "bad");
      EXPECT_EQ(r.outcome, Outcome::None);
      EXPECT_NE(r.error.find("internal error in the job for bad"), std::string::npos) << r.error;
      if (fault == Fault::ThrowStd) {
        EXPECT_NE(r.error.find("the generator refused bad"), std::string::npos) << r.error;
      } else {
        EXPECT_NE(r.error.find("not a std::exception"), std::string::npos) << r.error;
      }
    }
    EXPECT_TRUE(wait_for(good).ok);
    runner.wait_idle();
    EXPECT_EQ(runner.active(), 0);
    EXPECT_EQ(runner.queued(), 0);
    // Its slot and table entry are free: both slots serve new keys, and the bad key gets a new
    // job (not the finished one) that fails again.
    backend.set_fault("bad", Fault::None);
    auto retry = runner.submit(request("bad", "bad"));
    ASSERT_TRUE(retry.job);
    EXPECT_FALSE(retry.joined);
    EXPECT_NE(retry.job, bad.job);
    EXPECT_TRUE(wait_for(retry).ok);
    auto a = runner.submit(request("a", "a"));
    auto b = runner.submit(request("b", "b"));
    EXPECT_TRUE(wait_for(a).ok);
    EXPECT_TRUE(wait_for(b).ok);
    EXPECT_EQ(runner.generations(), 4);
  }
}

TEST(Jobs, AThrowingLookupIsAnErrorForThatRequestOnly) {
  FakeBackend backend;
  JobRunner runner(backend, {.jobs = 1});
  backend.set_fault("boom", Fault::ThrowInLookup);
  auto t = runner.submit(request("boom", "boom"));
  ASSERT_FALSE(t.job);
  EXPECT_FALSE(t.immediate.ok);
  EXPECT_EQ(t.immediate.key, "boom");
  EXPECT_NE(t.immediate.error.find("lookup exploded"), std::string::npos) << t.immediate.error;
  EXPECT_EQ(runner.active(), 0);
  EXPECT_TRUE(wait_for(runner.submit(request("fine", "fine"))).ok);
}

TEST(Jobs, ARequestTheGeneratorRefusesEndsAtTheDoor) {
  FakeBackend backend;
  JobRunner runner(backend, {.jobs = 1});
  backend.set_fault("old-gpu", Fault::RefuseAtTheDoor);
  auto t = runner.submit(request("old-gpu", "old-gpu"));
  ASSERT_FALSE(t.job);
  EXPECT_FALSE(t.immediate.ok);
  EXPECT_NE(t.immediate.error.find("cannot target this: sm_75"), std::string::npos) << t.immediate.error;
  EXPECT_EQ(backend.lookups(), 0);  // neither the cache nor a job saw it
  EXPECT_EQ(runner.active(), 0);
  EXPECT_EQ(backend.calls("old-gpu"), 0);
}

}  // namespace
}  // namespace kg::daemon
