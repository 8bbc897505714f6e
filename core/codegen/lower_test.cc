#include "codegen/lower.h"

#include <gtest/gtest.h>

#include "codegen/test_specs.h"

namespace kg::codegen {
namespace {

using namespace testing;

std::string lower(const spec::ExprPtr& e, MathMode math = MathMode::Precise, bool score = true) {
  static const spec::Spec s = [] {
    spec::Spec x = base("t");
    x.constants.push_back(int_constant("W", 64));
    spec::ParamDecl p;
    p.name = "alpha";
    p.type = spec::Type::Float;
    x.params.push_back(p);
    spec::TensorDecl t;
    t.name = "doc";
    t.shape = {{spec::Dim::Batch, 0}, {spec::Dim::SeqKv, 0}};
    x.tensors.push_back(t);
    return x;
  }();
  static const spec::ModFunction f = fn(ilit(0), {{"d", ilit(1)}});
  LowerContext ctx{&s, &f, math, "sm", score};
  return lower_expr(*e, ctx);
}

TEST(Lower, FloorDivisionAndModuloKeepPythonSemantics) {
  // Python: -7 // 3 == -3 and -7 % 3 == 2; C's / and % would truncate. The helpers floor.
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, ilit(-7), ilit(3))), "kg_floordiv((-7), 3)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, ilit(-7), ilit(3))), "kg_mod((-7), 3)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, score(), flit(2.0))), "static_cast<float>(kg_modd(static_cast<double>(score), 2.0))");
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, score(), to_float(ilit(3)))),
            "static_cast<float>(kg_floordivd(static_cast<double>(score), static_cast<double>(3)))");
  EXPECT_EQ(lower(bin(spec::Op::Pow, q(), ilit(2))), "kg_ipow(q_idx, 2)");
  EXPECT_EQ(lower(bin(spec::Op::Pow, score(), flit(0.5))), "powf(score, 0.5f)");
  // True division of ints is float division.
  EXPECT_EQ(lower(bin(spec::Op::Div, q(), ilit(2))), "(static_cast<float>(q_idx) / static_cast<float>(2))");
}

TEST(Lower, IntDivisionByAPowerOfTwoIsAShiftAndAMask) {
  // -7 >> 1 == -4 == -7 // 2 and -7 & 1 == 1 == -7 % 2 in two's complement: Python's floor holds.
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, ilit(-7), ilit(2))), "((-7) >> 1)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, ilit(-7), ilit(2))), "((-7) & 1)");
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, kv(), ilit(128))), "(kv_idx >> 7)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, kv(), ilit(128))), "(kv_idx & 127)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, kv(), ilit(1))), "(kv_idx & 0)");
  // A named constant folds: W is 64.
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, q(), constant(0, spec::Type::Int))), "(q_idx >> 6)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, q(), constant(0, spec::Type::Int))), "(q_idx & 63)");
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, q(), ilit(int64_t{1} << 30))), "(q_idx >> 30)");
  // Not a positive power of two a 32-bit int holds, or not known until run time: the helpers.
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, q(), ilit(96))), "kg_floordiv(q_idx, 96)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, q(), ilit(0))), "kg_mod(q_idx, 0)");
  EXPECT_EQ(lower(bin(spec::Op::Mod, q(), ilit(-4))), "kg_mod(q_idx, (-4))");
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, q(), ilit(int64_t{1} << 31))), "kg_floordiv(q_idx, static_cast<int>(2147483648LL))");
  EXPECT_EQ(lower(bin(spec::Op::FloorDiv, q(), kv())), "kg_floordiv(q_idx, kv_idx)");
  // Float operands keep the double helpers even by 2.0.
  EXPECT_EQ(lower(bin(spec::Op::Mod, score(), flit(2.0))), "static_cast<float>(kg_modd(static_cast<double>(score), 2.0))");
}

TEST(Lower, EveryCompoundExpressionIsParenthesised) {
  // q - (kv - 1) and (q - kv) - 1 must not collapse to the same text.
  EXPECT_EQ(lower(bin(spec::Op::Sub, q(), bin(spec::Op::Sub, kv(), ilit(1)))), "(q_idx - (kv_idx - 1))");
  EXPECT_EQ(lower(bin(spec::Op::Sub, bin(spec::Op::Sub, q(), kv()), ilit(1))), "((q_idx - kv_idx) - 1)");
  EXPECT_EQ(lower(un(spec::Op::Neg, ilit(-3))), "(-(-3))");  // never the `--` token
  EXPECT_EQ(lower(bin(spec::Op::Or, un(spec::Op::Not, bin(spec::Op::Lt, q(), kv())), blit(false))),
            "((!(q_idx < kv_idx)) || false)");
  EXPECT_EQ(lower(select(bin(spec::Op::Ge, q(), kv()), ilit(1), ilit(2))), "((q_idx >= kv_idx) ? 1 : 2)");
}

TEST(Lower, FastMathEvaluatesBothOperandsUnlessOneReadsATensor) {
  const auto lt = bin(spec::Op::Lt, q(), kv());
  EXPECT_EQ(lower(bin(spec::Op::And, lt, blit(true)), MathMode::Fast), "((q_idx < kv_idx) & true)");
  EXPECT_EQ(lower(bin(spec::Op::Or, lt, blit(false)), MathMode::Fast), "((q_idx < kv_idx) | false)");
  EXPECT_EQ(lower(bin(spec::Op::And, lt, blit(true)), MathMode::Precise), "((q_idx < kv_idx) && true)");
  const auto doc = bin(spec::Op::Eq, tensor(0, spec::Type::Int, {b(), kv()}), ilit(0));
  EXPECT_EQ(lower(bin(spec::Op::And, lt, doc), MathMode::Fast), "((q_idx < kv_idx) && (kg_tensor0_doc(ma, b, kv_idx) == 0))");
}

TEST(Lower, LeavesConstantsParamsTensorsBindings) {
  EXPECT_EQ(lower(constant(0, spec::Type::Int)), "(64 /* W */)");
  EXPECT_EQ(lower(param(0, spec::Type::Float)), "static_cast<float>(ma.param0_alpha)");
  EXPECT_EQ(lower(tensor(0, spec::Type::Int, {b(), kv()})), "kg_tensor0_doc(ma, b, kv_idx)");
  EXPECT_EQ(lower(binding(0, spec::Type::Int)), "sm0_d");
  EXPECT_THROW(lower(binding(3, spec::Type::Int)), std::invalid_argument);
  EXPECT_THROW(lower(score(), MathMode::Precise, /*score=*/false), std::invalid_argument);
}

TEST(Lower, FastMathDividesByAConstantThroughItsReciprocal) {
  const auto div = [](spec::ExprPtr a, spec::ExprPtr b) { return bin(spec::Op::Div, std::move(a), std::move(b)); };
  EXPECT_EQ(lower(div(score(), flit(4.0)), MathMode::Fast), "(score * 0.25f)");
  EXPECT_EQ(lower(div(score(), flit(4.0)), MathMode::Precise), "(score / 4.0f)");
  // A negated or promoted constant is a constant too (spec::fold_literal).
  EXPECT_EQ(lower(div(score(), un(spec::Op::Neg, flit(4.0))), MathMode::Fast), "(score * (-0.25f))");
  EXPECT_EQ(lower(div(score(), to_float(ilit(8))), MathMode::Fast), "(score * 0.125f)");
  // A runtime divisor, and a constant whose reciprocal is not a normal float, keep the division.
  EXPECT_EQ(lower(div(score(), param(0, spec::Type::Float)), MathMode::Fast),
            "(score / static_cast<float>(ma.param0_alpha))");
  EXPECT_EQ(lower(div(score(), flit(0.0)), MathMode::Fast), "(score / 0.0f)");
  EXPECT_EQ(lower(div(score(), flit(1e-300)), MathMode::Fast), "(score / 0.0f)");
}

TEST(Lower, MathModeChoosesIntrinsics) {
  const auto t = call(spec::Func::Tanh, {score()});
  EXPECT_EQ(lower(t, MathMode::Precise), "tanhf(score)");
  EXPECT_EQ(lower(t, MathMode::Fast), "kg_fast_tanh(score)");
  EXPECT_EQ(lower(call(spec::Func::Exp, {score()}), MathMode::Precise), "expf(score)");
  EXPECT_EQ(lower(call(spec::Func::Exp, {score()}), MathMode::Fast), "__expf(score)");
  EXPECT_EQ(lower(call(spec::Func::Abs, {q()})), "kg_iabs(q_idx)");
  EXPECT_EQ(lower(call(spec::Func::Abs, {score()})), "fabsf(score)");
  EXPECT_EQ(lower(call(spec::Func::Clamp, {q(), ilit(0), kv()})), "kg_iclamp(q_idx, 0, kv_idx)");
  EXPECT_EQ(lower(call(spec::Func::Floor, {score()})), "kg_dfloor_int(static_cast<double>(score))");
  EXPECT_EQ(lower(call(spec::Func::Min, {q(), score()})), "kg_fmin(static_cast<float>(q_idx), score)");
}

TEST(Lower, DiscontinuitiesAreFedInDouble) {
  // floor(log2(|q - kv|)): the bucket of a T5-style bias. fp32 log2 of a power of two (or a float
  // rounded before floor) gave off-by-one buckets; the argument of floor is now double, exact.
  const auto rel = call(spec::Func::Abs, {bin(spec::Op::Sub, q(), kv())});
  EXPECT_EQ(lower(call(spec::Func::Floor, {call(spec::Func::Log2, {to_float(rel)})}), MathMode::Fast),
            "kg_dfloor_int(kg_dlog2(static_cast<double>(kg_iabs((q_idx - kv_idx)))))");
  // A float comparison compares doubles; the continuous branch stays fast float.
  EXPECT_EQ(lower(select(bin(spec::Op::Lt, score(), flit(0.1)), call(spec::Func::Exp, {score()}), flit(0.1)), MathMode::Fast),
            "((static_cast<double>(score) < 0.1) ? __expf(score) : 0.1f)");
  EXPECT_EQ(lower(bin(spec::Op::Gt, bin(spec::Op::Mul, score(), param(0, spec::Type::Float)), flit(1.0))),
            "(kg_dmul(static_cast<double>(score), ma.param0_alpha) > 1.0)");
}

TEST(Lower, Literals) {
  EXPECT_EQ(int_literal(5), "5");
  EXPECT_EQ(int_literal(-5), "(-5)");
  EXPECT_EQ(int_literal(-2147483648LL), "(-2147483647 - 1)");
  EXPECT_EQ(int_literal(4294967296LL), "static_cast<int>(4294967296LL)");
  EXPECT_EQ(float_literal(30.0), "30.0f");
  EXPECT_EQ(float_literal(0.1), "0.1f");
  EXPECT_EQ(float_literal(-2.5), "(-2.5f)");
  EXPECT_EQ(float_literal(1e30), "1e+30f");
  EXPECT_EQ(float_literal(1e300), "INFINITY");  // beyond float: what the fp32 kernel holds
  EXPECT_EQ(float_literal(-1.0 / 0.0), "(-INFINITY)");
  EXPECT_EQ(double_literal(0.1), "0.1");
  EXPECT_EQ(double_literal(-2.5), "(-2.5)");
  EXPECT_EQ(double_literal(1e300), "1e+300");
}

TEST(Lower, SourceTextAndTensorAndParamDetection) {
  const spec::Spec s = neighbourhood_spec();
  EXPECT_EQ(to_source(*s.mask_mod->bindings[1].value, s, &*s.mask_mod), "(q_idx // G)");
  EXPECT_FALSE(reads_tensors(*s.mask_mod));
  EXPECT_TRUE(reads_tensors(*document_spec().mask_mod));
  // ALiBi's param is read in a binding of score_mod, not by its mask_mod.
  EXPECT_TRUE(reads_params(*alibi_spec().score_mod));
  EXPECT_FALSE(reads_params(*alibi_spec().mask_mod));
  EXPECT_FALSE(reads_params(*document_spec().mask_mod));
  EXPECT_EQ(sanitize_identifier("a-b c"), "a_b_c");
}

}  // namespace
}  // namespace kg::codegen
