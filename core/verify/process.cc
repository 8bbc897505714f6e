#include "verify/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/file.h"

namespace kg::verify {

namespace {

using Clock = std::chrono::steady_clock;

// Status messages from the child to the parent over a close-on-exec pipe. EOF without an 'E'
// message means exec succeeded.
struct ChildStatus {
  char tag;  // 'N': network namespace created; 'n': unshare refused (err); 'E': setup failed (err, what)
  int err;
  char what;  // 'c' chdir, 'x' exec, 'o' stdio
};

void write_status(int fd, char tag, int err, char what) {
  ChildStatus s{tag, err, what};
  ssize_t n;
  do {
    n = ::write(fd, &s, sizeof s);
  } while (n < 0 && errno == EINTR);
}

// Resident memory of every process in process group `pgrp` (the child and anything it started):
// /proc/<pid>/stat field 5 is the group, /proc/<pid>/statm field 2 the resident pages.
uint64_t group_rss_bytes(pid_t pgrp) {
  static const long page = ::sysconf(_SC_PAGESIZE);
  uint64_t total = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return 0;
  }
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') {
      continue;
    }
    const std::string base = std::string("/proc/") + e->d_name;
    std::ifstream stat(base + "/stat");
    std::string text;
    if (!std::getline(stat, text)) {
      continue;
    }
    const size_t paren = text.rfind(')');
    if (paren == std::string::npos) {
      continue;
    }
    std::istringstream fields(text.substr(paren + 1));
    std::string state;
    long ppid = 0, group = 0;
    if (!(fields >> state >> ppid >> group) || group != pgrp) {
      continue;
    }
    std::ifstream statm(base + "/statm");
    uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) {
      total += resident * static_cast<uint64_t>(page);
    }
  }
  ::closedir(proc);
  return total;
}

// `name` looked up in the PATH of `env` (the child's environment), else in /usr/bin:/bin.
std::string resolve_program(const std::string& name, const std::optional<std::vector<std::string>>& env) {
  if (name.find('/') != std::string::npos) {
    return name;
  }
  std::string path = "/usr/bin:/bin";
  if (env) {
    for (const std::string& e : *env) {
      if (e.rfind("PATH=", 0) == 0) {
        path = e.substr(5);
      }
    }
  }
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return name;
}

// A started child and its process group, killed and reaped on destruction unless reaped before:
// no path out of run_process (an error, an exception) leaves a process behind or a zombie.
class ChildGroup {
 public:
  explicit ChildGroup(pid_t pid) : m_pid(pid) {}
  ~ChildGroup() {
    if (!m_reaped) {
      kill_group();
      int status;
      while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;

  void kill_group() const {
    ::kill(-m_pid, SIGKILL);
    ::kill(m_pid, SIGKILL);
  }
  // waitpid(WNOHANG or 0); true once the child was reaped (its status in `status`).
  bool reap(int& status, bool block) {
    if (!m_reaped) {
      pid_t w;
      do {
        w = ::waitpid(m_pid, &status, block ? 0 : WNOHANG);
      } while (w < 0 && errno == EINTR);
      m_reaped = w == m_pid;
    }
    return m_reaped;
  }

 private:
  const pid_t m_pid;
  bool m_reaped = false;
};

// Closes a descriptor on destruction unless it was closed (set to -1) before.
struct FdCloser {
  int& fd;
  ~FdCloser() {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }
};

void drain(int& fd, std::string& into, size_t& dropped, size_t limit) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      const size_t keep = into.size() < limit ? std::min(limit - into.size(), static_cast<size_t>(n)) : 0;
      into.append(buf, keep);
      dropped += static_cast<size_t>(n) - keep;
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0) {  // EOF
      ::close(fd);
      fd = -1;
    }
    return;  // EAGAIN or EOF
  }
}

}  // namespace

bool set_cloexec_from(int first) noexcept {
#ifdef SYS_close_range
  constexpr unsigned kCloexec = 1U << 2;  // CLOSE_RANGE_CLOEXEC (linux/close_range.h)
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, kCloexec) == 0) {
    return true;
  }
#endif
  // /proc/self/fd, read with the raw system call: opendir/readdir may allocate.
  const int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    struct LinuxDirent64 {
      uint64_t d_ino;
      int64_t d_off;
      unsigned short d_reclen;
      unsigned char d_type;
      char d_name[1];
    };
    alignas(8) char buf[4096];
    bool ok = true;
    for (;;) {
      const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
      if (n <= 0) {
        ok = n == 0;
        break;
      }
      for (long off = 0; off < n;) {
        const auto* e = reinterpret_cast<const LinuxDirent64*>(buf + off);
        int fd = 0;
        bool number = e->d_name[0] != '\0';
        for (const char* c = e->d_name; *c != '\0'; ++c) {
          number = number && *c >= '0' && *c <= '9';
          fd = fd * 10 + (*c - '0');
        }
        if (number && fd >= first && fd != dir) {
          ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        off += e->d_reclen;
      }
    }
    ::close(dir);
    if (ok) {
      return true;
    }
  }
  struct rlimit files;
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0) {
    return false;
  }
  const rlim_t end = files.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : files.rlim_cur;
  for (rlim_t fd = static_cast<rlim_t>(first); fd < end; ++fd) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
  return true;
}

std::string last_lines(const std::string& text, int max_lines) {
  size_t end = text.size();
  while (end > 0 && text[end - 1] == '\n') {
    --end;
  }
  size_t pos = end;
  for (int n = 0; n < max_lines && pos > 0; ++n) {
    const size_t nl = text.rfind('\n', pos - 1);
    pos = nl == std::string::npos ? 0 : nl;
    if (nl == std::string::npos) {
      break;
    }
  }
  return text.substr(pos == 0 ? 0 : pos + 1, end - (pos == 0 ? 0 : pos + 1));
}

Expected<ProcessResult, Failure> run_process(const ProcessOptions& o) {
  if (o.argv.empty()) {
    return fail("run_process: empty argv");
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  const std::string program = resolve_program(o.argv[0], o.env);
  std::vector<char*> argv;
  for (const std::string& a : o.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (o.env) {
    for (const std::string& e : *o.env) {
      envp.push_back(const_cast<char*>(e.c_str()));
    }
    envp.push_back(nullptr);
  }
  char** child_env = o.env ? envp.data() : environ;

  int out_pipe[2], err_pipe[2], status_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return fail(std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]), ::close(out_pipe[1]);
    return fail(std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]), ::close(out_pipe[1]), ::close(err_pipe[0]), ::close(err_pipe[1]);
    return fail(std::string("pipe: ") + std::strerror(errno));
  }
  // stdin: /dev/null, or an anonymous file holding stdin_data (no path anyone else could open).
  int dev_null = -1;
  if (o.stdin_data) {
    dev_null = ::memfd_create("kernelgen-stdin", MFD_CLOEXEC);
    bool written = dev_null >= 0;
    for (size_t off = 0; written && off < o.stdin_data->size();) {
      const ssize_t n = ::write(dev_null, o.stdin_data->data() + off, o.stdin_data->size() - off);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      written = n > 0;
      off += n > 0 ? static_cast<size_t>(n) : 0;
    }
    if (!written || ::lseek(dev_null, 0, SEEK_SET) != 0) {
      const int e = errno;
      for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], status_pipe[0], status_pipe[1], dev_null}) {
        if (fd >= 0) {
          ::close(fd);
        }
      }
      return fail(std::string("cannot prepare the child's input: ") + std::strerror(e));
    }
  } else {
    dev_null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  const pid_t parent = ::getpid();
  const auto t0 = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], status_pipe[0], status_pipe[1], dev_null}) {
      ::close(fd);
    }
    return fail(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    // ---- child ----
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);  // the parent died before prctl took effect
    }
    if (o.private_network) {
      if (::unshare(CLONE_NEWNET) == 0) {
        write_status(status_pipe[1], 'N', 0, 0);
      } else {
        write_status(status_pipe[1], 'n', errno, 0);
      }
    }
    struct rlimit no_core = {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) {
      write_status(status_pipe[1], 'E', errno, 'c');
      ::_exit(127);
    }
    if (::dup2(dev_null, 0) < 0 || ::dup2(out_pipe[1], 1) < 0 || ::dup2(err_pipe[1], 2) < 0) {
      write_status(status_pipe[1], 'E', errno, 'o');
      ::_exit(127);
    }
    // Every other descriptor: close-on-exec (the status pipe too: it closes at exec, telling the
    // parent that exec succeeded).
    if (!set_cloexec_from(3)) {
      write_status(status_pipe[1], 'E', errno, 'o');
      ::_exit(127);
    }
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(program.c_str(), argv.data(), child_env);
    write_status(status_pipe[1], 'E', errno, 'x');
    ::_exit(127);
  }
  // ---- parent ----
  ChildGroup child(pid);  // from here on, every way out kills and reaps what is still running
  ::setpgid(pid, pid);  // also here, so the group exists before any kill below (races with the child's call)
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(status_pipe[1]);
  if (dev_null >= 0) {
    ::close(dev_null);
  }
  int out_fd = out_pipe[0], err_fd = err_pipe[0], status_fd = status_pipe[0];
  FdCloser close_out{out_fd}, close_err{err_fd}, close_status{status_fd};

  ProcessResult r;
  // Child setup status: read until EOF (exec or exit closes the pipe).
  int setup_errno = 0;
  char setup_what = 0;
  for (;;) {
    ChildStatus s;
    const ssize_t n = ::read(status_fd, &s, sizeof s);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n != static_cast<ssize_t>(sizeof s)) {
      break;
    }
    if (s.tag == 'N') {
      r.private_network = true;
    } else if (s.tag == 'n') {
      r.network_note = std::string("unshare(CLONE_NEWNET) refused: ") + std::strerror(s.err);
    } else if (s.tag == 'E') {
      setup_errno = s.err;
      setup_what = s.what;
    }
  }
  int status = 0;
  if (setup_errno != 0) {
    child.reap(status, /*block=*/true);
    if (setup_what == 'c') {
      return fail("cannot enter directory " + o.cwd + " for " + o.argv[0] + ": " + std::strerror(setup_errno));
    }
    return fail("cannot run " + program + ": " + std::strerror(setup_errno));
  }

  ::fcntl(out_fd, F_SETFL, O_NONBLOCK);
  ::fcntl(err_fd, F_SETFL, O_NONBLOCK);
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.wall_limit_s));
  const int poll_ms = std::max(1, static_cast<int>(o.poll_interval_s * 1000));
  bool killed = false;
  uint64_t polls = 0;
  for (;;) {
    pollfd fds[2];
    int nfds = 0;
    if (out_fd >= 0) {
      fds[nfds++] = {out_fd, POLLIN, 0};
    }
    if (err_fd >= 0) {
      fds[nfds++] = {err_fd, POLLIN, 0};
    }
    if (nfds > 0) {
      ::poll(fds, nfds, poll_ms);
    } else {
      ::usleep(static_cast<useconds_t>(poll_ms) * 1000);
    }
    if (out_fd >= 0) {
      drain(out_fd, r.out, r.out_dropped, o.output_limit);
    }
    if (err_fd >= 0) {
      drain(err_fd, r.err, r.err_dropped, o.output_limit);
    }
    if (child.reap(status, /*block=*/false)) {
      break;
    }
    if (killed) {
      continue;
    }
    // Memory: every 5th poll (scanning /proc costs about a millisecond).
    if (o.memory_limit_bytes > 0 && ++polls % 5 == 1) {
      const uint64_t rss = group_rss_bytes(pid);
      r.peak_rss_bytes = std::max(r.peak_rss_bytes, rss);
      if (rss > o.memory_limit_bytes) {
        r.memory_exceeded = true;
        child.kill_group();
        killed = true;
      }
    }
    if (!killed && o.wall_limit_s > 0 && Clock::now() >= deadline) {
      r.timed_out = true;
      child.kill_group();
      killed = true;
    }
  }
  ::kill(-pid, SIGKILL);  // anything the child left behind in its group
  // Output still buffered in the pipes (writers in the group are gone now).
  if (out_fd >= 0) {
    drain(out_fd, r.out, r.out_dropped, o.output_limit);
  }
  if (err_fd >= 0) {
    drain(err_fd, r.err, r.err_dropped, o.output_limit);
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

}  // namespace kg::verify
