#include "host_link.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace kg::judge {

namespace {

using verify::Finding;
using verify::FindingKind;
using Clock = std::chrono::steady_clock;

constexpr size_t kTailBytes = 64 * 1024;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

Finding finding(FindingKind kind, std::string message) {
  Finding f;
  f.kind = kind;
  f.stage = verify::kStageRun;
  f.message = std::move(message);
  return f;
}

// Waits up to `timeout_s` for a message on `fd` and receives it into `buf` (`size` bytes).
// Returns the size received, 0 on EOF, -1 on timeout, -2 on an error or a truncated message.
ssize_t receive(int fd, void* buf, size_t size, double timeout_s) {
  pollfd p{fd, POLLIN, 0};
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const double left_ms = std::chrono::duration<double, std::milli>(deadline - Clock::now()).count();
    if (left_ms <= 0) {
      return -1;
    }
    const int r = ::poll(&p, 1, static_cast<int>(std::min(left_ms + 1, 1e9)));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r == 0) {
      return -1;
    }
    break;
  }
  iovec iov{buf, size};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t n;
  do {
    n = ::recvmsg(fd, &mh, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return errno == ECONNRESET ? 0 : -2;
  }
  if (mh.msg_flags & MSG_TRUNC) {
    return -2;
  }
  return n;
}

}  // namespace

HostLink::~HostLink() {
  if (m_pid > 0 && !m_dead) {
    kill_candidate_host(m_spawned);
    m_dead = true;
  }
  if (m_channel >= 0) {
    ::close(m_channel);
  }
  if (m_drain.joinable()) {
    m_drain.join();  // the pipe ends when the host's process tree is gone
  }
  if (m_output >= 0) {
    ::close(m_output);
  }
}

std::optional<Finding> HostLink::start(const HostOptions& options, int arena_fd, uint64_t arena_bytes, int object_fd,
                                       const std::string& symbol) {
  m_reply_timeout_s = options.reply_timeout_s;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(sv[0]), ::close(sv[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  m_channel = sv[0];
  m_output = out[0];
  verify::HostSpawnOptions so;
  so.argv = {options.executable};
  so.argv.insert(so.argv.end(), options.args.begin(), options.args.end());
  so.env = options.env;
  // No JIT cache: after the filter, CUDA could not write one (and the host must not write files).
  so.env.push_back("CUDA_CACHE_DISABLE=1");
  so.cwd = "/";
  so.channel_fd = sv[1];
  so.output_fd = out[1];
  const Clock::time_point t0 = Clock::now();
  auto spawned = verify::spawn_candidate_host(so);
  ::close(sv[1]);
  ::close(out[1]);
  if (!spawned) {
    throw std::runtime_error("cannot start the candidate host " + options.executable + ": " + spawned.error().message);
  }
  m_spawned = *spawned;
  m_pid = m_spawned.pid;
  m_drain = std::thread([this] {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(m_output, buf, sizeof buf);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return;
      }
      std::lock_guard<std::mutex> lock(m_output_mutex);
      m_output_tail.append(buf, static_cast<size_t>(n));
      if (m_output_tail.size() > 2 * kTailBytes) {
        m_output_tail.erase(0, m_output_tail.size() - kTailBytes);
      }
    }
  });
  m_facts.ran = true;
  m_facts.pid_namespace = m_spawned.pid_namespace;
  m_facts.network_namespace = m_spawned.network_namespace;
  m_facts.mount_namespace = m_spawned.mount_namespace;
  m_facts.user_namespace = m_spawned.user_namespace;
  m_facts.read_only_root = m_spawned.read_only_root;
  m_facts.notes = m_spawned.notes;

  host::Setup setup;
  setup.arena_bytes = arena_bytes;
  setup.trap_for_diagnosis = options.trap_syscalls ? 1 : 0;
  if (symbol.size() >= sizeof setup.symbol) {
    throw std::runtime_error("entry symbol too long: " + symbol);
  }
  std::memcpy(setup.symbol, symbol.data(), symbol.size());
  iovec iov{&setup, sizeof setup};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * 2);
  const int fds[2] = {arena_fd, object_fd};
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  if (::sendmsg(m_channel, &mh, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof setup)) {
    Reply r = host_failed("before it took its setup");
    return finding(r.kind, r.message);
  }

  host::Ready ready;
  const ssize_t n = receive(m_channel, &ready, sizeof ready, m_reply_timeout_s);
  m_facts.startup_seconds = ms_since(t0) / 1e3;
  if (n == -1) {
    ::kill(m_pid, SIGKILL);
    host_failed("");
    return finding(FindingKind::Timeout, "the candidate host was not ready within " +
                                             std::to_string(m_reply_timeout_s) +
                                             " s (the candidate's initialisers hang?)");
  }
  if (n == 0) {
    Reply r = host_failed("while it loaded the candidate");
    return finding(r.kind, r.message);
  }
  if (n != static_cast<ssize_t>(sizeof ready) || ready.magic != host::kMagic || ready.op != host::Op::Ready) {
    finish();
    return finding(FindingKind::BadReply, "the candidate host answered its setup with a malformed message");
  }
  ready.message[sizeof ready.message - 1] = '\0';
  switch (ready.status) {
    case host::ReadyStatus::Ok:
      break;
    case host::ReadyStatus::LoadError:
      return finding(FindingKind::LoadError, std::string("dlopen failed: ") + ready.message);
    case host::ReadyStatus::MissingEntry:
      return finding(FindingKind::MissingEntry, ready.message);
    case host::ReadyStatus::SandboxFailed:
      throw std::runtime_error(std::string("the candidate host could not enter its sandbox: ") + ready.message);
    case host::ReadyStatus::ArenaFailed:
      throw std::runtime_error(std::string("the candidate host could not map the judge's buffers: ") + ready.message);
    default:
      return finding(FindingKind::BadReply, "the candidate host answered its setup with an unknown status");
  }
  // Believe the kernel, not the host: its filter must be in force before anything runs.
  auto seen = verify::observe_sandbox(m_pid);
  if (!seen) {
    throw std::runtime_error("cannot observe the candidate host's sandbox: " + seen.error().message);
  }
  m_facts.seccomp = seen->seccomp_filter;
  m_facts.no_new_privs = seen->no_new_privs;
  m_facts.pid_namespace = seen->pid_namespace;
  m_facts.network_namespace = seen->network_namespace;
  m_facts.mount_namespace = seen->mount_namespace;
  m_facts.no_capabilities = seen->no_capabilities;
  if (!seen->seccomp_filter || !seen->no_new_privs) {
    throw std::runtime_error("the candidate host runs without its seccomp filter (/proc says Seccomp " +
                             std::string(seen->seccomp_filter ? "2" : "not 2") + ", NoNewPrivs " +
                             (seen->no_new_privs ? "1" : "0") + "): the candidate is not run");
  }
  return std::nullopt;
}

template <typename T>
Reply HostLink::request(const T& msg, uint64_t seq) {
  if (!alive()) {
    Reply r;
    r.message = "the candidate host is gone";
    return r;
  }
  const Clock::time_point t0 = Clock::now();
  if (::send(m_channel, &msg, sizeof msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof msg)) {
    return host_failed("when the judge sent it work");
  }
  Reply r;
  // One byte more than a Done: a longer message is malformed, not truncated into a valid one.
  unsigned char buf[sizeof(host::Done) + 1];
  const ssize_t n = receive(m_channel, buf, sizeof buf, m_reply_timeout_s);
  r.judge_ms = ms_since(t0);
  if (n == -1) {
    ::kill(m_pid, SIGKILL);
    Reply t = host_failed("");
    t.kind = FindingKind::Timeout;
    t.message = "the candidate host did not answer within " + std::to_string(m_reply_timeout_s) +
                " s (a kernel that never finishes?)";
    return t;
  }
  if (n == 0) {
    return host_failed("while it ran the candidate");
  }
  if (n != static_cast<ssize_t>(sizeof(host::Done))) {
    r.kind = FindingKind::BadReply;
    r.message = "the candidate host answered with a " + std::to_string(n) + "-byte message, not a Done (" +
                std::to_string(sizeof(host::Done)) + " bytes): only the candidate's code could have sent it";
    finish();
    return r;
  }
  std::memcpy(&r.done, buf, sizeof r.done);
  if (r.done.magic != host::kMagic || r.done.op != host::Op::Done || r.done.seq != seq) {
    r.kind = FindingKind::BadReply;
    r.message = "the candidate host answered request " + std::to_string(seq) + " with a message for another (seq " +
                std::to_string(r.done.seq) + ") or of another kind: only the candidate's code could have sent it";
    finish();
    return r;
  }
  r.ok = true;
  return r;
}

Reply HostLink::run(const host::RunArgs& args, bool null_run) {
  static host::Run msg;  // large (params): not on the stack
  msg.seq = ++m_seq;
  msg.null_run = null_run ? 1 : 0;
  msg.args = args;
  return request(msg, msg.seq);
}

Reply HostLink::sync() {
  host::Sync msg;
  msg.seq = ++m_seq;
  return request(msg, msg.seq);
}

std::string HostLink::describe_end(int status) const {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigabbrev_np(sig);
    return std::string("killed by SIG") + (name ? name : std::to_string(sig).c_str());
  }
  if (WIFEXITED(status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  return "ended";
}

Reply HostLink::host_failed(const std::string& what) {
  Reply r;
  if (!m_dead) {
    // The channel broke: give the process a moment to finish dying, then make sure.
    int status = 0;
    pid_t w = 0;
    for (int i = 0; i < 200 && (w = ::waitpid(m_pid, &status, WNOHANG)) == 0; ++i) {
      ::usleep(10 * 1000);
    }
    if (w == m_pid) {
      m_dead = true;
      m_status = status;
    } else {
      m_status = kill_candidate_host(m_spawned);
      m_dead = true;
    }
  }
  const std::string ended = describe_end(m_status);
  m_facts.ended = ended;
  const std::string tail = output_tail();
  const std::string said = tail.empty() ? "" : "\nits last output:\n" + tail;
  if (WIFSIGNALED(m_status) && WTERMSIG(m_status) == SIGSYS) {
    r.kind = FindingKind::ForbiddenSyscall;
    r.message = "the candidate host was killed by its seccomp filter " + what +
                ": the candidate made a denied system call (process creation, exec, opening files for writing, "
                "network, signals to other processes, ptrace, ...)" + said;
  } else if (WIFSIGNALED(m_status)) {
    r.kind = FindingKind::Crash;
    r.message = "the candidate host was " + ended + " " + what + said;
  } else {
    r.kind = FindingKind::CandidateExited;
    r.message = "the candidate host " + ended + " " + what +
                ": once the candidate is loaded, any exit of its process is a finding (exit, _Exit, quick_exit, "
                "an exit from an initialiser, a destructor or an atexit handler)" + said;
  }
  return r;
}

std::optional<Finding> HostLink::finish() {
  if (m_pid <= 0 || m_dead) {
    return std::nullopt;
  }
  int status = 0;
  if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
    m_dead = true;
    m_status = status;
    Reply r = host_failed("before the judge was done with it");
    return finding(r.kind, r.message);
  }
  m_status = kill_candidate_host(m_spawned);
  m_dead = true;
  m_facts.ended = "killed by the judge when it was done";
  if (m_drain.joinable()) {
    m_drain.join();
  }
  return std::nullopt;
}

std::string HostLink::output_tail() const {
  std::lock_guard<std::mutex> lock(m_output_mutex);
  const size_t keep = std::min<size_t>(m_output_tail.size(), 4096);
  return m_output_tail.substr(m_output_tail.size() - keep);
}

}  // namespace kg::judge
