#include "daemon_client.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "protocol/framing.h"
#include "util/log.h"
#include "verify/process.h"
#include "version.h"

namespace kg::cli {

namespace {

using Clock = std::chrono::steady_clock;

// How long starting a daemon may take, spawn lock wait included.
constexpr auto kStartTimeout = std::chrono::seconds(10);
// How long a daemon of another version gets to stop listening once asked to shut down.
constexpr auto kRetireTimeout = std::chrono::seconds(5);
constexpr auto kPollInterval = std::chrono::milliseconds(5);

bool executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

std::string describe(const protocol::Hello& h) {
  return h.program + " " + h.version + " (protocol " + std::to_string(h.protocol) + ", config " + h.config +
         ", pid " + std::to_string(h.pid) + ")";
}

// The first kernelgend process while this client waits for its verdict: killed and reaped if the
// client gives up (or leaves by any other path) before it exited by itself.
class Starting {
 public:
  explicit Starting(pid_t pid) : m_pid(pid) {}
  ~Starting() {
    if (!m_reaped) {
      ::kill(m_pid, SIGKILL);
      int status;
      while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Starting(const Starting&) = delete;
  Starting& operator=(const Starting&) = delete;
  // Non-blocking; true once reaped (status set). Errors of waitpid other than EINTR: -1.
  int poll(int& status) {
    pid_t done = ::waitpid(m_pid, &status, WNOHANG);
    if (done == m_pid) {
      m_reaped = true;
      return 1;
    }
    return done < 0 && errno != EINTR ? -1 : 0;
  }

 private:
  const pid_t m_pid;
  bool m_reaped = false;
};

// Runs kernelgend and waits for its verdict: it detaches and exits 0 once it listens (3 when
// another daemon holds the configuration already). Errors name the program and the log.
Expected<void, Failure> start_daemon(const DaemonTarget& target, Clock::time_point deadline) {
  const std::string& exe = target.daemon;
  if (exe.empty()) {
    return fail(
        "cannot find kernelgend beside this kernelgen (nor at $KERNELGEN_DAEMON); install it next to "
        "kernelgen, set KERNELGEN_DAEMON, or generate in-process with --no-daemon");
  }
  KG_LOG_DEBUG("starting " << exe << " --cache-dir " << target.config.cache_dir);
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  const std::vector<std::string> env = daemon_environment(target.env);
  std::vector<char*> envp;
  for (const std::string& e : env) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);
  const char* argv[] = {exe.c_str(), "--cache-dir", target.config.cache_dir.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) {
    return fail(std::string("cannot fork to start kernelgend: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: a new session, no terminal, stdio on /dev/null, no other inherited descriptor, a
    // clean environment: the daemon outlives this build step and owes it nothing.
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    verify::set_cloexec_from(3);
    ::execve(exe.c_str(), const_cast<char* const*>(argv), envp.data());
    ::_exit(127);
  }
  Starting starting(pid);
  int status = 0;
  for (;;) {
    int done = starting.poll(status);
    if (done == 1) {
      break;
    }
    if (done < 0) {
      return fail(std::string("cannot wait for kernelgend: ") + std::strerror(errno));
    }
    if (Clock::now() > deadline) {
      return fail("kernelgend (" + exe + ") did not start listening within " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kStartTimeout).count()) +
                  " s; see its log " + target.paths.log);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3)) {
    return {};
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return fail("cannot run " + exe);
  }
  const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                            : std::string("signal ") + ::strsignal(WTERMSIG(status));
  return fail("kernelgend (" + exe + ") failed to start (" + how + "); see its log " + target.paths.log);
}

// Asks a daemon of another version to shut down and waits until it no longer answers on the
// socket (or a compatible daemon does).
void retire(DaemonConnection conn, const DaemonTarget& target) {
  const int64_t old_pid = conn.hello().pid;
  KG_LOG_WARN("replacing " << describe(conn.hello()) << " with kernelgend " << kVersion << " (protocol "
                           << protocol::kProtocolVersion << ", config " << target.id << ")");
  if (conn.send(protocol::ShutdownRequest{})) {
    conn.receive(target.timeouts.greeting_ms);  // the acknowledgement (or the close)
  }
  const auto deadline = Clock::now() + kRetireTimeout;
  while (Clock::now() < deadline) {
    auto again = connect_daemon(target);
    if (!again || again->hello().pid != old_pid) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  KG_LOG_WARN(
      "the old daemon (pid " << old_pid << ") still answers after "
                             << std::chrono::duration_cast<std::chrono::seconds>(kRetireTimeout).count()
                             << " s");
}


}  // namespace

std::string seconds_text(int64_t ms) {
  std::string s = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms % 1000));
    std::string f = frac;
    while (f.back() == '0') {
      f.pop_back();
    }
    s += f;
  }
  return s + " s";
}

ClientTimeouts client_timeouts(const config::Config& config) {
  ClientTimeouts t;
  t.total_ms = config.milliseconds("daemon_timeout");
  t.silence_ms = std::max<int64_t>(1, config.milliseconds("daemon_silence_timeout"));
  t.greeting_ms = static_cast<int>(std::min<int64_t>(t.greeting_ms, t.silence_ms));
  return t;
}

bool daemon_environment_allowed(std::string_view entry) {
  const size_t eq = entry.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return false;
  }
  const std::string_view name = entry.substr(0, eq);
  // LD_LIBRARY_PATH: kernelgend itself may need it to start (its libraries from a non-system
  // prefix: conda, spack, a staged lib/ directory). LD_PRELOAD and the rest never pass.
  for (const char* exact : {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "CUDA_VISIBLE_DEVICES",
                            "CUDACXX", "LD_LIBRARY_PATH"}) {
    if (name == exact) {
      return true;
    }
  }
  for (const char* prefix : {"LC_", "XDG_", "KERNELGEN_"}) {
    if (name.rfind(prefix, 0) == 0) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> daemon_environment(const config::Environment& env) {
  std::vector<std::string> out;
  for (const auto& [name, value] : env) {
    std::string entry = name + "=" + value;
    if (daemon_environment_allowed(entry)) {
      out.push_back(std::move(entry));
    }
  }
  return out;
}

Expected<DaemonTarget, Failure> daemon_target(const std::string& cache_dir, const config::Config& config) {
  DaemonTarget t;
  t.timeouts = client_timeouts(config);
  t.daemon = locate_daemon(config.text("daemon"));
  t.env = config.environment();
  t.config.cache_dir = protocol::absolute_path(cache_dir);
  t.id = protocol::config_id(t.config);
  const std::string runtime = protocol::absolute_path(config.runtime_dir());
  KG_TRY(protocol::ensure_private_dir(runtime));
  auto paths = protocol::daemon_paths(runtime, t.id);
  if (!paths) {
    return unexpected(paths.error());
  }
  t.paths = std::move(*paths);
  return t;
}

Expected<void, Failure> DaemonConnection::send(const protocol::Request& request) {
  auto sent = protocol::write_frame(m_fd.get(), protocol::encode(request));
  if (!sent) {
    return fail("cannot send to kernelgend (pid " + std::to_string(m_hello.pid) +
                "): " + sent.error().message);
  }
  return {};
}

Incoming DaemonConnection::receive(int timeout_ms) {
  Incoming in;
  auto frame = protocol::read_frame(m_fd.get(), timeout_ms, m_rest_ms);
  if (!frame) {
    using K = protocol::FrameError::Kind;
    switch (frame.error().kind) {
      case K::Timeout:
        in.kind = Incoming::Kind::Timeout;
        break;
      case K::Closed:
      case K::Truncated:
      case K::Io:
        in.kind = Incoming::Kind::Lost;
        break;
      case K::Empty:
      case K::TooLarge:
        in.kind = Incoming::Kind::Garbage;
        break;
    }
    in.error = frame.error().message;
    return in;
  }
  auto response = protocol::parse_response(*frame);
  if (!response) {
    in.kind = Incoming::Kind::Garbage;
    in.error = response.error().message;
    return in;
  }
  in.kind = Incoming::Kind::Message;
  in.response = std::move(*response);
  return in;
}

bool compatible(const protocol::Hello& hello, const DaemonTarget& target) {
  return hello.program == "kernelgend" && hello.protocol == protocol::kProtocolVersion &&
         hello.version == kVersion && hello.config == target.id;
}

Expected<DaemonConnection, Failure> connect_daemon(const DaemonTarget& target) {
  auto fd = protocol::connect_unix(target.paths.socket);
  if (!fd) {
    return unexpected(fd.error());
  }
  const int greeting_ms = target.timeouts.greeting_ms;
  auto frame = protocol::read_frame(fd->get(), greeting_ms, greeting_ms);
  if (!frame) {
    // A daemon that closes at once is draining (its listener is going away): same as none.
    if (frame.error().kind == protocol::FrameError::Kind::Closed) {
      return fail("the daemon on " + target.paths.socket + " closed the connection", Failure::Kind::NotFound);
    }
    if (frame.error().kind == protocol::FrameError::Kind::Timeout) {
      return fail("the daemon on " + target.paths.socket + " accepted the connection but sent no greeting within " +
                      seconds_text(greeting_ms) + ": it is stopped (SIGSTOP) or hung; end it (kill it by the pid `kernelgen daemon "
                      "status` or its log names) and run again",
                  Failure::Kind::Timeout);
    }
    return fail("no greeting from the daemon on " + target.paths.socket + ": " + frame.error().message);
  }
  auto response = protocol::parse_response(*frame);
  if (!response) {
    return fail("the daemon on " + target.paths.socket +
                " greeted with something unreadable: " + response.error().message);
  }
  auto* hello = std::get_if<protocol::Hello>(&*response);
  if (hello == nullptr) {
    return fail("the daemon on " + target.paths.socket + " did not greet first");
  }
  return DaemonConnection(std::move(*fd), std::move(*hello), static_cast<int>(std::min<int64_t>(
                                                                 target.timeouts.silence_ms, 10'000)));
}

Expected<DaemonConnection, Failure> connect_or_start_daemon(const DaemonTarget& target) {
  const auto deadline = Clock::now() + kStartTimeout;
  auto conn = connect_daemon(target);
  if (conn && compatible(conn->hello(), target)) {
    return conn;
  }
  if (conn) {
    retire(std::move(*conn), target);
  } else if (conn.error().kind != Failure::Kind::NotFound) {
    return unexpected(conn.error());
  }

  // Start one, under the spawn lock so that parallel clients start one daemon between them.
  protocol::FileLock lock;
  for (;;) {
    auto l = protocol::FileLock::acquire(target.paths.spawn_lock, /*wait=*/false);
    if (l) {
      lock = std::move(*l);
      break;
    }
    if (l.error().kind != Failure::Kind::NotFound) {
      return unexpected(l.error());
    }
    if (Clock::now() > deadline) {
      return fail("timed out waiting for another kernelgen to start the daemon (lock " +
                  target.paths.spawn_lock + ")");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  int starts = 0;
  std::string last_error;
  for (;;) {
    // The re-check: another client may have started it while this one waited for the lock.
    conn = connect_daemon(target);
    if (conn && compatible(conn->hello(), target)) {
      return conn;
    }
    if (conn) {
      retire(std::move(*conn), target);
    } else if (conn.error().kind != Failure::Kind::NotFound) {
      return unexpected(conn.error());
    } else {
      last_error = conn.error().message;
    }
    if (Clock::now() > deadline) {
      return fail("kernelgend does not answer on " + target.paths.socket + " (" + last_error +
                  "); see its log " + target.paths.log);
    }
    // A daemon that reported "already running" may be one that is just handing over (draining):
    // start another after a short while.
    if (starts < 3) {
      ++starts;
      KG_TRY(start_daemon(target, deadline));
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string locate_daemon(const std::string& configured) {
  if (!configured.empty()) {
    return executable(configured) ? configured : "";
  }
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return "";
  }
  const std::string path = (self.parent_path() / "kernelgend").string();
  return executable(path) ? path : "";
}

}  // namespace kg::cli
