// HostLink (runner/host_link.h) against a real sandboxed process that speaks the host protocol:
// fake_candidate_host.cc, which misbehaves in the ways a candidate inside kg_candidate_host could.
// No GPU needed: the arena and the object are plain descriptors here.
#include "host_link.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

namespace kg::judge {
namespace {

using verify::FindingKind;

struct Started {
  std::unique_ptr<HostLink> link;
  std::optional<verify::Finding> finding;
};

Started start(const std::string& mode, double timeout_s = 10) {
  HostOptions o;
  o.executable = KG_FAKE_HOST;
  o.env = {"PATH=/usr/bin:/bin"};
  o.reply_timeout_s = timeout_s;
  const int arena = ::memfd_create("arena", MFD_CLOEXEC);
  const int object = ::memfd_create("object", MFD_CLOEXEC);
  o.args = {mode};
  Started s;
  s.link = std::make_unique<HostLink>();
  s.finding = s.link->start(o, arena, 1 << 20, object, "kg_x_forward");
  ::close(arena);
  ::close(object);
  return s;
}

TEST(HostLink, AWellBehavedHostAnswersInOrderAndIsSandboxed) {
  Started s = start("ok");
  ASSERT_FALSE(s.finding) << s.finding->message;
  EXPECT_TRUE(s.link->facts().seccomp);
  EXPECT_TRUE(s.link->facts().no_new_privs);
  for (int i = 0; i < 3; ++i) {
    const Reply r = s.link->run(host::RunArgs{});
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_FLOAT_EQ(r.done.event_ms, 1.0f);
    EXPECT_GT(r.judge_ms, 0);
    EXPECT_TRUE(s.link->sync().ok);
  }
  EXPECT_FALSE(s.link->finish());  // still alive at the end: killed by the judge, no finding
  EXPECT_EQ(s.link->facts().ended, "killed by the judge when it was done");
}

TEST(HostLink, EveryWayOfFailingIsAFinding) {
  const struct {
    const char* mode;
    FindingKind kind;
  } cases[] = {
      {"exit", FindingKind::CandidateExited}, {"segv", FindingKind::Crash},
      {"fork", FindingKind::ForbiddenSyscall}, {"big", FindingKind::BadReply},
      {"stale", FindingKind::BadReply},
  };
  for (const auto& c : cases) {
    Started s = start(c.mode);
    ASSERT_FALSE(s.finding) << c.mode;
    const Reply r = s.link->run(host::RunArgs{});
    EXPECT_FALSE(r.ok) << c.mode;
    EXPECT_EQ(r.kind, c.kind) << c.mode << ": " << r.message;
    EXPECT_FALSE(s.link->alive()) << c.mode;
    EXPECT_FALSE(s.link->run(host::RunArgs{}).ok) << c.mode;  // nothing more is asked of it
  }
}

TEST(HostLink, AHangIsATimeoutAndTheHostIsKilled) {
  Started s = start("hang", 0.5);
  ASSERT_FALSE(s.finding);
  const Reply r = s.link->run(host::RunArgs{});
  EXPECT_EQ(r.kind, FindingKind::Timeout) << r.message;
  EXPECT_FALSE(s.link->alive());
}

TEST(HostLink, AMissingEntryIsReportedAtStart) {
  Started s = start("no-entry");
  ASSERT_TRUE(s.finding);
  EXPECT_EQ(s.finding->kind, FindingKind::MissingEntry);
}

TEST(HostLink, AHostWithoutItsFilterIsNeverUsed) {
  // The host says Ready, but /proc shows no seccomp filter: the judge refuses (its own failure).
  EXPECT_THROW(start("no-filter"), std::runtime_error);
}

}  // namespace
}  // namespace kg::judge
