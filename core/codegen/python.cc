#include "codegen/python.h"

#include <charconv>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "spec/limits.h"
#include "spec/names.h"
#include "version.h"

namespace kg::codegen {

namespace {

using spec::Expr;
using spec::Func;
using spec::ModFunction;
using spec::Op;
using spec::Spec;
using spec::Type;

// Python operator precedence, loosest first (the Python reference manual's table).
enum Prec : int {
  k_cond = 1,     // x if c else y
  k_or = 2,       // or
  k_and = 3,      // and
  k_not = 4,      // not x
  k_cmp = 5,      // < <= > >= == != (chain: never left unparenthesised)
  k_bitor = 6,    // |
  k_bitand = 8,   // &
  k_add = 10,     // + -
  k_mul = 11,     // * / // %
  k_unary = 12,   // -x ~x
  k_pow = 13,     // **
  k_atom = 14,    // names, literals, calls, subscripts
};

// A rendered subexpression. `tensor`: (Torch flavor) its value is a torch.Tensor rather than a
// Python scalar; scalars follow Python semantics and torch accepts them beside tensors.
struct Py {
  std::string text;
  int prec = k_atom;
  bool tensor = false;
};

// Names that the generated module itself defines or imports; a spec name equal to one of them
// gets a trailing underscore. Spec names are never Python keywords (spec/names.h rejects them).
const std::set<std::string_view> k_module_names = {
    "math", "torch", "params", "tensors", "make_mods", "score_mod", "mask_mod", "NAME", "DTYPE",
    "HEAD_DIM", "CONSTANTS", "PARAMS", "TENSORS", "HAS_SCORE_MOD", "HAS_MASK_MOD", "float", "int",
    "abs", "min", "max", "list", "bool", "True", "False", "None"};

std::string py_name(const std::string& name) {
  return k_module_names.count(name) ? name + "_" : name;
}

std::string paren(const Py& p, bool need) {
  return need ? "(" + p.text + ")" : p.text;
}

std::string float_literal(double v) {
  if (std::isnan(v)) {
    return "math.nan";
  }
  if (std::isinf(v)) {
    return v > 0 ? "math.inf" : "-math.inf";
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) {
    s += ".0";
  }
  return s;
}

const char* torch_dtype(Type t) {
  switch (t) {
    case Type::Int: return "torch.int32";
    case Type::Float: return "torch.float32";
    case Type::Bool: return "torch.bool";
  }
  return "torch.float32";
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

std::string constant_value(const spec::ConstantDecl& c) {
  switch (c.type) {
    case Type::Int: return std::to_string(c.int_value);
    case Type::Float: return float_literal(c.float_value);
    case Type::Bool: return c.bool_value ? "True" : "False";
  }
  return "None";
}

// Renders the expressions of one mod function.
class ExprWriter {
 public:
  ExprWriter(const Spec& spec, PythonFlavor flavor) : m_spec(spec), m_torch(flavor == PythonFlavor::Torch) {}

  // Starts a new function: binding indices refer to `fn`'s bindings, rendered so far.
  void begin_function(const ModFunction& fn) {
    m_fn = &fn;
    m_binding_tensor.clear();
  }
  // Records that binding number m_binding_tensor.size() was rendered as `value`.
  void add_binding(const Py& value) { m_binding_tensor.push_back(value.tensor); }

  // Recursion is as deep as the tree (bounded by kMaxExprDepth in a checked spec); a deeper one is
  // refused rather than allowed to overflow the stack.
  Py render(const Expr& e) {
    if (m_depth >= spec::kMaxExprDepth) {
      throw std::invalid_argument("emit_python_mods: expression nested deeper than " +
                                  std::to_string(spec::kMaxExprDepth));
    }
    ++m_depth;
    Py p = render_node(e);
    --m_depth;
    return p;
  }

 private:
  Py render_node(const Expr& e) {
    switch (e.op) {
      case Op::IntLit:
        return {std::to_string(e.int_value), e.int_value < 0 ? k_unary : k_atom, false};
      case Op::FloatLit: {
        std::string s = float_literal(e.float_value);
        return {s, s[0] == '-' ? k_unary : k_atom, false};
      }
      case Op::BoolLit:
        return {e.bool_value ? "True" : "False", k_atom, false};
      case Op::Var:
        return {var_name(e.var), k_atom, true};
      case Op::Constant:
        return {py_name(m_spec.constants.at(e.index).name), k_atom, false};
      case Op::Param:
        return {py_name(m_spec.params.at(e.index).name), k_atom, false};
      case Op::Binding:
        return {py_name(m_fn->bindings.at(e.index).name), k_atom, m_binding_tensor.at(e.index)};
      case Op::TensorElem: return tensor_elem(e);
      case Op::Neg: {
        Py a = render(*e.args.at(0));
        return {"-" + paren(a, a.prec < k_unary), k_unary, a.tensor};
      }
      case Op::Not: {
        Py a = render(*e.args.at(0));
        if (m_torch && a.tensor) {
          return {"~" + paren(a, a.prec < k_unary), k_unary, true};
        }
        return {"not " + paren(a, a.prec <= k_cmp), k_not, false};  // not (a == b), for the reader
      }
      case Op::ToFloat: {
        Py a = render(*e.args.at(0));
        if (m_torch && a.tensor) {
          return {paren(a, a.prec < k_atom) + ".to(torch.float32)", k_atom, true};
        }
        return {"float(" + a.text + ")", k_atom, false};
      }
      case Op::Add: return binary(e, " + ", k_add);
      case Op::Sub: return binary(e, " - ", k_add);
      case Op::Mul: return binary(e, " * ", k_mul);
      case Op::Div: return binary(e, " / ", k_mul);
      case Op::FloorDiv: return binary(e, " // ", k_mul);
      case Op::Mod: return binary(e, " % ", k_mul);
      case Op::Pow: return binary(e, " ** ", k_pow);
      case Op::Lt: return binary(e, " < ", k_cmp);
      case Op::Le: return binary(e, " <= ", k_cmp);
      case Op::Gt: return binary(e, " > ", k_cmp);
      case Op::Ge: return binary(e, " >= ", k_cmp);
      case Op::Eq: return binary(e, " == ", k_cmp);
      case Op::Ne: return binary(e, " != ", k_cmp);
      case Op::And: return logical(e, true);
      case Op::Or: return logical(e, false);
      case Op::Select: return select(e);
      case Op::Call: return call(e);
    }
    throw std::logic_error("emit_python_mods: unknown expression node");
  }

  Py tensor_elem(const Expr& e) {
    std::string text = py_name(m_spec.tensors.at(e.index).name);
    if (m_torch) {
      text += "[";
      for (size_t i = 0; i < e.args.size(); ++i) {
        text += (i ? ", " : "") + render(*e.args[i]).text;
      }
      text += "]";
    } else {
      for (const auto& a : e.args) {
        text += "[" + render(*a).text + "]";
      }
    }
    return {text, k_atom, true};  // an element of a torch tensor is a 0-d tensor, never a scalar
  }

  // Left-associative binary operators, and ** (right-associative). Comparisons never chain.
  Py binary(const Expr& e, const char* op, int prec) {
    Py a = render(*e.args.at(0));
    Py b = render(*e.args.at(1));
    bool left_paren, right_paren;
    if (prec == k_pow) {
      left_paren = a.prec <= prec;
      right_paren = b.prec < prec;
    } else if (prec == k_cmp) {
      left_paren = a.prec <= prec;
      right_paren = b.prec <= prec;
    } else {
      left_paren = a.prec < prec;
      right_paren = b.prec <= prec;
    }
    return {paren(a, left_paren) + op + paren(b, right_paren), prec, a.tensor || b.tensor};
  }

  // and/or: Python keywords on scalars; & and | on bool tensors, with the tensor operand first
  // (tensor & True works; both operands are always evaluated, so the order does not matter).
  Py logical(const Expr& e, bool is_and) {
    Py a = render(*e.args.at(0));
    Py b = render(*e.args.at(1));
    if (m_torch && (a.tensor || b.tensor)) {
      if (!a.tensor) {
        std::swap(a, b);
      }
      int prec = is_and ? k_bitand : k_bitor;
      return {paren(a, a.prec < prec) + (is_and ? " & " : " | ") + paren(b, b.prec <= prec), prec, true};
    }
    int prec = is_and ? k_and : k_or;
    return {paren(a, a.prec < prec) + (is_and ? " and " : " or ") + paren(b, b.prec <= prec), prec, false};
  }

  Py select(const Expr& e) {
    Py c = render(*e.args.at(0));
    Py x = render(*e.args.at(1));
    Py y = render(*e.args.at(2));
    if (m_torch && c.tensor) {
      if (!x.tensor && !y.tensor) {
        // torch.where needs a tensor among its values to fix the result dtype.
        x = {"torch.full_like(" + c.text + ", " + x.text + ", dtype=" + torch_dtype(e.type) + ")", k_atom, true};
      }
      return {"torch.where(" + c.text + ", " + x.text + ", " + y.text + ")", k_atom, true};
    }
    return {paren(x, x.prec <= k_cond) + " if " + paren(c, c.prec <= k_cond) + " else " + paren(y, y.prec <= k_cond),
            k_cond, x.tensor || y.tensor};
  }

  static Py fn(const std::string& name, const std::vector<Py>& args, bool tensor) {
    std::string text = name + "(";
    for (size_t i = 0; i < args.size(); ++i) {
      text += (i ? ", " : "") + args[i].text;
    }
    return {text + ")", k_atom, tensor};
  }

  // min / max of two values, either of which may be a Python scalar.
  static Py min_max(bool is_min, const Py& a, const Py& b, bool torch) {
    if (!torch || (!a.tensor && !b.tensor)) {
      return fn(is_min ? "min" : "max", {a, b}, false);
    }
    if (a.tensor && b.tensor) {
      return fn(is_min ? "torch.minimum" : "torch.maximum", {a, b}, true);
    }
    const Py& t = a.tensor ? a : b;
    const Py& s = a.tensor ? b : a;
    return {"torch.clamp(" + t.text + (is_min ? ", max=" : ", min=") + s.text + ")", k_atom, true};
  }

  Py call(const Expr& e) {
    std::vector<Py> args;
    bool any_tensor = false;
    for (const auto& a : e.args) {
      args.push_back(render(*a));
      any_tensor = any_tensor || args.back().tensor;
    }
    const bool t = m_torch && any_tensor;
    auto unary = [&](const char* math_fn, const char* torch_fn) {
      return fn(t ? torch_fn : math_fn, {args.at(0)}, t);
    };
    switch (e.func) {
      case Func::Abs: return unary("abs", "torch.abs");
      case Func::Min: return min_max(true, args.at(0), args.at(1), m_torch);
      case Func::Max: return min_max(false, args.at(0), args.at(1), m_torch);
      case Func::Clamp:  // clamp(x, lo, hi) = min(max(x, lo), hi)
        return min_max(true, min_max(false, args.at(0), args.at(1), m_torch), args.at(2), m_torch);
      case Func::Exp: return unary("math.exp", "torch.exp");
      case Func::Exp2:
        if (t) {
          return fn("torch.exp2", {args.at(0)}, true);
        }
        // math.exp2 needs Python 3.11; 2.0 ** x is the same value.
        return {"2.0 ** " + paren(args.at(0), args.at(0).prec < k_pow), k_pow, false};
      case Func::Log: return unary("math.log", "torch.log");
      case Func::Log2: return unary("math.log2", "torch.log2");
      case Func::Sqrt: return unary("math.sqrt", "torch.sqrt");
      case Func::Tanh: return unary("math.tanh", "torch.tanh");
      case Func::Floor:
        if (t) {  // Float -> Int, like math.floor
          return {"torch.floor(" + args.at(0).text + ").to(torch.int32)", k_atom, true};
        }
        return fn("math.floor", {args.at(0)}, false);
    }
    throw std::logic_error("emit_python_mods: unknown function");
  }

  const Spec& m_spec;
  bool m_torch;
  const ModFunction* m_fn = nullptr;
  std::vector<bool> m_binding_tensor;
  int m_depth = 0;  // render() calls active
};

// Writes `def <signature>:` with its bindings and return statement, indented by `indent`. Torch:
// a scalar result becomes a tensor (FlexAttention expects one) and an Int score a float32 one.
void write_function(std::string& out, ExprWriter& w, const std::string& indent, const char* signature,
                    const ModFunction& fn, bool torch, bool is_mask) {
  out += indent + "def " + signature + ":\n";
  w.begin_function(fn);
  for (const auto& b : fn.bindings) {
    Py v = w.render(*b.value);
    out += indent + "    " + py_name(b.name) + " = " + v.text + "\n";
    w.add_binding(v);
  }
  Py r = w.render(*fn.result);
  std::string text = r.text;
  if (torch) {
    if (!r.tensor) {
      text = is_mask ? "torch.full_like(q_idx, " + r.text + ", dtype=torch.bool)"
                     : "torch.full_like(score, " + r.text + ")";
    } else if (!is_mask && fn.result->type == Type::Int) {
      text = paren(r, r.prec < k_atom) + ".to(torch.float32)";
    }
  }
  out += indent + "    return " + text + "\n";
}

std::string basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string header_line(const Spec& spec, const char* what) {
  std::string from = spec.name;
  if (!spec.file.empty()) {
    from += " (" + basename(spec.file) + ")";
  }
  return std::string("# Generated by kernelgen ") + kVersion + " (" + kGeneratorVersion + ") from spec " + from +
         ": " + what + ". Do not edit.\n";
}

const char* dtype_name(spec::DType d) { return d == spec::DType::BF16 ? "bf16" : "fp16"; }

std::string emit_plain(const Spec& spec) {
  std::string out = header_line(spec, "score_mod / mask_mod as plain Python");
  out += "import math\n";
  if (!spec.constants.empty()) {
    out += "\n# Compile-time constants.\n";
    for (const auto& c : spec.constants) {
      out += py_name(c.name) + " = " + constant_value(c) + "\n";
    }
  }
  if (!spec.params.empty()) {
    out += "\n# Runtime parameters: scalars passed at launch.\n";
    for (const auto& p : spec.params) {
      out += py_name(p.name) + (p.type == Type::Int ? ": int\n" : ": float\n");
    }
  }
  if (!spec.tensors.empty()) {
    out += "\n# Runtime tensors: nested lists, indexed name[i][j].\n";
    for (const auto& t : spec.tensors) {
      out += py_name(t.name) + ": list  # " + spec::tensor_dtype_name(t.dtype) + " [";
      for (size_t i = 0; i < t.shape.size(); ++i) {
        const auto& d = t.shape[i];
        out += (i ? ", " : "") + spec::dim_text(d);
      }
      out += "]\n";
    }
  }
  ExprWriter w(spec, PythonFlavor::Plain);
  out += "\n\n";
  if (spec.score_mod) {
    write_function(out, w, "", "score_mod(score, b, h, q_idx, kv_idx)", *spec.score_mod, false, false);
  } else {
    out += "def score_mod(score, b, h, q_idx, kv_idx):\n    return score  # the spec has no score_mod\n";
  }
  out += "\n\n";
  if (spec.mask_mod) {
    write_function(out, w, "", "mask_mod(b, h, q_idx, kv_idx)", *spec.mask_mod, false, true);
  } else {
    out += "def mask_mod(b, h, q_idx, kv_idx):\n    return True  # the spec has no mask_mod\n";
  }
  return out;
}

std::string emit_torch(const Spec& spec) {
  std::string out = header_line(spec, "FlexAttention mods (torch flavor)");
  out += "\"\"\"score_mod / mask_mod of spec `" + spec.name + "` for torch.nn.attention.flex_attention.\n\n";
  out += "    score_mod, mask_mod = make_mods(params={...}, tensors={...})  # None where the spec has none\n\n";
  out += "Tensor ints are torch.int32 (FlexAttention's index dtype), tensor floats float32; parts that read\n";
  out += "no tensor stay Python scalars. `//` and `%` floor as in Python.\n\"\"\"\n";
  out += "import math\n\nimport torch\n\n";
  out += "NAME = \"" + spec.name + "\"\n";
  out += std::string("DTYPE = \"") + dtype_name(spec.dtype) + "\"\n";
  out += "HEAD_DIM = " + std::to_string(spec.head_dim) + "\n";
  out += "CONSTANTS = {";
  for (size_t i = 0; i < spec.constants.size(); ++i) {
    out += (i ? ", \"" : "\"") + spec.constants[i].name + "\": " + constant_value(spec.constants[i]);
  }
  out += "}\n# (name, \"int\" | \"float\"), in ABI order (KgAttentionArgs.params).\nPARAMS = [";
  for (size_t i = 0; i < spec.params.size(); ++i) {
    out += (i ? ", (\"" : "(\"") + spec.params[i].name + "\", " + (spec.params[i].type == Type::Int ? "\"int\")" : "\"float\")");
  }
  out += "]\n# (name, dtype, shape) in ABI order (KgAttentionArgs.tensors); shape entries are \"batch\",\n"
         "# \"heads_q\", \"heads_kv\", \"seq_q\", \"seq_kv\" or a fixed extent.\nTENSORS = [";
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const auto& t = spec.tensors[i];
    out += std::string(i ? ", " : "") + "(\"" + t.name + "\", \"" + spec::tensor_dtype_name(t.dtype) + "\", (";
    for (size_t j = 0; j < t.shape.size(); ++j) {
      const auto& d = t.shape[j];
      out += d.dim == spec::Dim::Fixed ? std::to_string(d.extent) : "\"" + std::string(spec::dim_name(d.dim)) + "\"";
      out += (t.shape.size() == 1 || j + 1 < t.shape.size()) ? "," : "";
      out += j + 1 < t.shape.size() ? " " : "";
    }
    out += "))";
  }
  out += "]\n";
  out += std::string("HAS_SCORE_MOD = ") + (spec.score_mod ? "True" : "False") + "\n";
  out += std::string("HAS_MASK_MOD = ") + (spec.mask_mod ? "True" : "False") + "\n\n\n";

  out += "def make_mods(params=None, tensors=None):\n";
  out += "    \"\"\"params: {name: number}; tensors: {name: torch.Tensor on the attention's device}.\"\"\"\n";
  out += "    params = params or {}\n    tensors = tensors or {}\n";
  for (const auto& c : spec.constants) {
    out += "    " + py_name(c.name) + " = " + constant_value(c) + "\n";
  }
  for (const auto& p : spec.params) {
    out += "    " + py_name(p.name) + " = " + (p.type == Type::Int ? "int" : "float") + "(params[\"" + p.name + "\"])\n";
  }
  for (const auto& t : spec.tensors) {
    out += "    " + py_name(t.name) + " = tensors[\"" + t.name + "\"]\n";
  }
  ExprWriter w(spec, PythonFlavor::Torch);
  if (spec.score_mod) {
    out += "\n";
    write_function(out, w, "    ", "score_mod(score, b, h, q_idx, kv_idx)", *spec.score_mod, true, false);
  }
  if (spec.mask_mod) {
    out += "\n";
    write_function(out, w, "    ", "mask_mod(b, h, q_idx, kv_idx)", *spec.mask_mod, true, true);
  }
  out += std::string("\n    return ") + (spec.score_mod ? "score_mod" : "None") + ", " +
         (spec.mask_mod ? "mask_mod" : "None") + "\n";
  return out;
}

}  // namespace

std::string emit_python_mods(const spec::Spec& spec, PythonFlavor flavor) {
  return flavor == PythonFlavor::Plain ? emit_plain(spec) : emit_torch(spec);
}

}  // namespace kg::codegen
