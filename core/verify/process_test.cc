// The sandbox spawner with real child processes (no mocks): limits, signals, output, environment,
// network namespace.
#include "verify/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace kg::verify {
namespace {

ProcessOptions sh(const std::string& script) {
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", script};
  return o;
}

TEST(Process, ExitCodeAndOutput) {
  auto r = run_process(sh("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->signal, 0);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(Process, StdinData) {
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "cat; ls -l /proc/self/fd/0"};
  o.stdin_data = std::string("request\0with a NUL\n", 19);
  auto r = run_process(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->out.substr(0, 19), *o.stdin_data);
  // An anonymous file, not a path anyone could open.
  EXPECT_NE(r->out.find("memfd:kernelgen-stdin"), std::string::npos) << r->out;
  o.stdin_data.reset();
  o.argv = {"/bin/sh", "-c", "cat"};
  r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "");  // /dev/null
}

TEST(Process, Signal) {
  auto r = run_process(sh("kill -SEGV $$"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->signal, SIGSEGV);
  EXPECT_EQ(r->exit_code, -1);
  auto a = run_process(sh("kill -ABRT $$"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->signal, SIGABRT);
}

// True when `pid` is gone, a zombie, or has SIGKILL pending (about to die): /proc/<pid>/status.
// Checked right after run_process returns, so no waiting is involved.
bool dead_or_dying(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  bool zombie = false, kill_pending = false;
  bool any = false;
  while (std::getline(status, line)) {
    any = true;
    if (line.rfind("State:", 0) == 0) {
      zombie = line.find('Z') != std::string::npos || line.find('X') != std::string::npos;
    }
    if (line.rfind("SigPnd:", 0) == 0 || line.rfind("ShdPnd:", 0) == 0) {
      const unsigned long long mask = std::stoull(line.substr(line.find(':') + 1), nullptr, 16);
      kill_pending = kill_pending || (mask & (1ULL << (SIGKILL - 1))) != 0;
    }
  }
  return !any || zombie || kill_pending;
}

TEST(Process, WallClockLimitKillsTheGroup) {
  // The child starts a grandchild that would outlive it and says its pid; both must go.
  ProcessOptions o = sh("sleep 100000 & echo $!; exec sleep 100000");
  o.wall_limit_s = 0.5;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->signal, SIGKILL);
  const pid_t grandchild = std::stoi(r->out);
  ASSERT_GT(grandchild, 0);
  const bool gone = dead_or_dying(grandchild);
  EXPECT_TRUE(gone) << "a process of the group survived";
  if (!gone) {
    ::kill(grandchild, SIGKILL);
  }
}

TEST(Process, MemoryWatchdog) {
  // The shell holds a 200 MB string until it is killed; without the watchdog the wall limit
  // would end it (timed_out), so the outcome does not depend on timing.
  ProcessOptions o = sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 100000; echo ${#x}");
  o.memory_limit_bytes = 100u << 20;
  o.wall_limit_s = 120;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->memory_exceeded);
  EXPECT_FALSE(r->timed_out);
  EXPECT_GT(r->peak_rss_bytes, 100u << 20);
  EXPECT_NE(r->signal, 0);
}

// Descriptors the caller opened without O_CLOEXEC, at low and very high numbers (beyond any fixed
// loop bound), never reach the child: it sees 0, 1 and 2 only.
TEST(Process, ChildInheritsNoDescriptorsBeyondStdio) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC on purpose
  ASSERT_GE(leaked, 3);
  std::vector<int> fds = {leaked};
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_cur < files.rlim_max) {  // room for the high numbers, as the daemon does
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, 100000);
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  for (int high : {1000, 5000, 70000}) {
    if (static_cast<rlim_t>(high) < files.rlim_cur && ::dup2(leaked, high) == high) {
      fds.push_back(high);
    }
  }
  std::string script = "for n in 0 1 2";
  for (int fd : fds) {
    script += " " + std::to_string(fd);
  }
  // `[ -e ]` is a shell builtin: the check opens nothing itself.
  script += "; do [ -e /proc/self/fd/$n ] && echo $n; done; true";
  auto r = run_process(sh(script));
  for (int fd : fds) {
    ::close(fd);
  }
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->out, "0\n1\n2\n") << "fds tried: " << fds.size();
  EXPECT_GE(fds.size(), 2u) << "no descriptor above 4096 could be tried (RLIMIT_NOFILE)";
  // set_cloexec_from itself, in this process: a descriptor without the flag gets it.
  const int fd = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 3);
  EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_TRUE(set_cloexec_from(fd));
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  ::close(fd);
}

TEST(Process, CleanEnvironmentAndDirectory) {
  ::setenv("KG_PROCESS_TEST_SECRET", "s3cret", 1);
  const std::string dir = testing::TempDir();
  ProcessOptions o = sh("env; pwd");
  o.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=/nowhere"};
  o.cwd = dir;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out.find("KG_PROCESS_TEST_SECRET"), std::string::npos);
  EXPECT_NE(r->out.find("HOME=/nowhere"), std::string::npos);
  EXPECT_NE(r->out.find(std::filesystem::canonical(dir).string()), std::string::npos);
  // Inherited environment when env is unset.
  auto inherit = run_process(sh("env"));
  ASSERT_TRUE(inherit);
  EXPECT_NE(inherit->out.find("KG_PROCESS_TEST_SECRET=s3cret"), std::string::npos);
}

TEST(Process, OutputLimit) {
  ProcessOptions o = sh("head -c 100000 /dev/zero | tr '\\0' x");
  o.output_limit = 1000;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_EQ(r->out_dropped, 99000u);
}

TEST(Process, PrivateNetworkWhenAllowed) {
  ProcessOptions o = sh("readlink /proc/self/ns/net");
  o.private_network = true;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 0);
  const std::string mine = std::filesystem::read_symlink("/proc/self/ns/net").string();
  if (r->private_network) {
    EXPECT_EQ(r->out.find(mine), std::string::npos) << "child still in the caller's network namespace";
    EXPECT_TRUE(r->network_note.empty());
  } else {
    EXPECT_NE(r->out.find(mine), std::string::npos);
    EXPECT_NE(r->network_note.find("unshare"), std::string::npos);  // says why
  }
}

TEST(Process, SetupFailuresAreErrors) {
  ProcessOptions o;
  o.argv = {"/nonexistent/program"};
  auto r = run_process(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/program"), std::string::npos);
  ProcessOptions d = sh("true");
  d.cwd = "/nonexistent/dir";
  auto rd = run_process(d);
  ASSERT_FALSE(rd);
  EXPECT_NE(rd.error().message.find("/nonexistent/dir"), std::string::npos);
  EXPECT_FALSE(run_process(ProcessOptions{}));
}

TEST(Process, LastLines) {
  EXPECT_EQ(last_lines("a\nb\nc\n", 2), "b\nc");
  EXPECT_EQ(last_lines("a\nb\nc", 5), "a\nb\nc");
  EXPECT_EQ(last_lines("", 3), "");
}

}  // namespace
}  // namespace kg::verify
