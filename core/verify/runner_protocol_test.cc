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
  r.candidate_digest = "0123456789abcdef0123456789abcdef";
  r.reference_digest = "fedcba9876543210fedcba9876543210";
  r.settings.runs = 33;
  r.settings.timing = false;
  r.settings.host_reply_timeout_s = 7.5;
  r.settings.trap_syscalls = true;
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
  EXPECT_EQ(back->candidate_digest, r.candidate_digest);
  EXPECT_EQ(back->reference_digest, r.reference_digest);
  EXPECT_DOUBLE_EQ(back->settings.host_reply_timeout_s, 7.5);
  EXPECT_TRUE(back->settings.trap_syscalls);
  EXPECT_DOUBLE_EQ(back->settings.peak_tflops, 0);  // 0: the device's own rates
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
  r.timing.roundtrip_ms = 0.03;
  r.timing.kept_exact = true;
  r.host.ran = true;
  r.host.seccomp = true;
  r.host.pid_namespace = true;
  r.host.notes = "no mount namespace: EPERM";
  r.host.output_tail = "printed\n";
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
  EXPECT_DOUBLE_EQ(back->timing.roundtrip_ms, 0.03);
  EXPECT_TRUE(back->timing.kept_exact);
  EXPECT_TRUE(back->host.ran);
  EXPECT_TRUE(back->host.seccomp);
  EXPECT_FALSE(back->host.no_new_privs);
  EXPECT_TRUE(back->host.pid_namespace);
  EXPECT_EQ(back->host.notes, r.host.notes);
  EXPECT_EQ(back->host.output_tail, r.host.output_tail);

  auto wrong = parse_result(result_to_json(r), "n2");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("nonce"), std::string::npos);
}

TEST(RunnerProtocol, GarbageResults) {
  for (const char* text : {"", "garbage", "[1,2]", "{\"protocol\":2}", "{\"protocol\":2,\"nonce\":\"n\"}",
                           "{\"protocol\":2,\"nonce\":\"n\",\"trials\":[],\"findings\":[{\"message\":\"x\"}]}",
                           "{\"protocol\":2,\"nonce\":\"n\",\"trials\":{},\"findings\":[]}"}) {
    EXPECT_FALSE(parse_result(text, "n")) << text;
  }
  EXPECT_TRUE(parse_result("{\"protocol\":2,\"nonce\":\"n\",\"trials\":[],\"findings\":[]}", "n"));
}

}  // namespace
}  // namespace kg::verify
