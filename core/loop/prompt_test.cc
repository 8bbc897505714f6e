#include "loop/prompt.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "loop/answer.h"
#include "spec/spec.h"
#include "verify/static_check.h"

namespace kg::loop {
namespace {

spec::Spec parse_ok(const std::string& yaml) {
  auto r = spec::parse_spec(yaml, "specs/test.yaml");
  if (!r) {
    ADD_FAILURE() << r.error()[0].str();
    return spec::Spec{};
  }
  return *r;
}

const char* kCausal = "name: causal\ndtype: bf16\nhead_dim: 128\nmask_mod: q_idx >= kv_idx\n";
const char* kRelpos =
    "name: relpos_scaled\ndtype: fp16\nhead_dim: 64\nparams: {slope: float}\nconstants: {W: 256}\n"
    "score_mod: score + slope * (q_idx - kv_idx)\nmask_mod: q_idx >= kv_idx and q_idx - kv_idx < W\n";
const char* kDocument =
    "name: document_mask\ndtype: bf16\nhead_dim: 128\n"
    "tensors:\n  q_doc: {dtype: int32, shape: [batch, seq_q]}\n  kv_doc: {dtype: int32, shape: [batch, seq_kv]}\n"
    "mask_mod: q_doc[b, q_idx] == kv_doc[b, kv_idx]\n";

const std::string kBestSource =
    "// best kernel\n#include <kernelgen/attention_abi.h>\n"
    "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {\n"
    "  return cudaSuccess;\n}\n";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

#define EXPECT_CONTAINS(text, part) EXPECT_TRUE(contains(text, part)) << "missing: " << (part) << "\n---\n" << (text)

verify::TimingResult timing(double ms) {
  verify::TimingResult t;
  t.measured = true;
  t.shape = "B=4 Hq=16 Hkv=16 Sq=4096 Skv=4096 layout=bhsd";
  t.median_ms = ms;
  t.flops = 5e11;  // 500 TFLOP/s at 1 ms
  t.bytes = 1e9;   // 1 TB/s at 1 ms
  t.tflops = t.flops / (ms * 1e-3) / 1e12;
  t.peak_tflops = 989.5;
  t.peak_tbps = 3.35;
  t.floor_ms = 0.505;
  return t;
}

verify::VerifyReport timed_report(double ms, int registers, int spills) {
  verify::VerifyReport r;
  r.verdict = verify::Verdict::Pass;
  r.timing = timing(ms);
  verify::PtxasReport p;
  verify::PtxasFunction f;
  f.name = "_Z4attnv";
  f.entry = true;
  f.registers = registers;
  f.spill_store_bytes = spills;
  p.functions.push_back(f);
  p.max_registers = registers;
  p.total_spill_bytes = spills;
  r.ptxas = p;
  return r;
}

PromptInput base_input(const spec::Spec& s) {
  PromptInput in;
  in.spec = &s;
  in.arch = "sm_90a";
  in.gpu_name = "NVIDIA H100 80GB HBM3";
  in.peak_tflops = 989.5;
  in.peak_tbps = 3.35;
  in.best_source = kBestSource;
  in.best_report = timed_report(1.0, 168, 0);
  in.best_is_template = true;
  in.template_ms = 1.0;
  in.round = 1;
  return in;
}

Attempt compile_failure() {
  Attempt a;
  a.outcome = Outcome::CompileError;
  a.source = "#include <kernelgen/attention_abi.h>\nline two\n  foo(1);  // the bad call\n";
  verify::VerifyReport r;
  r.verdict = verify::Verdict::Rejected;
  verify::Finding f;
  f.kind = verify::FindingKind::CompileError;
  f.stage = verify::kStageCompile;
  f.message =
      "nvcc failed:\n"
      "/var/cache/kernelgen/verify/so/0123abcd.tmp.4242.77.cu(3): error: identifier \"foo\" is undefined\n"
      "\n"
      "/var/cache/kernelgen/verify/so/0123abcd.tmp.4242.77.cu(9): warning #177-D: variable \"x\" was declared but never "
      "referenced\n"
      "1 error detected in the compilation of \"/var/cache/kernelgen/verify/so/0123abcd.tmp.4242.77.cu\".\n";
  r.findings.push_back(f);
  a.report = r;
  return a;
}

Attempt wrong_output_failure() {
  Attempt a;
  a.outcome = Outcome::Rejected;
  verify::VerifyReport r;
  r.verdict = verify::Verdict::Rejected;
  verify::Finding f;
  f.kind = verify::FindingKind::WrongOutput;
  f.stage = verify::kStageCorrectness;
  f.message = "412 of 33280 out elements outside tolerance";
  f.trial = "gqa_bshd";
  f.shape = "B=2 Hq=8 Hkv=2 Sq=65 Skv=63 layout=bshd lse=on";
  verify::WorstElement w;
  w.tensor = "out";
  w.b = 1;
  w.h = 3;
  w.i = 64;
  w.d = 17;
  w.got = 0.5;
  w.want = 0.25;
  w.abs_err = 0.25;
  w.allowed = 0.025;
  f.worst = w;
  r.findings.push_back(f);
  a.report = r;
  a.report->ptxas = timed_report(1, 200, 96).ptxas;
  return a;
}

Attempt crash_failure() {
  Attempt a;
  a.outcome = Outcome::Rejected;
  verify::VerifyReport r;
  r.verdict = verify::Verdict::Rejected;
  verify::Finding f;
  f.kind = verify::FindingKind::IllegalAddress;
  f.stage = verify::kStageRun;
  f.trial = "ragged";
  f.shape = "B=1 Hq=4 Hkv=4 Sq=63 Skv=65 layout=bhsd lse=on";
  f.message = "cudaErrorIllegalAddress: an illegal memory access was encountered";
  r.findings.push_back(f);
  a.report = r;
  return a;
}

Attempt no_code_failure() {
  Attempt a;
  a.outcome = Outcome::NoCode;
  a.detail = "the block is Python (found 'import triton'), not CUDA C++";
  return a;
}

TEST(LoopPrompt, EntryName) {
  spec::Spec s = parse_ok(kCausal);
  EXPECT_EQ(entry_name(s), "kg_causal_forward");
  EXPECT_EQ(entry_name(s), verify::entry_symbol(s.name));
}

TEST(LoopPrompt, SystemAndUserForSeveralSpecs) {
  for (const char* yaml : {kCausal, kRelpos, kDocument}) {
    spec::Spec s = parse_ok(yaml);
    auto msgs = build_prompt(base_input(s));
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[0].role, "system");
    EXPECT_EQ(msgs[1].role, "user");
    const std::string& sys = msgs[0].content;
    const std::string& user = msgs[1].content;
    const std::string entry = "kg_" + s.name + "_forward";
    EXPECT_CONTAINS(sys, "extern \"C\" cudaError_t " + entry + "(const KgAttentionArgs* args, cudaStream_t stream)");
    EXPECT_CONTAINS(sys, "1.44269504");
    EXPECT_CONTAINS(sys, "sm_90a");
    EXPECT_CONTAINS(sys, "```cuda");
    // The ABI header itself, with the struct the entry takes.
    EXPECT_CONTAINS(sys, "typedef struct KgAttentionArgs {");
    EXPECT_CONTAINS(sys, "#define KG_ABI_VERSION 1u");
    EXPECT_CONTAINS(sys, "args->head_dim != " + std::to_string(s.head_dim));
    EXPECT_CONTAINS(user, "entry point: `" + entry + "`");
    EXPECT_CONTAINS(user, "def score_mod(score, b, h, q_idx, kv_idx):");
    EXPECT_CONTAINS(user, "def mask_mod(b, h, q_idx, kv_idx):");
    EXPECT_CONTAINS(user, "NVIDIA H100 80GB HBM3 (sm_90a): peak dense tensor rate 989.5 TFLOP/s, memory bandwidth 3.35 TB/s");
    EXPECT_CONTAINS(user, kBestSource);
    EXPECT_CONTAINS(user, "This is the first round");
    // Templates are fully rendered: no placeholder and no template comment is left.
    for (const std::string* m : {&sys, &user}) {
      EXPECT_FALSE(contains(*m, "{{")) << *m;
      EXPECT_FALSE(contains(*m, "kPromptVersion")) << *m;
    }
    EXPECT_FALSE(contains(user, "# Generated by"));
  }
}

TEST(LoopPrompt, SpecMathParamsAndTensors) {
  spec::Spec causal = parse_ok(kCausal);
  std::string user = build_prompt(base_input(causal))[1].content;
  EXPECT_CONTAINS(user, "def mask_mod(b, h, q_idx, kv_idx):\n    return q_idx >= kv_idx\n");
  EXPECT_CONTAINS(user, "    return score  # the spec has no score_mod\n");
  EXPECT_CONTAINS(user, "- params: none");
  EXPECT_CONTAINS(user, "dtype: bf16 (q, k, v and out); head_dim: 128");

  spec::Spec relpos = parse_ok(kRelpos);
  auto msgs = build_prompt(base_input(relpos));
  user = msgs[1].content;
  EXPECT_CONTAINS(user, "[0] `slope` (float)");
  EXPECT_CONTAINS(user, "W = 256");
  EXPECT_CONTAINS(user, "slope: float");
  EXPECT_CONTAINS(user, "dtype: fp16 (q, k, v and out); head_dim: 64");
  EXPECT_CONTAINS(msgs[0].content, "fp16: 5e-3 + 5e-3");

  spec::Spec doc = parse_ok(kDocument);
  user = build_prompt(base_input(doc))[1].content;
  EXPECT_CONTAINS(user, "[0] `q_doc`: int32 [batch, seq_q], [1] `kv_doc`: int32 [batch, seq_kv]");
  EXPECT_CONTAINS(user, "q_doc[b][q_idx] == kv_doc[b][kv_idx]");
}

// The rules' header list and deny list say what the static check enforces: every header the
// prompt allows passes it, every name the prompt forbids is refused by it.
TEST(LoopPrompt, RulesMatchTheStaticCheck) {
  spec::Spec s = parse_ok(kCausal);
  const std::string sys = build_prompt(base_input(s))[0].content;
  const size_t headers_at = sys.find("Allowed #include lines:");
  ASSERT_NE(headers_at, std::string::npos);
  const std::string headers_line = sys.substr(headers_at, sys.find('\n', headers_at) - headers_at);
  const std::string entry = "\nextern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t s) { "
                            "return cudaSuccess; }\n";
  std::regex angle("<([a-z_0-9/.]+)>");
  int headers = 0;
  for (auto it = std::sregex_iterator(headers_line.begin(), headers_line.end(), angle); it != std::sregex_iterator();
       ++it, ++headers) {
    const std::string source = "#include <" + (*it)[1].str() + ">\n" + entry;
    EXPECT_TRUE(verify::static_check(source, "causal").empty()) << "the prompt allows <" << (*it)[1] << ">";
  }
  EXPECT_GT(headers, 20);
  EXPECT_TRUE(verify::static_check("#include \"kernelgen/attention_abi.h\"\n" + entry, "causal").empty());

  const size_t denied_at = sys.find("Refused before compiling:");
  ASSERT_NE(denied_at, std::string::npos);
  const std::string denied_line = sys.substr(denied_at, sys.find(';', denied_at) - denied_at);
  std::regex name("`(?:std::)?([A-Za-z_][A-Za-z_0-9]*)`");
  int names = 0;
  for (auto it = std::sregex_iterator(denied_line.begin(), denied_line.end(), name); it != std::sregex_iterator();
       ++it, ++names) {
    const std::string id = (*it)[1].str();
    EXPECT_TRUE(verify::is_denied_identifier(id)) << "the prompt forbids `" << id << "`";
    // And the check really refuses it where a kernel would use it.
    const std::string use = "void f() { " + std::string(contains(id, "cudaStreamPerThread") || contains(id, "cudaStreamLegacy")
                                                                ? "auto x = " + id + ";"
                                                                : id + "(0);") +
                            " }\n";
    bool refused = false;
    for (const auto& f : verify::static_check(use + entry, "causal")) {
      refused = refused || f.kind == verify::FindingKind::ForbiddenCall;
    }
    EXPECT_TRUE(refused) << id;
  }
  EXPECT_GT(names, 20);
}

TEST(LoopPrompt, BestKernelTimingAndPeakFraction) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  std::string user = build_prompt(in)[1].content;
  EXPECT_CONTAINS(user, "The template kernel KernelGen generates for this spec");
  EXPECT_CONTAINS(user, "- time: 1 ms (median at B=4 Hq=16 Hkv=16 Sq=4096 Skv=4096 layout=bhsd): 500 TFLOP/s, 1 TB/s; "
                        "50.5% of the physical limit (compute-bound: 50.5% of the 989.5 TFLOP/s tensor peak); the "
                        "physical floor at this shape is 0.505 ms");
  EXPECT_CONTAINS(user, "- ptxas: 168 registers per thread, 0 bytes of spill stores and loads");

  // A memory-bound kernel says so.
  in.best_report->timing.flops = 5e10;
  in.best_report->timing.tflops = 50;
  user = build_prompt(in)[1].content;
  EXPECT_CONTAINS(user, "29.9% of the physical limit (memory-bound: 29.9% of the 3.35 TB/s bandwidth)");

  // A candidate that beat the template: both times.
  in = base_input(s);
  in.best_is_template = false;
  in.best_report = timed_report(0.8, 160, 0);
  in.template_ms = 1.2;
  user = build_prompt(in)[1].content;
  EXPECT_CONTAINS(user, "A candidate of an earlier round");
  EXPECT_CONTAINS(user, "the template kernel: 1.2 ms; this kernel is 1.5x as fast");
}

TEST(LoopPrompt, NotTimedAndUnknownGpu) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  in.best_report.reset();
  in.gpu_name = "";
  in.peak_tflops = 0;
  in.peak_tbps = 0;
  in.template_ms = 0;
  const std::string user = build_prompt(in)[1].content;
  EXPECT_CONTAINS(user, "- time: not timed (no GPU run in this session)");
  EXPECT_CONTAINS(user, "Not known: candidates are compiled for sm_90a but not run this time");
  EXPECT_FALSE(contains(user, "TFLOP/s,"));
}

TEST(LoopPrompt, FailuresAndSlowerCandidates) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  in.round = 3;
  in.failures = {compile_failure(), wrong_output_failure(), crash_failure(), no_code_failure()};
  Attempt slow;
  slow.outcome = Outcome::Pass;
  slow.report = timed_report(1.5, 255, 1024);
  in.slower = {slow};
  const std::string user = build_prompt(in)[1].content;
  EXPECT_CONTAINS(user, "# Round 3:");
  EXPECT_CONTAINS(user, "4 candidates of the last round failed");
  // Compile error: only its error line, the work directory's path gone, the offending line quoted.
  EXPECT_CONTAINS(user, "### Candidate 1 (compile_error): refused by the static checks or nvcc");
  EXPECT_CONTAINS(user, "- compile_error (stage compile):\n    kernel.cu(3): error: identifier \"foo\" is undefined\n"
                        "        foo(1);  // the bad call\n");
  EXPECT_FALSE(contains(user, "/var/cache"));
  EXPECT_FALSE(contains(user, "warning #177"));
  EXPECT_FALSE(contains(user, "1 error detected"));
  // Wrong output: where, by how much, on which trial and shape.
  EXPECT_CONTAINS(user, "### Candidate 2 (rejected): rejected by the verifier");
  EXPECT_CONTAINS(user, "- wrong_output (stage correctness, trial gqa_bshd: B=2 Hq=8 Hkv=2 Sq=65 Skv=63 layout=bshd "
                        "lse=on): 412 of 33280 out elements outside tolerance\n");
  EXPECT_CONTAINS(user, "worst element out[b=1, h=3, i=64, d=17]: got 0.5, want 0.25, |error| 0.25 where 0.025 is allowed");
  EXPECT_CONTAINS(user, "- ptxas: 200 registers per thread, 96 bytes of spill stores and loads");
  // A crash class.
  EXPECT_CONTAINS(user, "- illegal_address (stage run, trial ragged: B=1 Hq=4 Hkv=4 Sq=63 Skv=65 layout=bhsd lse=on): "
                        "cudaErrorIllegalAddress: an illegal memory access was encountered");
  // No code: the parse error.
  EXPECT_CONTAINS(user, "### Candidate 4 (no_code): the answer held no usable .cu\n\n- the block is Python");
  // Slower: against the best and the template, fraction of peak, spills.
  EXPECT_CONTAINS(user, "1 candidate was correct but not faster");
  EXPECT_CONTAINS(user, "- time: 1.5 ms (median");
  EXPECT_CONTAINS(user, "33.7% of the physical limit");
  EXPECT_CONTAINS(user, "- 1.5x the best kernel's 1 ms, 1.5x the template's 1 ms");
  EXPECT_CONTAINS(user, "- ptxas: 255 registers per thread, 1024 bytes of spill stores and loads");
  EXPECT_FALSE(contains(user, "first round"));
}

TEST(LoopPrompt, StaticFindingQuotesTheLine) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  Attempt a;
  a.outcome = Outcome::CompileError;
  a.source = "#include <kernelgen/attention_abi.h>\n#include <fstream>\n";
  verify::VerifyReport r;
  r.verdict = verify::Verdict::Rejected;
  r.findings = verify::static_check(a.source, "causal");
  ASSERT_GE(r.findings.size(), 2u);
  a.report = r;
  in.failures = {a};
  const std::string user = build_prompt(in)[1].content;
  EXPECT_CONTAINS(user, "- missing_entry (stage static): no definition of `extern \"C\" cudaError_t kg_causal_forward");
  EXPECT_CONTAINS(user, "- forbidden_header (stage static): line 2: header <fstream> is not allowed");
  EXPECT_CONTAINS(user, "    the line: #include <fstream>\n");
}

TEST(LoopPrompt, RoundsAfterTheFirstWithNothingToReport) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  in.round = 2;
  EXPECT_CONTAINS(build_prompt(in)[1].content, "No candidate of the last round failed or came out slower.");
}

TEST(LoopPrompt, Deterministic) {
  spec::Spec s = parse_ok(kRelpos);
  PromptInput in = base_input(s);
  in.failures = {compile_failure(), wrong_output_failure(), crash_failure()};
  auto a = build_prompt(in);
  auto b = build_prompt(in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].role, b[i].role);
    EXPECT_EQ(a[i].content, b[i].content);
  }
}

TEST(LoopPrompt, HostileReportStaysBounded) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  const size_t normal = build_prompt(in)[1].content.size();
  // 2 MB fields with a line break now and then, and 10 MB of compiler errors.
  std::string huge(2 * 1024 * 1024, 'x');
  for (size_t i = 0; i < huge.size(); i += 97) {
    huge[i] = '\n';
  }
  std::string errors;
  while (errors.size() < 10u * 1024 * 1024) {
    errors += "/tmp/k.cu(12): error: something \"" + std::string(200, 'e') + "\" went wrong\n    code();\n    ^\n";
  }
  auto hostile = [&](Attempt a) {
    a.detail = huge;
    a.source = huge;
    a.report->findings[0].message = "nvcc failed:\n" + errors;
    a.report->compiler_output = errors;
    verify::Finding f = wrong_output_failure().report->findings[0];
    f.message = huge;
    f.trial = huge;
    f.shape = huge;
    f.worst->tensor = huge;
    a.report->findings.push_back(f);
    f = crash_failure().report->findings[0];
    for (int k = 0; k < 1000; ++k) {
      a.report->findings.push_back(f);
    }
    return a;
  };
  for (int i = 0; i < 100; ++i) {
    in.failures.push_back(i < 4 ? hostile(compile_failure()) : compile_failure());
    Attempt slow = i < 2 ? hostile(compile_failure()) : compile_failure();
    slow.outcome = Outcome::Pass;
    slow.report->timing = timing(2.0);
    slow.report->timing.shape = i < 2 ? huge : "";
    slow.report->findings.back().warning = true;
    in.slower.push_back(slow);
  }
  in.gpu_name = huge;
  in.arch = huge;
  const auto msgs = build_prompt(in);
  const std::string& user = msgs[1].content;
  // 4 failures and 2 slower ones of at most kPromptMaxAttemptBytes each, plus the rest.
  EXPECT_LT(user.size(), normal + (kPromptMaxFailures + kPromptMaxSlower) * (kPromptMaxAttemptBytes + 200) + 2000);
  EXPECT_LT(msgs[0].content.size(), 32u * 1024);
  EXPECT_CONTAINS(user, "(96 more failed candidates not shown)");
  EXPECT_CONTAINS(user, "(98 more slower candidates not shown)");
  EXPECT_CONTAINS(user, "…(trimmed: ");

  // A huge best kernel is cut to the longest accepted source.
  in = base_input(s);
  in.best_source = huge;
  EXPECT_LT(build_prompt(in)[1].content.size(), kMaxSourceBytes + 32 * 1024);
}

TEST(LoopPrompt, QuotedTextIsValidUtf8AndFencesHold) {
  spec::Spec s = parse_ok(kCausal);
  PromptInput in = base_input(s);
  // A best kernel whose comments hold a fence, and a report with invalid UTF-8 and control bytes.
  in.best_source = "// ```\n// ````cuda\n" + kBestSource + "/* \xff\xfe bad bytes \x01 */\n";
  Attempt a = crash_failure();
  a.report->findings[0].message = "bad \xc3\x28 utf8 \xed\xa0\x80 surrogate \x1b[31m escape {{entry}}";
  in.failures = {a};
  const auto msgs = build_prompt(in);
  for (const auto& m : msgs) {
    EXPECT_NO_THROW((void)nlohmann::json(m.content).dump()) << "not valid UTF-8";
  }
  const std::string& user = msgs[1].content;
  EXPECT_CONTAINS(user, "`````cuda\n// ```\n// ````cuda\n");
  EXPECT_CONTAINS(user, "\\xff\\xfe bad bytes \\x01");
  EXPECT_CONTAINS(user, "\\x1b[31m escape {{entry}}");  // quoted text is not expanded
  // The best kernel can be read back from the prompt as the model would see it.
  const size_t start = user.find("`````cuda\n") + 10;
  const size_t end = user.find("\n`````\n", start);
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(user.substr(start, end - start + 1),
            "// ```\n// ````cuda\n" + kBestSource + "/* \\xff\\xfe bad bytes \\x01 */\n");
}

TEST(LoopPrompt, RandomBytesInEveryQuotedFieldGiveValidBoundedText) {
  spec::Spec s = parse_ok(kDocument);
  uint64_t state = 20261201;
  auto next = [&] {  // splitmix64: fixed seed, so a failure repeats
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  auto bytes = [&] {
    std::string b(next() % 700, '\0');
    for (char& c : b) {
      c = static_cast<char>(next() % 4 == 0 ? "`{}\n\r\\"[next() % 6] : static_cast<char>(next() & 0xff));
    }
    return b;
  };
  for (int n = 0; n < 300; ++n) {
    PromptInput in = base_input(s);
    in.round = static_cast<int>(next() % 5);
    in.gpu_name = bytes();
    in.arch = bytes();
    in.best_source = bytes();
    in.best_is_template = next() % 2 == 0;
    in.template_ms = static_cast<double>(next() % 1000) / 100.0;
    Attempt a = next() % 2 ? wrong_output_failure() : compile_failure();
    a.detail = bytes();
    a.source = bytes();
    a.report->findings[0].message = (next() % 2 ? "nvcc failed:\n" : "line 1: ") + bytes();
    a.report->findings[0].trial = bytes();
    a.report->findings[0].shape = bytes();
    a.report->findings[0].stage = next() % 2 ? verify::kStageStatic : bytes();
    a.report->timing = timing(static_cast<double>(next() % 300) / 100.0);
    a.report->timing.shape = bytes();
    in.failures = {a, no_code_failure()};
    in.slower = {a};
    const auto msgs = build_prompt(in);
    ASSERT_EQ(msgs.size(), 2u);
    for (const auto& m : msgs) {
      ASSERT_NO_THROW((void)nlohmann::json(m.content).dump()) << "input " << n;
    }
    EXPECT_LT(msgs[1].content.size(), 64u * 1024) << "input " << n;
  }
}

TEST(LoopPrompt, NullSpecDoesNotThrow) {
  PromptInput in;
  std::vector<llm::Message> msgs;
  EXPECT_NO_THROW(msgs = build_prompt(in));
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_CONTAINS(msgs[1].content, "(no spec was given)");
  EXPECT_CONTAINS(msgs[1].content, "(not available)");
}

}  // namespace
}  // namespace kg::loop
