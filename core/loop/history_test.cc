#include "loop/history.h"

#include <gtest/gtest.h>

namespace kg::loop {
namespace {

History sample() {
  History h;
  h.spec_name = "causal";
  h.key = std::string(32, 'a');
  h.model = "deepseek-reasoner";
  h.samples = 8;
  h.template_ms = 0.41;
  Round r;
  r.index = 1;
  r.prompt_user = "write a kernel";
  h.rounds.push_back(r);
  Candidate c;
  c.round = 1;
  c.outcome = Outcome::Pass;
  c.time_ms = 0.30;
  c.answer = "```cuda\n__global__ void k() {}\n```";
  c.reasoning = std::string("bad utf8 \xff here");
  h.candidates.push_back(c);
  Candidate d;
  d.outcome = Outcome::NoCode;
  h.candidates.push_back(d);
  h.best = 0;
  h.best_ms = 0.30;
  h.speedup = 0.41 / 0.30;
  return h;
}

TEST(LoopHistory, RoundTrips) {
  const History h = sample();
  auto back = parse_history(history_json(h));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->spec_name, "causal");
  ASSERT_EQ(back->candidates.size(), 2u);
  EXPECT_EQ(back->candidates[0].outcome, Outcome::Pass);
  EXPECT_EQ(back->candidates[1].outcome, Outcome::NoCode);
  EXPECT_DOUBLE_EQ(back->candidates[0].time_ms, 0.30);
  EXPECT_EQ(back->rounds.at(0).prompt_user, "write a kernel");
  EXPECT_EQ(back->best, 0);
  // The text is stable: writing what was read gives the same bytes.
  EXPECT_EQ(history_json(*back), history_json(h));
}

TEST(LoopHistory, RefusesDamage) {
  EXPECT_FALSE(parse_history("not json"));
  EXPECT_FALSE(parse_history("[]"));
  EXPECT_FALSE(parse_history(R"({"schema": 99})"));
  EXPECT_FALSE(parse_history(R"({"schema": 1, "candidates": 3})"));
  EXPECT_FALSE(parse_history(R"({"schema": 1, "candidates": [{"outcome": "magic"}]})"));
  EXPECT_FALSE(parse_history(R"({"schema": 1, "best": 2, "candidates": []})"));
  EXPECT_FALSE(parse_history(R"({"schema": 1, "samples": "eight"})"));
  EXPECT_TRUE(parse_history(R"({"schema": 1})"));
}

TEST(LoopHistory, OutcomeNamesRoundTrip) {
  for (Outcome o : {Outcome::Pass, Outcome::Rejected, Outcome::CompileError, Outcome::NoCode, Outcome::LlmError,
                    Outcome::Compiled, Outcome::Cancelled}) {
    Outcome back = Outcome::Pass;
    ASSERT_TRUE(parse_outcome(outcome_name(o), back));
    EXPECT_EQ(back, o);
  }
  Outcome x;
  EXPECT_FALSE(parse_outcome("nope", x));
}

}  // namespace
}  // namespace kg::loop
