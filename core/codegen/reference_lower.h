// The reference kernel's lowering of score_mod / mask_mod: CUDA C++ that computes, in double, what
// the CPU interpreter (spec/interpret.h, which defines the semantics) computes — written apart from
// the template kernel's lowering (codegen/lower.h) so that a bug in one cannot hide in both.
//
//   Int   -> long long (64-bit wrapping, as the interpreter)      Float -> double     Bool -> bool
//   + - * /          kg_ref_fadd/fsub/fmul/fdiv (one rounding each: never contracted into FMA)
//   // % on ints     Python floor semantics, x // 0 == x % 0 == 0; on floats CPython's float_divmod
//   **               ints: exact wrapping power (negative exponent: 1, -1 or 0); floats: pow
//   functions        exp exp2 log sqrt tanh fabs in double; log2 exact at powers of two; floor -> int64
//   min max clamp    the first argument unless the second is strictly smaller / larger
//   tensors          0 outside the declared shape (nothing read), int64 indices checked
// The helpers live in templates/reference_math.cuh. On the GPU the double functions (exp, log, ...)
// are within 1–2 ulp of the host's; + - * / // % floor and comparisons are exact, so the mask and
// every int agree with the interpreter bit for bit except where a transcendental lands within an
// ulp of a discontinuity (log2 of a power of two, the common case, is exact).
#pragma once

#include <string>

#include "spec/ast.h"

namespace kg::codegen {

// Device code for the reference's mods, to follow common.cuh, reference_math.cuh and KgModArgs:
//   kg_ref_tensor<i>(ma, long long i0, ...) -> long long | double   (one reader per tensor)
//   double kg_ref_score_mod(double score, long long b, long long h, long long q_idx, long long kv_idx, const KgModArgs& ma)
//   bool   kg_ref_mask_mod(long long b, long long h, long long q_idx, long long kv_idx, const KgModArgs& ma)
//   constexpr bool kg_ref_has_mask_mod
// Identity / true for an absent mod. Throws std::invalid_argument for a tree a checked spec cannot
// hold (a Binding index out of range, `score` in mask_mod, deeper than kMaxExprDepth).
std::string emit_reference_mods(const spec::Spec& spec);

// One expression of `fn` as the reference lowers it (for tests): bindings are named
// `<prefix><index>_<name>`; `score_in_scope` in score_mod only. Throws like emit_reference_mods.
std::string reference_lower_expr(const spec::Expr& e, const spec::Spec& spec, const spec::ModFunction* fn,
                                 const std::string& prefix, bool score_in_scope);

}  // namespace kg::codegen
