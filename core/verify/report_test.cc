#include "verify/report.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kg::verify {
namespace {

TEST(Report, JsonHasTheDocumentedFields) {
  VerifyReport r;
  r.verdict = Verdict::Rejected;
  r.spec_name = "causal";
  r.arch = "sm_90a";
  r.stages.push_back({kStageStatic, StageStatus::Pass, 0.001, ""});
  Finding f;
  f.kind = FindingKind::WrongOutput;
  f.stage = kStageCorrectness;
  f.message = "12 elements wrong";
  f.trial = "ragged";
  f.shape = "B=1 Hq=4";
  f.worst = WorstElement{"out", 0, 3, 62, 17, 0.5, -INFINITY, INFINITY, 0.03};
  r.findings.push_back(f);
  r.timing.measured = true;
  r.timing.median_ms = 0.5;
  r.ptxas = PtxasReport{};
  const nlohmann::json j = nlohmann::json::parse(report_json_text(r));
  for (const char* key : {"schema", "verdict", "spec_name", "arch", "kernel_digest", "seed", "stages", "findings",
                          "trials", "ptxas", "compiler_output", "timing", "device", "sandbox", "versions",
                          "total_seconds"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["schema"], kReportSchema);
  EXPECT_EQ(j["findings"][0]["kind"], "wrong_output");
  EXPECT_EQ(j["findings"][0]["worst"]["i"], 62);
  EXPECT_EQ(j["findings"][0]["worst"]["want"], "-inf");  // JSON has no infinities
  EXPECT_EQ(j["findings"][0]["worst"]["abs_err"], "inf");
  EXPECT_EQ(j["timing"]["median_ms"], 0.5);
  // Round trip of a finding (the runner protocol relies on it).
  const Finding back = j["findings"][0].get<Finding>();
  EXPECT_EQ(back.kind, f.kind);
  EXPECT_EQ(back.trial, "ragged");
  ASSERT_TRUE(back.worst);
  EXPECT_TRUE(std::isinf(back.worst->want) && back.worst->want < 0);
  EXPECT_EQ(back.worst->d, 17);
}

TEST(Report, FirstRejectionSkipsWarnings) {
  VerifyReport r;
  Finding w;
  w.kind = FindingKind::Nondeterministic;
  w.warning = true;
  r.findings.push_back(w);
  EXPECT_EQ(r.first_rejection(), nullptr);
  Finding f;
  f.kind = FindingKind::Timeout;
  r.findings.push_back(f);
  ASSERT_NE(r.first_rejection(), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::Timeout);
}

TEST(Report, TrimKeepsHeadAndTail) {
  std::string text(20000, 'x');
  text.replace(0, 5, "HEAD!");
  text.replace(text.size() - 5, 5, "TAIL!");
  const std::string t = trim_output(text, 1000);
  EXPECT_LT(t.size(), 1100u);
  EXPECT_EQ(t.substr(0, 5), "HEAD!");
  EXPECT_EQ(t.substr(t.size() - 5), "TAIL!");
  EXPECT_NE(t.find("bytes elided"), std::string::npos);
  EXPECT_EQ(trim_output("short", 1000), "short");
}

TEST(Report, SummaryNamesVerdictAndFindings) {
  VerifyReport r;
  r.verdict = Verdict::Rejected;
  Finding f;
  f.kind = FindingKind::Crash;
  f.stage = kStageRun;
  f.message = "signal 6";
  r.findings.push_back(f);
  const std::string s = report_summary(r);
  EXPECT_NE(s.find("verdict: rejected"), std::string::npos);
  EXPECT_NE(s.find("crash"), std::string::npos);
  EXPECT_NE(s.find("signal 6"), std::string::npos);
}

}  // namespace
}  // namespace kg::verify
