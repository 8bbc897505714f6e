#include "codegen/reference_lower.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <vector>

#include "codegen/lower.h"
#include "spec/limits.h"

namespace kg::codegen {
namespace {

using spec::Expr;
using spec::Func;
using spec::Op;
using spec::Type;

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("codegen (reference): " + what); }

// Identifiers come from a checked spec; anything else becomes '_' (lower.h's sanitize_identifier:
// naming only, none of the mods' semantics is shared with the template's lowering).
std::string ident(const std::string& name) { return sanitize_identifier(name); }

std::string int64_literal(int64_t v) {
  if (v == std::numeric_limits<int64_t>::min()) return "(-9223372036854775807LL - 1)";
  return v < 0 ? "(" + std::to_string(v) + "LL)" : std::to_string(v) + "LL";
}

// Exact: a hexadecimal floating literal holds every bit of the double.
std::string f64_literal(double v) {
  if (std::isnan(v)) return "static_cast<double>(NAN)";
  if (std::isinf(v)) return v > 0 ? "static_cast<double>(INFINITY)" : "(-static_cast<double>(INFINITY))";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%a", std::fabs(v));
  return std::signbit(v) ? "(-" + std::string(buf) + ")" : std::string(buf);
}

const char* type_of(Type t) { return t == Type::Int ? "long long" : t == Type::Float ? "double" : "bool"; }

std::string tensor_fn(const spec::Spec& spec, int index) {
  return "kg_ref_tensor" + std::to_string(index) + "_" + ident(spec.tensors[static_cast<size_t>(index)].name);
}

class RefLowering {
 public:
  RefLowering(const spec::Spec& spec, const spec::ModFunction* fn, std::string prefix, bool score_in_scope)
      : m_spec(spec), m_fn(fn), m_prefix(std::move(prefix)), m_score(score_in_scope) {}

  std::string binding_name(int index) const {
    if (m_fn == nullptr || index < 0 || index >= static_cast<int>(m_fn->bindings.size())) {
      fail("binding index " + std::to_string(index) + " out of range");
    }
    return m_prefix + std::to_string(index) + "_" + ident(m_fn->bindings[static_cast<size_t>(index)].name);
  }

  std::string lower(const Expr& e, int depth = 1) const {
    if (depth > spec::kMaxExprDepth) fail("expression nested deeper than " + std::to_string(spec::kMaxExprDepth));
    auto a = [&](size_t i) {
      if (i >= e.args.size() || !e.args[i]) fail("expression node is missing operand " + std::to_string(i));
      return lower(*e.args[i], depth + 1);
    };
    auto fn2 = [&](const char* f) { return std::string(f) + "(" + a(0) + ", " + a(1) + ")"; };
    auto fn1 = [&](const char* f) { return std::string(f) + "(" + a(0) + ")"; };
    const bool is_int = e.type == Type::Int;
    switch (e.op) {
      case Op::IntLit: return int64_literal(e.int_value);
      case Op::FloatLit: return f64_literal(e.float_value);
      case Op::BoolLit: return e.bool_value ? "true" : "false";
      case Op::Var:
        switch (e.var) {
          case spec::Var::Score:
            if (!m_score) fail("`score` used outside score_mod");
            return "score";
          case spec::Var::B: return "b";
          case spec::Var::H: return "h";
          case spec::Var::QIdx: return "q_idx";
          case spec::Var::KvIdx: return "kv_idx";
        }
        fail("unknown variable");
      case Op::Constant: {
        if (e.index < 0 || e.index >= static_cast<int>(m_spec.constants.size())) fail("constant index out of range");
        const spec::ConstantDecl& c = m_spec.constants[static_cast<size_t>(e.index)];
        if (c.type == Type::Int) return int64_literal(c.int_value);
        if (c.type == Type::Float) return f64_literal(c.float_value);
        return c.bool_value ? "true" : "false";
      }
      case Op::Param: {
        if (e.index < 0 || e.index >= static_cast<int>(m_spec.params.size())) fail("param index out of range");
        const std::string field = "ma.param" + std::to_string(e.index) + "_" + ident(m_spec.params[static_cast<size_t>(e.index)].name);
        // Int params hold whole int32 values (kg_fill_mod_args checks); float params the caller's doubles.
        return is_int ? "static_cast<long long>(" + field + ")" : "static_cast<double>(" + field + ")";
      }
      case Op::Binding: return binding_name(e.index);
      case Op::TensorElem: {
        if (e.index < 0 || e.index >= static_cast<int>(m_spec.tensors.size())) fail("tensor index out of range");
        std::string s = tensor_fn(m_spec, e.index) + "(ma";
        for (size_t i = 0; i < e.args.size(); ++i) s += ", " + a(i);
        return s + ")";
      }
      case Op::Neg: return is_int ? fn1("kg_ref_neg") : "(-" + a(0) + ")";
      case Op::Not: return "(!" + a(0) + ")";
      case Op::ToFloat: return fn1("kg_ref_to_double");
      case Op::Add: return fn2(is_int ? "kg_ref_add" : "kg_ref_fadd");
      case Op::Sub: return fn2(is_int ? "kg_ref_sub" : "kg_ref_fsub");
      case Op::Mul: return fn2(is_int ? "kg_ref_mul" : "kg_ref_fmul");
      case Op::Div: {
        // True division; the checker promotes int operands, this only makes sure.
        auto as_double = [&](size_t i) {
          const std::string x = a(i);
          return e.args[i]->type == Type::Int ? "kg_ref_to_double(" + x + ")" : x;
        };
        return "kg_ref_fdiv(" + as_double(0) + ", " + as_double(1) + ")";
      }
      case Op::FloorDiv: return fn2(is_int ? "kg_ref_floordiv" : "kg_ref_ffloordiv");
      case Op::Mod: return fn2(is_int ? "kg_ref_mod" : "kg_ref_fmod");
      case Op::Pow: return fn2(is_int ? "kg_ref_pow" : "pow");
      case Op::Lt: return "(" + a(0) + " < " + a(1) + ")";
      case Op::Le: return "(" + a(0) + " <= " + a(1) + ")";
      case Op::Gt: return "(" + a(0) + " > " + a(1) + ")";
      case Op::Ge: return "(" + a(0) + " >= " + a(1) + ")";
      case Op::Eq: return "(" + a(0) + " == " + a(1) + ")";
      case Op::Ne: return "(" + a(0) + " != " + a(1) + ")";
      case Op::And: return "(" + a(0) + " && " + a(1) + ")";
      case Op::Or: return "(" + a(0) + " || " + a(1) + ")";
      case Op::Select: return "(" + a(0) + " ? " + a(1) + " : " + a(2) + ")";
      case Op::Call: {
        const bool int_call = is_int && e.func != Func::Floor;
        switch (e.func) {
          case Func::Abs: return fn1(int_call ? "kg_ref_iabs" : "fabs");
          case Func::Min: return fn2(int_call ? "kg_ref_imin" : "kg_ref_fmin");
          case Func::Max: return fn2(int_call ? "kg_ref_imax" : "kg_ref_fmax");
          case Func::Clamp:
            return std::string(int_call ? "kg_ref_iclamp(" : "kg_ref_fclamp(") + a(0) + ", " + a(1) + ", " + a(2) + ")";
          case Func::Exp: return fn1("exp");
          case Func::Exp2: return fn1("exp2");
          case Func::Log: return fn1("log");
          case Func::Log2: return fn1("kg_ref_log2");
          case Func::Sqrt: return fn1("sqrt");
          case Func::Tanh: return fn1("tanh");
          case Func::Floor: return fn1("kg_ref_floor");
        }
        fail("unknown built-in function");
      }
    }
    fail("unknown expression node");
  }

  // The function body: bindings as const locals, then `return <result>;`.
  std::string body() const {
    std::string s;
    for (size_t i = 0; i < m_fn->bindings.size(); ++i) {
      const spec::Binding& b = m_fn->bindings[i];
      if (!b.value) fail("binding without a value");
      s += "  const " + std::string(type_of(b.value->type)) + " " + binding_name(static_cast<int>(i)) + " = " +
           lower(*b.value) + ";\n";
    }
    if (!m_fn->result) fail("mod function without a result");
    std::string r = lower(*m_fn->result);
    if (m_score && m_fn->result->type == Type::Int) r = "kg_ref_to_double(" + r + ")";
    if (!m_score && m_fn->result->type != Type::Bool) fail("mask_mod must be bool");
    return s + "  return " + r + ";\n";
  }

 private:
  const spec::Spec& m_spec;
  const spec::ModFunction* m_fn;
  std::string m_prefix;
  bool m_score;
};

std::string extent(const spec::TensorDim& d) {
  switch (d.dim) {
    case spec::Dim::Batch: return "static_cast<long long>(ma.batch)";
    case spec::Dim::HeadsQ: return "static_cast<long long>(ma.heads_q)";
    case spec::Dim::HeadsKv: return "static_cast<long long>(ma.heads_kv)";
    case spec::Dim::SeqQ: return "static_cast<long long>(ma.seqlen_q)";
    case spec::Dim::SeqKv: return "static_cast<long long>(ma.seqlen_kv)";
    case spec::Dim::Fixed: return int64_literal(d.extent);
  }
  return "0LL";
}

std::string tensor_readers(const spec::Spec& spec) {
  std::string s;
  for (size_t t = 0; t < spec.tensors.size(); ++t) {
    const spec::TensorDecl& decl = spec.tensors[t];
    const bool is_float = decl.dtype == spec::TensorDType::Float32;
    const std::string field = "ma.tensor" + std::to_string(t) + "_" + ident(decl.name);
    s += "// " + ident(decl.name) + "[...]: 0 outside the declared shape (nothing read), as the interpreter.\n";
    s += "[[maybe_unused]] __device__ __forceinline__ " + std::string(is_float ? "double " : "long long ") +
         tensor_fn(spec, static_cast<int>(t)) + "(const KgModArgs& ma";
    for (size_t d = 0; d < decl.shape.size(); ++d) s += ", long long i" + std::to_string(d);
    s += ") {\n  long long off = 0;\n";
    for (size_t d = 0; d < decl.shape.size(); ++d) {
      const std::string i = "i" + std::to_string(d);
      const std::string n = extent(decl.shape[d]);
      s += "  if (" + i + " < 0 || " + i + " >= " + n + ") return 0;\n";
      s += "  off = off * " + n + " + " + i + ";\n";
    }
    s += std::string("  return ") + (is_float ? "static_cast<double>(" : "static_cast<long long>(") + field + "[off]);\n}\n\n";
  }
  return s;
}

}  // namespace

std::string reference_lower_expr(const spec::Expr& e, const spec::Spec& spec, const spec::ModFunction* fn,
                                 const std::string& prefix, bool score_in_scope) {
  return RefLowering(spec, fn, prefix, score_in_scope).lower(e);
}

std::string emit_reference_mods(const spec::Spec& spec) {
  std::string s = "// ===== Reference mods (codegen/reference_lower.h): double, as the CPU interpreter =====\n\n";
  s += tensor_readers(spec);
  s += "constexpr bool kg_ref_has_mask_mod = " + std::string(spec.mask_mod ? "true" : "false") + ";\n\n";
  s += "[[maybe_unused]] __device__ __forceinline__ double kg_ref_score_mod(double score, long long b, long long h,\n"
       "                                                                   long long q_idx, long long kv_idx,\n"
       "                                                                   const KgModArgs& ma) {\n"
       "  (void)score; (void)b; (void)h; (void)q_idx; (void)kv_idx; (void)ma;\n";
  s += spec.score_mod ? RefLowering(spec, &*spec.score_mod, "rs", true).body() : "  return score;\n";
  s += "}\n\n";
  s += "[[maybe_unused]] __device__ __forceinline__ bool kg_ref_mask_mod(long long b, long long h, long long q_idx,\n"
       "                                                                 long long kv_idx, const KgModArgs& ma) {\n"
       "  (void)b; (void)h; (void)q_idx; (void)kv_idx; (void)ma;\n";
  s += spec.mask_mod ? RefLowering(spec, &*spec.mask_mod, "rm", false).body() : "  return true;\n";
  s += "}\n\n";
  return s;
}

}  // namespace kg::codegen
