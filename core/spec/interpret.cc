#include "spec/interpret.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "spec/limits.h"

namespace kg::spec {
namespace {

struct Value {
  Type type = Type::Int;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;

  static Value of_int(int64_t v) { return {Type::Int, v, 0.0, false}; }
  static Value of_float(double v) { return {Type::Float, 0, v, false}; }
  static Value of_bool(bool v) { return {Type::Bool, 0, 0.0, v}; }
};

// Wrapping int64 arithmetic (signed overflow is undefined in C++; Python ints do not overflow).
int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

int64_t int_floordiv(int64_t a, int64_t b) {
  if (b == 0) {
    return 0;
  }
  if (b == -1) {
    return wrap_sub(0, a);  // INT64_MIN / -1 wraps
  }
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) {
    --q;
  }
  return q;
}

int64_t int_mod(int64_t a, int64_t b) {
  if (b == 0 || b == -1) {
    return 0;
  }
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) {
    r += b;
  }
  return r;
}

int64_t int_pow(int64_t base, int64_t exp) {
  if (exp < 0) {
    if (base == 1) {
      return 1;
    }
    if (base == -1) {
      return exp % 2 == 0 ? 1 : -1;
    }
    return 0;
  }
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) {
      result = wrap_mul(result, base);
    }
    base = wrap_mul(base, base);
    exp >>= 1;
  }
  return result;
}

// CPython's float_divmod.
void float_divmod(double a, double b, double* floordiv, double* mod) {
  if (b == 0.0) {
    *floordiv = std::floor(a / b);
    *mod = std::fmod(a, b);  // NaN
    return;
  }
  double m = std::fmod(a, b);
  double div = (a - m) / b;
  if (m != 0.0) {
    if ((b < 0) != (m < 0)) {
      m += b;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, b);
  }
  double fd;
  if (div != 0.0) {
    fd = std::floor(div);
    if (div - fd > 0.5) {
      fd += 1.0;
    }
  } else {
    fd = std::copysign(0.0, a / b);
  }
  *floordiv = fd;
  *mod = m;
}

int64_t floor_to_int(double x) {
  if (std::isnan(x)) {
    return 0;
  }
  const double f = std::floor(x);
  if (f >= 9223372036854775807.0) {
    return std::numeric_limits<int64_t>::max();
  }
  if (f <= -9223372036854775808.0) {
    return std::numeric_limits<int64_t>::min();
  }
  return static_cast<int64_t>(f);
}

int64_t dim_size(const TensorDim& d, const RuntimeValues& rt) {
  switch (d.dim) {
    case Dim::Batch:
      return rt.batch;
    case Dim::HeadsQ:
      return rt.heads_q;
    case Dim::HeadsKv:
      return rt.heads_kv;
    case Dim::SeqQ:
      return rt.seqlen_q;
    case Dim::SeqKv:
      return rt.seqlen_kv;
    case Dim::Fixed:
      return d.extent;
  }
  return 0;
}

class Evaluator {
 public:
  Evaluator(const Spec& spec, const RuntimeValues& rt, double score, int b, int h, int q_idx, int kv_idx)
      : m_spec(spec), m_rt(rt), m_score(score), m_b(b), m_h(h), m_q(q_idx), m_kv(kv_idx) {
    if (rt.params.size() < spec.params.size() || rt.tensors.size() < spec.tensors.size()) {
      throw std::invalid_argument("spec '" + spec.name + "' needs " + std::to_string(spec.params.size()) +
                                  " params and " + std::to_string(spec.tensors.size()) + " tensors, got " +
                                  std::to_string(rt.params.size()) + " and " +
                                  std::to_string(rt.tensors.size()));
    }
  }

  Value run(const ModFunction& fn) {
    m_bindings.clear();
    m_depth = 0;
    for (const Binding& binding : fn.bindings) {
      m_bindings.push_back(eval(*binding.value));
    }
    return eval(*fn.result);
  }

 private:
  // Recursion is as deep as the tree, which the type checker bounds by kMaxExprDepth; a deeper
  // tree (not from parse_spec) is refused rather than allowed to overflow the stack.
  Value eval(const Expr& e) {
    if (m_depth >= kMaxExprDepth) {
      throw std::invalid_argument("expression nested deeper than " + std::to_string(kMaxExprDepth));
    }
    ++m_depth;
    const Value v = eval_node(e);
    --m_depth;
    return v;
  }

  Value eval_node(const Expr& e) {
    switch (e.op) {
      case Op::IntLit:
        return Value::of_int(e.int_value);
      case Op::FloatLit:
        return Value::of_float(e.float_value);
      case Op::BoolLit:
        return Value::of_bool(e.bool_value);
      case Op::Var:
        return var(e.var);
      case Op::Constant: {
        const ConstantDecl& c = m_spec.constants[static_cast<size_t>(e.index)];
        return Value{c.type, c.int_value, c.float_value, c.bool_value};
      }
      case Op::Param: {
        const double v = m_rt.params[static_cast<size_t>(e.index)];
        return e.type == Type::Int ? Value::of_int(static_cast<int64_t>(std::trunc(v))) : Value::of_float(v);
      }
      case Op::Binding:
        return m_bindings[static_cast<size_t>(e.index)];
      case Op::TensorElem:
        return tensor_elem(e);
      case Op::Neg: {
        const Value v = eval(*e.args[0]);
        return v.type == Type::Int ? Value::of_int(wrap_sub(0, v.i)) : Value::of_float(-v.f);
      }
      case Op::Not:
        return Value::of_bool(!eval(*e.args[0]).b);
      case Op::ToFloat:
        return Value::of_float(static_cast<double>(eval(*e.args[0]).i));
      case Op::And: {
        const bool l = eval(*e.args[0]).b;
        const bool r = eval(*e.args[1]).b;  // both sides always evaluated (ast.h)
        return Value::of_bool(l && r);
      }
      case Op::Or: {
        const bool l = eval(*e.args[0]).b;
        const bool r = eval(*e.args[1]).b;
        return Value::of_bool(l || r);
      }
      case Op::Select: {
        const bool c = eval(*e.args[0]).b;
        const Value yes = eval(*e.args[1]);
        const Value no = eval(*e.args[2]);
        return c ? yes : no;
      }
      case Op::Call:
        return call(e);
      default:
        return binary(e.op, eval(*e.args[0]), eval(*e.args[1]));
    }
  }

  Value var(Var v) const {
    switch (v) {
      case Var::Score:
        return Value::of_float(m_score);
      case Var::B:
        return Value::of_int(m_b);
      case Var::H:
        return Value::of_int(m_h);
      case Var::QIdx:
        return Value::of_int(m_q);
      case Var::KvIdx:
        return Value::of_int(m_kv);
    }
    return {};
  }

  Value tensor_elem(const Expr& e) {
    const TensorDecl& t = m_spec.tensors[static_cast<size_t>(e.index)];
    int64_t offset = 0;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      const int64_t size = dim_size(t.shape[d], m_rt);
      const int64_t i = eval(*e.args[d]).i;
      if (i < 0 || i >= size) {
        return e.type == Type::Float ? Value::of_float(0.0) : Value::of_int(0);
      }
      offset = offset * size + i;
    }
    const void* base = m_rt.tensors[static_cast<size_t>(e.index)];
    switch (t.dtype) {
      case TensorDType::Int32: {
        int32_t v;
        std::memcpy(&v, static_cast<const char*>(base) + offset * 4, 4);
        return Value::of_int(v);
      }
      case TensorDType::Int64: {
        int64_t v;
        std::memcpy(&v, static_cast<const char*>(base) + offset * 8, 8);
        return Value::of_int(v);
      }
      case TensorDType::Float32: {
        float v;
        std::memcpy(&v, static_cast<const char*>(base) + offset * 4, 4);
        return Value::of_float(v);
      }
    }
    return {};
  }

  Value call(const Expr& e) {
    std::vector<Value> a;
    for (const ExprPtr& arg : e.args) {
      a.push_back(eval(*arg));
    }
    const bool is_int = e.type == Type::Int && e.func != Func::Floor;
    auto pick_min = [&](const Value& x, const Value& y) {
      return is_int ? (y.i < x.i ? y : x) : (y.f < x.f ? y : x);
    };
    auto pick_max = [&](const Value& x, const Value& y) {
      return is_int ? (y.i > x.i ? y : x) : (y.f > x.f ? y : x);
    };
    switch (e.func) {
      case Func::Abs:
        return is_int ? Value::of_int(a[0].i < 0 ? wrap_sub(0, a[0].i) : a[0].i)
                      : Value::of_float(std::fabs(a[0].f));
      case Func::Min:
        return pick_min(a[0], a[1]);
      case Func::Max:
        return pick_max(a[0], a[1]);
      case Func::Clamp:
        return pick_min(pick_max(a[0], a[1]), a[2]);
      case Func::Exp:
        return Value::of_float(std::exp(a[0].f));
      case Func::Exp2:
        return Value::of_float(std::exp2(a[0].f));
      case Func::Log:
        return Value::of_float(std::log(a[0].f));
      case Func::Log2:
        return Value::of_float(std::log2(a[0].f));
      case Func::Sqrt:
        return Value::of_float(std::sqrt(a[0].f));
      case Func::Tanh:
        return Value::of_float(std::tanh(a[0].f));
      case Func::Floor:
        return Value::of_int(floor_to_int(a[0].f));
    }
    return {};
  }

  static Value binary(Op op, const Value& l, const Value& r) {
    if (l.type == Type::Bool) {  // == / != of two bools
      return Value::of_bool(op == Op::Eq ? l.b == r.b : l.b != r.b);
    }
    if (l.type == Type::Int) {  // the checker promoted both sides to one type
      switch (op) {
        case Op::Add:
          return Value::of_int(wrap_add(l.i, r.i));
        case Op::Sub:
          return Value::of_int(wrap_sub(l.i, r.i));
        case Op::Mul:
          return Value::of_int(wrap_mul(l.i, r.i));
        case Op::FloorDiv:
          return Value::of_int(int_floordiv(l.i, r.i));
        case Op::Mod:
          return Value::of_int(int_mod(l.i, r.i));
        case Op::Pow:
          return Value::of_int(int_pow(l.i, r.i));
        case Op::Lt:
          return Value::of_bool(l.i < r.i);
        case Op::Le:
          return Value::of_bool(l.i <= r.i);
        case Op::Gt:
          return Value::of_bool(l.i > r.i);
        case Op::Ge:
          return Value::of_bool(l.i >= r.i);
        case Op::Eq:
          return Value::of_bool(l.i == r.i);
        case Op::Ne:
          return Value::of_bool(l.i != r.i);
        default:
          break;
      }
      return {};
    }
    double floordiv = 0.0;
    double mod = 0.0;
    switch (op) {
      case Op::Add:
        return Value::of_float(l.f + r.f);
      case Op::Sub:
        return Value::of_float(l.f - r.f);
      case Op::Mul:
        return Value::of_float(l.f * r.f);
      case Op::Div:
        return Value::of_float(l.f / r.f);
      case Op::FloorDiv:
        float_divmod(l.f, r.f, &floordiv, &mod);
        return Value::of_float(floordiv);
      case Op::Mod:
        float_divmod(l.f, r.f, &floordiv, &mod);
        return Value::of_float(mod);
      case Op::Pow:
        return Value::of_float(std::pow(l.f, r.f));
      case Op::Lt:
        return Value::of_bool(l.f < r.f);
      case Op::Le:
        return Value::of_bool(l.f <= r.f);
      case Op::Gt:
        return Value::of_bool(l.f > r.f);
      case Op::Ge:
        return Value::of_bool(l.f >= r.f);
      case Op::Eq:
        return Value::of_bool(l.f == r.f);
      case Op::Ne:
        return Value::of_bool(l.f != r.f);
      default:
        break;
    }
    return {};
  }

  const Spec& m_spec;
  const RuntimeValues& m_rt;
  double m_score;
  int m_b, m_h, m_q, m_kv;
  std::vector<Value> m_bindings;
  int m_depth = 0;  // eval() calls active
};

}  // namespace

double eval_score_mod(const Spec& spec, const RuntimeValues& rt, double score, int b, int h, int q_idx,
                      int kv_idx) {
  if (!spec.score_mod) {
    return score;
  }
  const Value v = Evaluator(spec, rt, score, b, h, q_idx, kv_idx).run(*spec.score_mod);
  return v.type == Type::Int ? static_cast<double>(v.i) : v.f;
}

bool eval_mask_mod(const Spec& spec, const RuntimeValues& rt, int b, int h, int q_idx, int kv_idx) {
  if (!spec.mask_mod) {
    return true;
  }
  return Evaluator(spec, rt, 0.0, b, h, q_idx, kv_idx).run(*spec.mask_mod).b;
}

}  // namespace kg::spec
