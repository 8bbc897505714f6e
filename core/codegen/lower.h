// Lowering of typed spec expressions (spec/ast.h) to CUDA C++ for the template kernel. The
// reference kernel does not use it: codegen/reference_lower.h lowers the same trees independently
// (in double, like the CPU interpreter), so that a lowering bug here cannot hide in both.
//
// Semantics are the expression language's (Python's): `//` and `%` floor toward -inf, `**` on two
// ints is an exact integer power, `/` is true division, ints are 32-bit. Every compound expression
// comes out fully parenthesised, so C++ precedence never matters. The runtime helpers named here
// (kg_floordiv, kg_mod, kg_ipow, kg_d*, ...) live in templates/common.cuh.
//
// Precision: a float subexpression is fp32 (fast intrinsics in MathMode::Fast) where its value is
// continuous, and double — the interpreter's arithmetic, uncontracted, log2 exact at powers of two —
// wherever it feeds a discontinuity: a comparison, floor(), float `//` and `%` (whose results are
// rounded back to float where a float is wanted). So masks, floor() results and every other int or
// bool the template computes agree with the interpreter exactly (as long as the 32-bit ints do
// not overflow), and only continuous values carry fp32 error.
//
// Generated functions read runtime values from `const KgModArgs& ma`: sizes (ma.batch, ...),
// params (ma.<param_field>; float params as doubles) and tensors (through kg_tensor<i>_<name>(ma, idx...)).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "spec/ast.h"

namespace kg::codegen {

// Fast: the template kernel (__expf, __logf, __log2f, kg_fast_tanh; error bounds in common.cuh).
// Precise: fp32 with expf, logf, log2f, tanhf (kept for comparisons; no emitter uses it). Either
// way, discontinuity-fed values are double (above).
enum class MathMode { Fast, Precise };

// Which function is lowered. `fn` provides the bindings that Op::Binding refers to.
struct LowerContext {
  const spec::Spec* spec = nullptr;
  const spec::ModFunction* fn = nullptr;
  MathMode math = MathMode::Precise;
  std::string binding_prefix;  // distinguishes score_mod and mask_mod locals, e.g. "sm_"
  bool score_in_scope = false;  // true in score_mod only
};

// A C++ expression for `e`. Throws std::invalid_argument for a node a checked spec cannot contain
// (e.g. `score` in mask_mod, a Binding index out of range, a tree deeper than kMaxExprDepth of
// spec/limits.h). to_source and reads_tensors refuse such a deep tree the same way.
std::string lower_expr(const spec::Expr& e, const LowerContext& ctx);

// The same expression as a double (for a Float `e`; Int and Bool come out as lower_expr does).
std::string lower_expr_double(const spec::Expr& e, const LowerContext& ctx);

// Which versions of a binding the lowered function refers to: `as_native` the variable of its
// own type (float, int or bool), `as_double` the double version of a float binding.
struct BindingUse {
  bool as_native = false;
  bool as_double = false;
};
// One entry per binding of `fn`, from the uses in its result and (transitively) in the bindings
// used. Throws std::invalid_argument like lower_expr.
std::vector<BindingUse> binding_uses(const spec::ModFunction& fn);

// Name of the local variable that holds binding `index` of ctx.fn, and of its double version.
std::string binding_variable(const LowerContext& ctx, int index);
std::string binding_double_variable(const LowerContext& ctx, int index);

// KgModArgs field of param `index` / tensor `index`, and the device function reading tensor `index`.
std::string param_field(const spec::Spec& spec, int index);
std::string tensor_field(const spec::Spec& spec, int index);
std::string tensor_reader(const spec::Spec& spec, int index);
// C++ expression (long long) for the extent of a tensor dimension, given `sizes` ("ma." or "a->").
std::string tensor_extent_expr(const spec::TensorDim& d, const std::string& sizes);
// The C++ type of a tensor element: int, long long or float.
const char* tensor_element_type(spec::TensorDType t);

// `name` with every character outside [A-Za-z0-9_] replaced by '_' (names come from a checked
// spec and are identifiers already; this keeps generated code valid whatever happens upstream).
std::string sanitize_identifier(std::string_view name);

// Literals: an int32 expression (wrapping like the 32-bit arithmetic for out-of-range values) and
// a float literal with the shortest digits that round-trip (`1.0f`, `(-0.5f)`, `INFINITY`).
std::string int_literal(int64_t value);
std::string float_literal(double value);
// A double literal with the shortest digits that round-trip (`0.1`, `(-2.5)`, `NAN`).
std::string double_literal(double value);

// The expression in the spec language's own syntax, fully parenthesised, bindings by name
// (for comments in generated files).
std::string to_source(const spec::Expr& e, const spec::Spec& spec, const spec::ModFunction* fn);

// Whether evaluating `fn` reads an index tensor.
bool reads_tensors(const spec::ModFunction& fn);
// Whether evaluating `fn` reads a runtime param.
bool reads_params(const spec::ModFunction& fn);

// Spelling helpers shared by emitters and tests.
const char* type_name(spec::Type t);              // "int", "float", "bool"
const char* cuda_type(spec::Type t);              // "int", "float", "bool"

}  // namespace kg::codegen
