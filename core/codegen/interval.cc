#include "codegen/interval.h"

#include <stdexcept>

#include "codegen/lower.h"
#include "spec/limits.h"

namespace kg::codegen {
namespace rules {
// The exact rules the generated kernels run (KG_IV_FN defaults to `inline` on the host).
#include "codegen/templates/interval_rules.inc"
}  // namespace rules

namespace {

using spec::Expr;
using spec::Op;
using spec::Type;

// Every rule of interval_rules.inc the walker uses; both domains below map them 1:1.
enum class Rule {
  IvNeg, IvAdd, IvSub, IvMul, IvFloorDiv, IvMod, IvPow, IvAbs, IvMin, IvMax, IvClamp, IvSelect,
  IvLt, IvLe, IvGt, IvGe, IvEq, IvNe,
  BvNot, BvAnd, BvOr, BvSelect, BvEq, BvNe,
};

const char* rule_function(Rule r) {
  switch (r) {
    case Rule::IvNeg: return "kg_iv_neg";
    case Rule::IvAdd: return "kg_iv_add";
    case Rule::IvSub: return "kg_iv_sub";
    case Rule::IvMul: return "kg_iv_mul";
    case Rule::IvFloorDiv: return "kg_iv_floordiv";
    case Rule::IvMod: return "kg_iv_mod";
    case Rule::IvPow: return "kg_iv_pow";
    case Rule::IvAbs: return "kg_iv_abs";
    case Rule::IvMin: return "kg_iv_min";
    case Rule::IvMax: return "kg_iv_max";
    case Rule::IvClamp: return "kg_iv_clamp";
    case Rule::IvSelect: return "kg_iv_select";
    case Rule::IvLt: return "kg_iv_lt";
    case Rule::IvLe: return "kg_iv_le";
    case Rule::IvGt: return "kg_iv_gt";
    case Rule::IvGe: return "kg_iv_ge";
    case Rule::IvEq: return "kg_iv_eq";
    case Rule::IvNe: return "kg_iv_ne";
    case Rule::BvNot: return "kg_bv_not";
    case Rule::BvAnd: return "kg_bv_and";
    case Rule::BvOr: return "kg_bv_or";
    case Rule::BvSelect: return "kg_bv_select";
    case Rule::BvEq: return "kg_bv_eq";
    case Rule::BvNe: return "kg_bv_ne";
  }
  return "?";
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("codegen: " + what); }

// Abstract evaluation of one mod function, generic over the domain D:
//   D::Val                   an abstract value (host: intervals; emitter: C++ text)
//   unknown()                a Float value (never bounded) — never passed to a rule
//   iv_top(), bv_top(), iv_point_literal(int64), bv_point(bool)
//   var(spec::Var), int_param(index)
//   apply(Rule, {args})
//   bind(index, type, value) -> the value later Binding nodes refer to
template <class D>
class Walker {
 public:
  using Val = typename D::Val;
  Walker(D& d, const spec::Spec& spec, const spec::ModFunction& fn) : m_d(d), m_spec(spec), m_fn(fn) {}

  Val run() {
    for (size_t i = 0; i < m_fn.bindings.size(); ++i) {
      const auto& b = m_fn.bindings[i];
      if (!b.value) fail("binding without a value");
      m_bindings.push_back(m_d.bind(static_cast<int>(i), b.value->type, walk(*b.value)));
    }
    if (!m_fn.result) fail("mod function without a result");
    if (m_fn.result->type != Type::Bool) fail("mask_mod must be bool");
    return walk(*m_fn.result);
  }

 private:
  const Expr& arg(const Expr& e, size_t i) {
    if (i >= e.args.size() || !e.args[i]) fail("expression node is missing an operand");
    return *e.args[i];
  }
  Val top_of(Type t) { return t == Type::Int ? m_d.iv_top() : t == Type::Bool ? m_d.bv_top() : m_d.unknown(); }

  // Recursion is as deep as the tree (bounded by kMaxExprDepth in a checked spec); a deeper one is
  // refused rather than allowed to overflow the stack.
  Val walk(const Expr& e) {
    if (m_depth >= spec::kMaxExprDepth) fail("expression nested deeper than " + std::to_string(spec::kMaxExprDepth));
    ++m_depth;
    Val v = walk_node(e);
    --m_depth;
    return v;
  }

  Val walk_node(const Expr& e) {
    const Type t = e.type;
    auto a = [&](size_t i) { return walk(arg(e, i)); };
    auto int_rule = [&](Rule r, size_t n) -> Val {
      if (t != Type::Int) return m_d.unknown();
      std::vector<Val> args;
      for (size_t i = 0; i < n; ++i) args.push_back(a(i));
      return m_d.apply(r, args);
    };
    switch (e.op) {
      case Op::IntLit: return m_d.iv_point_literal(e.int_value);
      case Op::FloatLit: return m_d.unknown();
      case Op::BoolLit: return m_d.bv_point(e.bool_value);
      case Op::Var:
        if (e.var == spec::Var::Score) fail("`score` used in mask_mod");
        return m_d.var(e.var);
      case Op::Constant: {
        if (e.index < 0 || e.index >= static_cast<int>(m_spec.constants.size())) fail("constant index out of range");
        const auto& c = m_spec.constants[e.index];
        if (c.type == Type::Int) return m_d.iv_point_literal(c.int_value);
        if (c.type == Type::Bool) return m_d.bv_point(c.bool_value);
        return m_d.unknown();
      }
      case Op::Param:
        if (e.index < 0 || e.index >= static_cast<int>(m_spec.params.size())) fail("param index out of range");
        return m_spec.params[e.index].type == Type::Int ? m_d.int_param(e.index) : m_d.unknown();
      case Op::Binding:
        if (e.index < 0 || e.index >= static_cast<int>(m_bindings.size())) fail("binding index out of range");
        return m_bindings[e.index];
      case Op::TensorElem: {
        // Data-dependent: bounded by the elements themselves over a small index box (the
        // domain decides); top otherwise.
        if (e.index < 0 || e.index >= static_cast<int>(m_spec.tensors.size())) fail("tensor index out of range");
        std::vector<Val> idx;
        for (size_t i = 0; i < e.args.size(); ++i) idx.push_back(a(i));
        return t == Type::Int ? m_d.int_tensor(e.index, idx) : top_of(t);
      }
      case Op::Neg: return int_rule(Rule::IvNeg, 1);
      case Op::Not: return m_d.apply(Rule::BvNot, {a(0)});
      case Op::ToFloat: return m_d.unknown();
      case Op::Add: return int_rule(Rule::IvAdd, 2);
      case Op::Sub: return int_rule(Rule::IvSub, 2);
      case Op::Mul: return int_rule(Rule::IvMul, 2);
      case Op::Div: return m_d.unknown();
      case Op::FloorDiv: return int_rule(Rule::IvFloorDiv, 2);
      case Op::Mod: return int_rule(Rule::IvMod, 2);
      case Op::Pow: return int_rule(Rule::IvPow, 2);
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne: {
        const Type operand = arg(e, 0).type;
        if (operand == Type::Int && arg(e, 1).type == Type::Int) {
          const Rule r = e.op == Op::Lt ? Rule::IvLt : e.op == Op::Le ? Rule::IvLe : e.op == Op::Gt ? Rule::IvGt
                         : e.op == Op::Ge ? Rule::IvGe : e.op == Op::Eq ? Rule::IvEq : Rule::IvNe;
          return m_d.apply(r, {a(0), a(1)});
        }
        if (operand == Type::Bool && arg(e, 1).type == Type::Bool && (e.op == Op::Eq || e.op == Op::Ne)) {
          return m_d.apply(e.op == Op::Eq ? Rule::BvEq : Rule::BvNe, {a(0), a(1)});
        }
        return m_d.bv_top();  // float comparisons: unknown
      }
      case Op::And: return m_d.apply(Rule::BvAnd, {a(0), a(1)});
      case Op::Or: return m_d.apply(Rule::BvOr, {a(0), a(1)});
      case Op::Select:
        if (t == Type::Int) return m_d.apply(Rule::IvSelect, {a(0), a(1), a(2)});
        if (t == Type::Bool) return m_d.apply(Rule::BvSelect, {a(0), a(1), a(2)});
        return m_d.unknown();
      case Op::Call:
        switch (e.func) {
          case spec::Func::Abs: return int_rule(Rule::IvAbs, 1);
          case spec::Func::Min: return int_rule(Rule::IvMin, 2);
          case spec::Func::Max: return int_rule(Rule::IvMax, 2);
          case spec::Func::Clamp: return int_rule(Rule::IvClamp, 3);
          case spec::Func::Floor: return m_d.iv_top();  // floor of an unbounded float
          default: return top_of(t);
        }
    }
    fail("unknown expression node");
  }

  D& m_d;
  const spec::Spec& m_spec;
  const spec::ModFunction& m_fn;
  std::vector<Val> m_bindings;
  int m_depth = 0;  // walk() calls active
};

// ---- Host domain: runs the rules -----------------------------------------------------------------

struct HostDomain {
  struct Val {
    rules::KgIv iv{0, 0};
    rules::KgBv bv{true, true};
  };
  const TileQuery& tile;

  Val unknown() { return Val{}; }
  Val iv_top() { return Val{rules::kg_iv_top(), {}}; }
  Val bv_top() { return Val{{}, rules::kg_bv_top()}; }
  // The 32-bit value the generated code holds for the literal (int_literal wraps the same way).
  Val iv_point_literal(int64_t v) { return Val{rules::kg_iv_point(static_cast<int32_t>(v)), {}}; }
  Val bv_point(bool v) { return Val{{}, rules::kg_bv_point(v)}; }
  Val var(spec::Var v) {
    switch (v) {
      case spec::Var::B: return Val{rules::kg_iv_point(tile.b), {}};
      case spec::Var::H: return Val{rules::kg_iv_point(tile.h), {}};
      case spec::Var::QIdx: return Val{rules::kg_iv_range(tile.q_lo, tile.q_hi), {}};
      case spec::Var::KvIdx: return Val{rules::kg_iv_range(tile.kv_lo, tile.kv_hi), {}};
      default: return unknown();
    }
  }
  Val int_param(int index) {
    if (index >= static_cast<int>(tile.params.size())) fail("TileQuery lacks param " + std::to_string(index));
    return Val{rules::kg_iv_point(static_cast<int>(tile.params[index])), {}};
  }
  Val bind(int, Type, Val v) { return v; }
  // The hull of the elements in the index box, as the generated kg_iv_tensor* scan computes it.
  Val int_tensor(int index, const std::vector<Val>& idx) {
    if (!tile.tensor) return iv_top();
    long long count = 1;
    for (const Val& v : idx) {
      const long long width = v.iv.hi - v.iv.lo + 1;
      if (width > kTensorScanMax) return iv_top();
      count *= width;
    }
    if (count > kTensorScanMax) return iv_top();
    std::vector<int64_t> at(idx.size());
    for (size_t d = 0; d < idx.size(); ++d) at[d] = idx[d].iv.lo;
    long long lo = KG_IV_INT32_MAX, hi = KG_IV_INT32_MIN;
    for (long long n = 0; n < count; ++n) {
      const long long x = static_cast<int32_t>(tile.tensor(index, at));  // the reader's int
      lo = x < lo ? x : lo;
      hi = x > hi ? x : hi;
      for (size_t d = idx.size(); d-- > 0;) {  // next index, last dimension fastest
        if (++at[d] <= idx[d].iv.hi) break;
        at[d] = idx[d].iv.lo;
      }
    }
    return Val{rules::KgIv{lo, hi}, {}};
  }
  Val apply(Rule r, const std::vector<Val>& x) {
    using namespace rules;
    switch (r) {
      case Rule::IvNeg: return {kg_iv_neg(x[0].iv), {}};
      case Rule::IvAdd: return {kg_iv_add(x[0].iv, x[1].iv), {}};
      case Rule::IvSub: return {kg_iv_sub(x[0].iv, x[1].iv), {}};
      case Rule::IvMul: return {kg_iv_mul(x[0].iv, x[1].iv), {}};
      case Rule::IvFloorDiv: return {kg_iv_floordiv(x[0].iv, x[1].iv), {}};
      case Rule::IvMod: return {kg_iv_mod(x[0].iv, x[1].iv), {}};
      case Rule::IvPow: return {kg_iv_pow(x[0].iv, x[1].iv), {}};
      case Rule::IvAbs: return {kg_iv_abs(x[0].iv), {}};
      case Rule::IvMin: return {kg_iv_min(x[0].iv, x[1].iv), {}};
      case Rule::IvMax: return {kg_iv_max(x[0].iv, x[1].iv), {}};
      case Rule::IvClamp: return {kg_iv_clamp(x[0].iv, x[1].iv, x[2].iv), {}};
      case Rule::IvSelect: return {kg_iv_select(x[0].bv, x[1].iv, x[2].iv), {}};
      case Rule::IvLt: return {{}, kg_iv_lt(x[0].iv, x[1].iv)};
      case Rule::IvLe: return {{}, kg_iv_le(x[0].iv, x[1].iv)};
      case Rule::IvGt: return {{}, kg_iv_gt(x[0].iv, x[1].iv)};
      case Rule::IvGe: return {{}, kg_iv_ge(x[0].iv, x[1].iv)};
      case Rule::IvEq: return {{}, kg_iv_eq(x[0].iv, x[1].iv)};
      case Rule::IvNe: return {{}, kg_iv_ne(x[0].iv, x[1].iv)};
      case Rule::BvNot: return {{}, kg_bv_not(x[0].bv)};
      case Rule::BvAnd: return {{}, kg_bv_and(x[0].bv, x[1].bv)};
      case Rule::BvOr: return {{}, kg_bv_or(x[0].bv, x[1].bv)};
      case Rule::BvSelect: return {{}, kg_bv_select(x[0].bv, x[1].bv, x[2].bv)};
      case Rule::BvEq: return {{}, kg_bv_eq(x[0].bv, x[1].bv)};
      case Rule::BvNe: return {{}, kg_bv_ne(x[0].bv, x[1].bv)};
    }
    fail("unknown rule");
  }
};

// ---- Emitting domain: writes the same calls as CUDA ---------------------------------------------

struct EmitDomain {
  using Val = std::string;
  const spec::Spec& spec;
  const spec::ModFunction& fn;
  std::string body;            // binding lines
  std::vector<bool> scanned;   // tensors whose kg_iv_tensor* scan the classifier calls

  Val unknown() { return ""; }
  Val iv_top() { return "kg_iv_top()"; }
  Val bv_top() { return "kg_bv_top()"; }
  Val iv_point_literal(int64_t v) { return "kg_iv_point(" + int_literal(v) + ")"; }
  Val bv_point(bool v) { return v ? "kg_bv_point(true)" : "kg_bv_point(false)"; }
  Val var(spec::Var v) {
    switch (v) {
      case spec::Var::B: return "kg_iv_point(b)";
      case spec::Var::H: return "kg_iv_point(h)";
      case spec::Var::QIdx: return "kg_iv_range(q_lo, q_hi)";
      case spec::Var::KvIdx: return "kg_iv_range(kv_lo, kv_hi)";
      default: return unknown();
    }
  }
  Val int_param(int index) { return "kg_iv_point(ma." + param_field(spec, index) + ")"; }
  Val int_tensor(int index, const std::vector<Val>& idx) {
    std::string s = "kg_iv_" + tensor_field(spec, index) + "(ma";
    for (const Val& v : idx) {
      if (v.empty()) return iv_top();
      s += ", " + v;
    }
    scanned[static_cast<size_t>(index)] = true;
    return s + ")";
  }
  Val bind(int index, Type t, const Val& v) {
    if (t == Type::Float) return unknown();
    const std::string name = "iv" + std::to_string(index) + "_" + sanitize_identifier(fn.bindings[index].name);
    body += "  const " + std::string(t == Type::Int ? "KgIv " : "KgBv ") + name + " = " + v + ";\n";
    return name;
  }
  Val apply(Rule r, const std::vector<Val>& x) {
    std::string s = std::string(rule_function(r)) + "(";
    for (size_t i = 0; i < x.size(); ++i) s += (i ? ", " : "") + x[i];
    return s + ")";
  }
};

}  // namespace

TileClass classify_tile(const spec::Spec& spec, const TileQuery& tile) {
  if (!spec.mask_mod) return TileClass::Full;
  HostDomain d{tile};
  Walker<HostDomain> w(d, spec, *spec.mask_mod);
  switch (rules::kg_tile_class(w.run().bv)) {
    case rules::kg_tile_empty: return TileClass::Empty;
    case rules::kg_tile_partial: return TileClass::Partial;
    case rules::kg_tile_full: return TileClass::Full;
  }
  return TileClass::Partial;
}

namespace {

// kg_iv_tensor<i>_<name>(ma, KgIv i0, ...): what an int tensor read can give over an index box.
// A box of at most kTensorScanMax elements (a tile's 128 rows of a per-token tensor) is read
// whole and gives the exact hull, which is what lets a data-dependent mask (document ids,
// lengths, per-head choices) classify tiles Empty or Full at run time; a larger one is top. The
// reads go through the tensor's reader, so indices outside the shape give 0 there too.
std::string emit_tensor_scan(const spec::Spec& spec, int index) {
  const auto& t = spec.tensors[static_cast<size_t>(index)];
  const size_t rank = t.shape.size();
  std::string s = "// The hull of " + t.name + " over an index box (kg_classify_tile): exact up to " +
                  std::to_string(kTensorScanMax) + " elements, else top.\n";
  s += "[[maybe_unused]] __device__ __forceinline__ KgIv kg_iv_" + tensor_field(spec, index) + "(const KgModArgs& ma";
  for (size_t d = 0; d < rank; ++d) s += ", KgIv i" + std::to_string(d);
  s += ") {\n  long long count = 1;\n";
  for (size_t d = 0; d < rank; ++d) {
    const std::string i = "i" + std::to_string(d);
    s += "  if (" + i + ".hi - " + i + ".lo >= " + std::to_string(kTensorScanMax) + ") return kg_iv_top();\n";
    s += "  count *= " + i + ".hi - " + i + ".lo + 1;\n";
  }
  s += "  if (count > " + std::to_string(kTensorScanMax) + ") return kg_iv_top();\n";
  s += "  int lo = 2147483647, hi = -2147483647 - 1;\n";
  const std::string last = "i" + std::to_string(rank - 1);
  // The usual box lies inside the shape (a tile's rows of a per-token tensor): its runs along the
  // last index are contiguous, so they are read straight from the pointer, kScanBatch independent
  // loads at a time. The walk classifies a tile per lane (KgTileWalk) in every warp of the CTA; a
  // loop of one dependent read per element kept each warp waiting on a load latency per element
  // (the document mask at d128, S=4096, spent 0.35 of its 0.50 ms there).
  const std::string elem = tensor_element_type(t.dtype);
  const std::string ptr = "ma." + tensor_field(spec, index);
  s += "  if (";
  for (size_t d = 0; d < rank; ++d) {
    const std::string i = "i" + std::to_string(d);
    if (d) s += " && ";
    s += i + ".lo >= 0 && " + i + ".hi < " + tensor_extent_expr(t.shape[d], "ma.");
  }
  s += ") {\n";
  // A box whose other indices are points and whose last index covers whole chunks reads the
  // hulls the pre-pass wrote (kg_build_hulls, kg_hull_lookup in common.cuh), when it ran.
  s += "    if (ma." + hull_field(spec, index) + " != nullptr";
  for (size_t d = 0; d + 1 < rank; ++d) s += " && i" + std::to_string(d) + ".lo == i" + std::to_string(d) + ".hi";
  s += ") {\n      long long row = 0;\n";
  for (size_t d = 0; d + 1 < rank; ++d) {
    s += "      row = row * " + tensor_extent_expr(t.shape[d], "ma.") + " + i" + std::to_string(d) + ".lo;\n";
  }
  const std::string extent = tensor_extent_expr(t.shape[rank - 1], "ma.");
  s += "      const long long chunks = (" + extent + " + kg_hull_chunk - 1) / kg_hull_chunk;\n";
  s += "      if (kg_hull_lookup(ma." + hull_field(spec, index) + " + row * chunks, " + last + ".lo, " + last +
       ".hi, " + extent + ", &lo, &hi)) return KgIv{lo, hi};\n    }\n";
  s += "    const int len = static_cast<int>(" + last + ".hi - " + last + ".lo) + 1;\n";
  std::string indent = "    ";
  for (size_t d = 0; d + 1 < rank; ++d) {
    const std::string i = "i" + std::to_string(d), n = "n" + std::to_string(d);
    s += "#pragma unroll 1\n" + indent + "for (int " + n + " = 0; " + n + " <= static_cast<int>(" + i + ".hi - " + i +
         ".lo); ++" + n + ") {\n";
    indent += "  ";
  }
  s += indent + "long long off = 0;\n";
  for (size_t d = 0; d < rank; ++d) {
    const std::string i = "i" + std::to_string(d);
    s += indent + "off = off * " + tensor_extent_expr(t.shape[d], "ma.") + " + " + i + ".lo" +
         (d + 1 < rank ? " + n" + std::to_string(d) : "") + ";\n";
  }
  s += indent + "const " + elem + "* run = " + ptr + " + off;\n";
  s += indent + "int n = 0;\n";
  s += "#pragma unroll 1\n" + indent + "for (; n + " + std::to_string(kTensorScanBatch) + " <= len; n += " +
       std::to_string(kTensorScanBatch) + ") {\n";
  s += indent + "  int x[" + std::to_string(kTensorScanBatch) + "];\n";
  s += "#pragma unroll\n" + indent + "  for (int u = 0; u < " + std::to_string(kTensorScanBatch) +
       "; ++u) x[u] = static_cast<int>(__ldg(run + n + u));\n";
  s += "#pragma unroll\n" + indent + "  for (int u = 0; u < " + std::to_string(kTensorScanBatch) + "; ++u) {\n";
  s += indent + "    lo = x[u] < lo ? x[u] : lo;\n" + indent + "    hi = x[u] > hi ? x[u] : hi;\n" + indent + "  }\n";
  s += indent + "}\n";
  s += "#pragma unroll 1\n" + indent + "for (; n < len; ++n) {\n";
  s += indent + "  const int x = static_cast<int>(__ldg(run + n));\n";
  s += indent + "  lo = x < lo ? x : lo;\n" + indent + "  hi = x > hi ? x : hi;\n" + indent + "}\n";
  for (size_t d = 0; d + 1 < rank; ++d) {
    indent.resize(indent.size() - 2);
    s += indent + "}\n";
  }
  s += "    return KgIv{lo, hi};\n  }\n";
  // Elsewhere, element by element through the reader (0 outside the shape). 32-bit loop counters
  // and bounds (the box is small and its ends are int32), loops not unrolled: the walk runs in the
  // producer warpgroup's few registers too. ptxas (nvcc 13.0), the sm_90a document-and-causal
  // kernel with a 56-register producer: 64-bit counters spilled 62/156 bytes, 32-bit ones 26/68
  // (also with unroll 4), 32-bit ones not unrolled 6/8.
  indent = "  ";
  for (size_t d = 0; d < rank; ++d) {
    const std::string i = "i" + std::to_string(d), n = "n" + std::to_string(d);
    s += "#pragma unroll 1\n" + indent + "for (int " + n + " = 0; " + n + " <= static_cast<int>(" + i + ".hi - " + i +
         ".lo); ++" + n + ") {\n";
    indent += "  ";
  }
  s += indent + "const int x = " + tensor_reader(spec, index) + "(ma";
  for (size_t d = 0; d < rank; ++d) {
    s += ", static_cast<int>(i" + std::to_string(d) + ".lo) + n" + std::to_string(d);
  }
  s += ");\n";
  s += indent + "lo = x < lo ? x : lo;\n" + indent + "hi = x > hi ? x : hi;\n";
  for (size_t d = rank; d-- > 0;) {
    indent.resize(indent.size() - 2);
    s += indent + "}\n";
  }
  s += "  return KgIv{lo, hi};\n}\n\n";
  return s;
}

}  // namespace

std::vector<bool> classify_tile_scans(const spec::Spec& spec) {
  if (!spec.mask_mod) return std::vector<bool>(spec.tensors.size(), false);
  EmitDomain d{spec, *spec.mask_mod, {}, std::vector<bool>(spec.tensors.size(), false)};
  Walker<EmitDomain> w(d, spec, *spec.mask_mod);
  (void)w.run();
  return d.scanned;
}

std::string hull_field(const spec::Spec& spec, int index) { return "hull_" + tensor_field(spec, index); }

std::string emit_classify_tile(const spec::Spec& spec) {
  std::string out =
      "// Class of the tile [q_lo, q_hi] x [kv_lo, kv_hi] (inclusive) of one (b, h): mask_mod evaluated over\n"
      "// intervals with the rules of interval_rules.inc (sound: Empty and Full are never wrong).\n"
      "[[maybe_unused]] __device__ __forceinline__ KgTileClass kg_classify_tile(const KgModArgs& ma, int b, int h,\n"
      "                                                                         int q_lo, int q_hi, int kv_lo, int kv_hi) {\n"
      "  (void)ma; (void)b; (void)h; (void)q_lo; (void)q_hi; (void)kv_lo; (void)kv_hi;\n";
  if (!spec.mask_mod) return out + "  return kg_tile_full;  // no mask_mod\n}\n";
  EmitDomain d{spec, *spec.mask_mod, {}, std::vector<bool>(spec.tensors.size(), false)};
  Walker<EmitDomain> w(d, spec, *spec.mask_mod);
  const std::string result = w.run();
  std::string scans;
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    if (d.scanned[i]) scans += emit_tensor_scan(spec, static_cast<int>(i));
  }
  return scans + out + d.body + "  return kg_tile_class(" + result + ");\n}\n";
}

const char* tile_class_name(TileClass c) {
  switch (c) {
    case TileClass::Empty: return "Empty";
    case TileClass::Partial: return "Partial";
    case TileClass::Full: return "Full";
  }
  return "?";
}

}  // namespace kg::codegen
