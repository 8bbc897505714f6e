// The loop's decisions on the CPU: a scripted model, a judge that reads verdicts out of the
// candidate's text, and a clock the model advances. No network, no nvcc, no GPU.
#include "loop/loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <mutex>

#include "generate/template_generator.h"
#include "loop/prompt.h"
#include "spec/key.h"
#include "spec/spec.h"

namespace kg::loop {
namespace {

constexpr const char* kSpecYaml = "name: causal\ndtype: bf16\nhead_dim: 128\nmask_mod: q_idx >= kv_idx\n";

// A fake clock in seconds, advanced by the fake model and judge.
struct FakeTime {
  std::atomic<int64_t> micros{0};
  void advance(double s) { micros += static_cast<int64_t>(s * 1e6); }
  Clock clock() {
    return [this] { return micros.load() / 1e6; };
  }
};

// A candidate answer whose verdict the fake judge reads from a marker line.
std::string answer_with(const std::string& marker) {
  return "Here is the kernel.\n```cuda\n// FAKE " + marker +
         "\n#include <cuda_runtime.h>\n#include \"kernelgen/attention_abi.h\"\n__global__ void k() {}\n"
         "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {\n"
         "  return cudaSuccess;\n}\n```\n";
}

// Answers in order (cycling), each call taking `model_s` on the fake clock; records prompts.
class ScriptedModel final : public llm::Endpoint {
 public:
  ScriptedModel(std::vector<std::string> answers, FakeTime& time, double model_s = 10)
      : m_answers(std::move(answers)), m_time(time), m_model_s(model_s) {}
  std::string describe() const override { return "fake model"; }
  std::string model() const override { return "fake-r1"; }
  Expected<llm::ChatAnswer, Failure> chat(const llm::ChatRequest& request, const llm::CancelFlag* cancel) override {
    int now_active = ++m_active;
    {
      std::lock_guard lock(m_mutex);
      m_max_active = std::max(m_max_active, now_active);
      m_prompts.push_back(request.messages.empty() ? "" : request.messages.back().content);
    }
    const size_t n = m_calls++;
    m_time.advance(m_model_s);
    --m_active;
    if (cancel != nullptr && cancel->load()) {
      return fail("cancelled");
    }
    const std::string& a = m_answers[n % m_answers.size()];
    if (a.rfind("ERROR ", 0) == 0) {
      return fail(a.substr(6));
    }
    llm::ChatAnswer ans;
    ans.content = a;
    ans.reasoning = "thinking about tiles";
    ans.usage.completion_tokens = 100;
    return ans;
  }
  std::vector<std::string> prompts() {
    std::lock_guard lock(m_mutex);
    return m_prompts;
  }
  int max_active() {
    std::lock_guard lock(m_mutex);
    return m_max_active;
  }
  size_t calls() const { return m_calls; }

 private:
  std::vector<std::string> m_answers;
  FakeTime& m_time;
  double m_model_s;
  std::atomic<size_t> m_calls{0};
  std::atomic<int> m_active{0};
  std::mutex m_mutex;
  int m_max_active = 0;
  std::vector<std::string> m_prompts;
};

// Verdicts from the source: the template kernel passes at template_ms; "// FAKE ms=0.3" passes at
// 0.3 ms; "wrong" fails correctness; "compile_error" fails nvcc; "crash" crashes.
class MarkerJudge final : public Judge {
 public:
  explicit MarkerJudge(double template_ms) : m_template_ms(template_ms) {}
  Expected<verify::VerifyReport, Failure> compile(const std::string& source) override {
    const int now = ++m_compiling;
    m_max_compiling = std::max(m_max_compiling.load(), now);
    verify::VerifyReport r;
    r.verdict = verify::Verdict::Incomplete;
    if (source.find("FAKE compile_error") != std::string::npos) {
      r.verdict = verify::Verdict::Rejected;
      r.findings.push_back(finding(verify::FindingKind::CompileError, verify::kStageCompile,
                                   "nvcc failed:\nkernel.cu(12): error: identifier \"tile\" is undefined"));
    }
    --m_compiling;
    return r;
  }
  Expected<verify::VerifyReport, Failure> verify(const std::string& source) override {
    EXPECT_EQ(++m_verifying, 1) << "two verifications at once";
    ++m_verifications;
    auto r = compile(source);
    if (r->verdict != verify::Verdict::Rejected) {
      r->verdict = verify::Verdict::Pass;
      r->device.name = "Fake H100";
      r->timing.measured = true;
      r->timing.peak_tflops = 989;
      r->timing.peak_tbps = 3.35;
      r->timing.floor_ms = 0.05;
      r->timing.flops = 1e11;
      r->timing.median_ms = m_template_ms;
      if (auto at = source.find("FAKE ms="); at != std::string::npos) {
        r->timing.median_ms = std::stod(source.substr(at + 8));
      }
      if (source.find("FAKE wrong") != std::string::npos) {
        r->verdict = verify::Verdict::Rejected;
        verify::Finding f = finding(verify::FindingKind::WrongOutput, verify::kStageCorrectness,
                                    "out differs from the reference beyond the tolerance");
        f.worst = verify::WorstElement{"out", 1, 3, 77, 5, 0.5, 0.25, 0.25, 0.01};
        r->findings.push_back(f);
      }
      if (source.find("FAKE crash") != std::string::npos) {
        r->verdict = verify::Verdict::Rejected;
        r->findings.push_back(finding(verify::FindingKind::IllegalAddress, verify::kStageRun,
                                      "cudaErrorIllegalAddress after the candidate's launch"));
      }
    }
    --m_verifying;
    return r;
  }
  int verifications() const { return m_verifications; }
  int max_compiling() const { return m_max_compiling; }

 private:
  static verify::Finding finding(verify::FindingKind kind, const char* stage, std::string message) {
    verify::Finding f;
    f.kind = kind;
    f.stage = stage;
    f.message = std::move(message);
    return f;
  }
  double m_template_ms;
  std::atomic<int> m_verifying{0}, m_verifications{0}, m_compiling{0}, m_max_compiling{0};
};

struct Fixture {
  FakeTime time;
  spec::Spec spec;
  std::shared_ptr<ScriptedModel> model;
  std::shared_ptr<MarkerJudge> judge = std::make_shared<MarkerJudge>(0.40);
  LoopOptions options;
  generate::Request request;

  explicit Fixture(std::vector<std::string> answers, double model_s = 10) {
    auto parsed = spec::parse_spec(kSpecYaml, "causal.yaml");
    EXPECT_TRUE(parsed);
    spec = std::move(*parsed);
    model = std::make_shared<ScriptedModel>(std::move(answers), time, model_s);
    options.samples = 4;
    options.budget_s = 1000;
    options.max_rounds = 1;
    request.spec = &spec;
    request.arch = "sm_90a";
    request.key = spec::spec_key(spec, "sm_90a");
    request.context.spec_yaml = kSpecYaml;
  }
  Expected<generate::Kernel, Failure> run() {
    LoopGenerator loop(model, [this](const generate::Request&) -> Expected<std::unique_ptr<Judge>, Failure> {
      // The fixture keeps the judge for its counters; the loop gets a forwarding one.
      struct Forward final : Judge {
        MarkerJudge* j;
        explicit Forward(MarkerJudge* j) : j(j) {}
        Expected<verify::VerifyReport, Failure> compile(const std::string& s) override { return j->compile(s); }
        Expected<verify::VerifyReport, Failure> verify(const std::string& s) override { return j->verify(s); }
      };
      return std::unique_ptr<Judge>(std::make_unique<Forward>(judge.get()));
    }, std::make_shared<generate::TemplateGenerator>(), options, time.clock());
    return loop.generate(request);
  }
};

History history_of(const generate::Kernel& k) {
  auto h = parse_history(k.history_json);
  EXPECT_TRUE(h) << (h ? "" : h.error().message);
  return h ? *h : History{};
}

TEST(LoopGenerator, KeepsTheFastestCorrectKernelAndRejectsTheRest) {
  Fixture f({answer_with("ms=0.55"), answer_with("ms=0.30"), answer_with("wrong"), answer_with("compile_error"),
             "I would use shared memory tiles, but here is no code.",
             "```python\nimport triton\n@triton.jit\ndef k(): pass\n```", answer_with("crash"),
             "ERROR HTTP 500 from the server"});
  f.options.samples = 8;
  auto k = f.run();
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_NE(k->source.find("FAKE ms=0.30"), std::string::npos);
  ASSERT_TRUE(k->verification);
  EXPECT_EQ(k->verification->status, cache::Verification::Verified);
  EXPECT_EQ(k->generator, std::string("llm:fake-r1:") + kPromptVersion);
  const History h = history_of(*k);
  ASSERT_EQ(h.candidates.size(), 8u);
  std::map<Outcome, int> outcomes;
  for (const Candidate& c : h.candidates) {
    ++outcomes[c.outcome];
  }
  EXPECT_EQ(outcomes[Outcome::Pass], 2);
  EXPECT_EQ(outcomes[Outcome::Rejected], 2);  // wrong numbers, crash
  EXPECT_EQ(outcomes[Outcome::CompileError], 1);
  EXPECT_EQ(outcomes[Outcome::NoCode], 2);  // prose, Triton
  EXPECT_EQ(outcomes[Outcome::LlmError], 1);
  ASSERT_GE(h.best, 0);
  EXPECT_DOUBLE_EQ(h.candidates[h.best].time_ms, 0.30);
  EXPECT_DOUBLE_EQ(h.template_ms, 0.40);
  EXPECT_NEAR(h.speedup, 0.40 / 0.30, 1e-9);
  EXPECT_EQ(h.stop_reason, "rounds");
  EXPECT_EQ(h.model, "fake-r1");
  EXPECT_EQ(h.prompt_version, kPromptVersion);
  EXPECT_EQ(h.gpu, "Fake H100");
  // The template, the two correct ones and the three that reach the GPU: one verification each.
  EXPECT_EQ(f.judge->verifications(), 1 + 4);
}

TEST(LoopGenerator, TheTemplateStandsWhenNothingBeatsItByTheMargin) {
  Fixture f({answer_with("ms=0.395"), answer_with("ms=0.9"), answer_with("wrong")});
  f.options.samples = 3;
  auto k = f.run();
  ASSERT_TRUE(k);
  EXPECT_EQ(k->source.find("FAKE"), std::string::npos) << "a candidate within the noise margin replaced it";
  EXPECT_EQ(k->generator, kGeneratorVersion);
  ASSERT_TRUE(k->verification);
  EXPECT_EQ(k->verification->status, cache::Verification::Verified);
  EXPECT_FALSE(k->verification->report_json.empty());
  const History h = history_of(*k);
  EXPECT_EQ(h.best, -1);
  EXPECT_DOUBLE_EQ(h.speedup, 1);
}

TEST(LoopGenerator, TheNextPromptCarriesTheBestKernelAndTheFindings) {
  Fixture f({answer_with("ms=0.30"), answer_with("wrong"), answer_with("compile_error"), answer_with("ms=0.35")});
  f.options.max_rounds = 2;
  auto k = f.run();
  ASSERT_TRUE(k);
  const auto prompts = f.model->prompts();
  ASSERT_EQ(prompts.size(), 8u);
  const std::string& second = prompts.back();
  EXPECT_NE(second.find("FAKE ms=0.30"), std::string::npos) << "the best kernel so far is not in the prompt";
  EXPECT_NE(second.find("identifier \"tile\" is undefined"), std::string::npos) << "no compiler error";
  EXPECT_NE(second.find("wrong_output"), std::string::npos) << "no correctness finding";
  const History h = history_of(*k);
  ASSERT_EQ(h.rounds.size(), 2u);
  EXPECT_EQ(h.rounds[1].prompt_user, second);
}

TEST(LoopGenerator, StopsWhenTheBudgetEnds) {
  Fixture f({answer_with("ms=0.9")}, /*model_s=*/100);
  f.options.samples = 1;
  f.options.max_rounds = 0;
  f.options.patience = 0;
  f.request.context.budget_s = 250;
  auto k = f.run();
  ASSERT_TRUE(k);
  const History h = history_of(*k);
  EXPECT_EQ(h.stop_reason, "budget");
  EXPECT_EQ(h.rounds.size(), 3u);  // rounds start at 0, 100 and 200 s
  EXPECT_DOUBLE_EQ(h.budget_s, 250);
}

TEST(LoopGenerator, StopsAfterPatienceRoundsWithoutAGain) {
  Fixture f({answer_with("ms=0.9")});
  f.options.samples = 2;
  f.options.max_rounds = 0;
  f.options.patience = 3;
  auto k = f.run();
  ASSERT_TRUE(k);
  const History h = history_of(*k);
  EXPECT_EQ(h.stop_reason, "patience");
  EXPECT_EQ(h.rounds.size(), 3u);
}

TEST(LoopGenerator, GivesUpOnAnEndpointThatFailsEveryCallAndTheTemplateStands) {
  Fixture f({"ERROR HTTP 401 from http://127.0.0.1/v1/chat/completions: invalid key (check llm_api_key)"});
  f.options.max_rounds = 0;
  f.options.patience = 0;
  auto k = f.run();
  ASSERT_TRUE(k);
  const History h = history_of(*k);
  EXPECT_EQ(h.rounds.size(), 2u);
  EXPECT_NE(h.stop_reason.find("every model call"), std::string::npos) << h.stop_reason;
  EXPECT_NE(h.stop_reason.find("HTTP 401"), std::string::npos) << h.stop_reason;
  ASSERT_TRUE(k->verification);
  EXPECT_EQ(k->verification->status, cache::Verification::Verified);
  EXPECT_EQ(k->generator, kGeneratorVersion);
}

TEST(LoopGenerator, CancellationStopsTheLoop) {
  Fixture f({answer_with("ms=0.9")});
  f.options.max_rounds = 0;
  f.options.patience = 0;
  std::atomic<bool> cancel{true};
  f.request.context.cancel = &cancel;
  auto k = f.run();
  ASSERT_TRUE(k);
  const History h = history_of(*k);
  EXPECT_EQ(h.stop_reason, "cancelled");
  EXPECT_TRUE(h.rounds.empty());
}

TEST(LoopGenerator, BudgetZeroIsTheTemplateWithoutALoop) {
  Fixture f({answer_with("ms=0.1")});
  f.request.context.budget_s = 0;
  auto k = f.run();
  ASSERT_TRUE(k);
  EXPECT_TRUE(k->history_json.empty());
  EXPECT_FALSE(k->verification) << "emit verifies a template kernel itself";
  EXPECT_EQ(f.model->calls(), 0u);
}

TEST(LoopGenerator, NoRunCompilesOnlyAndVerifiesNothing) {
  Fixture f({answer_with("ms=0.1"), answer_with("compile_error")});
  f.options.samples = 2;
  f.options.run = false;
  auto k = f.run();
  ASSERT_TRUE(k);
  EXPECT_FALSE(k->verification);
  EXPECT_EQ(f.judge->verifications(), 0);
  const History h = history_of(*k);
  ASSERT_EQ(h.candidates.size(), 2u);
  // Samples take the scripted answers in the order their calls arrive.
  std::multiset<Outcome> outcomes{h.candidates[0].outcome, h.candidates[1].outcome};
  EXPECT_EQ(outcomes, (std::multiset<Outcome>{Outcome::CompileError, Outcome::Compiled}));
  EXPECT_FALSE(h.run);
}

TEST(LoopGenerator, ModelCallsAndCompilesStayWithinTheirBounds) {
  Fixture f({answer_with("ms=0.9")}, /*model_s=*/0.01);
  f.options.samples = 8;
  f.options.compile_jobs = 2;
  f.options.limiter = std::make_shared<CallLimiter>(2);
  auto k = f.run();
  ASSERT_TRUE(k);
  EXPECT_LE(f.model->max_active(), 2);
  EXPECT_LE(f.judge->max_compiling(), 2);
  EXPECT_EQ(f.model->calls(), 8u);
}

TEST(CallLimiter, AcquireGivesUpWhenCancelled) {
  CallLimiter limiter(1);
  ASSERT_TRUE(limiter.acquire(nullptr));
  std::atomic<bool> cancel{true};
  EXPECT_FALSE(limiter.acquire(&cancel));
  limiter.release();
  EXPECT_EQ(limiter.in_use(), 0);
}

}  // namespace
}  // namespace kg::loop
