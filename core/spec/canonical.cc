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
#include <string_view>
#include <vector>

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

// Writes one mod. Iterative (an explicit stack of what is left to write) rather than recursive:
// with bindings substituted, a checked mod is up to kMaxExprDepth deep per binding, so the
// substituted tree can be far deeper than any stack allows.
class Printer {
 public:
  Printer(const Spec& spec, const ModFunction& fn) : m_spec(spec), m_fn(fn) {}

  void print(const Expr& root, std::string& out) const {
    std::vector<Item> todo{Item{&root, {}}};
    while (!todo.empty()) {
      const Item item = todo.back();
      todo.pop_back();
      if (item.expr) {
        visit(*item.expr, out, todo);
      } else {
        out += item.text;
      }
    }
  }

 private:
  // An expression to write, or (expr == nullptr) text to append.
  struct Item {
    const Expr* expr;
    std::string_view text;
  };

  static void push_text(std::vector<Item>& todo, std::string_view text) { todo.push_back(Item{nullptr, text}); }
  static void push_expr(std::vector<Item>& todo, const ExprPtr& e) {
    todo.push_back(e ? Item{e.get(), {}} : Item{nullptr, "<?>"});
  }
  // The arguments of `e`, ", "-separated; pushed last first.
  static void push_args(std::vector<Item>& todo, const Expr& e) {
    for (size_t i = e.args.size(); i-- > 0;) {
      push_expr(todo, e.args[i]);
      if (i > 0) {
        push_text(todo, ", ");
      }
    }
  }

  // Appends the start of `e` and pushes the rest, in reverse order of writing.
  void visit(const Expr& e, std::string& out, std::vector<Item>& todo) const {
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
        push_expr(todo, m_fn.bindings[static_cast<size_t>(e.index)].value);
        return;
      case Op::TensorElem:
        out += m_spec.tensors[static_cast<size_t>(e.index)].name;
        out += "[";
        push_text(todo, type_suffix(e.type));
        push_text(todo, "]");
        push_args(todo, e);
        return;
      case Op::Neg:
      case Op::Not:
        out += e.op == Op::Neg ? "(-" : "(not ";
        push_text(todo, ")");
        push_args(todo, e);
        return;
      case Op::ToFloat:
      case Op::Call:
        out += e.op == Op::ToFloat ? "float" : func_name(e.func);
        out += "(";
        push_text(todo, ")");
        push_args(todo, e);
        return;
      case Op::Select:
        if (e.args.size() != 3) {
          break;
        }
        out += "(";
        push_text(todo, ")");
        push_expr(todo, e.args[2]);
        push_text(todo, " else ");
        push_expr(todo, e.args[0]);
        push_text(todo, " if ");
        push_expr(todo, e.args[1]);
        return;
      default:
        break;
    }
    const char* op = binary_op(e.op);
    if (op && e.args.size() == 2) {
      out += "(";
      push_text(todo, ")");
      push_expr(todo, e.args[1]);
      push_text(todo, " ");
      push_text(todo, op);
      push_text(todo, " ");
      push_expr(todo, e.args[0]);
      return;
    }
    out += "<?>";  // unreachable for a checked spec
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
