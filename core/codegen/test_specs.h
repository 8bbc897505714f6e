// Hand-built typed specs for the codegen tests (the parser is tested on its own): small builders
// that set types the way the type checker does (int→float promotion as explicit ToFloat), and the
// attention variants of GPU.md.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "spec/ast.h"

namespace kg::codegen::testing {

using spec::Expr;
using spec::ExprPtr;
using spec::Func;
using spec::Op;
using spec::Type;

inline ExprPtr node(Op op, Type t, std::vector<ExprPtr> args = {}) {
  auto e = std::make_shared<Expr>();
  e->op = op;
  e->type = t;
  e->args = std::move(args);
  return e;
}
inline ExprPtr ilit(int64_t v) {
  auto e = std::make_shared<Expr>();
  e->op = Op::IntLit;
  e->type = Type::Int;
  e->int_value = v;
  return e;
}
inline ExprPtr flit(double v) {
  auto e = std::make_shared<Expr>();
  e->op = Op::FloatLit;
  e->type = Type::Float;
  e->float_value = v;
  return e;
}
inline ExprPtr blit(bool v) {
  auto e = std::make_shared<Expr>();
  e->op = Op::BoolLit;
  e->type = Type::Bool;
  e->bool_value = v;
  return e;
}
inline ExprPtr var(spec::Var v) {
  auto e = std::make_shared<Expr>();
  e->op = Op::Var;
  e->var = v;
  e->type = v == spec::Var::Score ? Type::Float : Type::Int;
  return e;
}
inline ExprPtr score() { return var(spec::Var::Score); }
inline ExprPtr b() { return var(spec::Var::B); }
inline ExprPtr h() { return var(spec::Var::H); }
inline ExprPtr q() { return var(spec::Var::QIdx); }
inline ExprPtr kv() { return var(spec::Var::KvIdx); }
inline ExprPtr indexed(Op op, int index, Type t, std::vector<ExprPtr> args = {}) {
  auto e = std::make_shared<Expr>();
  e->op = op;
  e->index = index;
  e->type = t;
  e->args = std::move(args);
  return e;
}
inline ExprPtr constant(int i, Type t) { return indexed(Op::Constant, i, t); }
inline ExprPtr param(int i, Type t) { return indexed(Op::Param, i, t); }
inline ExprPtr binding(int i, Type t) { return indexed(Op::Binding, i, t); }
inline ExprPtr tensor(int i, Type t, std::vector<ExprPtr> idx) { return indexed(Op::TensorElem, i, t, std::move(idx)); }

inline ExprPtr to_float(ExprPtr a) { return a->type == Type::Int ? node(Op::ToFloat, Type::Float, {a}) : a; }

// Binary operator with the type checker's typing and promotions.
inline ExprPtr bin(Op op, ExprPtr a, ExprPtr b) {
  switch (op) {
    case Op::And:
    case Op::Or: return node(op, Type::Bool, {a, b});
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
      if (a->type != b->type) return node(op, Type::Bool, {to_float(a), to_float(b)});
      return node(op, Type::Bool, {a, b});
    case Op::Div: return node(op, Type::Float, {to_float(a), to_float(b)});
    default:
      if (a->type == Type::Int && b->type == Type::Int) return node(op, Type::Int, {a, b});
      return node(op, Type::Float, {to_float(a), to_float(b)});
  }
}
inline ExprPtr un(Op op, ExprPtr a) { return node(op, op == Op::Not ? Type::Bool : a->type, {a}); }
inline ExprPtr call(Func f, std::vector<ExprPtr> args) {
  auto e = std::make_shared<Expr>();
  e->op = Op::Call;
  e->func = f;
  bool all_int = true;
  for (const auto& a : args) all_int = all_int && a->type == Type::Int;
  const bool int_func = f == Func::Abs || f == Func::Min || f == Func::Max || f == Func::Clamp;
  if (f == Func::Floor) {
    e->type = Type::Int;
  } else if (int_func && all_int) {
    e->type = Type::Int;
  } else {
    e->type = Type::Float;
    for (auto& a : args) a = to_float(a);
  }
  e->args = std::move(args);
  return e;
}
inline ExprPtr select(ExprPtr c, ExprPtr a, ExprPtr b) {
  if (a->type != b->type) return node(Op::Select, Type::Float, {c, to_float(a), to_float(b)});
  return node(Op::Select, a->type, {c, a, b});
}

inline spec::ModFunction fn(ExprPtr result, std::vector<std::pair<std::string, ExprPtr>> bindings = {}) {
  spec::ModFunction f;
  for (auto& [name, value] : bindings) f.bindings.push_back(spec::Binding{name, value, {}});
  f.result = std::move(result);
  return f;
}
inline spec::ConstantDecl int_constant(const std::string& name, int64_t v) {
  spec::ConstantDecl c;
  c.name = name;
  c.type = Type::Int;
  c.int_value = v;
  return c;
}
inline spec::ConstantDecl float_constant(const std::string& name, double v) {
  spec::ConstantDecl c;
  c.name = name;
  c.type = Type::Float;
  c.float_value = v;
  return c;
}

inline spec::Spec base(const std::string& name, spec::DType dtype = spec::DType::BF16, int head_dim = 128) {
  spec::Spec s;
  s.file = "specs/" + name + ".yaml";
  s.name = name;
  s.dtype = dtype;
  s.head_dim = head_dim;
  return s;
}

// ---- The variants ------------------------------------------------------------------------------

inline spec::Spec full_spec(spec::DType dtype = spec::DType::BF16, int head_dim = 128) {
  return base("full", dtype, head_dim);
}

// mask_mod: q_idx >= kv_idx
inline spec::Spec causal_spec(spec::DType dtype = spec::DType::BF16, int head_dim = 128) {
  spec::Spec s = base("causal", dtype, head_dim);
  s.mask_mod = fn(bin(Op::Ge, q(), kv()));
  return s;
}

// score_mod: score + (q_idx - kv_idx); mask_mod: q_idx >= kv_idx
inline spec::Spec relpos_causal_spec(int head_dim = 128) {
  spec::Spec s = base("relpos_causal", spec::DType::BF16, head_dim);
  s.score_mod = fn(bin(Op::Add, score(), bin(Op::Sub, q(), kv())));
  s.mask_mod = fn(bin(Op::Ge, q(), kv()));
  return s;
}

// constants: CAP = 30.0; score_mod: CAP * tanh(score / CAP); mask_mod: q_idx >= kv_idx
inline spec::Spec softcap_spec() {
  spec::Spec s = base("softcap_causal");
  s.constants.push_back(float_constant("CAP", 30.0));
  const auto cap = constant(0, Type::Float);
  s.score_mod = fn(bin(Op::Mul, cap, call(Func::Tanh, {bin(Op::Div, score(), cap)})));
  s.mask_mod = fn(bin(Op::Ge, q(), kv()));
  return s;
}

// params: num_heads (int); score_mod: slope = exp2(-8.0 * (h + 1) / num_heads);
// score + slope * (kv_idx - q_idx); mask_mod: q_idx >= kv_idx
inline spec::Spec alibi_spec() {
  spec::Spec s = base("alibi_causal");
  spec::ParamDecl p;
  p.name = "num_heads";
  p.type = Type::Int;
  s.params.push_back(p);
  const auto slope = call(Func::Exp2, {bin(Op::Div, bin(Op::Mul, flit(-8.0), bin(Op::Add, h(), ilit(1))),
                                           param(0, Type::Int))});
  s.score_mod = fn(bin(Op::Add, score(), bin(Op::Mul, binding(0, Type::Float), bin(Op::Sub, kv(), q()))),
                   {{"slope", slope}});
  s.mask_mod = fn(bin(Op::Ge, q(), kv()));
  return s;
}

// constants: W = 1024; mask_mod: q_idx >= kv_idx and q_idx - kv_idx < W
inline spec::Spec sliding_window_spec() {
  spec::Spec s = base("sliding_window");
  s.constants.push_back(int_constant("W", 1024));
  s.mask_mod = fn(bin(Op::And, bin(Op::Ge, q(), kv()), bin(Op::Lt, bin(Op::Sub, q(), kv()), constant(0, Type::Int))));
  return s;
}

// 2-D neighbourhood on a G x G grid (token = y * G + x), window radius R, centre clamped into the
// grid (NATTEN): constants G = 64, R = 6;
//   qx = q_idx % G; qy = q_idx // G; kx = kv_idx % G; ky = kv_idx // G
//   abs(kx - clamp(qx, R, G - 1 - R)) <= R and abs(ky - clamp(qy, R, G - 1 - R)) <= R
inline spec::Spec neighbourhood_spec(int64_t grid = 64, int64_t radius = 6) {
  spec::Spec s = base("neighbourhood_2d");
  s.constants.push_back(int_constant("G", grid));
  s.constants.push_back(int_constant("R", radius));
  const auto G = constant(0, Type::Int);
  const auto R = constant(1, Type::Int);
  const auto hi = bin(Op::Sub, bin(Op::Sub, G, ilit(1)), R);
  const auto ok = [&](int k, int qq) {
    return bin(Op::Le,
               call(Func::Abs, {bin(Op::Sub, binding(k, Type::Int), call(Func::Clamp, {binding(qq, Type::Int), R, hi}))}),
               R);
  };
  s.mask_mod = fn(bin(Op::And, ok(2, 0), ok(3, 1)), {{"qx", bin(Op::Mod, q(), G)},
                                                    {"qy", bin(Op::FloorDiv, q(), G)},
                                                    {"kx", bin(Op::Mod, kv(), G)},
                                                    {"ky", bin(Op::FloorDiv, kv(), G)}});
  return s;
}

// tensors: doc_q int32 [batch, seq_q], doc_kv int32 [batch, seq_kv];
// mask_mod: doc_q[b, q_idx] == doc_kv[b, kv_idx] and q_idx >= kv_idx
inline spec::Spec document_spec() {
  spec::Spec s = base("document_causal");
  spec::TensorDecl tq;
  tq.name = "doc_q";
  tq.dtype = spec::TensorDType::Int32;
  tq.shape = {{spec::Dim::Batch, 0}, {spec::Dim::SeqQ, 0}};
  spec::TensorDecl tk = tq;
  tk.name = "doc_kv";
  tk.shape = {{spec::Dim::Batch, 0}, {spec::Dim::SeqKv, 0}};
  s.tensors = {tq, tk};
  s.mask_mod = fn(bin(Op::And, bin(Op::Eq, tensor(0, Type::Int, {b(), q()}), tensor(1, Type::Int, {b(), kv()})),
                      bin(Op::Ge, q(), kv())));
  return s;
}

}  // namespace kg::codegen::testing
