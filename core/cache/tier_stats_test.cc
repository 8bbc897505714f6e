#include "cache/tier_stats.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "temp_dir.h"

namespace kg::cache {
namespace {

using TempDir = ::kg::testing::TempDir;

TierCounters counted(const std::string& tier, uint64_t hits, uint64_t misses, uint64_t bytes) {
  TierCounters c;
  c.tier = tier;
  c.hits = hits;
  c.misses = misses;
  c.bytes_read = bytes;
  c.seconds = 0.5;
  return c;
}

const TierCounters* find(const TierStatsFile& f, const std::string& tier) {
  for (const TierCounters& c : f.tiers) {
    if (c.tier == tier) {
      return &c;
    }
  }
  return nullptr;
}

TEST(TierStats, AbsentFileReadsAsNoCounters) {
  TempDir tmp;
  auto s = read_tier_stats(tmp.path());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->since_unix, 0);
  EXPECT_TRUE(s->tiers.empty());
}

TEST(TierStats, ProcessesAddIntoOneFile) {
  TempDir tmp;
  ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 1, 0, 10), counted("remote http://c/kg (webdav)", 0, 1, 0)},
                             1000));
  ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 2, 1, 5)}, 2000));
  auto s = read_tier_stats(tmp.path());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->since_unix, 1000);  // the first update started counting
  ASSERT_EQ(s->tiers.size(), 2u);
  const TierCounters* local = find(*s, "local");
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->hits, 3u);
  EXPECT_EQ(local->misses, 1u);
  EXPECT_EQ(local->bytes_read, 15u);
  EXPECT_DOUBLE_EQ(local->seconds, 1.0);
  EXPECT_EQ(find(*s, "remote http://c/kg (webdav)")->misses, 1u);
  EXPECT_EQ(s->tiers.back().tier, "local");  // the most recently counted last
}

TEST(TierStats, NothingCountedWritesNothing) {
  TempDir tmp;
  TierCounters none;
  none.tier = "local";
  ASSERT_TRUE(add_tier_stats(tmp.path(), {none}, 1000));
  EXPECT_NE(::access(tmp.sub("stats.json").c_str(), F_OK), 0);
}

TEST(TierStats, ZeroResetsEveryCounter) {
  TempDir tmp;
  ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 4, 0, 1)}, 1000));
  ASSERT_TRUE(zero_tier_stats(tmp.path(), 3000));
  auto s = read_tier_stats(tmp.path());
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->tiers.empty());
  EXPECT_EQ(s->since_unix, 3000);
  ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 1, 0, 1)}, 4000));
  EXPECT_EQ(read_tier_stats(tmp.path())->since_unix, 3000);
  EXPECT_EQ(read_tier_stats(tmp.path())->tiers[0].hits, 1u);
}

TEST(TierStats, DamagedFileStartsFromZero) {
  for (const char* text : {"not json", "{\"format\": 2, \"tiers\": []}", "[1,2]",
                           "{\"format\":1,\"tiers\":[{\"tier\":7},{\"tier\":\"local\",\"hits\":-3}]}"}) {
    TempDir tmp;
    std::ofstream(tmp.sub("stats.json")) << text;
    auto s = read_tier_stats(tmp.path());
    ASSERT_TRUE(s) << text;
    for (const TierCounters& c : s->tiers) {
      EXPECT_EQ(c.hits, 0u) << text;  // a negative count is not taken
    }
    ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 1, 0, 0)}, 1000)) << text;
    EXPECT_EQ(find(*read_tier_stats(tmp.path()), "local")->hits, 1u) << text;
  }
}

TEST(TierStats, ASymlinkIsNotFollowed) {
  TempDir tmp;
  std::ofstream(tmp.sub("elsewhere")) << "{\"format\":1,\"since_unix\":5,\"tiers\":[{\"tier\":\"local\",\"hits\":9}]}";
  ASSERT_EQ(::symlink(tmp.sub("elsewhere").c_str(), tmp.sub("stats.json").c_str()), 0);
  EXPECT_TRUE(read_tier_stats(tmp.path())->tiers.empty());
  // The update replaces the link with a file; the target is left alone.
  ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 1, 0, 0)}, 1000));
  std::ifstream target(tmp.sub("elsewhere"));
  std::string text((std::istreambuf_iterator<char>(target)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"hits\":9"), std::string::npos);
  EXPECT_EQ(read_tier_stats(tmp.path())->tiers[0].hits, 1u);
}

TEST(TierStats, AHardLinkIsNotWrittenThrough) {
  TempDir tmp;
  const std::string text = "{\"format\":1,\"since_unix\":5,\"tiers\":[{\"tier\":\"local\",\"hits\":9}]}";
  std::ofstream(tmp.sub("elsewhere")) << text;
  ASSERT_EQ(::link(tmp.sub("elsewhere").c_str(), tmp.sub("stats.json").c_str()), 0);
  ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("local", 1, 0, 0)}, 1000));
  std::ifstream target(tmp.sub("elsewhere"));
  std::string now((std::istreambuf_iterator<char>(target)), std::istreambuf_iterator<char>());
  EXPECT_EQ(now, text);
  EXPECT_EQ(read_tier_stats(tmp.path())->tiers[0].hits, 1u);
}

TEST(TierStats, AShorterUpdateLeavesNoTail) {
  TempDir tmp;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("remote http://a-long-name-" + std::to_string(i), 1, 0, 0)}, 1000));
  }
  ASSERT_TRUE(zero_tier_stats(tmp.path(), 2000));  // much shorter than what was there
  auto s = read_tier_stats(tmp.path());
  EXPECT_TRUE(s->tiers.empty());
  EXPECT_EQ(s->since_unix, 2000);
}

TEST(TierStats, KeepsAtMostTheCapDroppingTheLeastRecentlyCounted) {
  TempDir tmp;
  for (size_t i = 0; i < kMaxTiersInStats + 3; ++i) {
    ASSERT_TRUE(add_tier_stats(tmp.path(), {counted("remote r" + std::to_string(i), 1, 0, 0)}, 1000));
  }
  auto s = read_tier_stats(tmp.path());
  ASSERT_EQ(s->tiers.size(), kMaxTiersInStats);
  EXPECT_EQ(find(*s, "remote r0"), nullptr);
  EXPECT_NE(find(*s, "remote r" + std::to_string(kMaxTiersInStats + 2)), nullptr);
}

TEST(TierStats, ConcurrentProcessesLoseNoCount) {
  TempDir tmp;
  constexpr int k_children = 4, k_adds = 25;
  std::vector<pid_t> children;
  for (int c = 0; c < k_children; ++c) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0; i < k_adds; ++i) {
        if (!add_tier_stats(tmp.path(), {counted("local", 1, 0, 0)}, 1000)) {
          ::_exit(1);
        }
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(find(*read_tier_stats(tmp.path()), "local")->hits, uint64_t{k_children * k_adds});
}

}  // namespace
}  // namespace kg::cache
