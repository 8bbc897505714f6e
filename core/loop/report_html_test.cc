#include "loop/report_html.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace kg::loop {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

// The SVG elements of the page, concatenated.
std::string svgs(const std::string& page) {
  std::string out;
  for (size_t at = page.find("<svg"); at != std::string::npos; at = page.find("<svg", at + 1)) {
    const size_t end = page.find("</svg>", at);
    out += page.substr(at, end == std::string::npos ? std::string::npos : end + 6 - at);
  }
  return out;
}

Candidate candidate(int round, int sample, Outcome outcome, double end_s, double time_ms = 0) {
  Candidate c;
  c.round = round;
  c.sample = sample;
  c.outcome = outcome;
  c.end_s = end_s;
  c.time_ms = time_ms;
  if (outcome == Outcome::Pass) {
    c.tflops = 400;
    c.fraction_of_peak = 0.4;
  } else {
    c.detail = "wrong_output: out[0,1,2,3] = 1.5, want 0.25";
  }
  return c;
}

History sample_history() {
  History h;
  h.spec_name = "causal";
  h.key = "0123456789abcdef0123456789abcdef";
  h.arch = "sm_90a";
  h.model = "deepseek-reasoner";
  h.endpoint = "https://api.example.invalid/v1 deepseek-reasoner";
  h.samples = 3;
  h.gpu = "NVIDIA H200";
  h.peak_tflops = 989;
  h.peak_tbps = 4.8;
  h.floor_ms = 0.05;
  h.template_ms = 0.40;
  h.total_s = 300;
  for (int r = 1; r <= 2; ++r) {
    Round round;
    round.index = r;
    round.prompt_system = "You write CUDA kernels.";
    round.prompt_user = "Round " + std::to_string(r) + ": beat the template.";
    round.start_s = (r - 1) * 150.0;
    round.end_s = r * 150.0;
    round.candidates = 3;
    h.rounds.push_back(round);
  }
  h.candidates.push_back(candidate(1, 0, Outcome::Pass, 100, 0.35));
  h.candidates.push_back(candidate(1, 1, Outcome::Rejected, 110));
  h.candidates.push_back(candidate(1, 2, Outcome::NoCode, 40));
  h.candidates.push_back(candidate(2, 0, Outcome::Pass, 250, 0.30));
  h.candidates.push_back(candidate(2, 1, Outcome::CompileError, 200));
  h.candidates.push_back(candidate(2, 2, Outcome::LlmError, 160));
  h.best = 3;
  h.best_ms = 0.30;
  h.speedup = 0.40 / 0.30;
  h.stop_reason = "budget";
  return h;
}

ReportInput input_for(History h) {
  ReportInput in;
  in.name = h.spec_name;
  in.key = h.key;
  in.arch = h.arch;
  in.report_json = R"({"verdict": "pass", "findings": [], "timing": {"median_ms": 0.3}})";
  in.history = std::move(h);
  return in;
}

TEST(LoopReportHtml, EverySectionIsPresent) {
  const std::string page = render_report_html(input_for(sample_history()));
  for (const char* id : {"summary", "plot", "rounds", "candidates", "prompts", "final-report"}) {
    EXPECT_EQ(count(page, std::string("id=\"") + id + "\""), 1u) << id;
  }
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("</html>\n"), std::string::npos);
}

TEST(LoopReportHtml, OneMarkerPerCandidateAndTheLines) {
  const std::string page = render_report_html(input_for(sample_history()));
  const std::string svg = svgs(page);
  EXPECT_EQ(count(svg, "<g class=\"cand outcome-"), 6u);
  EXPECT_EQ(count(svg, "<g class=\"cand outcome-pass\""), 2u);
  EXPECT_EQ(count(svg, "<g class=\"cand outcome-rejected\""), 1u);
  EXPECT_EQ(count(svg, "<path class=\"best\""), 1u);
  EXPECT_EQ(count(svg, "<line class=\"template\""), 1u);
  EXPECT_EQ(count(svg, "<line class=\"floor\""), 1u);
  EXPECT_EQ(count(svg, "<circle class=\"peak\""), 2u);
  // The best line steps at each new best: the template, 0.35 at 100 s, 0.30 at 250 s.
  const size_t best = svg.find("<path class=\"best\" d=\"");
  const std::string d = svg.substr(best, svg.find('"', best + 22) - best);
  EXPECT_EQ(count(d, " V"), 2u) << d;
  // Tooltips give round, sample, outcome and detail.
  EXPECT_NE(svg.find("round 1, sample 1, rejected"), std::string::npos);
  EXPECT_NE(svg.find("wrong_output: out[0,1,2,3]"), std::string::npos);
}

TEST(LoopReportHtml, HostileTextAppearsOnlyEscaped) {
  History h = sample_history();
  const std::string evil = "</pre><script>alert(1)</script></style><!-- '\"&";
  h.candidates[1].answer = evil;
  h.candidates[1].reasoning = evil;
  h.candidates[1].source = evil;
  h.candidates[1].detail = evil;
  h.candidates[1].report_json = evil;
  h.rounds[0].prompt_user = evil;
  h.spec_name = evil;
  h.gpu = evil;
  h.model = evil;
  ReportInput in = input_for(h);
  in.name = evil;
  in.report_json = R"({"verdict": "</span><script>x</script>", "findings": [{"message": "<!--"}]})";
  const std::string page = render_report_html(in);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("alert(1)</script>"), std::string::npos);
  EXPECT_EQ(page.find("<!--"), std::string::npos);
  EXPECT_EQ(count(page, "</style>"), 1u);  // the page's own
  EXPECT_EQ(page.find("</pre><script"), std::string::npos);
  EXPECT_NE(
      page.find("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;/style&gt;&lt;!-- &#39;&quot;&amp;"),
      std::string::npos);
}

TEST(LoopReportHtml, ControlBytesAndBadUtf8AreReplaced) {
  History h = sample_history();
  h.candidates[0].answer = std::string(
      "a\x01"
      "b\xff"
      "c\xc0\xaf"
      "d\xed\xa0\x80"
      "e\t\n",
      15);
  h.candidates[0].answer += std::string(1, '\0') + "z";
  const std::string page = render_report_html(input_for(h));
  EXPECT_NE(page.find("a\xEF\xBF\xBD"
                      "b\xEF\xBF\xBD"
                      "c"),
            std::string::npos);
  EXPECT_EQ(page.find('\x01'), std::string::npos);
  EXPECT_EQ(page.find('\0'), std::string::npos);
  EXPECT_EQ(page.find('\xff'), std::string::npos);
  EXPECT_EQ(page.find("\xed\xa0\x80"), std::string::npos);
}

TEST(LoopReportHtml, LongTextsAreCut) {
  History h = sample_history();
  h.candidates[0].reasoning = std::string(kPageTextLimit + 5000, 'r');
  const std::string page = render_report_html(input_for(h));
  EXPECT_NE(page.find("[5000 more bytes not shown"), std::string::npos);
  EXPECT_EQ(page.find(std::string(kPageTextLimit + 1, 'r')), std::string::npos);
}

TEST(LoopReportHtml, PageBudgetBoundsTheSize) {
  History h = sample_history();
  const std::string big(kPageTextLimit, 'x');
  h.candidates.clear();
  for (int i = 0; i < 200; ++i) {
    Candidate c = candidate(1, i, Outcome::Rejected, i);
    c.answer = c.reasoning = c.source = big;
    h.candidates.push_back(c);
  }
  h.best = -1;
  const std::string page = render_report_html(input_for(h));
  EXPECT_LT(page.size(), kPageTextBudget + 200 * 4 * (kPageTextMinimum + 2048));
  EXPECT_EQ(count(svgs(page), "<g class=\"cand outcome-"), 200u);
}

TEST(LoopReportHtml, DegenerateNumbersGiveFiniteSvg) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int variant = 0; variant < 4; ++variant) {
    History h = sample_history();
    if (variant == 0) {  // nothing measured
      h.template_ms = 0, h.floor_ms = 0, h.total_s = 0, h.best_ms = 0, h.speedup = 0;
      for (Candidate& c : h.candidates) {
        c.end_s = 0;
      }
    } else if (variant == 1) {  // huge values
      h.template_ms = 1e300, h.total_s = 1e300, h.floor_ms = 1e-300;
      h.candidates[0].time_ms = 1e308;
      h.candidates[0].end_s = 1e308;
      h.candidates[0].fraction_of_peak = 1e308;
    } else if (variant == 2) {  // values JSON cannot hold, built directly
      h.template_ms = nan, h.total_s = inf, h.floor_ms = -inf, h.speedup = nan;
      h.candidates[0].time_ms = nan;
      h.candidates[3].time_ms = inf;
      h.candidates[3].end_s = nan;
      h.candidates[3].fraction_of_peak = nan;
      h.rounds[0].end_s = -inf;
    } else {  // negative times
      h.template_ms = -1, h.candidates[0].time_ms = -5, h.candidates[0].end_s = -10;
    }
    const std::string svg = svgs(render_report_html(input_for(h)));
    ASSERT_FALSE(svg.empty());
    EXPECT_EQ(svg.find("nan"), std::string::npos) << variant;
    EXPECT_EQ(svg.find("inf"), std::string::npos) << variant;
    EXPECT_EQ(svg.find("NaN"), std::string::npos) << variant;
    EXPECT_EQ(count(svg, "<g class=\"cand outcome-"), 6u) << variant;
  }
}

TEST(LoopReportHtml, EmptyHistoryStillPlots) {
  History h = sample_history();
  h.candidates.clear();
  h.rounds.clear();
  h.best = -1;
  h.total_s = 0;
  const std::string page = render_report_html(input_for(h));
  const std::string svg = svgs(page);
  EXPECT_NE(svg.find("<line class=\"axis\""), std::string::npos);
  EXPECT_NE(svg.find("<line class=\"template\""), std::string::npos);
  EXPECT_NE(svg.find("<path class=\"best\""), std::string::npos);  // the template stands
  EXPECT_EQ(count(svg, "<g class=\"cand "), 0u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(LoopReportHtml, NoHistorySaysNoLoopRan) {
  ReportInput in;
  in.name = "causal";
  in.key = std::string(32, 'e');
  in.generator = "tmpl-16";
  in.verification = "unverified";
  const std::string page = render_report_html(in);
  EXPECT_NE(page.find("No closed loop ran"), std::string::npos);
  EXPECT_NE(page.find("No verifier report"), std::string::npos);
  for (const char* id : {"summary", "plot", "rounds", "candidates", "prompts", "final-report"}) {
    EXPECT_NE(page.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  }
}

TEST(LoopReportHtml, FinalReportRendersFindingsAndDamage) {
  ReportInput in = input_for(sample_history());
  in.report_json = R"({"verdict": "rejected", "findings": [{"kind": "wrong_output", "stage": "correctness",
      "message": "out differs"}], "ptxas": {"max_registers": 168,
      "functions": [{"name": "k", "registers": 168}]}, "timing": 7})";
  std::string page = render_report_html(in);
  EXPECT_NE(page.find("verdict-rejected"), std::string::npos);
  EXPECT_NE(page.find("wrong_output"), std::string::npos);
  EXPECT_NE(page.find("max_registers"), std::string::npos);
  in.report_json = "{not json";
  page = render_report_html(in);
  EXPECT_NE(page.find("not a JSON object"), std::string::npos);
  EXPECT_NE(page.find("{not json"), std::string::npos);
}

TEST(LoopReportHtml, Deterministic) {
  const ReportInput in = input_for(sample_history());
  EXPECT_EQ(render_report_html(in), render_report_html(in));
}

TEST(LoopReportHtml, NothingToFetch) {
  History h = sample_history();
  h.candidates[0].answer = "see https://evil.invalid/x.js";
  const std::string page = render_report_html(input_for(h));
  for (const char* bad : {"src=", "href=", "url(", "@import", "<link", "<img", "<iframe", "<object"}) {
    EXPECT_EQ(page.find(bad), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace kg::loop
