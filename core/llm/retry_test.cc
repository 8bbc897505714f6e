#include "llm/retry.h"

#include <gtest/gtest.h>

#include "llm/redact.h"

namespace kg::llm {
namespace {

using std::chrono::system_clock;

// 2024-01-01 00:00:00 UTC.
const system_clock::time_point k_now = system_clock::from_time_t(1704067200);

TEST(LlmRetry, BackoffDoublesWithEqualJitterUnderTheCap) {
  std::mt19937_64 rng(1);
  const BackoffSettings s{0.5, 3};
  for (int round = 0; round < 500; ++round) {
    const double expected_full[] = {0.5, 1, 2, 3, 3, 3};
    for (int retry = 0; retry < 6; ++retry) {
      const double w = retry_wait(retry, "", s, rng, k_now);
      EXPECT_GE(w, expected_full[retry] / 2) << retry;
      EXPECT_LE(w, expected_full[retry]) << retry;
    }
  }
  EXPECT_LE(retry_wait(1000, "", s, rng, k_now), 3);
  EXPECT_EQ(retry_wait(3, "", BackoffSettings{0, 10}, rng, k_now), 0);
}

TEST(LlmRetry, JitterSpreadsWaits) {
  std::mt19937_64 rng(2);
  double low = 1e9;
  double high = 0;
  for (int i = 0; i < 200; ++i) {
    const double w = retry_wait(2, "", BackoffSettings{1, 60}, rng, k_now);
    low = std::min(low, w);
    high = std::max(high, w);
  }
  EXPECT_LT(low, 2.5);
  EXPECT_GT(high, 3.5);
}

TEST(LlmRetry, RetryAfterOverridesAndIsCapped) {
  std::mt19937_64 rng(3);
  const BackoffSettings s{0.01, 30};
  EXPECT_EQ(retry_wait(0, "7", s, rng, k_now), 7);
  EXPECT_EQ(retry_wait(0, " 7\r\n", s, rng, k_now), 7);
  EXPECT_EQ(retry_wait(0, "120", s, rng, k_now), 30);
  EXPECT_EQ(retry_wait(0, "99999999999999", s, rng, k_now), 30);
  EXPECT_EQ(retry_wait(0, "Mon, 01 Jan 2024 00:00:12 GMT", s, rng, k_now), 12);
  EXPECT_EQ(retry_wait(0, "Monday, 01-Jan-24 00:00:05 GMT", s, rng, k_now), 5);
  EXPECT_EQ(retry_wait(0, "Mon Jan  1 00:00:09 2024", s, rng, k_now), 9);
  EXPECT_EQ(retry_wait(0, "Sun, 31 Dec 2023 00:00:00 GMT", s, rng, k_now), 0);  // in the past
  // Unreadable headers fall back to the backoff.
  for (const char* junk : {"soon", "-5", "1.5", "Mon, 01 Jan 2024 00:00:12 PST", "", "\xff\xfe"}) {
    const double w = retry_wait(0, junk, s, rng, k_now);
    EXPECT_LE(w, 0.01) << junk;
  }
}

TEST(LlmRetry, RetryableStatuses) {
  for (long s : {408, 409, 425, 429, 500, 502, 503, 504, 599}) {
    EXPECT_TRUE(retryable_status(s)) << s;
  }
  for (long s : {200, 301, 400, 401, 403, 404, 413, 422, 600}) {
    EXPECT_FALSE(retryable_status(s)) << s;
  }
}

TEST(LlmRedact, RemovesTheKeyAndLongPiecesOfIt) {
  const std::string key = "sk-kgtest-0123456789abcdef";
  EXPECT_EQ(redact_secret("no secret here", key), "no secret here");
  EXPECT_EQ(redact_secret("key " + key + " end", key), "key <redacted> end");
  EXPECT_EQ(redact_secret("Incorrect API key provided: sk-kgtes****89abcdef", key),
            "Incorrect API key provided: <redacted>****<redacted>");
  EXPECT_EQ(redact_secret("short sk-kg pieces", key), "short sk-kg pieces");
  EXPECT_EQ(redact_secret("anything", ""), "anything");
  EXPECT_EQ(redact_secret("a abc b", "abc"), "a <redacted> b");
}

}  // namespace
}  // namespace kg::llm
