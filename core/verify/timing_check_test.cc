#include "verify/timing_check.h"

#include <gtest/gtest.h>

namespace kg::verify {
namespace {

TEST(TimingCheck, QuantileInterpolatesBetweenOrderStatistics) {
  EXPECT_DOUBLE_EQ(quantile({}, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(quantile({3.0}, 0.25), 3.0);
  EXPECT_DOUBLE_EQ(quantile({4.0, 1.0, 3.0, 2.0, 5.0}, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(quantile({4.0, 1.0, 3.0, 2.0, 5.0}, 0.25), 2.0);
  EXPECT_DOUBLE_EQ(quantile({1.0, 2.0}, 0.25), 1.25);
  EXPECT_DOUBLE_EQ(quantile({1.0, 2.0}, 7.0), 2.0);
}

TEST(TimingCheck, ABurstOfSlowNullRunsDoesNotShiftTheRoundTrip) {
  // 20 null runs at about 0.18 ms, 11 of them slowed to 0.36: the median moves, the quartile not.
  std::vector<double> null_ms;
  for (int i = 0; i < 9; ++i) null_ms.push_back(0.18 + 0.001 * i);
  for (int i = 0; i < 11; ++i) null_ms.push_back(0.36);
  EXPECT_LT(null_roundtrip_ms(null_ms), 0.19);
  EXPECT_GT(quantile(null_ms, 0.5), 0.19);
}

TEST(TimingCheck, HonestNoiseOnTheJudgesSidePasses) {
  // The H200 figures that the symmetric bound rejected (events, judge's time).
  EXPECT_EQ(timing_disagreement(0.4438, 0.2469), "");
  EXPECT_EQ(timing_disagreement(0.5116, 0.3307), "");
  EXPECT_EQ(timing_disagreement(0.7329, 0.4241), "");
  EXPECT_EQ(timing_disagreement(0.4212, 0.4209), "");
  EXPECT_EQ(timing_disagreement(5.7, 5.49), "");
}

TEST(TimingCheck, AJudgeTimeUnderTheEventsIsRejected) {
  // Stalled null answers take time out of the verdict: the judge then sees less than the events.
  EXPECT_NE(timing_disagreement(0.10, 0.25), "");
  EXPECT_NE(timing_disagreement(0.25, 0.42), "");
  EXPECT_NE(timing_disagreement(3.0, 5.0), "");
  EXPECT_EQ(timing_disagreement(0.36, 0.42), "");  // within 25 % + 0.05 ms
}

TEST(TimingCheck, EventsThatMissTheKernelAreRejected) {
  // A forged "done" with a tiny time, or work on another stream the events do not see.
  EXPECT_NE(timing_disagreement(1.2, 0.001), "");
  EXPECT_NE(timing_disagreement(0.4, 0.01), "");
  EXPECT_NE(timing_disagreement(10.0, 4.0), "");
}

}  // namespace
}  // namespace kg::verify
