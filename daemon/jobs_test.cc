#include "jobs.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <vector>

namespace kg::daemon {
namespace {

using namespace std::chrono_literals;

// A JobBackend without cache, codegen or GPU: "stores" keys in a set, takes `delay` per generation,
// and records how many generations ran and how many overlapped at most.
class FakeBackend : public JobBackend {
 public:
  explicit FakeBackend(std::chrono::milliseconds delay) : m_delay(delay) {}

  Expected<Done, Failure> lookup(const JobRequest& request) override {
    const std::string& key = request.key;
    std::lock_guard lock(m_mutex);
    if (m_stored.count(key) != 0) {
      return Done{true, "unverified"};
    }
    return fail("miss", Failure::Kind::NotFound);
  }

  Expected<Done, Failure> generate(const JobRequest& request, DeviceLocks& gpus) override {
    const std::string& key = request.key;
    track(m_running, m_max_running, [&] { std::this_thread::sleep_for(m_delay); });
    if (request.verify) {
      std::lock_guard gpu(gpus.device(0));
      track(m_verifying, m_max_verifying, [&] { std::this_thread::sleep_for(m_delay); });
    }
    std::lock_guard lock(m_mutex);
    ++m_calls[key];
    if (m_fail_next) {
      m_fail_next = false;
      return fail("the disk is full");
    }
    const bool hit = m_stored.count(key) != 0;
    m_stored.insert(key);
    return Done{hit, "unverified"};
  }

  int calls(const std::string& key) {
    std::lock_guard lock(m_mutex);
    return m_calls[key];
  }
  void fail_next() {
    std::lock_guard lock(m_mutex);
    m_fail_next = true;
  }
  int max_running() const { return m_max_running; }
  int max_verifying() const { return m_max_verifying; }

 private:
  const std::chrono::milliseconds m_delay;
  std::mutex m_mutex;
  std::set<std::string> m_stored;
  std::map<std::string, int> m_calls;
  bool m_fail_next = false;
  std::atomic<int> m_running{0}, m_max_running{0};
  std::atomic<int> m_verifying{0}, m_max_verifying{0};

  // Runs `body`, counting it in `now` and recording the most that ran at once in `max`.
  template <typename F>
  static void track(std::atomic<int>& now, std::atomic<int>& max, F body) {
    int n = ++now;
    int seen = max.load();
    while (n > seen && !max.compare_exchange_weak(seen, n)) {
    }
    body();
    --now;
  }
};

JobRequest request(const std::string& name, const std::string& key, bool verify = false) {
  auto s = std::make_shared<spec::Spec>();
  s->name = name;
  JobRequest r;
  r.spec = s;
  r.arch = "sm_90a";
  r.key = key;
  r.verify = verify;
  return r;
}

// Waits for the ticket's result (or returns the immediate one).
Result wait_for(const JobRunner::Ticket& t) {
  if (!t.job) {
    return t.immediate;
  }
  size_t seen = 0;
  std::vector<Progress> events;
  for (;;) {
    if (auto r = t.job->wait(seen, events, 100ms)) {
      return *r;
    }
  }
}

TEST(Jobs, OneJobPerKeyOthersJoin) {
  FakeBackend gen(200ms);
  JobRunner runner(gen, {.jobs = 4});
  std::vector<std::thread> threads;
  std::atomic<int> joined{0}, ok{0};
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&] {
      auto t = runner.submit(request("causal", "key-a"));
      joined += t.joined ? 1 : 0;
      Result r = wait_for(t);
      ok += r.ok ? 1 : 0;
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(gen.calls("key-a"), 1);
  EXPECT_EQ(ok, 32);
  EXPECT_EQ(joined, 31);
  EXPECT_EQ(runner.generations(), 1);
  // Afterwards the key is a hit, answered at once.
  auto again = runner.submit(request("causal", "key-a"));
  EXPECT_FALSE(again.job);
  EXPECT_TRUE(again.immediate.ok);
  EXPECT_EQ(again.immediate.outcome, Outcome::CacheHit);
}

TEST(Jobs, ConcurrencyIsBounded) {
  FakeBackend gen(50ms);
  JobRunner runner(gen, {.jobs = 2});
  std::vector<JobRunner::Ticket> tickets;
  for (int i = 0; i < 8; ++i) {
    tickets.push_back(runner.submit(request("k", "key-" + std::to_string(i))));
  }
  for (auto& t : tickets) {
    Result r = wait_for(t);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.outcome, Outcome::Generated);
  }
  EXPECT_EQ(gen.max_running(), 2);
  EXPECT_EQ(runner.generations(), 8);
}

TEST(Jobs, ProgressStartsQueuedThenGenerating) {
  FakeBackend gen(50ms);
  JobRunner runner(gen, {.jobs = 1});
  auto t = runner.submit(request("causal", "key-p"));
  ASSERT_TRUE(t.job);
  size_t seen = 0;
  std::vector<Progress> events;
  std::optional<Result> r;
  while (!(r = t.job->wait(seen, events, 100ms))) {
  }
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].stage, "queued");
  EXPECT_EQ(events[1].stage, "generating");
  EXPECT_EQ(events[1].key, "key-p");
}

TEST(Jobs, FailuresAreNotRemembered) {
  FakeBackend gen(10ms);
  JobRunner runner(gen, {.jobs = 1});
  gen.fail_next();
  Result first = wait_for(runner.submit(request("causal", "key-f")));
  EXPECT_FALSE(first.ok);
  EXPECT_EQ(first.error, "the disk is full");
  EXPECT_EQ(first.outcome, Outcome::None);
  Result second = wait_for(runner.submit(request("causal", "key-f")));
  EXPECT_TRUE(second.ok);
  EXPECT_EQ(gen.calls("key-f"), 2);
  EXPECT_EQ(runner.generations(), 1);
}

TEST(Jobs, AJobFinishesWithoutWaiters) {
  FakeBackend gen(100ms);
  JobRunner runner(gen, {.jobs = 1});
  runner.submit(request("orphan", "key-o"));  // ticket dropped at once
  EXPECT_EQ(runner.active(), 1);
  runner.wait_idle();
  EXPECT_EQ(runner.active(), 0);
  EXPECT_EQ(gen.calls("key-o"), 1);
  EXPECT_TRUE(runner.submit(request("orphan", "key-o")).immediate.ok);
}

TEST(Jobs, VerificationsShareNoGpuButGenerationOverlaps) {
  FakeBackend gen(50ms);
  JobRunner runner(gen, {.jobs = 4, .gpus = 1});
  std::vector<JobRunner::Ticket> tickets;
  for (int i = 0; i < 4; ++i) {
    tickets.push_back(runner.submit(request("k", "gpu-" + std::to_string(i), /*verify=*/true)));
  }
  for (auto& t : tickets) {
    EXPECT_TRUE(wait_for(t).ok);
  }
  EXPECT_EQ(gen.max_verifying(), 1);
  EXPECT_GT(gen.max_running(), 1);
}

}  // namespace
}  // namespace kg::daemon
