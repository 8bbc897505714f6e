// The sandbox spawner with real child processes (no mocks): limits, signals, output, environment,
// network namespace.
#include "verify/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

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

TEST(Process, Signal) {
  auto r = run_process(sh("kill -SEGV $$"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->signal, SIGSEGV);
  EXPECT_EQ(r->exit_code, -1);
  auto a = run_process(sh("kill -ABRT $$"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->signal, SIGABRT);
}

TEST(Process, WallClockLimitKillsTheGroup) {
  // The child starts a grandchild that would outlive it; both must go.
  const std::string marker = testing::TempDir() + "/kg_process_marker";
  std::filesystem::remove(marker);
  ProcessOptions o = sh("(sleep 3; touch " + marker + ") & sleep 100");
  o.wall_limit_s = 0.5;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_LT(r->seconds, 5.0);
  ::sleep(4);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a process of the group survived";
}

TEST(Process, MemoryWatchdog) {
  // dd holds a 400 MB buffer (touched by every read) for a while.
  ProcessOptions o = sh("dd if=/dev/zero of=/dev/null bs=400M count=50 2>/dev/null; sleep 5");
  o.memory_limit_bytes = 100u << 20;
  o.wall_limit_s = 20;
  auto r = run_process(o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->memory_exceeded);
  EXPECT_FALSE(r->timed_out);
  EXPECT_GT(r->peak_rss_bytes, 100u << 20);
  EXPECT_NE(r->signal, 0);
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
