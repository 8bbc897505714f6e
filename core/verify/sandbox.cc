#include "verify/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "verify/process.h"

namespace kg::verify {

namespace {

// ---- reading /proc, bounded --------------------------------------------------------------------

constexpr size_t k_max_status_bytes = 64 * 1024;
constexpr size_t k_max_threads = 65536;

std::string errno_text(int err) { return std::strerror(err); }

// At most `limit` bytes of `path`.
Expected<std::string, Failure> read_bounded(const std::string& path, size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return fail(path + ": " + errno_text(errno), errno == ENOENT ? Failure::Kind::NotFound : Failure::Kind::Error);
  }
  std::string text;
  char buf[4096];
  while (text.size() < limit) {
    const ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - text.size()));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(path + ": " + errno_text(err));
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

// The value after "Name:" on its line of a /proc status file, blanks trimmed; "" when absent.
std::string status_field(const std::string& text, const std::string& name) {
  size_t line = 0;
  while (line < text.size()) {
    size_t end = text.find('\n', line);
    if (end == std::string::npos) {
      end = text.size();
    }
    if (end - line > name.size() && text.compare(line, name.size(), name) == 0 && text[line + name.size()] == ':') {
      const size_t first = text.find_first_not_of(" \t", line + name.size() + 1);
      if (first == std::string::npos || first >= end) {
        return "";
      }
      size_t last = end;
      while (last > first && (text[last - 1] == ' ' || text[last - 1] == '\t')) {
        --last;
      }
      return text.substr(first, last - first);
    }
    line = end + 1;
  }
  return "";
}

bool all_zero_hex(const std::string& value) {
  return !value.empty() && value.find_first_not_of('0') == std::string::npos;
}

Expected<std::string, Failure> ns_link(const std::string& path) {
  char buf[256];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) {
    return fail(path + ": " + errno_text(errno), errno == ENOENT ? Failure::Kind::NotFound : Failure::Kind::Error);
  }
  if (static_cast<size_t>(n) >= sizeof buf) {
    return fail(path + ": link target longer than " + std::to_string(sizeof buf - 1) + " bytes");
  }
  return std::string(buf, static_cast<size_t>(n));
}

// ---- spawning ----------------------------------------------------------------------------------

// Messages from the child over the close-on-exec status pipe. EOF without a fatal message means
// exec succeeded.
struct ChildMessage {
  char tag;   // 'N': a namespace step failed (fatal, the caller tries the next set);
              // 'F': another step failed (fatal, a Failure); 'R'/'r': the read-only tree failed / held;
              // 'C': the capability bounding set could not be emptied (a note)
  char what;  // which step (see step_name)
  int err;
};

const char* step_name(char what) {
  switch (what) {
    case 's': return "writing /proc/self/setgroups";
    case 'u': return "writing /proc/self/uid_map";
    case 'g': return "writing /proc/self/gid_map";
    case 'p': return "making the mounts private";
    case 'P': return "mounting /proc for the PID namespace";
    case 'o': return "making the mount tree read-only (mount_setattr)";
    case 'q': return "keeping /proc writable in the read-only tree";
    case 'k': return "PR_SET_PDEATHSIG";
    case 'd': return "setting up descriptors";
    case 'l': return "setting rlimits";
    case 'b': return "emptying the capability bounding set";
    case 'i': return "clearing inheritable capabilities";
    case 'n': return "PR_SET_NO_NEW_PRIVS";
    case 'c': return "chdir";
    case 'x': return "exec";
    default: return "setup";
  }
}

// Everything the child needs, prepared before the clone: between clone and exec the child makes
// system calls only (no allocation, no locks).
struct ChildPlan {
  unsigned long clone_flags = 0;
  bool user_ns = false, pid_ns = false, mount_ns = false, read_only = false, drop_caps = false;
  bool root = false;  // the caller's euid is 0
  char uid_map[64] = {}, gid_map[64] = {};
  size_t uid_map_len = 0, gid_map_len = 0;
  int status_fd = -1, channel_fd = -1, output_fd = -1, null_fd = -1;
  struct rlimit core{}, fsize{}, nofile{};
  int cap_last = 63;
  pid_t parent = -1;
  const char* path = nullptr;
  const char* cwd = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
};

void send(int fd, char tag, char what, int err) {
  const ChildMessage m{tag, what, err};
  ssize_t n;
  do {
    n = ::write(fd, &m, sizeof m);
  } while (n < 0 && errno == EINTR);
}

bool write_file(const char* path, const char* text, size_t len) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  ssize_t n;
  do {
    n = ::write(fd, text, len);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  errno = err;
  return n == static_cast<ssize_t>(len);
}

[[noreturn]] void run_child(const ChildPlan& p) {
  int status = p.status_fd;
  auto die = [&](char tag, char what) {
    send(status, tag, what, errno);
    ::_exit(126);
  };
  // The caller's handlers are not ours: default dispositions (and, at exec, an empty mask).
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::sigaction(sig, &dfl, nullptr);
    }
  }
  if (p.user_ns) {
    // A caller that changed its uid, or asked for it, is not dumpable: its /proc/self files then
    // belong to root and the maps below could not be written. The exec makes the host dumpable
    // again anyway.
    ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (!write_file("/proc/self/setgroups", "deny", 4) && errno != ENOENT) {
      die('N', 's');
    }
    if (!write_file("/proc/self/uid_map", p.uid_map, p.uid_map_len)) {
      die('N', 'u');
    }
    if (!write_file("/proc/self/gid_map", p.gid_map, p.gid_map_len)) {
      die('N', 'g');
    }
  }
  if (p.mount_ns) {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      die('N', 'p');
    }
    // The PID namespace's own /proc: with the caller's, /proc/<getpid()> is someone else and
    // cuInit fails (CUDA_ERROR_OPERATING_SYSTEM). The mount is private to this namespace.
    if (p.pid_ns && ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      die('N', 'P');
    }
    if (p.read_only) {
      // Everything read-only but /proc: cuInit fails (CUDA_ERROR_OPERATING_SYSTEM) on a read-only
      // /proc. Where /proc cannot be made writable again, the whole step is undone.
      struct mount_attr ro{}, rw{};
      ro.attr_set = MOUNT_ATTR_RDONLY;
      rw.attr_clr = MOUNT_ATTR_RDONLY;
      if (::syscall(SYS_mount_setattr, -1, "/", AT_RECURSIVE, &ro, sizeof ro) != 0) {
        send(status, 'R', 'o', errno);
      } else if (::syscall(SYS_mount_setattr, -1, "/proc", 0, &rw, sizeof rw) != 0) {
        send(status, 'R', 'q', errno);
        ::syscall(SYS_mount_setattr, -1, "/", AT_RECURSIVE, &rw, sizeof rw);
      } else {
        send(status, 'r', 'o', 0);
      }
    }
  }
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    die('F', 'k');
  }
  // The caller may have died before PR_SET_PDEATHSIG took effect. In a PID namespace getppid()
  // is 0 whoever the parent is: there, the caller's end of the status pipe tells.
  if (!p.pid_ns && ::getppid() != p.parent) {
    ::_exit(125);
  }
  if (p.pid_ns) {
    struct pollfd pf{status, POLLOUT, 0};
    if (::poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR) != 0) {
      ::_exit(125);
    }
  }
  // Descriptors: move every source above 9 first, so that no dup2 overwrites one still needed.
  const int ch = ::fcntl(p.channel_fd, F_DUPFD_CLOEXEC, 10);
  const int out = ::fcntl(p.output_fd, F_DUPFD_CLOEXEC, 10);
  const int nul = ::fcntl(p.null_fd, F_DUPFD_CLOEXEC, 10);
  const int st = ::fcntl(status, F_DUPFD_CLOEXEC, 10);
  if (ch < 0 || out < 0 || nul < 0 || st < 0) {
    die('F', 'd');
  }
  status = st;
  if (::dup2(nul, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0 || ::dup2(ch, 3) < 0) {
    die('F', 'd');
  }
  if (!set_cloexec_from(4)) {
    die('F', 'd');
  }
  if (::setrlimit(RLIMIT_CORE, &p.core) != 0 || ::setrlimit(RLIMIT_FSIZE, &p.fsize) != 0 ||
      ::setrlimit(RLIMIT_NOFILE, &p.nofile) != 0) {
    die('F', 'l');
  }
  if (p.drop_caps) {
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);  // EINVAL before Linux 4.3: none to clear
    for (int cap = 0; cap <= p.cap_last; ++cap) {
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
        // Without CAP_SETPCAP. Only root then gets capabilities at exec (no_new_privs keeps
        // everyone else from gaining any): only root's is worth a note.
        if (p.root) {
          send(status, 'C', 'b', errno);
        }
        break;
      }
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capget, &header, data) != 0) {
      die('F', 'i');
    }
    data[0].inheritable = data[1].inheritable = 0;
    if (::syscall(SYS_capset, &header, data) != 0) {
      die('F', 'i');
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      die('F', 'n');
    }
  }
  if (::chdir(p.cwd) != 0) {
    die('F', 'c');
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(p.path, p.argv, p.envp);
  send(status, 'F', 'x', errno);
  ::_exit(127);
}

std::string attempt_name(const NamespaceAttempt& a) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) {
      s += s.empty() ? "" : "+";
      s += name;
    }
  };
  add(a.user, "user");
  add(a.pid, "pid");
  add(a.network, "network");
  add(a.mount, "mount");
  return s.empty() ? "none" : s;
}

// "0 0 1\n"-style map line: `id` mapped to itself.
size_t format_map(char* buf, size_t size, unsigned id) {
  const std::string line = std::to_string(id) + " " + std::to_string(id) + " 1\n";
  const size_t n = std::min(line.size(), size - 1);
  std::memcpy(buf, line.data(), n);
  return n;
}

int read_cap_last() {
  auto text = read_bounded("/proc/sys/kernel/cap_last_cap", 64);
  if (text) {
    try {
      const int v = std::stoi(*text);
      if (v >= 0 && v < 64) {
        return v;
      }
    } catch (const std::exception&) {
    }
  }
  return 63;
}

struct rlimit clamped(uint64_t want, const struct rlimit& now) {
  rlim_t v = static_cast<rlim_t>(want);
  if (now.rlim_max != RLIM_INFINITY && v > now.rlim_max) {
    v = now.rlim_max;
  }
  return {v, v};
}

// Closes on destruction unless released.
struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) {
      ::close(fd);
    }
    fd = -1;
  }
};

void reap(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// ---- the seccomp filter ------------------------------------------------------------------------

// System calls newer than some libseccomp releases know by name, by their number on x86-64 and
// aarch64 (the same on both: numbers from 424 on are shared by every architecture but alpha and mips).
struct NewSyscall {
  const char* name;
  int nr;
};
constexpr NewSyscall k_new_syscalls[] = {
    {"fchmodat2", 452}, {"setxattrat", 463}, {"removexattrat", 466}, {"open_tree_attr", 467},
};

// The system call's number on this architecture, or -1 when it has none here.
int syscall_number(const char* name) {
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr != __NR_SCMP_ERROR) {
    return nr >= 0 ? nr : -1;  // negative: a pseudo-number (not on this architecture)
  }
#if defined(__x86_64__) || defined(__aarch64__)
  for (const NewSyscall& s : k_new_syscalls) {
    if (std::strcmp(s.name, name) == 0) {
      return s.nr;
    }
  }
#endif
  return -1;
}

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

Expected<void, Failure> add_rule(void* ctx, uint32_t action, const char* name,
                                 std::initializer_list<scmp_arg_cmp> args = {}) {
  const int nr = syscall_number(name);
  if (nr < 0) {
    return {};  // not on this architecture: nothing to deny
  }
  const int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                        args.size() == 0 ? nullptr : args.begin());
  if (rc != 0) {
    return fail(std::string("seccomp rule for ") + name + ": " + errno_text(-rc));
  }
  return {};
}

scmp_arg_cmp arg_masked_eq(unsigned arg, uint64_t mask, uint64_t value) {
  return scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, mask, value};
}
scmp_arg_cmp arg_ne(unsigned arg, uint64_t value) { return scmp_arg_cmp{arg, SCMP_CMP_NE, value, 0}; }

// Denied whatever their arguments.
constexpr const char* k_denied[] = {
    // process creation and exec (clone: below)
    "fork", "vfork", "execve", "execveat",
    // files
    "creat", "truncate", "ftruncate", "fallocate", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat", "mknod", "mknodat", "chmod",
    "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime", "utimes",
    "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr",
    "lremovexattr", "fremovexattr", "removexattrat", "mount", "umount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "open_tree_attr",
    "mount_setattr", "name_to_handle_at", "open_by_handle_at", "memfd_create", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "mq_open", "mq_unlink",
    // network
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    // other processes
    "pidfd_send_signal", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "process_madvise", "process_mrelease",
    // privileges and kernel state
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
    "setgroups", "capset", "setns", "unshare", "bpf", "perf_event_open", "keyctl", "add_key",
    "request_key", "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "personality", "userfaultfd", "iopl", "ioperm", "acct", "quotactl",
    "quotactl_fd", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname",
    "setdomainname", "syslog", "vhangup", "uselib", "lookup_dcookie", "nfsservctl",
};

// Signals and pidfds: only the caller itself (argument 0 is its pid).
constexpr const char* k_self_only[] = {"kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
                                       "pidfd_open"};

void on_denied_syscall(int, siginfo_t* info, void*) {
  char buf[80] = "kernelgen sandbox: denied system call ";
  size_t len = std::strlen(buf);
  char digits[16];
  int n = 0;
  unsigned v = static_cast<unsigned>(info->si_syscall);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 16);
  while (n > 0) {
    buf[len++] = digits[--n];
  }
  buf[len++] = '\n';
  ssize_t ignored = ::write(2, buf, len);
  (void)ignored;
  ::_exit(159);
}

}  // namespace

std::vector<NamespaceAttempt> namespace_attempts(bool pid, bool network, bool mount,
                                                 bool user_namespace_allowed) {
  std::vector<NamespaceAttempt> out;
  const unsigned want = (pid ? 4U : 0U) | (network ? 2U : 0U) | (mount ? 1U : 0U);
  for (unsigned set = 7;; --set) {
    const bool pid_without_mount = (set & 4) != 0 && (set & 1) == 0;  // no /proc of its own
    if ((set & ~want) == 0 && !pid_without_mount) {
      NamespaceAttempt a{false, (set & 4) != 0, (set & 2) != 0, (set & 1) != 0};
      out.push_back(a);
      if (set != 0 && user_namespace_allowed) {
        a.user = true;
        out.push_back(a);
      }
    }
    if (set == 0) {
      break;
    }
  }
  return out;
}

std::string user_namespace_refusal(const std::string& proc_sys) {
  auto first_int = [](const Expected<std::string, Failure>& text) -> long {
    if (!text) {
      return -1;
    }
    const size_t start = text->find_first_not_of(" \t\n");
    if (start == std::string::npos || (*text)[start] < '0' || (*text)[start] > '9') {
      return -1;
    }
    return std::strtol(text->c_str() + start, nullptr, 10);
  };
  const std::string clone_knob = proc_sys + "/kernel/unprivileged_userns_clone";
  if (first_int(read_bounded(clone_knob, 64)) == 0) {
    return clone_knob + " is 0";
  }
  const std::string max_knob = proc_sys + "/user/max_user_namespaces";
  if (first_int(read_bounded(max_knob, 64)) == 0) {
    return max_knob + " is 0";
  }
  // Ubuntu 23.10 on: clone succeeds but the namespace has no capabilities (uid_map unwritable).
  const std::string apparmor_knob = proc_sys + "/kernel/apparmor_restrict_unprivileged_userns";
  if (first_int(read_bounded(apparmor_knob, 64)) == 1) {
    return apparmor_knob + " is 1";
  }
  return "";
}

Expected<HostSpawned, Failure> spawn_candidate_host(const HostSpawnOptions& o) {
  if (o.argv.empty() || o.argv[0].empty() || o.argv[0][0] != '/') {
    return fail("candidate host: argv[0] must be an absolute path (got \"" +
                (o.argv.empty() ? std::string() : o.argv[0]) + "\")");
  }
  if (o.channel_fd < 0 || ::fcntl(o.channel_fd, F_GETFD) < 0) {
    return fail("candidate host: channel_fd " + std::to_string(o.channel_fd) + " is not an open descriptor");
  }
  if (o.output_fd < 0 || ::fcntl(o.output_fd, F_GETFD) < 0) {
    return fail("candidate host: output_fd " + std::to_string(o.output_fd) + " is not an open descriptor");
  }
  if (o.max_open_files < 4) {
    return fail("candidate host: max_open_files must be at least 4 (fds 0-3), got " +
                std::to_string(o.max_open_files));
  }
  if (o.cwd.empty()) {
    return fail("candidate host: empty working directory");
  }

  // Everything the child needs, built now.
  std::vector<std::string> argv_s = o.argv, env_s = o.env;
  std::vector<char*> argv, envp;
  for (std::string& a : argv_s) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  for (std::string& e : env_s) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);

  Fd null_fd{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (null_fd.fd < 0) {
    return fail(std::string("candidate host: /dev/null: ") + errno_text(errno));
  }
  ChildPlan plan;
  plan.path = argv_s[0].c_str();
  plan.cwd = o.cwd.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.channel_fd = o.channel_fd;
  plan.output_fd = o.output_fd;
  plan.null_fd = null_fd.fd;
  plan.parent = ::getpid();
  plan.drop_caps = o.drop_capabilities;
  plan.root = ::geteuid() == 0;
  plan.cap_last = read_cap_last();
  plan.uid_map_len = format_map(plan.uid_map, sizeof plan.uid_map, ::geteuid());
  plan.gid_map_len = format_map(plan.gid_map, sizeof plan.gid_map, ::getegid());
  struct rlimit now{};
  plan.core = {0, 0};
  ::getrlimit(RLIMIT_CORE, &now);
  if (now.rlim_max != RLIM_INFINITY && now.rlim_max < plan.core.rlim_max) {
    plan.core = now;
  }
  ::getrlimit(RLIMIT_FSIZE, &now);
  plan.fsize = clamped(o.max_file_bytes, now);
  ::getrlimit(RLIMIT_NOFILE, &now);
  plan.nofile = clamped(o.max_open_files, now);
  if (plan.nofile.rlim_cur < 4) {
    return fail("candidate host: the caller's hard RLIMIT_NOFILE (" + std::to_string(now.rlim_max) +
                ") leaves no room for fds 0-3");
  }

  std::string userns_refused = o.allow_user_namespace ? user_namespace_refusal("/proc/sys") : "disabled by the caller";
  const std::vector<NamespaceAttempt> attempts = namespace_attempts(
      o.pid_namespace, o.network_namespace, o.mount_namespace, userns_refused.empty());
  // Failed attempts for the notes, grouped by reason: {reason, "pid+network, pid"}.
  std::vector<std::pair<std::string, std::string>> tried;
  auto note_failure = [&](const NamespaceAttempt& a, const std::string& why) {
    for (auto& [reason, names] : tried) {
      if (reason == why) {
        names += ", " + attempt_name(a);
        return;
      }
    }
    tried.emplace_back(why, attempt_name(a));
  };
  auto tried_text = [&] {
    std::string text;
    for (const auto& [reason, names] : tried) {
      text += (text.empty() ? "" : "; ") + names + ": " + reason;
    }
    return text;
  };

  for (const NamespaceAttempt& a : attempts) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      return fail(std::string("candidate host: pipe: ") + errno_text(errno));
    }
    Fd read_end{pipe_fds[0]}, write_end{pipe_fds[1]};
    plan.status_fd = write_end.fd;
    plan.user_ns = a.user;
    plan.pid_ns = a.pid;
    plan.mount_ns = a.mount;
    plan.read_only = a.mount && o.read_only_root;
    plan.clone_flags = (a.user ? CLONE_NEWUSER : 0UL) | (a.pid ? CLONE_NEWPID : 0UL) |
                       (a.network ? CLONE_NEWNET : 0UL) | (a.mount ? CLONE_NEWNS : 0UL);

    // No signal handler of the caller may run in the child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    // Raw clone, fork-like (no new stack): the child runs on a copy of this stack.
    const long pid = ::syscall(SYS_clone, plan.clone_flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) {
      run_child(plan);
    }
    const int clone_err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    write_end.reset();
    if (pid < 0) {
      if (clone_err == EAGAIN || clone_err == ENOMEM) {
        return fail("candidate host: clone: " + errno_text(clone_err));
      }
      note_failure(a, "clone: " + errno_text(clone_err));
      continue;
    }

    HostSpawned spawned;
    spawned.pid = static_cast<pid_t>(pid);
    spawned.user_namespace = a.user;
    spawned.pid_namespace = a.pid;
    spawned.network_namespace = a.network;
    spawned.mount_namespace = a.mount;
    std::string extra;  // notes that are not about namespaces
    bool namespace_failed = false;
    for (;;) {
      ChildMessage m{};
      const ssize_t n = ::read(read_end.fd, &m, sizeof m);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n != static_cast<ssize_t>(sizeof m)) {
        break;  // EOF: exec'd (or died after a message)
      }
      const std::string why = std::string(step_name(m.what)) + ": " + errno_text(m.err);
      if (m.tag == 'N') {
        note_failure(a, why);
        namespace_failed = true;
      } else if (m.tag == 'F') {
        reap(spawned.pid);
        return fail("candidate host " + argv_s[0] + ": " + why);
      } else if (m.tag == 'R') {
        extra += (extra.empty() ? "" : "; ") + std::string("read-only tree not in force: ") + why;
      } else if (m.tag == 'r') {
        spawned.read_only_root = true;
      } else if (m.tag == 'C') {
        extra += (extra.empty() ? "" : "; ") + why;
      }
    }
    if (namespace_failed) {
      reap(spawned.pid);
      continue;
    }
    std::string missing;
    auto check = [&](bool asked, bool got, const char* name) {
      if (asked && !got) {
        missing += (missing.empty() ? "" : ", ") + std::string(name);
      }
    };
    check(o.pid_namespace, a.pid, "pid");
    check(o.network_namespace, a.network, "network");
    check(o.mount_namespace, a.mount, "mount");
    if (!missing.empty()) {
      spawned.notes = "namespaces not in force: " + missing + " (tried " +
                      (tried.empty() ? std::string("nothing else") : tried_text()) + ")";
      if (o.pid_namespace && !o.mount_namespace) {
        spawned.notes += "; a PID namespace needs a mount namespace (for its own /proc)";
      }
      if (!userns_refused.empty()) {
        spawned.notes += "; no user namespace: " + userns_refused;
      }
    }
    if (!extra.empty()) {
      spawned.notes += (spawned.notes.empty() ? "" : "; ") + extra;
    }
    return spawned;
  }
  return fail("candidate host: could not be started in any namespace set (" + tried_text() + ")");
}

int kill_candidate_host(HostSpawned& host) {
  if (host.pid <= 0) {
    return -1;
  }
  ::kill(host.pid, SIGKILL);
  int status = 0;
  pid_t w;
  do {
    w = ::waitpid(host.pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  host.pid = -1;
  return w < 0 ? -1 : status;
}

Expected<void, Failure> enter_candidate_sandbox(const SandboxPolicy& policy) {
  // This thread's capabilities (the bounding set was emptied before exec where the caller could).
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[2] = {};
  if (::syscall(SYS_capset, &header, none) != 0) {
    return fail(std::string("sandbox: capset: ") + errno_text(errno));
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return fail(std::string("sandbox: PR_SET_NO_NEW_PRIVS: ") + errno_text(errno));
  }
  std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    return fail("sandbox: seccomp_init failed");
  }
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc == 0) {
    rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1);
  }
  if (rc != 0) {
    return fail("sandbox: seccomp attributes: " + errno_text(-rc));
  }
  const uint32_t deny = policy.trap_for_diagnosis ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS;
  if (policy.trap_for_diagnosis) {
    struct sigaction sa{};
    sa.sa_sigaction = on_denied_syscall;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGSYS, &sa, nullptr) != 0) {
      return fail(std::string("sandbox: sigaction(SIGSYS): ") + errno_text(errno));
    }
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, nullptr);
  }
  for (const char* name : k_denied) {
    KG_TRY(add_rule(ctx.get(), deny, name));
  }
  // Threads only: clone without CLONE_THREAD creates a process.
  KG_TRY(add_rule(ctx.get(), deny, "clone", {arg_masked_eq(0, CLONE_THREAD, 0)}));
  // No way to inspect clone3's flags (they are in memory): ENOSYS, and glibc falls back to clone.
  KG_TRY(add_rule(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), "clone3"));
  KG_TRY(add_rule(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), "openat2"));
  // Opening for writing or creating: one rule per flag bit (rules for one call are OR'ed).
  // O_TMPFILE is __O_TMPFILE | O_DIRECTORY: only its own bit, so that O_DIRECTORY alone stays allowed.
  constexpr uint64_t k_write_bits[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND,
                                       static_cast<uint64_t>(O_TMPFILE & ~O_DIRECTORY)};
  for (uint64_t bit : k_write_bits) {
    KG_TRY(add_rule(ctx.get(), deny, "open", {arg_masked_eq(1, bit, bit)}));
    KG_TRY(add_rule(ctx.get(), deny, "openat", {arg_masked_eq(2, bit, bit)}));
  }
  const uint64_t self = static_cast<uint64_t>(::getpid());
  for (const char* name : k_self_only) {
    KG_TRY(add_rule(ctx.get(), deny, name, {arg_ne(0, self)}));
  }
  rc = seccomp_load(ctx.get());
  if (rc != 0) {
    return fail("sandbox: loading the seccomp filter: " + errno_text(-rc));
  }
  return {};
}

Expected<SandboxObserved, Failure> observe_sandbox(pid_t pid) {
  if (pid <= 0) {
    return fail("observe_sandbox: invalid pid " + std::to_string(pid));
  }
  const std::string base = "/proc/" + std::to_string(pid);
  SandboxObserved seen;
  DIR* tasks = ::opendir((base + "/task").c_str());
  if (tasks == nullptr) {
    return fail(base + "/task: " + errno_text(errno), errno == ENOENT ? Failure::Kind::NotFound : Failure::Kind::Error);
  }
  int our_filters = -1;
  if (auto self = read_bounded("/proc/thread-self/status", k_max_status_bytes)) {
    const std::string v = status_field(*self, "Seccomp_filters");
    our_filters = v.empty() ? -1 : std::atoi(v.c_str());
  }
  bool nnp = true, filtered = true, capless = true;
  int fewest = -1;
  size_t listed = 0;
  while (dirent* e = ::readdir(tasks)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') {
      continue;
    }
    if (++listed > k_max_threads) {
      ::closedir(tasks);
      return fail(base + ": more than " + std::to_string(k_max_threads) + " threads");
    }
    auto text = read_bounded(base + "/task/" + e->d_name + "/status", k_max_status_bytes);
    if (!text) {
      if (text.error().kind == Failure::Kind::NotFound) {
        continue;  // the thread exited meanwhile
      }
      ::closedir(tasks);
      return unexpected(text.error());
    }
    if (status_field(*text, "State").rfind("Z", 0) == 0) {
      continue;
    }
    ++seen.threads;
    nnp = nnp && status_field(*text, "NoNewPrivs") == "1";
    filtered = filtered && status_field(*text, "Seccomp") == "2";
    const std::string count = status_field(*text, "Seccomp_filters");
    if (!count.empty()) {
      const int n = std::atoi(count.c_str());
      fewest = fewest < 0 ? n : std::min(fewest, n);
    }
    capless = capless && all_zero_hex(status_field(*text, "CapEff")) && all_zero_hex(status_field(*text, "CapPrm"));
  }
  ::closedir(tasks);
  if (seen.threads == 0) {
    return fail(base + ": no live thread (the process has exited)", Failure::Kind::NotFound);
  }
  seen.no_new_privs = nnp;
  seen.seccomp_filters = fewest;
  seen.seccomp_filter = filtered && (fewest < 0 || our_filters < 0 || fewest > our_filters);
  seen.no_capabilities = capless;
  struct Ns {
    const char* name;
    bool SandboxObserved::*field;
  };
  for (const Ns& ns : {Ns{"pid", &SandboxObserved::pid_namespace}, Ns{"net", &SandboxObserved::network_namespace},
                       Ns{"mnt", &SandboxObserved::mount_namespace}}) {
    auto theirs = ns_link(base + "/ns/" + ns.name);
    if (!theirs) {
      return unexpected(theirs.error());
    }
    auto ours = ns_link(std::string("/proc/self/ns/") + ns.name);
    if (!ours) {
      return unexpected(ours.error());
    }
    seen.*ns.field = *theirs != *ours;
  }
  return seen;
}

}  // namespace kg::verify
