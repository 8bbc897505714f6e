// canonical_form (spec.h). The text, one field per line in sorted order:
//
//   kernelgen-canonical-spec 1
//   dtype: bf16
//   head_dim: 128
//   mask_mod: (q_idx:i >= kv_idx:i)
//   name: relpos_causal
//   params: [num_heads:int]
//   score_mod: (score:f + float((q_idx:i - kv_idx:i)))
//   tensors: [q_doc:int32[batch, seq_q]]
//
// Expressions: every operator application in parentheses with Python's spelling; variables,
// params and tensor elements carry their type (:i :f :b); conversions are explicit (float(x));
// literals and constants appear as exact literal text (1, 0.5, 1.0, True; negative ones in
// parentheses); bindings are replaced by their value. Constants are therefore not listed (an
// unused one means nothing). params and tensors keep declaration order, which is ABI order.
#include "spec/literal.h"
#include "spec/names.h"
#include "spec/spec.h"

namespace kg::spec {
namespace {

const char* type_suffix(Type t) {
  switch (t) {
    case Type::Int:
      return ":i";
    case Type::Float:
      return ":f";
    case Type::Bool:
      return ":b";
  }
  return "";
}

const char* var_name(Var v) {
  switch (v) {
    case Var::Score:
      return "score";
    case Var::B:
      return "b";
    case Var::H:
      return "h";
    case Var::QIdx:
      return "q_idx";
    case Var::KvIdx:
      return "kv_idx";
  }
  return "?";
}

const char* func_name(Func f) {
  switch (f) {
    case Func::Abs:
      return "abs";
    case Func::Min:
      return "min";
    case Func::Max:
      return "max";
    case Func::Clamp:
      return "clamp";
    case Func::Exp:
      return "exp";
    case Func::Exp2:
      return "exp2";
    case Func::Log:
      return "log";
    case Func::Log2:
      return "log2";
    case Func::Sqrt:
      return "sqrt";
    case Func::Tanh:
      return "tanh";
    case Func::Floor:
      return "floor";
  }
  return "?";
}

const char* binary_op(Op op) {
  switch (op) {
    case Op::Add:
      return "+";
    case Op::Sub:
      return "-";
    case Op::Mul:
      return "*";
    case Op::Div:
      return "/";
    case Op::FloorDiv:
      return "//";
    case Op::Mod:
      return "%";
    case Op::Pow:
      return "**";
    case Op::Lt:
      return "<";
    case Op::Le:
      return "<=";
    case Op::Gt:
      return ">";
    case Op::Ge:
      return ">=";
    case Op::Eq:
      return "==";
    case Op::Ne:
      return "!=";
    case Op::And:
      return "and";
    case Op::Or:
      return "or";
    default:
      return nullptr;
  }
}

class Printer {
 public:
  Printer(const Spec& spec, const ModFunction& fn) : m_spec(spec), m_fn(fn) {}

  void print(const Expr& e, std::string& out) const {
    if (const auto lit = fold_literal(e, m_spec)) {
      const std::string text = literal_text(*lit);
      out += text[0] == '-' ? "(" + text + ")" : text;
      return;
    }
    switch (e.op) {
      case Op::Var:
        out += var_name(e.var);
        out += type_suffix(e.type);
        return;
      case Op::Param:
        out += m_spec.params[static_cast<size_t>(e.index)].name;
        out += type_suffix(e.type);
        return;
      case Op::Binding:
        print(*m_fn.bindings[static_cast<size_t>(e.index)].value, out);
        return;
      case Op::TensorElem:
        out += m_spec.tensors[static_cast<size_t>(e.index)].name;
        print_args("[", e, "]", out);
        out += type_suffix(e.type);
        return;
      case Op::Neg:
        out += "(-";
        print(*e.args[0], out);
        out += ")";
        return;
      case Op::Not:
        out += "(not ";
        print(*e.args[0], out);
        out += ")";
        return;
      case Op::ToFloat:
        print_args("float(", e, ")", out);
        return;
      case Op::Select:
        out += "(";
        print(*e.args[1], out);
        out += " if ";
        print(*e.args[0], out);
        out += " else ";
        print(*e.args[2], out);
        out += ")";
        return;
      case Op::Call:
        out += func_name(e.func);
        print_args("(", e, ")", out);
        return;
      default:
        break;
    }
    if (const char* op = binary_op(e.op)) {
      out += "(";
      print(*e.args[0], out);
      out += std::string(" ") + op + " ";
      print(*e.args[1], out);
      out += ")";
      return;
    }
    out += "<?>";  // unreachable for a checked spec
  }

 private:
  void print_args(const char* open, const Expr& e, const char* close, std::string& out) const {
    out += open;
    for (size_t i = 0; i < e.args.size(); ++i) {
      out += i ? ", " : "";
      print(*e.args[i], out);
    }
    out += close;
  }

  const Spec& m_spec;
  const ModFunction& m_fn;
};

std::string mod_text(const Spec& spec, const std::optional<ModFunction>& fn, const char* identity) {
  if (!fn) {
    return identity;
  }
  std::string out;
  Printer(spec, *fn).print(*fn->result, out);
  return out;
}

}  // namespace

std::string canonical_form(const Spec& spec) {
  std::string out = "kernelgen-canonical-spec " + std::to_string(kCanonicalVersion) + "\n";
  out += std::string("dtype: ") + (spec.dtype == DType::BF16 ? "bf16" : "fp16") + "\n";
  out += "head_dim: " + std::to_string(spec.head_dim) + "\n";
  out += "mask_mod: " + mod_text(spec, spec.mask_mod, "True") + "\n";
  out += "name: " + spec.name + "\n";
  out += "params: [";
  for (size_t i = 0; i < spec.params.size(); ++i) {
    out += (i ? ", " : "") + spec.params[i].name + (spec.params[i].type == Type::Int ? ":int" : ":float");
  }
  out += "]\n";
  out += "score_mod: " + mod_text(spec, spec.score_mod, "score:f") + "\n";
  out += "tensors: [";
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const TensorDecl& t = spec.tensors[i];
    out += (i ? ", " : "") + t.name + ":" + tensor_dtype_name(t.dtype) + "[";
    for (size_t d = 0; d < t.shape.size(); ++d) {
      out += (d ? ", " : "") + dim_text(t.shape[d]);
    }
    out += "]";
  }
  out += "]\n";
  return out;
}

}  // namespace kg::spec
