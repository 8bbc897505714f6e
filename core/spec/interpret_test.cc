#include "spec/interpret.h"

#include <gtest/gtest.h>

#include <cmath>

#include "spec/spec.h"

namespace kg::spec {
namespace {

const char* kDecls =
    "name: t\ndtype: bf16\nhead_dim: 128\n"
    "constants: {K: 3, HALF: 0.5, ON: true}\n"
    "params: {n: int, x: float}\n"
    "tensors:\n"
    "  doc: {dtype: int32, shape: [batch, seq_kv]}\n"
    "  big: {dtype: int64, shape: [2]}\n"
    "  bias: {dtype: float32, shape: [heads_q, 2]}\n";

struct Fixture {
  std::vector<int32_t> doc = {10, 11, 12, 13, 20, 21, 22, 23};  // [batch=2, seq_kv=4]
  std::vector<int64_t> big = {int64_t{1} << 40, -5};
  std::vector<float> bias = {0.25f, -1.5f, 2.0f, 4.0f, 8.0f, 16.0f};  // [heads_q=3, 2]
  RuntimeValues rt;

  Fixture() {
    rt.batch = 2;
    rt.heads_q = 3;
    rt.heads_kv = 1;
    rt.seqlen_q = 5;
    rt.seqlen_kv = 4;
    rt.params = {5.9, 0.5};  // n truncates to 5
    rt.tensors = {doc.data(), big.data(), bias.data()};
  }
};

// score_mod evaluated at score=0.25, b=1, h=2, q_idx=3, kv_idx=1.
double score_at(const std::string& expr) {
  auto spec = parse_spec(std::string(kDecls) + "score_mod: " + expr + "\n", "i.yaml");
  if (!spec) {
    ADD_FAILURE() << expr << ": " << spec.error()[0].str();
    return std::nan("");
  }
  Fixture f;
  return eval_score_mod(*spec, f.rt, 0.25, 1, 2, 3, 1);
}

bool mask_at(const std::string& expr, int q_idx, int kv_idx) {
  auto spec = parse_spec(std::string(kDecls) + "mask_mod: " + expr + "\n", "i.yaml");
  if (!spec) {
    ADD_FAILURE() << expr << ": " << spec.error()[0].str();
    return false;
  }
  Fixture f;
  return eval_mask_mod(*spec, f.rt, 1, 2, q_idx, kv_idx);
}

TEST(Interpret, PythonArithmetic) {
  const std::vector<std::pair<std::string, double>> table = {
      // Floor division and modulo take the sign of the divisor (ints and floats).
      {"-7 // 2", -4},
      {"7 // -2", -4},
      {"-7 % 2", 1},
      {"7 % -2", -1},
      {"-8 // 2", -4},
      {"-7.5 // 2", -4.0},
      {"-7.5 % 2", 0.5},
      {"7.5 % -2", -0.5},
      {"7 % 7", 0},
      {"-1 % 5", 4},
      {"5.0 // 0.5", 10.0},
      {"7 / 2", 3.5},
      // Powers: int ** int stays int; unary minus binds looser than ** on its right.
      {"2 ** 10", 1024},
      {"-2 ** 2", -4},
      {"(-2) ** 3", -8},
      {"2 ** 3 ** 2", 512},
      {"2 ** 0.5", std::sqrt(2.0)},
      {"4.0 ** -1", 0.25},
      {"2 ** -1.0", 0.5},
      // Built-ins.
      {"floor(-0.5)", -1},
      {"floor(2.999)", 2},
      {"floor(-3.0)", -3},
      {"clamp(5, 0, 3)", 3},
      {"clamp(-1, 0, 3)", 0},
      {"clamp(1.5, 0, 3)", 1.5},
      {"min(3, 2.5)", 2.5},
      {"max(-1, -2)", -1},
      {"abs(-3)", 3},
      {"abs(-2.5)", 2.5},
      {"exp2(3)", 8},
      {"log2(8)", 3},
      {"sqrt(16)", 4},
      {"tanh(0)", 0},
      {"exp(0)", 1},
      {"log(1)", 0},
      // Select, constants, variables, params.
      {"1 if q_idx > kv_idx else 2", 1},
      {"1 if q_idx < kv_idx else 2.5", 2.5},
      {"K * HALF", 1.5},
      {"K if ON else 0", 3},
      {"score * 4 + b + h * 10 + q_idx * 100 + kv_idx * 1000", 1322},
      {"n + x", 5.5},
      // Tensor reads, by declared dtype and shape; out-of-range indices read 0.
      {"doc[b, kv_idx]", 21},
      {"doc[0, 3]", 13},
      {"doc[b, kv_idx + 10]", 0},
      {"doc[-1, 0]", 0},
      {"big[0] // 1024", 1073741824.0},
      {"big[1]", -5},
      {"bias[h, 1]", 16.0},
      {"bias[0, 1]", -1.5},
      // Defined results where Python raises (interpret.h).
      {"q_idx // (kv_idx - kv_idx)", 0},
      {"q_idx % (kv_idx - kv_idx)", 0},
      {"2 ** (kv_idx - q_idx)", 0},
      {"1 ** (kv_idx - q_idx)", 1},
      {"(-1) ** (kv_idx - q_idx)", 1},
  };
  for (const auto& [expr, want] : table) {
    EXPECT_DOUBLE_EQ(score_at(expr), want) << expr;
  }
}

TEST(Interpret, IeeeEdgeCases) {
  EXPECT_TRUE(std::isinf(score_at("1.0 / (score - score)")));
  EXPECT_TRUE(std::isnan(score_at("log(-1.0)")));
  EXPECT_EQ(score_at("floor(log(-1.0))"), 0.0);
  EXPECT_TRUE(std::isnan(score_at("score % 0.0")));
}

TEST(Interpret, Masks) {
  EXPECT_TRUE(mask_at("q_idx >= kv_idx", 3, 1));
  EXPECT_FALSE(mask_at("q_idx >= kv_idx", 1, 3));
  EXPECT_TRUE(mask_at("0 <= q_idx - kv_idx < 3", 3, 1));  // chained, as in Python
  EXPECT_FALSE(mask_at("0 <= q_idx - kv_idx < 3", 4, 1));
  EXPECT_FALSE(mask_at("0 <= q_idx - kv_idx < 3", 1, 2));
  EXPECT_TRUE(mask_at("not (q_idx == kv_idx) or False", 2, 1));
  EXPECT_TRUE(mask_at("(q_idx > 0) == (kv_idx > 0)", 2, 1));
  EXPECT_TRUE(mask_at("doc[b, kv_idx] == 20 + kv_idx", 0, 3));
  EXPECT_TRUE(mask_at("True if q_idx % 2 == 0 else False", 2, 0));
}

TEST(Interpret, BindingsAreEvaluatedInOrder) {
  EXPECT_DOUBLE_EQ(score_at("|\n  d = q_idx - kv_idx\n  e = d * d\n  score + e + d"), 0.25 + 4 + 2);
}

TEST(Interpret, AbsentModsAreIdentities) {
  auto spec = parse_spec("name: t\ndtype: bf16\nhead_dim: 128\n", "i.yaml");
  ASSERT_TRUE(spec);
  EXPECT_EQ(eval_score_mod(*spec, RuntimeValues{}, 1.25, 0, 0, 0, 0), 1.25);
  EXPECT_TRUE(eval_mask_mod(*spec, RuntimeValues{}, 0, 0, 7, 9));
}

TEST(Interpret, MissingRuntimeValuesThrow) {
  auto spec = parse_spec(std::string(kDecls) + "mask_mod: n > 0\n", "i.yaml");
  ASSERT_TRUE(spec);
  EXPECT_THROW(eval_mask_mod(*spec, RuntimeValues{}, 0, 0, 0, 0), std::invalid_argument);
}

}  // namespace
}  // namespace kg::spec
