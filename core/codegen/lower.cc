#include "codegen/lower.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

#include "spec/limits.h"
#include "spec/literal.h"

namespace kg::codegen {
namespace {

using spec::Expr;
using spec::Func;
using spec::Op;
using spec::Type;

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("codegen: " + what); }

// Every walk below recurses once per level of the tree; the type checker bounds a checked spec's
// trees by kMaxExprDepth, and a deeper tree is refused here rather than allowed to overflow the stack.
void check_depth(int depth) {
  if (depth > spec::kMaxExprDepth) fail("expression nested deeper than " + std::to_string(spec::kMaxExprDepth));
}

std::string lower_node(const Expr& e, const LowerContext& ctx, int depth, bool dbl);
void collect_binding_uses(const Expr& e, bool dbl, std::vector<BindingUse>& uses, int depth);

const Expr& arg(const Expr& e, size_t i) {
  if (i >= e.args.size() || !e.args[i]) fail("expression node is missing operand " + std::to_string(i));
  return *e.args[i];
}

std::string binary(const std::string& a, const char* op, const std::string& b) {
  return "(" + a + " " + op + " " + b + ")";
}

std::string call(const char* fn, const std::string& a) { return std::string(fn) + "(" + a + ")"; }
std::string call(const char* fn, const std::string& a, const std::string& b) {
  return std::string(fn) + "(" + a + ", " + b + ")";
}
std::string call(const char* fn, const std::string& a, const std::string& b, const std::string& c) {
  return std::string(fn) + "(" + a + ", " + b + ", " + c + ")";
}

const char* binary_op_token(Op op) {
  switch (op) {
    case Op::Add: return "+";
    case Op::Sub: return "-";
    case Op::Mul: return "*";
    case Op::Div: return "/";
    case Op::Lt: return "<";
    case Op::Le: return "<=";
    case Op::Gt: return ">";
    case Op::Ge: return ">=";
    case Op::Eq: return "==";
    case Op::Ne: return "!=";
    case Op::And: return "&&";
    case Op::Or: return "||";
    default: return nullptr;
  }
}

// Whether `op` on float operands is discontinuous in them: its float operands are lowered in
// double (comparisons, float `//` and `%`; floor is a Call, see lower_call).
bool discontinuous(Op op) {
  switch (op) {
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
    case Op::FloorDiv: case Op::Mod:
      return true;
    default:
      return false;
  }
}

// `dbl`: the node's value is wanted as a double (it feeds a discontinuity); only Float nodes care.
std::string lower_call(const Expr& e, const LowerContext& ctx, int depth, bool dbl) {
  const bool fast = ctx.math == MathMode::Fast;
  const bool is_int = e.type == Type::Int;
  auto a = [&](size_t i) { return lower_node(arg(e, i), ctx, depth + 1, dbl); };
  if (e.func == Func::Floor) {
    // floor() feeds an int: its argument is evaluated in double, exactly as the interpreter does.
    return call("kg_dfloor_int", lower_node(arg(e, 0), ctx, depth + 1, true));
  }
  if (dbl && !is_int) {
    switch (e.func) {
      case Func::Abs: return call("fabs", a(0));
      case Func::Min: return call("kg_dmin", a(0), a(1));
      case Func::Max: return call("kg_dmax", a(0), a(1));
      case Func::Clamp: return call("kg_dclamp", a(0), a(1), a(2));
      case Func::Exp: return call("exp", a(0));
      case Func::Exp2: return call("exp2", a(0));
      case Func::Log: return call("log", a(0));
      case Func::Log2: return call("kg_dlog2", a(0));
      case Func::Sqrt: return call("sqrt", a(0));
      case Func::Tanh: return call("tanh", a(0));
      case Func::Floor: break;
    }
    fail("unknown built-in function");
  }
  switch (e.func) {
    case Func::Abs: return call(is_int ? "kg_iabs" : "fabsf", a(0));
    case Func::Min: return call(is_int ? "kg_imin" : "kg_fmin", a(0), a(1));
    case Func::Max: return call(is_int ? "kg_imax" : "kg_fmax", a(0), a(1));
    case Func::Clamp: return call(is_int ? "kg_iclamp" : "kg_fclamp", a(0), a(1), a(2));
    case Func::Exp: return call(fast ? "__expf" : "expf", a(0));
    case Func::Exp2: return call("exp2f", a(0));
    case Func::Log: return call(fast ? "__logf" : "logf", a(0));
    case Func::Log2: return call(fast ? "__log2f" : "log2f", a(0));
    case Func::Sqrt: return call("sqrtf", a(0));
    case Func::Tanh: return call(fast ? "kg_fast_tanh" : "tanhf", a(0));
    case Func::Floor: break;
  }
  fail("unknown built-in function");
}

const char* func_name(Func f) {
  switch (f) {
    case Func::Abs: return "abs";
    case Func::Min: return "min";
    case Func::Max: return "max";
    case Func::Clamp: return "clamp";
    case Func::Exp: return "exp";
    case Func::Exp2: return "exp2";
    case Func::Log: return "log";
    case Func::Log2: return "log2";
    case Func::Sqrt: return "sqrt";
    case Func::Tanh: return "tanh";
    case Func::Floor: return "floor";
  }
  return "?";
}

const char* var_name(spec::Var v) {
  switch (v) {
    case spec::Var::Score: return "score";
    case spec::Var::B: return "b";
    case spec::Var::H: return "h";
    case spec::Var::QIdx: return "q_idx";
    case spec::Var::KvIdx: return "kv_idx";
  }
  return "?";
}

// Whether some node of `e` is an `op` node (TensorElem: reads a tensor; Param: a runtime param).
bool expr_has_op(const Expr& e, Op op, int depth = 1) {
  check_depth(depth);
  if (e.op == op) return true;
  for (const auto& a : e.args) {
    if (a && expr_has_op(*a, op, depth + 1)) return true;
  }
  return false;
}

bool expr_reads_tensors(const Expr& e) { return expr_has_op(e, Op::TensorElem); }

// The same over a mod function: its bindings and its result.
bool fn_has_op(const spec::ModFunction& fn, Op op) {
  for (const auto& b : fn.bindings) {
    if (b.value && expr_has_op(*b.value, op)) return true;
  }
  return fn.result && expr_has_op(*fn.result, op);
}

std::string to_source_node(const Expr& e, const spec::Spec& spec, const spec::ModFunction* fn, int depth);

}  // namespace

std::string sanitize_identifier(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) c = '_';
  }
  return out;
}

std::string int_literal(int64_t value) {
  if (value == std::numeric_limits<int32_t>::min()) return "(-2147483647 - 1)";
  if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
    // Out of int32: the value the 32-bit arithmetic would hold (wraps, like every int op here).
    return "static_cast<int>(" + std::to_string(value) + "LL)";
  }
  return value < 0 ? "(" + std::to_string(value) + ")" : std::to_string(value);
}

std::string float_literal(double value) {
  const float f = static_cast<float>(value);
  if (std::isnan(f)) return "NAN";
  if (std::isinf(f)) return f > 0 ? "INFINITY" : "(-INFINITY)";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), std::fabs(f));  // shortest round-trip digits
  std::string digits(buf, res.ptr);
  if (digits.find_first_of(".e") == std::string::npos) digits += ".0";
  digits += "f";
  return std::signbit(f) ? "(-" + digits + ")" : digits;
}

// The value of a compile-time number (a literal or a constant, maybe negated or promoted to
// float: spec::fold_literal); nullopt for anything else.
std::optional<double> constant_value(const spec::Spec& spec, const Expr& e) {
  const std::optional<spec::Literal> v = spec::fold_literal(e, spec);
  if (!v || v->type == Type::Bool) return std::nullopt;
  return v->type == Type::Int ? static_cast<double>(v->int_value) : v->float_value;
}

// k when `e` is the compile-time int 2^k, 0 <= k <= 30 (a positive power of two that a 32-bit int
// holds); nullopt for anything else.
std::optional<int> power_of_two_exponent(const spec::Spec& spec, const Expr& e) {
  const std::optional<spec::Literal> v = spec::fold_literal(e, spec);
  if (!v || v->type != Type::Int || v->int_value <= 0 || v->int_value > (int64_t{1} << 30)) return std::nullopt;
  if ((v->int_value & (v->int_value - 1)) != 0) return std::nullopt;
  int k = 0;
  while ((int64_t{1} << k) < v->int_value) ++k;
  return k;
}

std::string binding_variable(const LowerContext& ctx, int index) {
  if (ctx.fn == nullptr || index < 0 || index >= static_cast<int>(ctx.fn->bindings.size())) {
    fail("binding index " + std::to_string(index) + " out of range");
  }
  return ctx.binding_prefix + std::to_string(index) + "_" + sanitize_identifier(ctx.fn->bindings[index].name);
}

std::string binding_double_variable(const LowerContext& ctx, int index) { return binding_variable(ctx, index) + "_d"; }

std::string double_literal(double value) {
  if (std::isnan(value)) return "NAN";
  if (std::isinf(value)) return value > 0 ? "static_cast<double>(INFINITY)" : "(-static_cast<double>(INFINITY))";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), std::fabs(value));  // shortest round-trip digits
  std::string digits(buf, res.ptr);
  if (digits.find_first_of(".e") == std::string::npos) digits += ".0";
  return std::signbit(value) ? "(-" + digits + ")" : digits;
}

std::string param_field(const spec::Spec& spec, int index) {
  if (index < 0 || index >= static_cast<int>(spec.params.size())) fail("param index out of range");
  return "param" + std::to_string(index) + "_" + sanitize_identifier(spec.params[index].name);
}

std::string tensor_field(const spec::Spec& spec, int index) {
  if (index < 0 || index >= static_cast<int>(spec.tensors.size())) fail("tensor index out of range");
  return "tensor" + std::to_string(index) + "_" + sanitize_identifier(spec.tensors[index].name);
}

std::string tensor_reader(const spec::Spec& spec, int index) { return "kg_" + tensor_field(spec, index); }

std::string tensor_extent_expr(const spec::TensorDim& d, const std::string& sizes) {
  switch (d.dim) {
    case spec::Dim::Batch: return "static_cast<long long>(" + sizes + "batch)";
    case spec::Dim::HeadsQ: return "static_cast<long long>(" + sizes + "heads_q)";
    case spec::Dim::HeadsKv: return "static_cast<long long>(" + sizes + "heads_kv)";
    case spec::Dim::SeqQ: return "static_cast<long long>(" + sizes + "seqlen_q)";
    case spec::Dim::SeqKv: return "static_cast<long long>(" + sizes + "seqlen_kv)";
    case spec::Dim::Fixed: return std::to_string(d.extent) + "LL";
  }
  return "0LL";
}

const char* tensor_element_type(spec::TensorDType t) {
  switch (t) {
    case spec::TensorDType::Int32: return "int";
    case spec::TensorDType::Int64: return "long long";
    case spec::TensorDType::Float32: return "float";
  }
  return "?";
}

std::string lower_expr(const Expr& e, const LowerContext& ctx) { return lower_node(e, ctx, 1, false); }

std::string lower_expr_double(const Expr& e, const LowerContext& ctx) { return lower_node(e, ctx, 1, true); }

std::vector<BindingUse> binding_uses(const spec::ModFunction& fn) {
  std::vector<BindingUse> uses(fn.bindings.size());
  if (fn.result) collect_binding_uses(*fn.result, false, uses, 1);
  // A binding refers only to earlier ones: walking backwards sees every use before the definition.
  for (size_t i = fn.bindings.size(); i-- > 0;) {
    const spec::Binding& b = fn.bindings[i];
    if (!b.value) continue;
    if (uses[i].as_native || b.value->type != Type::Float) collect_binding_uses(*b.value, false, uses, 1);
    if (uses[i].as_double && b.value->type == Type::Float) collect_binding_uses(*b.value, true, uses, 1);
  }
  return uses;
}

namespace {

// `depth`: of `e` in the tree being lowered (1 at the root). `dbl`: a Float node's value feeds a
// discontinuity and is lowered in double (Int and Bool nodes are spelled the same either way; their
// discontinuous operations switch their float operands to double themselves).
std::string lower_node(const Expr& e, const LowerContext& ctx, int depth, bool dbl) {
  check_depth(depth);
  const spec::Spec& spec = *ctx.spec;
  const bool is_int = e.type == Type::Int;
  const bool is_float = e.type == Type::Float;
  const bool in_double = dbl && is_float;
  // Operands: in double below a discontinuity or inside a double subexpression.
  const bool operands_double = in_double || discontinuous(e.op);
  auto a = [&](size_t i) { return lower_node(arg(e, i), ctx, depth + 1, operands_double); };
  if (is_float && !dbl && (e.op == Op::FloorDiv || e.op == Op::Mod)) {
    // A float `//` / `%` is discontinuous itself: computed in double, its result rounded to float.
    return "static_cast<float>(" + lower_node(e, ctx, depth, true) + ")";
  }
  switch (e.op) {
    case Op::IntLit: return int_literal(e.int_value);
    case Op::FloatLit: return in_double ? double_literal(e.float_value) : float_literal(e.float_value);
    case Op::BoolLit: return e.bool_value ? "true" : "false";
    case Op::Var:
      if (e.var == spec::Var::Score && !ctx.score_in_scope) fail("`score` used outside score_mod");
      if (e.var == spec::Var::Score && in_double) return "static_cast<double>(score)";
      return var_name(e.var);
    case Op::Constant: {
      if (e.index < 0 || e.index >= static_cast<int>(spec.constants.size())) fail("constant index out of range");
      const spec::ConstantDecl& c = spec.constants[e.index];
      std::string lit = c.type == Type::Int     ? int_literal(c.int_value)
                        : c.type == Type::Float ? (in_double ? double_literal(c.float_value) : float_literal(c.float_value))
                                                : std::string(c.bool_value ? "true" : "false");
      // Constants are inlined; the comment keeps the name readable (names are identifiers).
      return "(" + lit + " /* " + sanitize_identifier(c.name) + " */)";
    }
    case Op::Param:
      // Float params are held as the doubles the caller passed (KgModArgs).
      if (is_float && !in_double) return "static_cast<float>(ma." + param_field(spec, e.index) + ")";
      return "ma." + param_field(spec, e.index);
    case Op::Binding:
      return in_double ? binding_double_variable(ctx, e.index) : binding_variable(ctx, e.index);
    case Op::TensorElem: {
      std::string s = tensor_reader(spec, e.index) + "(ma";
      for (size_t i = 0; i < e.args.size(); ++i) s += ", " + a(i);
      s += ")";
      return in_double ? "static_cast<double>(" + s + ")" : s;
    }
    case Op::Neg: return "(-" + a(0) + ")";
    case Op::Not: return "(!" + a(0) + ")";
    case Op::ToFloat: return std::string(in_double ? "static_cast<double>(" : "static_cast<float>(") + a(0) + ")";
    case Op::FloorDiv:
    case Op::Mod:
      if (is_int) {
        // By a compile-time 2^k: an arithmetic shift is the floor quotient and a mask the Python
        // remainder, for negative operands too (two's complement). kg_floordiv and kg_mod compile
        // to 15 instructions for both where these take 2; a 2-D neighbourhood mask takes both of
        // kv_idx for each of a thread's 32 key columns per tile.
        if (const std::optional<int> k = power_of_two_exponent(spec, arg(e, 1))) {
          if (e.op == Op::FloorDiv) return "(" + a(0) + " >> " + std::to_string(*k) + ")";
          return "(" + a(0) + " & " + std::to_string((1 << *k) - 1) + ")";
        }
        return call(e.op == Op::FloorDiv ? "kg_floordiv" : "kg_mod", a(0), a(1));
      }
      return call(e.op == Op::FloorDiv ? "kg_floordivd" : "kg_modd", a(0), a(1));
    case Op::Pow: return call(is_int ? "kg_ipow" : (in_double ? "pow" : "powf"), a(0), a(1));
    case Op::Select: {
      // The condition is a Bool (its comparisons choose double themselves); the branches follow `dbl`.
      const std::string c = lower_node(arg(e, 0), ctx, depth + 1, false);
      return "(" + c + " ? " + a(1) + " : " + a(2) + ")";
    }
    case Op::Call: return lower_call(e, ctx, depth, dbl);
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: {
      auto as_float = [&](size_t i) {
        // True division of ints: the type checker promotes int operands already, this only makes sure.
        if (arg(e, i).type != Type::Int || e.op != Op::Div) return a(i);
        return std::string(in_double ? "static_cast<double>(" : "static_cast<float>(") + a(i) + ")";
      };
      if (in_double) {
        const char* fn = e.op == Op::Add ? "kg_dadd" : e.op == Op::Sub ? "kg_dsub" : e.op == Op::Mul ? "kg_dmul" : "kg_ddiv";
        return call(fn, as_float(0), as_float(1));
      }
      if (e.op == Op::Div && ctx.math == MathMode::Fast) {
        // Fast math: x / c for a compile-time c is x · (1/c), 1/c rounded to float here: ≤ 1.5 ulp
        // from the quotient, where IEEE division costs a reciprocal, a Newton step and a slow-path
        // branch per element (softcap's score / CAP). Only for a normal reciprocal.
        if (const std::optional<double> c = constant_value(spec, arg(e, 1))) {
          const float r = static_cast<float>(1.0 / *c);
          if (std::isnormal(r)) return "(" + as_float(0) + " * " + float_literal(r) + ")";
        }
      }
      return binary(as_float(0), binary_op_token(e.op), as_float(1));
    }
    case Op::And:
    case Op::Or: {
      // Fast math (the template kernel): both operands are evaluated, branch-free (`&`, `|` on
      // bools). Equivalent, since expressions have no side effects and every operation is total
      // (x // 0 == 0, tensor reads outside the shape give 0); it lets a per-element mask_mod
      // compile to straight-line code instead of divergent branches. An operand that reads a
      // tensor keeps the short circuit, which saves its loads.
      const bool eager = ctx.math == MathMode::Fast && !expr_reads_tensors(arg(e, 0)) && !expr_reads_tensors(arg(e, 1));
      const char* tok = eager ? (e.op == Op::And ? "&" : "|") : binary_op_token(e.op);
      return binary(a(0), tok, a(1));
    }
    default: {
      const char* tok = binary_op_token(e.op);
      if (tok == nullptr) fail("unknown expression node");
      return binary(a(0), tok, a(1));
    }
  }
}

// Which versions of each binding the lowering of `e` in context `dbl` refers to.
void collect_binding_uses(const Expr& e, bool dbl, std::vector<BindingUse>& uses, int depth) {
  check_depth(depth);
  const bool in_double = dbl && e.type == Type::Float;
  if (e.op == Op::Binding) {
    if (e.index < 0 || e.index >= static_cast<int>(uses.size())) fail("binding index out of range");
    (in_double ? uses[e.index].as_double : uses[e.index].as_native) = true;
    return;
  }
  if (e.type == Type::Float && !dbl && (e.op == Op::FloorDiv || e.op == Op::Mod)) {
    collect_binding_uses(e, true, uses, depth);
    return;
  }
  bool operands_double = in_double || discontinuous(e.op) || (e.op == Op::Call && e.func == Func::Floor);
  for (size_t i = 0; i < e.args.size(); ++i) {
    const bool d = (e.op == Op::Select && i == 0) ? false : operands_double;
    collect_binding_uses(arg(e, i), d, uses, depth + 1);
  }
}

}  // namespace

std::string to_source(const Expr& e, const spec::Spec& spec, const spec::ModFunction* fn) {
  return to_source_node(e, spec, fn, 1);
}

namespace {

std::string to_source_node(const Expr& e, const spec::Spec& spec, const spec::ModFunction* fn, int depth) {
  check_depth(depth);
  auto a = [&](size_t i) { return to_source_node(arg(e, i), spec, fn, depth + 1); };
  switch (e.op) {
    case Op::IntLit: return std::to_string(e.int_value);
    case Op::FloatLit: {
      char buf[64];
      const auto res = std::to_chars(buf, buf + sizeof(buf), e.float_value);
      std::string s(buf, res.ptr);
      if (s.find_first_of(".en") == std::string::npos) s += ".0";
      return s;
    }
    case Op::BoolLit: return e.bool_value ? "True" : "False";
    case Op::Var: return var_name(e.var);
    case Op::Constant:
      return e.index >= 0 && e.index < static_cast<int>(spec.constants.size()) ? spec.constants[e.index].name : "?";
    case Op::Param:
      return e.index >= 0 && e.index < static_cast<int>(spec.params.size()) ? spec.params[e.index].name : "?";
    case Op::Binding:
      return fn != nullptr && e.index >= 0 && e.index < static_cast<int>(fn->bindings.size())
                 ? fn->bindings[e.index].name
                 : "?";
    case Op::TensorElem: {
      std::string s = e.index >= 0 && e.index < static_cast<int>(spec.tensors.size()) ? spec.tensors[e.index].name : "?";
      s += "[";
      for (size_t i = 0; i < e.args.size(); ++i) s += (i ? ", " : "") + a(i);
      return s + "]";
    }
    case Op::Neg: return "(-" + a(0) + ")";
    case Op::Not: return "(not " + a(0) + ")";
    case Op::ToFloat: return a(0);
    case Op::FloorDiv: return binary(a(0), "//", a(1));
    case Op::Mod: return binary(a(0), "%", a(1));
    case Op::Pow: return binary(a(0), "**", a(1));
    case Op::And: return binary(a(0), "and", a(1));
    case Op::Or: return binary(a(0), "or", a(1));
    case Op::Select: return "(" + a(1) + " if " + a(0) + " else " + a(2) + ")";
    case Op::Call: {
      std::string s = std::string(func_name(e.func)) + "(";
      for (size_t i = 0; i < e.args.size(); ++i) s += (i ? ", " : "") + a(i);
      return s + ")";
    }
    default: {
      const char* tok = binary_op_token(e.op);
      return tok ? binary(a(0), tok, a(1)) : "?";
    }
  }
}

}  // namespace

bool reads_tensors(const spec::ModFunction& fn) { return fn_has_op(fn, Op::TensorElem); }

bool reads_params(const spec::ModFunction& fn) { return fn_has_op(fn, Op::Param); }

const char* type_name(Type t) {
  switch (t) {
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::Bool: return "bool";
  }
  return "?";
}

const char* cuda_type(Type t) { return codegen::type_name(t); }

}  // namespace kg::codegen
