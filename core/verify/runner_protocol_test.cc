#include "verify/runner_protocol.h"

#include <gtest/gtest.h>

namespace kg::verify {
namespace {

TEST(RunnerProtocol, RequestRoundTrip) {
  RunnerRequest r;
  r.nonce = "abc";
  r.spec_name = "causal";
  r.spec_yaml = "name: causal\ndtype: bf16\n";
  r.candidate_library = "/w/so/1.so";
  r.candidate_symbol = "kg_causal_forward";
  r.reference_library = "/w/so/2.so";
  r.reference_symbol = "kg_causal_reference_forward";
  r.seed = 18446744073709551615ull;
  r.settings.runs = 33;
  r.settings.timing = false;
  auto back = parse_request(request_to_json(r));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->nonce, "abc");
  EXPECT_EQ(back->spec_yaml, r.spec_yaml);
  EXPECT_EQ(back->candidate_library, r.candidate_library);
  EXPECT_EQ(back->reference_symbol, r.reference_symbol);
  EXPECT_EQ(back->seed, r.seed);
  EXPECT_EQ(back->settings.runs, 33);
  EXPECT_FALSE(back->settings.timing);
  EXPECT_EQ(back->settings.input_sets, 3);
}

TEST(RunnerProtocol, RequestErrors) {
  EXPECT_FALSE(parse_request("not json"));
  EXPECT_FALSE(parse_request("{}"));
  RunnerRequest r;
  std::string text = request_to_json(r);
  auto j = nlohmann::json::parse(text);
  j["protocol"] = 99;
  auto bad = parse_request(j.dump());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("protocol 99"), std::string::npos);
}

TEST(RunnerProtocol, ResultRoundTripAndNonce) {
  RunnerResult r;
  r.nonce = "n1";
  r.device.name = "NVIDIA H100 80GB HBM3";
  r.trials.push_back(TrialSummary{"ragged", "B=1", true, 0.01, 0.4, 1e-6, 0.031});
  r.startup_seconds = 0.4, r.correctness_seconds = 0.5, r.timing_seconds = 0.25;
  Finding f;
  f.kind = FindingKind::UnwrittenOutput;
  f.stage = kStageCorrectness;
  r.findings.push_back(f);
  r.timing.measured = true;
  r.timing.median_ms = 0.42;
  auto back = parse_result(result_to_json(r), "n1");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->device.name, r.device.name);
  ASSERT_EQ(back->trials.size(), 1u);
  EXPECT_EQ(back->trials[0].name, "ragged");
  EXPECT_DOUBLE_EQ(back->trials[0].seconds, 0.031);
  EXPECT_DOUBLE_EQ(back->startup_seconds, 0.4);
  EXPECT_DOUBLE_EQ(back->correctness_seconds, 0.5);
  EXPECT_DOUBLE_EQ(back->timing_seconds, 0.25);
  ASSERT_EQ(back->findings.size(), 1u);
  EXPECT_EQ(back->findings[0].kind, FindingKind::UnwrittenOutput);
  EXPECT_DOUBLE_EQ(back->timing.median_ms, 0.42);

  auto wrong = parse_result(result_to_json(r), "n2");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("nonce"), std::string::npos);
}

TEST(RunnerProtocol, GarbageResults) {
  for (const char* text : {"", "garbage", "[1,2]", "{\"protocol\":1}", "{\"protocol\":1,\"nonce\":\"n\"}",
                           "{\"protocol\":1,\"nonce\":\"n\",\"trials\":[],\"findings\":[{\"message\":\"x\"}]}",
                           "{\"protocol\":1,\"nonce\":\"n\",\"trials\":{},\"findings\":[]}"}) {
    EXPECT_FALSE(parse_result(text, "n")) << text;
  }
  EXPECT_TRUE(parse_result("{\"protocol\":1,\"nonce\":\"n\",\"trials\":[],\"findings\":[]}", "n"));
}

}  // namespace
}  // namespace kg::verify
