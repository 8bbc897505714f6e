#include "server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "protocol/framing.h"
#include "protocol/request_check.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/log.h"
#include "version.h"

namespace kg::daemon {

using namespace protocol;  // frames, sockets and messages (core/protocol/)

namespace {

using Clock = std::chrono::steady_clock;

// Once a frame has started, the rest of it must arrive within this.
constexpr int kFrameRestMs = 10'000;
// A client that reads nothing for this long is given up (its job goes on).
constexpr int kSendTimeoutMs = 10'000;
// How often the main loop wakes for the idle and socket checks.
constexpr int kTickMs = 1000;
constexpr int kSocketCheckEveryTicks = 5;
// While draining, how long connections get to read their results after the last job ended.
constexpr auto kDrainConnectionsWait = std::chrono::seconds(10);

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

Server::Server(ServerOptions options, JobRunner& runner)
    : m_options(std::move(options)), m_runner(runner), m_started(Clock::now()) {}

Server::~Server() = default;

Expected<void, Failure> Server::start() {
  auto lock = FileLock::acquire(m_options.paths.lock, /*wait=*/false);
  if (!lock) {
    if (lock.error().kind == Failure::Kind::NotFound) {
      return fail("another kernelgend serves this configuration already (its lock " + m_options.paths.lock +
                      " is held)",
                  Failure::Kind::NotFound);
    }
    return unexpected(lock.error());
  }
  m_lock = std::move(*lock);
  // Holding the lock, anything at the socket path is a leftover of a daemon that died: replace it.
  auto listener = listen_unix(m_options.paths.socket, 1024);
  if (!listener) {
    return unexpected(listener.error());
  }
  m_listener = std::move(*listener);
  ::fcntl(m_listener.get(), F_SETFL, ::fcntl(m_listener.get(), F_GETFL) | O_NONBLOCK);
  struct stat st;
  if (::stat(m_options.paths.socket.c_str(), &st) != 0) {
    return fail("cannot stat the socket " + m_options.paths.socket + ": " + std::strerror(errno));
  }
  m_socket_dev = st.st_dev;
  m_socket_ino = st.st_ino;
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return fail(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  m_wake_read.reset(wake[0]);
  m_wake_write.reset(wake[1]);
  KG_LOG_INFO("kernelgend " << kVersion << " listening on " << m_options.paths.socket << " (config "
                            << m_options.config_id << ", cache " << m_options.config.cache_dir << ", "
                            << m_runner.jobs_limit() << " jobs at once, idle timeout "
                            << m_options.idle_timeout_s << " s)");
  return {};
}

void Server::request_stop(const std::string& why) {
  {
    std::lock_guard lock(m_stop_mutex);
    if (m_stop_reason.empty()) {
      m_stop_reason = why;
    }
  }
  m_stop = true;
  char c = 's';
  ssize_t ignored = ::write(m_wake_write.get(), &c, 1);
  (void)ignored;
}

bool Server::socket_still_ours() {
  struct stat st;
  return ::lstat(m_options.paths.socket.c_str(), &st) == 0 && st.st_dev == m_socket_dev &&
         st.st_ino == m_socket_ino;
}

bool Server::run(int signal_fd) {
  auto last_busy = Clock::now();
  int ticks = 0;
  while (!m_stop) {
    pollfd fds[3] = {{m_listener.get(), POLLIN, 0}, {signal_fd, POLLIN, 0}, {m_wake_read.get(), POLLIN, 0}};
    int n = ::poll(fds, 3, kTickMs);
    if (n < 0 && errno != EINTR) {
      KG_LOG_ERROR("poll: " << std::strerror(errno) << "; shutting down");
      request_stop("poll failed");
      break;
    }
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      signalfd_siginfo info;
      if (::read(signal_fd, &info, sizeof info) == sizeof info) {
        request_stop(std::string("received ") + ::strsignal(static_cast<int>(info.ssi_signo)));
      }
    }
    if (n > 0 && (fds[0].revents & POLLIN) != 0 && !m_stop) {
      accept_ready();
    }
    // Idle: no job and no generate request for the whole timeout.
    if (m_generating > 0 || m_runner.active() > 0) {
      last_busy = Clock::now();
    }
    last_busy = std::max(last_busy, Clock::time_point(Clock::duration(m_last_generate_end.load())));
    if (m_options.idle_timeout_s > 0 &&
        Clock::now() - last_busy >= std::chrono::seconds(m_options.idle_timeout_s)) {
      request_stop("idle for " + std::to_string(m_options.idle_timeout_s) + " s");
    }
    if (++ticks % kSocketCheckEveryTicks == 0) {
      if (!socket_still_ours()) {
        request_stop("the socket " + m_options.paths.socket +
                     " was removed or replaced, so no client can reach this daemon");
      } else if (m_options.cache_gone && m_options.cache_gone()) {
        request_stop("the cache " + m_options.config.cache_dir + " was removed or replaced");
      }
    }
  }
  return drain();
}

void Server::accept_ready() {
  for (;;) {
    int fd = ::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: the pending connection stays queued; back off instead of spinning.
        KG_LOG_WARN("accept: " << std::strerror(errno) << "; waiting for connections to close");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        KG_LOG_WARN("accept: " << std::strerror(errno));
      }
      return;
    }
    set_socket_timeouts(fd, kSendTimeoutMs, 0);
    bool busy;
    int64_t open_now;
    {
      std::lock_guard lock(m_connections_mutex);
      open_now = static_cast<int64_t>(m_connections.size());
      busy = open_now >= m_options.max_connections;
      if (!busy) {
        m_connections.insert(fd);
      }
    }
    if (busy) {
      // Two small frames into an empty socket buffer: these sends do not block.
      KG_LOG_WARN("refusing a connection: " << open_now << " connections are open (the limit)");
      send(fd, hello());
      send(fd, Error{ErrorCode::Busy,
                     "the daemon serves " + std::to_string(open_now) + " connections already (its limit); try again",
                     open_now});
      ::close(fd);
      continue;
    }
    try {
      std::thread(&Server::serve, this, fd).detach();
    } catch (const std::exception& e) {
      // Out of threads: this connection is refused, the daemon goes on.
      KG_LOG_WARN("cannot start a thread for a connection: " << e.what() << "; closed");
      std::lock_guard lock(m_connections_mutex);
      m_connections.erase(fd);
      ::close(fd);
      m_connections_changed.notify_all();
    }
  }
}

Hello Server::hello() const {
  Hello h;
  h.version = m_options.announce_version.empty() ? kVersion : m_options.announce_version;
  h.generator = kGeneratorVersion;
  h.verifier = kVerifierVersion;
  h.config = m_options.config_id;
  h.pid = ::getpid();
  return h;
}

bool Server::send(int fd, const Response& response) {
  auto sent = write_frame(fd, encode(response));
  if (!sent) {
    KG_LOG_DEBUG("connection " << fd << ": cannot send: " << sent.error().message);
  }
  return static_cast<bool>(sent);
}

void Server::serve(int fd) noexcept {
  try {
    serve_requests(fd);
  } catch (const std::exception& e) {
    // Whatever went wrong (memory for a large request, say) ends this connection only.
    ++m_protocol_errors;
    KG_LOG_ERROR("connection " << fd << ": " << e.what() << "; closed");
  } catch (...) {
    ++m_protocol_errors;
    KG_LOG_ERROR("connection " << fd << ": an unknown exception; closed");
  }
  std::lock_guard lock(m_connections_mutex);
  m_connections.erase(fd);
  // Closed under the lock, so drain() never shuts down a number the kernel has already reused;
  // notified under it, so drain() cannot return (and the server be destroyed) before this thread
  // is done with the server.
  ::close(fd);
  m_connections_changed.notify_all();
}

void Server::serve_requests(int fd) {
  if (!send(fd, hello())) {
    return;
  }
  for (;;) {
    auto frame = read_frame(fd, m_options.connection_idle_ms, kFrameRestMs);
    if (!frame) {
      const FrameError& e = frame.error();
      switch (e.kind) {
        case FrameError::Kind::Closed:
          break;
        case FrameError::Kind::Timeout:
          KG_LOG_DEBUG("connection " << fd << ": no request for " << m_options.connection_idle_ms
                                     << " ms; closed");
          break;
        case FrameError::Kind::Empty:
          ++m_protocol_errors;
          send(fd, Error{ErrorCode::FrameEmpty, e.message});
          break;
        case FrameError::Kind::TooLarge:
          ++m_protocol_errors;
          send(fd, Error{ErrorCode::FrameTooLarge, e.message});
          break;
        case FrameError::Kind::Truncated:
        case FrameError::Kind::Io:
          ++m_protocol_errors;
          KG_LOG_WARN("connection " << fd << ": " << e.message << "; closed");
          break;
      }
      return;
    }
    auto request = parse_request(*frame);
    if (!request) {
      ++m_protocol_errors;
      KG_LOG_WARN("connection " << fd << ": " << error_code_name(request.error().code) << ": "
                                << printable(request.error().message) << "; closed");
      send(fd, request.error());
      return;
    }
    ++m_requests;
    if (!answer(fd, *request)) {
      return;
    }
  }
}

bool Server::answer(int fd, const Request& request) {
  return std::visit(Overloaded{
                        [&](const GenerateRequest& g) { return generate(fd, g); },
                        [&](const StatusRequest&) { return send(fd, status()); },
                        [&](const StatsRequest&) { return send(fd, stats()); },
                        [&](const ShutdownRequest&) {
                          send(fd, ShutdownAck{m_runner.active()});
                          request_stop("asked to shut down");
                          return false;
                        },
                    },
                    request);
}

bool Server::generate(int fd, const GenerateRequest& request) {
  ++m_generating;
  bool keep = generate_counted(fd, request);
  m_last_generate_end = Clock::now().time_since_epoch().count();
  --m_generating;
  return keep;
}

bool Server::generate_counted(int fd, const GenerateRequest& request) {
  ++m_generate_requests;
  if (m_draining) {
    send(fd, Error{ErrorCode::Draining, "the daemon is shutting down; connect again to start a new one"});
    return false;
  }
  Result result;
  // For diagnostics and logs only; control bytes escaped (a request cannot forge log lines).
  const std::string file = printable(request.file.empty() ? "<request>" : request.file);
  auto finish = [&](Result r) {
    r.error = printable_lines(r.error);
    if (!r.ok) {
      ++m_failures;
      KG_LOG_DEBUG("generate " << (r.name.empty() ? file : r.name) << ": failed: " << printable(r.error));
    } else if (r.outcome == Outcome::CacheHit) {
      ++m_cache_hits;
    }
    return send(fd, r);
  };
  // The door: every field bounded and the target one the generator builds for, before any parsing
  // or job.
  if (auto checked = check_generate(request); !checked) {
    result.error = checked.error();
    return finish(std::move(result));
  }
  auto arch = spec::resolve_arch(request.arch);
  if (!arch) {
    result.error = arch.error().message;
    return finish(std::move(result));
  }
  auto parsed = spec::parse_spec(request.spec, file);
  if (!parsed) {
    for (const spec::Diagnostic& d : parsed.error()) {
      if (!result.error.empty()) {
        result.error += '\n';
      }
      result.error += d.str();
    }
    return finish(std::move(result));
  }
  if (auto named = check_name(parsed->name); !named) {
    result.error = file + ": " + named.error();
    return finish(std::move(result));
  }
  JobRequest job;
  job.spec = std::make_shared<const spec::Spec>(std::move(*parsed));
  job.spec_text = request.spec;
  job.file = file;
  job.arch = *arch;
  job.key = spec::spec_key(*job.spec, job.arch);
  job.verify = request.verify;
  job.budget_s = request.budget_s;
  JobRunner::Ticket ticket = m_runner.submit(std::move(job));
  if (!ticket.job) {
    return finish(std::move(ticket.immediate));
  }
  if (ticket.joined) {
    ++m_joins;
  }
  size_t seen = 0;
  std::vector<Progress> events;
  const auto heartbeat = std::chrono::milliseconds(std::max(1, m_options.heartbeat_ms));
  std::optional<Progress> last;  // the last event sent
  auto last_sent = Clock::now();
  for (;;) {
    events.clear();
    const auto wait = std::max<Clock::duration>(Clock::duration::zero(), last_sent + heartbeat - Clock::now());
    std::optional<Result> done =
        ticket.job->wait(seen, events, std::chrono::duration_cast<std::chrono::milliseconds>(wait));
    if (done) {
      // The events posted before the result first.
      for (const Progress& p : events) {
        if (!send(fd, p)) {
          return false;
        }
      }
      result = std::move(*done);
      if (ticket.joined && result.ok) {
        result.outcome = Outcome::Joined;
      }
      return finish(std::move(result));
    }
    if (events.empty() && Clock::now() - last_sent >= heartbeat) {
      if (!last) {
        last_sent = Clock::now();  // nothing to repeat yet (a job posts "queued" first, so never)
        continue;
      }
      // Nothing new: the last stage again, so the client knows this daemon is alive.
      Progress beat = *last;
      beat.elapsed_ms += std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last_sent).count();
      events.push_back(std::move(beat));
    }
    for (Progress& p : events) {
      if (!send(fd, p)) {
        return false;  // the client is gone; the job goes on
      }
      last = std::move(p);
      last_sent = Clock::now();
    }
  }
}

Status Server::status() const {
  Status s;
  s.pid = ::getpid();
  s.version = kVersion;
  s.config = m_options.config_id;
  s.cache_dir = m_options.config.cache_dir;
  s.socket = m_options.paths.socket;
  s.log = m_options.log;
  s.uptime_s = std::chrono::duration<double>(Clock::now() - m_started).count();
  s.idle_timeout_s = m_options.idle_timeout_s;
  s.jobs_limit = m_runner.jobs_limit();
  s.active_jobs = m_runner.active();
  {
    std::lock_guard lock(m_connections_mutex);
    s.connections = static_cast<int64_t>(m_connections.size());
  }
  s.draining = m_draining;
  s.storage = m_options.storage;
  return s;
}

Stats Server::stats() const {
  Stats s;
  s.uptime_s = std::chrono::duration<double>(Clock::now() - m_started).count();
  s.requests = m_requests;
  s.generate_requests = m_generate_requests;
  s.cache_hits = m_cache_hits;
  s.generations = m_runner.generations();
  s.joins = m_joins;
  s.failures = m_failures;
  s.active_jobs = m_runner.active();
  {
    std::lock_guard lock(m_connections_mutex);
    s.connections = static_cast<int64_t>(m_connections.size());
  }
  s.protocol_errors = m_protocol_errors;
  return s;
}

bool Server::drain() {
  m_draining = true;
  {
    std::lock_guard lock(m_stop_mutex);
    KG_LOG_INFO("shutting down (" << m_stop_reason << "); " << m_runner.active() << " jobs to finish");
  }
  // Stop being reachable first, then let a successor start: close, unlink (only our own socket),
  // release the lock.
  m_listener.reset();
  if (socket_still_ours()) {
    ::unlink(m_options.paths.socket.c_str());
  }
  m_lock.release();

  m_runner.wait_idle();
  // Every result is set; waiters send them now. Then end the reads of idle connections.
  std::unique_lock lock(m_connections_mutex);
  for (int fd : m_connections) {
    ::shutdown(fd, SHUT_RD);
  }
  if (!m_connections_changed.wait_for(lock, kDrainConnectionsWait, [&] { return m_connections.empty(); })) {
    KG_LOG_WARN(m_connections.size() << " connections did not finish reading their results; exiting anyway");
    for (int fd : m_connections) {
      ::shutdown(fd, SHUT_RDWR);
    }
    return false;
  }
  KG_LOG_INFO("stopped");
  return true;
}

}  // namespace kg::daemon
