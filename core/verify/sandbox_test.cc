#include "verify/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "temp_dir.h"
#include "verify/process.h"

namespace kg::verify {
namespace {

// $KG_SANDBOX_PROBE overrides the built-in path (the test binary run from another directory).
const std::string k_probe = std::getenv("KG_SANDBOX_PROBE") != nullptr ? std::getenv("KG_SANDBOX_PROBE")
                                                                       : KG_SANDBOX_PROBE;

// The probe run directly (no namespaces), to completion.
ProcessResult run_probe(const std::vector<std::string>& args, const std::string& cwd) {
  ProcessOptions o;
  o.argv = {k_probe};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.cwd = cwd;
  o.env = std::vector<std::string>{};
  o.wall_limit_s = 60;
  auto r = run_process(o);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? *r : ProcessResult{};
}

std::string describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + ", signal " + std::to_string(r.signal) + ", out: " + r.out +
         ", err: " + r.err;
}

// ---- the filter --------------------------------------------------------------------------------

const std::vector<std::string> k_denied_actions = {
    "fork", "vfork", "raw_fork", "raw_clone", "execve", "open_write", "open_rdwr", "open_trunc",
    "openat_creat", "openat_append", "creat", "tmpfile", "unlink", "rename", "mkdir", "socket",
    "kill_parent", "kill_init", "kill_group", "kill_all", "tgkill_parent", "kill_high_bits", "ptrace",
    "process_vm_readv", "chmod", "truncate", "memfd_create", "io_uring_setup", "setns", "unshare",
    "personality", "setuid", "mount_setattr", "socket_in_early_thread",
#if defined(__x86_64__)
    "x32_socket", "int80_getpid",  // other ABIs' entry points: the filter's "bad architecture" action
#endif
};

class SandboxDenied : public ::testing::TestWithParam<std::string> {};

TEST_P(SandboxDenied, DiesWithSigsys) {
  kg::testing::TempDir dir("kg-sandbox");
  if (GetParam() == "int80_getpid" && run_probe({"--no-sandbox", GetParam()}, dir.path()).signal != 0) {
    GTEST_SKIP() << "no i386 entry point in this kernel (ia32_emulation off)";
  }
  const ProcessResult r = run_probe({GetParam()}, dir.path());
  EXPECT_EQ(r.signal, SIGSYS) << describe(r);
}

// The same actions without the sandbox do not die with SIGSYS: the test above can fail.
// (ptrace is left out: attaching would stop the test process.)
TEST_P(SandboxDenied, ControlWithoutSandboxSurvives) {
  if (GetParam() == "ptrace") {
    GTEST_SKIP() << "attaching to the test process would stop it";
  }
  kg::testing::TempDir dir("kg-sandbox");
  const ProcessResult r = run_probe({"--no-sandbox", GetParam()}, dir.path());
  EXPECT_NE(r.signal, SIGSYS) << describe(r);
}

INSTANTIATE_TEST_SUITE_P(Sandbox, SandboxDenied, ::testing::ValuesIn(k_denied_actions),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

class SandboxAllowed : public ::testing::TestWithParam<std::string> {};

TEST_P(SandboxAllowed, Works) {
  kg::testing::TempDir dir("kg-sandbox");
  const ProcessResult r = run_probe({GetParam()}, dir.path());
  EXPECT_TRUE(r.exited_ok()) << describe(r);
}

INSTANTIATE_TEST_SUITE_P(Sandbox, SandboxAllowed,
                         ::testing::Values("none", "thread", "read", "read_dir", "write1", "mmap_exec",
                                           "kill_self", "clone3_enosys", "openat2_enosys"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(SandboxFilter, WriteToStdoutArrives) {
  kg::testing::TempDir dir("kg-sandbox");
  const ProcessResult r = run_probe({"write1"}, dir.path());
  EXPECT_EQ(r.out, "hello from the sandbox\n") << describe(r);
}

TEST(SandboxFilter, AbortOnItselfIsSigabrtNotSigsys) {
  kg::testing::TempDir dir("kg-sandbox");
  const ProcessResult r = run_probe({"abort"}, dir.path());
  EXPECT_EQ(r.signal, SIGABRT) << describe(r);
}

TEST(SandboxFilter, DeniedCallLeavesNoFile) {
  kg::testing::TempDir dir("kg-sandbox");
  run_probe({"openat_creat"}, dir.path());
  run_probe({"creat"}, dir.path());
  run_probe({"mkdir"}, dir.path());
  EXPECT_NE(::access(dir.sub("kg_probe_file").c_str(), F_OK), 0);
  EXPECT_NE(::access(dir.sub("kg_probe_dir").c_str(), F_OK), 0);
}

TEST(SandboxFilter, TrapModeNamesTheSystemCall) {
  kg::testing::TempDir dir("kg-sandbox");
  const ProcessResult r = run_probe({"--trap", "socket"}, dir.path());
  EXPECT_EQ(r.signal, 0) << describe(r);
  EXPECT_EQ(r.exit_code, 159) << describe(r);
  EXPECT_NE(r.err.find("denied system call " + std::to_string(SYS_socket) + "\n"), std::string::npos)
      << describe(r);
}

TEST(SandboxFilter, TrapModeKeepsEnosysForClone3) {
  kg::testing::TempDir dir("kg-sandbox");
  const ProcessResult r = run_probe({"--trap", "clone3_enosys"}, dir.path());
  EXPECT_TRUE(r.exited_ok()) << describe(r);
}

// ---- spawning ----------------------------------------------------------------------------------

struct Fds {
  int channel[2] = {-1, -1};  // [0]: ours, [1]: the host's fd 3
  int output[2] = {-1, -1};   // [0]: ours, [1]: the host's fds 1 and 2
  Fds() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    EXPECT_EQ(::pipe2(output, O_CLOEXEC), 0);
  }
  ~Fds() {
    for (int fd : {channel[0], channel[1], output[0], output[1]}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  // After the spawn: the host's ends are its own now.
  void close_host_ends() {
    ::close(channel[1]);
    ::close(output[1]);
    channel[1] = output[1] = -1;
  }
};

HostSpawnOptions probe_options(const Fds& fds, const std::vector<std::string>& args) {
  HostSpawnOptions o;
  o.argv = {k_probe};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = {"KG_PROBE=1"};
  o.channel_fd = fds.channel[1];
  o.output_fd = fds.output[1];
  return o;
}

std::string read_all(int fd) {
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return text;
    }
    text.append(buf, static_cast<size_t>(n));
  }
}

// One line (without its newline); false at EOF or an error.
bool read_line(int fd, std::string& line) {
  line.clear();
  char c;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    if (c == '\n') {
      return true;
    }
    line += c;
  }
}

// Lines from the channel until one equals `line`; every line read is appended to `seen`.
bool read_until(int fd, const std::string& line, std::vector<std::string>& seen) {
  std::string current;
  char c;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    if (c != '\n') {
      current += c;
      continue;
    }
    seen.push_back(current);
    if (current == line) {
      return true;
    }
    current.clear();
  }
}

bool has_cap_sys_admin() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      return ((std::stoull(line.substr(7), nullptr, 16) >> 21) & 1) != 0;  // CAP_SYS_ADMIN
    }
  }
  return false;
}

TEST(SandboxSpawn, HostGetsChannelOutputNullAndNothingElse) {
  Fds fds;
  const int stray = ::fcntl(fds.output[0], F_DUPFD, 200);  // no close-on-exec: must not reach the host
  ASSERT_GE(stray, 200);
  auto host = spawn_candidate_host(probe_options(fds, {"--no-sandbox", "fds"}));
  ::close(stray);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  fds.close_host_ends();
  const std::string out = read_all(fds.output[0]);
  const int status = kill_candidate_host(*host);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  std::map<int, std::string> listed;
  std::istringstream lines(out);
  std::string word, target;
  int fd;
  while (lines >> word >> fd >> target) {
    listed[fd] = target;
  }
  ASSERT_EQ(listed.size(), 4U) << out;
  EXPECT_EQ(listed[0], "/dev/null") << out;
  EXPECT_EQ(listed[1].rfind("pipe:", 0), 0U) << out;
  EXPECT_EQ(listed[2], listed[1]) << out;
  EXPECT_EQ(listed[3].rfind("socket:", 0), 0U) << out;
}

TEST(SandboxSpawn, ExactEnvironment) {
  Fds fds;
  HostSpawnOptions o = probe_options(fds, {"--no-sandbox", "env"});
  o.env = {"A=1", "B=two words"};
  auto host = spawn_candidate_host(o);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  fds.close_host_ends();
  EXPECT_EQ(read_all(fds.output[0]), "env A=1\nenv B=two words\n");
  kill_candidate_host(*host);
}

TEST(SandboxSpawn, ExecFailureIsAFailureAndLeavesNoChild) {
  Fds fds;
  HostSpawnOptions o = probe_options(fds, {});
  o.argv = {"/nonexistent/kg_candidate_host"};
  auto host = spawn_candidate_host(o);
  ASSERT_FALSE(host.has_value());
  EXPECT_NE(host.error().message.find("exec: No such file or directory"), std::string::npos)
      << host.error().message;
  int status;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(SandboxSpawn, InvalidOptionsAreFailures) {
  Fds fds;
  HostSpawnOptions o = probe_options(fds, {"none"});
  o.argv[0] = "kg_sandbox_probe";
  EXPECT_FALSE(spawn_candidate_host(o).has_value());
  o = probe_options(fds, {"none"});
  o.cwd = "/nonexistent/dir";
  auto r = spawn_candidate_host(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("chdir"), std::string::npos) << r.error().message;
  o = probe_options(fds, {"none"});
  o.channel_fd = 999;
  EXPECT_FALSE(spawn_candidate_host(o).has_value());
  o = probe_options(fds, {"none"});
  o.max_open_files = 3;
  EXPECT_FALSE(spawn_candidate_host(o).has_value());
}

TEST(SandboxSpawn, NamespacesSeenFromOutsideMatchTheReport) {
  Fds fds;
  auto host = spawn_candidate_host(probe_options(fds, {"wait"}));
  ASSERT_TRUE(host.has_value()) << host.error().message;
  fds.close_host_ends();
  std::vector<std::string> lines;
  ASSERT_TRUE(read_until(fds.channel[0], "ready", lines));
  auto seen = observe_sandbox(host->pid);
  ASSERT_TRUE(seen.has_value()) << seen.error().message;
  EXPECT_TRUE(seen->no_new_privs);
  EXPECT_TRUE(seen->seccomp_filter);
  EXPECT_TRUE(seen->no_capabilities);
  EXPECT_GE(seen->threads, 1);
  EXPECT_EQ(seen->pid_namespace, host->pid_namespace) << host->notes;
  EXPECT_EQ(seen->network_namespace, host->network_namespace) << host->notes;
  EXPECT_EQ(seen->mount_namespace, host->mount_namespace) << host->notes;
  if (has_cap_sys_admin()) {  // root (or CAP_SYS_ADMIN): every namespace, directly
    EXPECT_TRUE(host->pid_namespace && host->network_namespace && host->mount_namespace) << host->notes;
    EXPECT_FALSE(host->user_namespace);
  }
  EXPECT_EQ(host->notes.empty(), host->pid_namespace && host->network_namespace && host->mount_namespace &&
                                     host->read_only_root)
      << host->notes;
  ::shutdown(fds.channel[0], SHUT_WR);  // the probe exits at EOF on fd 3
  read_all(fds.output[0]);
  const int status = kill_candidate_host(*host);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(SandboxSpawn, KillReapsTheHost) {
  Fds fds;
  auto host = spawn_candidate_host(probe_options(fds, {"wait"}));
  ASSERT_TRUE(host.has_value()) << host.error().message;
  fds.close_host_ends();
  std::vector<std::string> lines;
  ASSERT_TRUE(read_until(fds.channel[0], "ready", lines));
  const pid_t pid = host->pid;
  const int status = kill_candidate_host(*host);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_EQ(host->pid, -1);
  EXPECT_EQ(kill_candidate_host(*host), -1);
  int again;
  EXPECT_EQ(::waitpid(pid, &again, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

// Starts the probe with --fork-first; returns the grandchild's pid (as we see it) after "ready".
pid_t start_with_grandchild(Fds& fds, HostSpawnOptions o, HostSpawned& host) {
  auto spawned = spawn_candidate_host(o);
  EXPECT_TRUE(spawned.has_value()) << (spawned ? "" : spawned.error().message);
  if (!spawned) {
    return -1;
  }
  host = *spawned;
  fds.close_host_ends();
  pid_t grandchild = -1;
  bool ready = false;
  while (!ready || grandchild < 0) {
    std::string l;
    if (!read_line(fds.channel[0], l)) {
      break;
    }
    ready = ready || l == "ready";
    if (l.rfind("g ", 0) == 0) {
      grandchild = std::atoi(l.c_str() + 2);
    }
  }
  EXPECT_GT(grandchild, 1);
  return grandchild;
}

TEST(SandboxSpawn, GrandchildDiesWithTheHostInAPidNamespace) {
  Fds fds;
  HostSpawned host;
  const pid_t grandchild = start_with_grandchild(fds, probe_options(fds, {"--fork-first", "wait"}), host);
  ASSERT_GT(grandchild, 1);
  if (!host.pid_namespace) {
    ::kill(grandchild, SIGKILL);
    kill_candidate_host(host);
    GTEST_SKIP() << "no PID namespace here: " << host.notes;
  }
  kill_candidate_host(host);
  // The namespace's other processes were killed and reaped before its init could be: no process
  // holds the host's end of the channel any more. (The grandchild's pid is the namespace's.)
  char c;
  EXPECT_EQ(::recv(fds.channel[0], &c, 1, MSG_DONTWAIT), 0) << std::strerror(errno);
}

// /proc in the host's PID namespace is the namespace's own: /proc/self/stat says pid 1 (CUDA
// needs it). With the caller's /proc it would say the pid the caller sees.
TEST(SandboxSpawn, PidNamespaceHasItsOwnProc) {
  Fds fds2;
  HostSpawnOptions o = probe_options(fds2, {});
  o.argv = {"/bin/sh", "-c", "read -r self </proc/self/stat; echo \"${self%% *}\""};
  o.env = {};
  auto sh = spawn_candidate_host(o);
  ASSERT_TRUE(sh.has_value()) << sh.error().message;
  fds2.close_host_ends();
  const std::string out = read_all(fds2.output[0]);
  kill_candidate_host(*sh);
  if (!sh->pid_namespace) {
    GTEST_SKIP() << "no PID namespace here: " << sh->notes;
  }
  EXPECT_EQ(out, "1\n") << "/proc/self is not the namespace's own";
}

// Control: without a PID namespace the grandchild outlives the host (so the test above can fail).
TEST(SandboxSpawn, GrandchildOutlivesTheHostWithoutAPidNamespace) {
  Fds fds;
  HostSpawned host;
  HostSpawnOptions o = probe_options(fds, {"--fork-first", "wait"});
  o.pid_namespace = false;
  const pid_t grandchild = start_with_grandchild(fds, o, host);
  ASSERT_GT(grandchild, 1);
  kill_candidate_host(host);
  char c;
  EXPECT_EQ(::recv(fds.channel[0], &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(::kill(grandchild, 0), 0);
  ::kill(grandchild, SIGKILL);
}

TEST(SandboxSpawn, ReadOnlyTreeRefusesNewFiles) {
  kg::testing::TempDir dir("kg-sandbox");
  for (bool read_only : {true, false}) {
    Fds fds;
    HostSpawnOptions o = probe_options(fds, {"--no-sandbox", "create", dir.sub(read_only ? "ro" : "rw")});
    o.read_only_root = read_only;
    auto host = spawn_candidate_host(o);
    ASSERT_TRUE(host.has_value()) << host.error().message;
    fds.close_host_ends();
    const std::string out = read_all(fds.output[0]);
    kill_candidate_host(*host);
    if (host->read_only_root) {
      EXPECT_EQ(out, "create Read-only file system\n");
    } else {
      EXPECT_TRUE(!read_only || host->notes.find("read-only") != std::string::npos || !host->mount_namespace)
          << host->notes;
      EXPECT_EQ(out, "create ok\n");
    }
  }
}

// CUDA works in the spawned host (namespaces, read-only tree, no capabilities) and after the filter:
// allocation, a PTX kernel compiled and launched, a host function, a copy. Skipped without a GPU.
TEST(SandboxSpawn, CudaWorksInsideTheSandbox) {
  Fds fds;
  HostSpawnOptions o = probe_options(fds, {"cuda"});
  for (const char* name : {"PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}) {
    if (const char* v = std::getenv(name)) {
      o.env.push_back(std::string(name) + "=" + v);
    }
  }
  o.env.push_back("CUDA_CACHE_DISABLE=1");
  o.max_file_bytes = 0;
  auto host = spawn_candidate_host(o);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  fds.close_host_ends();
  const std::string out = read_all(fds.output[0]);
  const int status = kill_candidate_host(*host);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    GTEST_SKIP() << out;
  }
  std::cout << out << "namespaces: pid " << host->pid_namespace << " net " << host->network_namespace << " mnt "
            << host->mount_namespace << " user " << host->user_namespace << " ro " << host->read_only_root
            << " notes: " << host->notes << "\n";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ": " << out;
}

// ---- observing ---------------------------------------------------------------------------------

TEST(SandboxObserve, UnsandboxedChildShowsNothing) {
  Fds fds;
  HostSpawnOptions o = probe_options(fds, {"--no-sandbox", "wait"});
  o.pid_namespace = o.network_namespace = o.mount_namespace = false;
  o.drop_capabilities = false;
  auto host = spawn_candidate_host(o);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->notes, "");
  fds.close_host_ends();
  std::vector<std::string> lines;
  ASSERT_TRUE(read_until(fds.channel[0], "ready", lines));
  auto seen = observe_sandbox(host->pid);
  auto self = observe_sandbox(::getpid());
  ASSERT_TRUE(seen.has_value()) << seen.error().message;
  ASSERT_TRUE(self.has_value()) << self.error().message;
  EXPECT_EQ(seen->no_new_privs, self->no_new_privs);  // inherited from us, whatever we have
  EXPECT_FALSE(seen->seccomp_filter);
  EXPECT_FALSE(seen->pid_namespace || seen->network_namespace || seen->mount_namespace);
  EXPECT_FALSE(self->seccomp_filter || self->pid_namespace || self->network_namespace || self->mount_namespace);
  kill_candidate_host(*host);
}

TEST(SandboxObserve, ReapedOrMissingProcessIsAFailure) {
  EXPECT_FALSE(observe_sandbox(0).has_value());
  EXPECT_FALSE(observe_sandbox(-5).has_value());
  Fds fds;
  auto host = spawn_candidate_host(probe_options(fds, {"--no-sandbox", "none"}));
  ASSERT_TRUE(host.has_value()) << host.error().message;
  fds.close_host_ends();
  read_all(fds.output[0]);
  const pid_t pid = host->pid;
  // Exited, not reaped: a zombie has no namespaces to show.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(observe_sandbox(pid).has_value());
  kill_candidate_host(*host);
}

// ---- the fallback decision ---------------------------------------------------------------------

std::string attempts_text(const std::vector<NamespaceAttempt>& attempts) {
  std::string s;
  for (const NamespaceAttempt& a : attempts) {
    s += std::string(a.user ? "u" : "") + (a.pid ? "p" : "") + (a.network ? "n" : "") + (a.mount ? "m" : "") + ",";
  }
  return s;
}

TEST(SandboxFallback, AttemptOrder) {
  EXPECT_EQ(attempts_text(namespace_attempts(true, true, true, true)),
            "pnm,upnm,pm,upm,nm,unm,n,un,m,um,,");
  EXPECT_EQ(attempts_text(namespace_attempts(true, true, true, false)), "pnm,pm,nm,n,m,,");
  // A PID namespace never without a mount namespace (its own /proc).
  EXPECT_EQ(attempts_text(namespace_attempts(true, true, false, false)), "n,,");
  EXPECT_EQ(attempts_text(namespace_attempts(false, true, false, true)), "n,un,,");
  EXPECT_EQ(attempts_text(namespace_attempts(false, false, false, true)), ",");
}

TEST(SandboxFallback, UserNamespaceRefusalFromSysctls) {
  kg::testing::TempDir dir("kg-sandbox");
  EXPECT_EQ(user_namespace_refusal(dir.path()), "");  // no files: nothing says no
  ::mkdir(dir.sub("kernel").c_str(), 0700);
  ::mkdir(dir.sub("user").c_str(), 0700);
  std::ofstream(dir.sub("kernel/unprivileged_userns_clone")) << "1\n";
  std::ofstream(dir.sub("user/max_user_namespaces")) << "15000\n";
  EXPECT_EQ(user_namespace_refusal(dir.path()), "");
  std::ofstream(dir.sub("user/max_user_namespaces")) << "0\n";
  EXPECT_NE(user_namespace_refusal(dir.path()).find("max_user_namespaces is 0"), std::string::npos);
  std::ofstream(dir.sub("kernel/unprivileged_userns_clone")) << "0\n";
  EXPECT_NE(user_namespace_refusal(dir.path()).find("unprivileged_userns_clone is 0"), std::string::npos);
  std::ofstream(dir.sub("kernel/unprivileged_userns_clone")) << "garbage\n";
  EXPECT_NE(user_namespace_refusal(dir.path()).find("max_user_namespaces"), std::string::npos);
  std::ofstream(dir.sub("user/max_user_namespaces")) << "100\n";
  std::ofstream(dir.sub("kernel/apparmor_restrict_unprivileged_userns")) << "1\n";
  EXPECT_NE(user_namespace_refusal(dir.path()).find("apparmor_restrict_unprivileged_userns is 1"), std::string::npos);
}

// As root: a child that becomes uid/gid 65534 spawns the probe twice, without and with user
// namespaces, and reports what it got (the path a normal user takes in CI).
TEST(SandboxFallback, UnprivilegedCaller) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "run as root; as a normal user the other tests take this path";
  }
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    std::string text;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
      text = "setuid failed";
    } else {
      for (bool allow : {false, true}) {
        Fds fds;
        HostSpawnOptions o = probe_options(fds, {"wait"});
        o.cwd = "/";
        o.allow_user_namespace = allow;
        auto host = spawn_candidate_host(o);
        if (!host) {
          text += "spawn failed: " + host.error().message + "\n";
          continue;
        }
        fds.close_host_ends();
        std::vector<std::string> lines;
        const bool ready = read_until(fds.channel[0], "ready", lines);
        auto seen = observe_sandbox(host->pid);
        text += std::string(allow ? "user" : "nouser") + " ready=" + (ready ? "1" : "0") +
                " ns=" + (host->user_namespace ? "u" : "") + (host->pid_namespace ? "p" : "") +
                (host->network_namespace ? "n" : "") + (host->mount_namespace ? "m" : "") +
                " ro=" + (host->read_only_root ? "1" : "0");
        if (seen) {
          text += std::string(" seen=") + (seen->pid_namespace ? "p" : "") + (seen->network_namespace ? "n" : "") +
                  (seen->mount_namespace ? "m" : "") + " filter=" + (seen->seccomp_filter ? "1" : "0");
        } else {
          text += " seen=error " + seen.error().message;
        }
        text += " notes=" + host->notes + "\n";
        kill_candidate_host(*host);
      }
    }
    ssize_t ignored = ::write(report[1], text.data(), text.size());
    (void)ignored;
    ::_exit(0);
  }
  ::close(report[1]);
  const std::string text = read_all(report[0]);
  ::close(report[0]);
  int status;
  ::waitpid(child, &status, 0);
  std::cout << text;
  std::istringstream lines(text);
  std::string nouser, user;
  std::getline(lines, nouser);
  std::getline(lines, user);
  // Without a user namespace a normal user gets none, and the notes say so.
  EXPECT_EQ(nouser.rfind("nouser ready=1 ns= ro=0 seen= filter=1 notes=namespaces not in force: pid, network, mount", 0),
            0U)
      << text;
  EXPECT_NE(nouser.find("disabled by the caller"), std::string::npos) << text;
  // With one, what the kernel allows; whatever it is, the outside view agrees.
  ASSERT_EQ(user.rfind("user ready=1 ns=", 0), 0U) << text;
  if (user_namespace_refusal("/proc/sys").empty()) {  // the kernel allows them: all three, seen from outside
    EXPECT_NE(text.find("\nuser ready=1 ns=upnm ro=1 seen=pnm filter=1 notes=\n"), std::string::npos) << text;
  } else {
    EXPECT_NE(user.find("notes=namespaces not in force"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace kg::verify
