// Hostile specs (spec/limits.h): each is refused with a positioned diagnostic, never a crash,
// a stall or a runaway allocation; and the stages after the checker refuse trees deeper than a
// checked spec can hold instead of overflowing their stacks.
#include <gtest/gtest.h>

#include <stdexcept>

#include "codegen/interval.h"
#include "codegen/lower.h"
#include "codegen/python.h"
#include "reference/cpu_reference.h"
#include "spec/interpret.h"
#include "spec/limits.h"
#include "spec/names.h"
#include "spec/printable.h"
#include "spec/spec.h"

namespace kg::spec {
namespace {

constexpr const char* kHead = "name: t\ndtype: bf16\nhead_dim: 128\n";  // lines 1-3

std::string h(const std::string& rest) { return kHead + rest; }

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += s;
  }
  return out;
}

// The first diagnostic of a spec that must fail.
std::string first_error(const std::string& yaml) {
  auto r = parse_spec(yaml, "s.yaml");
  if (r) {
    return "<accepted>";
  }
  return r.error().front().str();
}

const std::string kTooDeep = "error: expression nested deeper than " + std::to_string(kMaxExprDepth);

TEST(SpecLimits, DeepParenthesesAreRefusedWhereTheyCrossTheLimit) {
  // `score_mod: ` ends at column 11; parse_expr level 257 starts at the 257th '('.
  EXPECT_EQ(first_error(h("score_mod: " + repeat("(", 5000) + "score" + repeat(")", 5000) + "\n")),
            "s.yaml:4:268: " + kTooDeep);
  // 255 parentheses (256 levels with the top one) are fine.
  EXPECT_EQ(first_error(h("score_mod: " + repeat("(", 255) + "score" + repeat(")", 255) + "\n")), "<accepted>");
}

TEST(SpecLimits, LeftDeepChainsCountOneLevelPerOperator) {
  // score + 1 + 1 ...: the k-th '+' is at column 18 + 4 (k - 1) and makes the tree k + 1 deep.
  EXPECT_EQ(first_error(h("score_mod: score" + repeat(" + 1", 1000) + "\n")), "s.yaml:4:1038: " + kTooDeep);
  // 254 terms: 255 levels of `+`, and the float() around the last 1 makes 256.
  EXPECT_EQ(first_error(h("score_mod: score" + repeat(" + 1", 254) + "\n")), "<accepted>");
  // Chained comparisons build a left-deep `and` chain.
  EXPECT_NE(first_error(h("mask_mod: q_idx" + repeat(" <= kv_idx", 2000) + "\n")).find(kTooDeep),
            std::string::npos);
}

TEST(SpecLimits, RightRecursiveFormsAreBounded) {
  for (const std::string& mod : {
           "score_mod: " + repeat("-", 100000) + "score",
           "score_mod: " + repeat("+", 100000) + "score",
           "mask_mod: " + repeat("not ", 50000) + "True",
           "score_mod: score" + repeat(" ** 1.0", 50000),
           "score_mod: score" + repeat(" if True else score", 20000),
           "score_mod: " + repeat("abs(", 20000) + "score" + repeat(")", 20000),
       }) {
    EXPECT_NE(first_error(h(mod + "\n")).find(kTooDeep), std::string::npos) << mod.substr(0, 40);
  }
}

TEST(SpecLimits, TypedTreeDepthIncludesImplicitConversions) {
  // Each floor(x + 0.5) is 2 syntax levels and 3 typed ones (x is promoted to float).
  const std::string deep = repeat("floor(", 100) + "q_idx" + repeat(" + 0.5)", 100);
  EXPECT_NE(first_error(h("mask_mod: " + deep + " >= 0\n")).find(kTooDeep), std::string::npos);
  const std::string ok = repeat("floor(", 60) + "q_idx" + repeat(" + 0.5)", 60);
  EXPECT_EQ(first_error(h("mask_mod: " + ok + " >= 0\n")), "<accepted>");
}

TEST(SpecLimits, LongNumbersAreRefusedWithoutRegexRecursion) {
  EXPECT_EQ(first_error(h("score_mod: score + " + repeat("1", 50000) + ".5\n")),
            "s.yaml:4:20: error: number of 50002 characters is too long (expected at most 100)");
  EXPECT_NE(first_error(h("constants:\n  W: " + repeat("1", 50000) + "\n")).find("s.yaml:5:6: error: expected an int, "
                                                                                "float or bool value for constant 'W'"),
            std::string::npos);
  EXPECT_NE(first_error(h("constants:\n  W: 0." + repeat("1", 50000) + "e5\n")).find("(50004 bytes)"),
            std::string::npos);
  EXPECT_NE(first_error(h("tensors:\n  d: {dtype: int32, shape: [" + repeat("1", 50000) + "]}\n"))
                .find("s.yaml:5:29: error: expected batch, heads_q"),
            std::string::npos);
  // The scanners accept what the regexes did.
  auto r = parse_spec(h("constants:\n  A: -12\n  B: +.5e-3\n  C: 7.\n  D: 1E2\nscore_mod: score + 0.5 + .25e1 + 3. + "
                        "1e3 + A + B + C + D\n"),
                      "s.yaml");
  ASSERT_TRUE(r) << r.error().front().str();
  EXPECT_EQ(first_error(h("constants:\n  A: 1e\n")).substr(0, 12), "s.yaml:5:6: ");
  EXPECT_EQ(first_error(h("score_mod: score + 012\n")),
            "s.yaml:4:20: error: invalid number '012' (leading zeros are not allowed in integers)");
  EXPECT_EQ(first_error(h("score_mod: score + 1e+\n")), "s.yaml:4:20: error: invalid number '1e'");
}

TEST(SpecLimits, StrayCommaDoesNotRunLoadAllAway) {
  EXPECT_EQ(first_error(",\n"), "s.yaml:1:1: error: invalid YAML: expected a mapping of spec fields, found ','");
  EXPECT_EQ(first_error(h("---\n, a\n")),
            "s.yaml:5:1: error: invalid YAML: expected a mapping of spec fields, found ','");
}

TEST(SpecLimits, DeepYamlIsRefused) {
  const std::string deep = first_error(h("constants: " + repeat("[", 100000) + "\n"));
  EXPECT_EQ(deep.substr(0, 9), "s.yaml:4:") << deep;
  EXPECT_NE(deep.find(": error: YAML nested deeper than " + std::to_string(kMaxYamlDepth) +
                      " (a spec needs at most 3 levels)"),
            std::string::npos)
      << deep;
  EXPECT_NE(first_error(h("constants:\n" + repeat("- ", 5000) + "x\n")).find("YAML nested deeper than"),
            std::string::npos);
}

TEST(SpecLimits, CountsAndSizesAreBounded) {
  std::string constants = "constants:\n";
  std::string params = "params:\n";
  std::string tensors = "tensors:\n";
  std::string bindings = "score_mod: |\n";
  for (size_t i = 0; i <= kMaxConstants; ++i) {
    constants += "  c" + std::to_string(i) + ": 1\n";
    bindings += "  b" + std::to_string(i) + " = 1\n";
  }
  for (size_t i = 0; i <= kMaxParams; ++i) {
    params += "  p" + std::to_string(i) + ": int\n";
  }
  for (size_t i = 0; i <= kMaxTensors; ++i) {
    tensors += "  t" + std::to_string(i) + ": {dtype: int32, shape: [batch]}\n";
  }
  bindings += "  score\n";
  EXPECT_EQ(first_error(h(constants)), "s.yaml:5:3: error: expected at most 1000 constants, found 1001");
  EXPECT_EQ(first_error(h(params)), "s.yaml:5:3: error: expected at most 256 params, found 257");
  EXPECT_EQ(first_error(h(tensors)), "s.yaml:5:3: error: expected at most 64 tensors, found 65");
  EXPECT_EQ(first_error(h(bindings)), "s.yaml:1005:3: error: expected at most 1000 bindings in score_mod, found 1001");
  EXPECT_EQ(first_error(h("tensors:\n  d: {dtype: int32, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1]}\n")),
            "s.yaml:5:28: error: expected at most 8 dimensions in the shape of tensor 'd', found 9");
  EXPECT_EQ(first_error(h("# " + std::string(kMaxSpecBytes, 'x') + "\n")),
            "s.yaml:1:1: error: expected a spec file of at most 1048576 bytes, found " +
                std::to_string(std::string(kHead).size() + kMaxSpecBytes + 3));
  // min(score, 1, 1, ...): the 200001st token is the '1' of argument pair 99998, at 21 + 3 * 99998 + 2.
  EXPECT_EQ(first_error(h("score_mod: min(score" + repeat(", 1", 100001) + ")\n")),
            "s.yaml:4:" + std::to_string(21 + 3 * 99998 + 2) +
                ": error: expected at most 200000 tokens in one mod, found more");
}

TEST(SpecLimits, LongInputIsCutInMessages) {
  const std::string name(5000, 'a');
  EXPECT_EQ(first_error(h("score_mod: score + " + name + "\n")),
            "s.yaml:4:20: error: unknown variable '" + std::string(64, 'a') + "...' (5000 bytes)");
  EXPECT_EQ(first_error(h("score_mod: score " + name + "\n")),
            "s.yaml:4:18: error: expected an operator or end of expression, found identifier '" +
                std::string(64, 'a') + "...' (5000 bytes)");
}

TEST(SpecLimits, DiagnosticsAreCapped) {
  std::string mod = "score_mod: |\n";
  for (int i = 0; i < 900; ++i) {
    mod += "  u" + std::to_string(i) + " = zz" + std::to_string(i) + " + yy" + std::to_string(i) + "\n";
  }
  auto r = parse_spec(h(mod + "  score\n"), "s.yaml");
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().size(), kMaxDiagnostics + 1);
  EXPECT_EQ(r.error().back().str(), "s.yaml: error: too many errors; only the first 100 are shown");
}

TEST(SpecLimits, BindingChainsDeeperThanTheStackPrintIteratively) {
  // 240 bindings, each 200 levels deep around the previous one: 48000 levels once substituted.
  std::string mod = "score_mod: |\n  b0 = score\n";
  for (int i = 1; i <= 240; ++i) {
    mod += "  b" + std::to_string(i) + " = " + repeat("1.0 + (", 199) + "b" + std::to_string(i - 1) +
           repeat(")", 199) + "\n";
  }
  auto r = parse_spec(h(mod + "  b240\n"), "s.yaml");
  ASSERT_TRUE(r) << r.error().front().str();
  const std::string canonical = canonical_form(*r);
  EXPECT_NE(canonical.find("score_mod: (1.0 + (1.0 + "), std::string::npos);
  size_t additions = 0;
  for (size_t at = canonical.find("(1.0 + "); at != std::string::npos; at = canonical.find("(1.0 + ", at + 1)) {
    ++additions;
  }
  EXPECT_EQ(additions, 199u * 240u);
}

TEST(SpecNames, SystemHeaderNamesAndReferenceSuffixAreRefused) {
  for (const char* name : {"stdint", "cuda_fp16", "cuda_runtime", "math", "errno", "vector", "Math", "pthread",
                           "unistd", "cuda_bf16", "mma", "cooperative_groups", "cmath"}) {
    EXPECT_NE(first_error("name: " + std::string(name) + "\ndtype: bf16\nhead_dim: 128\n")
                  .find("s.yaml:1:7: error: cannot name a spec '" + std::string(name) +
                        "': it is the name of a system or CUDA header"),
              std::string::npos)
        << name;
  }
  EXPECT_EQ(first_error("name: causal_reference\ndtype: bf16\nhead_dim: 128\n"),
            "s.yaml:1:7: error: cannot name a spec 'causal_reference': names ending in '_reference' are taken by "
            "the reference kernel of another spec (spec 'causal' writes causal_reference.cu)");
  for (const char* ok : {"causal", "mathy", "reference", "reference_causal", "stdint2"}) {
    EXPECT_EQ(first_error("name: " + std::string(ok) + "\ndtype: bf16\nhead_dim: 128\n"), "<accepted>") << ok;
  }
}

TEST(SpecDiagnostics, NonPrintableInputIsEscaped) {
  const std::string e1 = first_error("name: \"a\\e[31mred\"\ndtype: bf16\nhead_dim: 128\n");
  EXPECT_EQ(e1, "s.yaml:1:7: error: expected a C identifier for name, found 'a\\x1b[31mred'");
  const std::string e2 = first_error(h("score_mod: \"score + \\x01\"\n"));
  EXPECT_EQ(e2, "s.yaml:4:21: error: unexpected character '\\x01'");
  const std::string e3 = first_error(h("dtype\x7f: bf16\n"));
  EXPECT_NE(e3.find("unknown field 'dtype\\x7f'"), std::string::npos) << e3;
  for (const std::string& e : {e1, e2, e3}) {
    for (const char c : e) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e;
    }
  }
  Diagnostic d{"dir\x1b/s.yaml", 1, 2, "found '\x07'"};
  EXPECT_EQ(d.str(), "dir\\x1b/s.yaml:1:2: error: found '\\x07'");
}

TEST(Printable, EscapesControlsInvalidUtf8AndFormatCharacters) {
  EXPECT_EQ(escape_nonprintable("plain \\ text"), "plain \\ text");
  EXPECT_EQ(escape_nonprintable("a\tb\nc\x1b"), "a\\x09b\\x0ac\\x1b");
  EXPECT_EQ(escape_nonprintable("caf\xc3\xa9 \xe2\x86\x92"), "caf\xc3\xa9 \xe2\x86\x92");  // é →
  EXPECT_EQ(escape_nonprintable("\xc2\x9b"), "\\xc2\\x9b");                               // C1 CSI
  EXPECT_EQ(escape_nonprintable("\xe2\x80\xae"), "\\xe2\\x80\\xae");                      // RLO
  EXPECT_EQ(escape_nonprintable("\xc0\xaf\xff\xe2\x82"), "\\xc0\\xaf\\xff\\xe2\\x82");   // invalid, cut
  EXPECT_EQ(escape_nonprintable("\xed\xa0\x80"), "\\xed\\xa0\\x80");                      // surrogate
  EXPECT_EQ(escape_nonprintable(escape_nonprintable("\x01\x80")), "\\x01\\x80");
  EXPECT_EQ(quote_input("abc"), "'abc'");
  EXPECT_EQ(quote_input(std::string(100, 'x'), 4), "'xxxx...' (100 bytes)");
}

// A tree no parse_spec result can hold: `-(-(...(q_idx)...))` `depth` levels deep (not so deep that
// destroying it, which recurses, would overflow the stack).
ExprPtr deep_negation(int depth, Type type = Type::Int) {
  auto leaf = std::make_shared<Expr>();
  leaf->op = Op::Var;
  leaf->var = Var::QIdx;
  leaf->type = Type::Int;
  ExprPtr e = leaf;
  for (int i = 1; i < depth; ++i) {
    auto n = std::make_shared<Expr>();
    n->op = Op::Neg;
    n->type = Type::Int;
    n->args = {e};
    e = n;
  }
  if (type == Type::Bool) {
    auto cmp = std::make_shared<Expr>();
    cmp->op = Op::Ge;
    cmp->type = Type::Bool;
    auto zero = std::make_shared<Expr>();
    cmp->args = {e, zero};
    e = cmp;
  }
  return e;
}

TEST(SpecLimits, LaterStagesRefuseTreesDeeperThanTheCheckerAllows) {
  Spec spec = *parse_spec(h(""), "s.yaml");
  spec.mask_mod = ModFunction{{}, deep_negation(5000, Type::Bool)};
  spec.score_mod = ModFunction{{}, deep_negation(5000)};
  const RuntimeValues rt;
  EXPECT_THROW(eval_mask_mod(spec, rt, 0, 0, 0, 0), std::invalid_argument);
  EXPECT_THROW(eval_score_mod(spec, rt, 0.0, 0, 0, 0, 0), std::invalid_argument);
  codegen::LowerContext ctx;
  ctx.spec = &spec;
  ctx.fn = &*spec.mask_mod;
  EXPECT_THROW(codegen::lower_expr(*spec.mask_mod->result, ctx), std::invalid_argument);
  EXPECT_THROW(codegen::to_source(*spec.mask_mod->result, spec, &*spec.mask_mod), std::invalid_argument);
  EXPECT_THROW(codegen::reads_tensors(*spec.mask_mod), std::invalid_argument);
  EXPECT_THROW(codegen::emit_python_mods(spec, codegen::PythonFlavor::Plain), std::invalid_argument);
  EXPECT_THROW(codegen::emit_python_mods(spec, codegen::PythonFlavor::Torch), std::invalid_argument);
  EXPECT_THROW(codegen::classify_tile(spec, codegen::TileQuery{}), std::invalid_argument);
  EXPECT_THROW(codegen::emit_classify_tile(spec), std::invalid_argument);
  reference::CpuProblem p;
  p.rt.seqlen_q = p.rt.seqlen_kv = 1;
  p.head_dim = 1;
  p.q = p.k = p.v = {1.0};
  std::vector<double> out, lse;
  EXPECT_THROW(reference::cpu_attention_forward(spec, p, out, lse), std::invalid_argument);
  // The canonical form is iterative and prints it whole.
  EXPECT_NE(canonical_form(spec).find("(-(-(-"), std::string::npos);
  // At exactly the limit every stage works.
  spec.mask_mod = ModFunction{{}, deep_negation(kMaxExprDepth - 1, Type::Bool)};
  spec.score_mod.reset();
  EXPECT_TRUE(eval_mask_mod(spec, rt, 0, 0, 0, 0));
  EXPECT_FALSE(codegen::lower_expr(*spec.mask_mod->result, ctx = {&spec, &*spec.mask_mod}).empty());
  EXPECT_FALSE(codegen::emit_python_mods(spec, codegen::PythonFlavor::Torch).empty());
  EXPECT_FALSE(codegen::emit_classify_tile(spec).empty());
}

}  // namespace
}  // namespace kg::spec
