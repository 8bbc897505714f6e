#include "spec/typecheck.h"

#include <array>
#include <functional>
#include <map>

#include "spec/limits.h"
#include "spec/literal.h"
#include "spec/names.h"
#include "spec/printable.h"

namespace kg::spec {
namespace {

// Nodes a mod may grow to once bindings are substituted (the canonical form inlines them).
constexpr size_t kMaxInlinedNodes = kMaxExprNodes;

struct FuncInfo {
  const char* name;
  Func func;
  size_t arity;
};
constexpr std::array kFunctions = {
    FuncInfo{"abs", Func::Abs, 1},     FuncInfo{"min", Func::Min, 2},     FuncInfo{"max", Func::Max, 2},
    FuncInfo{"clamp", Func::Clamp, 3}, FuncInfo{"exp", Func::Exp, 1},     FuncInfo{"exp2", Func::Exp2, 1},
    FuncInfo{"log", Func::Log, 1},     FuncInfo{"log2", Func::Log2, 1},   FuncInfo{"sqrt", Func::Sqrt, 1},
    FuncInfo{"tanh", Func::Tanh, 1},   FuncInfo{"floor", Func::Floor, 1},
};

struct VarInfo {
  const char* name;
  Var var;
  Type type;
};
constexpr std::array kVars = {VarInfo{"score", Var::Score, Type::Float}, VarInfo{"b", Var::B, Type::Int},
                              VarInfo{"h", Var::H, Type::Int}, VarInfo{"q_idx", Var::QIdx, Type::Int},
                              VarInfo{"kv_idx", Var::KvIdx, Type::Int}};

const std::map<std::string, Op>& binary_ops() {
  static const std::map<std::string, Op> kOps = {
      {"+", Op::Add}, {"-", Op::Sub},  {"*", Op::Mul}, {"/", Op::Div},   {"//", Op::FloorDiv},
      {"%", Op::Mod}, {"**", Op::Pow}, {"<", Op::Lt},  {"<=", Op::Le},   {">", Op::Gt},
      {">=", Op::Ge}, {"==", Op::Eq},  {"!=", Op::Ne}, {"and", Op::And}, {"or", Op::Or}};
  return kOps;
}

bool numeric(Type t) { return t == Type::Int || t == Type::Float; }

std::string pos_text(SourcePos p) { return std::to_string(p.line) + ":" + std::to_string(p.col); }

std::string plural(size_t n, const std::string& word) {
  if (n == 1) {
    return "1 " + word;
  }
  return std::to_string(n) + " " + (word == "index" ? std::string("indices") : word + "s");
}

class Checker {
 public:
  Checker(ModKind kind, const CheckContext& ctx, Diagnostics& out) : m_kind(kind), m_ctx(ctx), m_out(out) {
    // Name lookups by map: a spec may declare many names and use them many times.
    const Spec& spec = ctx.spec;
    for (size_t i = 0; i < spec.constants.size(); ++i) {
      m_declared.emplace(spec.constants[i].name, Declared{Op::Constant, i});
    }
    for (size_t i = 0; i < spec.params.size(); ++i) {
      m_declared.emplace(spec.params[i].name, Declared{Op::Param, i});
    }
    for (size_t i = 0; i < spec.tensors.size(); ++i) {
      m_declared.emplace(spec.tensors[i].name, Declared{Op::TensorElem, i});
    }
  }

  std::optional<ModFunction> run(const SyntaxMod& mod) {
    const size_t errors_before = m_out.size();
    if (mod.bindings.size() > kMaxBindings) {
      error(mod.bindings[kMaxBindings].offset, "expected at most " + std::to_string(kMaxBindings) +
                                                   " bindings in " + mod_field_name(m_kind) + ", found " +
                                                   std::to_string(mod.bindings.size()));
      return std::nullopt;
    }
    ModFunction fn;
    m_bindings = &fn.bindings;
    for (const SyntaxBinding& b : mod.bindings) {
      m_all_binding_names.insert(b.name);
    }
    for (const SyntaxBinding& b : mod.bindings) {
      const bool name_ok = check_binding_name(b);
      ExprPtr value = checked_tree(*b.value);
      if (!value || !name_ok) {
        m_broken_bindings.insert(b.name);
        continue;
      }
      m_binding_index[b.name] = fn.bindings.size();
      fn.bindings.push_back(Binding{b.name, value, m_ctx.map.at(b.offset)});
      m_binding_sizes.push_back(inlined_size(*value));
    }
    ExprPtr result = checked_tree(*mod.result);
    if (result) {
      result = check_result(std::move(result));
    }
    if (result && typed_too_deep(*result)) {
      result = nullptr;
    }
    if (!result || m_out.size() != errors_before) {
      return std::nullopt;
    }
    fn.result = result;
    const size_t size = inlined_size(*fn.result);
    if (size > kMaxInlinedNodes) {
      error(mod.result->offset, "expected at most " + std::to_string(kMaxInlinedNodes) +
                                    " operations once bindings are substituted, found " +
                                    (size == kMaxInlinedNodes + 1 ? "more" : std::to_string(size)));
      return std::nullopt;
    }
    return fn;
  }

 private:
  struct Declared {
    Op kind;  // Constant, Param or TensorElem
    size_t index;
  };

  // Whether no more diagnostics are worth producing (the reader reports kMaxDiagnostics at most).
  bool full() const { return m_out.size() > kMaxDiagnostics; }

  ExprPtr error(size_t offset, std::string message) {
    if (!full()) {
      m_out.push_back(Diagnostic{m_ctx.file, m_ctx.map.at(offset).line, m_ctx.map.at(offset).col,
                                 escape_nonprintable(message)});
    }
    return nullptr;
  }

  // check(s), then the depth of the typed tree (which gains ToFloat nodes) checked as well.
  ExprPtr checked_tree(const Syntax& s) {
    ExprPtr e = check(s);
    return e && typed_too_deep(*e) ? nullptr : e;
  }

  // True (and the error, at the first node past the limit) when `e` is deeper than kMaxExprDepth.
  bool typed_too_deep(const Expr& e) {
    const Expr* deep = deepest_past_limit(e, 1);
    if (deep) {
      error_at(deep->pos, "expression nested deeper than " + std::to_string(kMaxExprDepth));
    }
    return deep != nullptr;
  }
  // Recursion bounded by kMaxExprDepth + 1: it stops at the first node past the limit.
  static const Expr* deepest_past_limit(const Expr& e, int depth) {
    if (depth > kMaxExprDepth) {
      return &e;
    }
    for (const ExprPtr& a : e.args) {
      if (const Expr* deep = deepest_past_limit(*a, depth + 1)) {
        return deep;
      }
    }
    return nullptr;
  }

  ExprPtr node(Op op, Type type, size_t offset, std::vector<ExprPtr> args = {}) const {
    auto e = std::make_shared<Expr>();
    e->op = op;
    e->type = type;
    e->pos = m_ctx.map.at(offset);
    e->args = std::move(args);
    return e;
  }

  static ExprPtr promote(ExprPtr e, Type to) {
    if (e->type == Type::Int && to == Type::Float) {
      auto f = std::make_shared<Expr>();
      f->op = Op::ToFloat;
      f->type = Type::Float;
      f->pos = e->pos;
      f->args = {std::move(e)};
      return f;
    }
    return e;
  }

  // What `name` already names, with where it was declared; "" when nothing.
  std::string existing(const std::string& name, SourcePos* where) const {
    const auto it = m_declared.find(name);
    if (it == m_declared.end()) {
      return "";
    }
    const Spec& spec = m_ctx.spec;
    switch (it->second.kind) {
      case Op::Constant:
        *where = spec.constants[it->second.index].pos;
        return "a constant";
      case Op::Param:
        *where = spec.params[it->second.index].pos;
        return "a param";
      default:
        *where = spec.tensors[it->second.index].pos;
        return "a tensor";
    }
  }

  bool check_binding_name(const SyntaxBinding& b) {
    if (is_builtin_name(b.name)) {
      error(b.offset, "cannot bind '" + b.name + "': it is a " + builtin_kind(b.name) +
                          (b.name == "q_idx" || b.name == "kv_idx" || b.name == "b" || b.name == "h"
                               ? " (use '==' to compare)"
                               : ""));
      return false;
    }
    if (is_reserved_word(b.name)) {
      error(b.offset, "cannot bind '" + b.name + "': it is a reserved word");
      return false;
    }
    if (b.name.size() > kMaxNameLength) {
      error(b.offset, "expected a binding name of at most " + std::to_string(kMaxNameLength) +
                          " characters, found " + std::to_string(b.name.size()));
      return false;
    }
    SourcePos where;
    const std::string what = existing(b.name, &where);
    if (!what.empty()) {
      error(b.offset, "binding '" + b.name + "' is already defined as " + what + " at " + pos_text(where));
      return false;
    }
    if (const auto earlier = m_pending_bindings.find(b.name); earlier != m_pending_bindings.end()) {
      error(b.offset, "binding '" + b.name + "' is already defined at " + pos_text(earlier->second));
      return false;
    }
    m_pending_bindings.emplace(b.name, m_ctx.map.at(b.offset));
    return true;
  }

  std::vector<std::string> visible_names() const {
    std::vector<std::string> names;
    for (const VarInfo& v : kVars) {
      if (v.var != Var::Score || m_kind == ModKind::Score) {
        names.push_back(v.name);
      }
    }
    if (m_bindings) {
      for (const Binding& b : *m_bindings) {
        names.push_back(b.name);
      }
    }
    for (const auto& c : m_ctx.spec.constants) {
      names.push_back(c.name);
    }
    for (const auto& p : m_ctx.spec.params) {
      names.push_back(p.name);
    }
    return names;
  }

  // What kind of thing `name` is, for "'W' is a constant, not a function"; "" when unknown.
  std::string kind_of(const std::string& name) const {
    SourcePos ignored;
    std::string what = existing(name, &ignored);
    if (!what.empty()) {
      return what;
    }
    if (m_binding_index.count(name) > 0) {
      return "a binding";
    }
    if (is_builtin_name(name)) {
      return "a " + builtin_kind(name);
    }
    return "";
  }

  bool is_broken(const std::string& name) const {
    return m_ctx.broken.count(name) > 0 || m_broken_bindings.count(name) > 0;
  }

  ExprPtr check_name(const Syntax& s) {
    if (const auto it = m_binding_index.find(s.name); it != m_binding_index.end()) {
      ExprPtr e = node(Op::Binding, (*m_bindings)[it->second].value->type, s.offset);
      std::const_pointer_cast<Expr>(e)->index = static_cast<int>(it->second);
      return e;
    }
    const Spec& spec = m_ctx.spec;
    if (const auto it = m_declared.find(s.name); it != m_declared.end()) {
      const size_t i = it->second.index;
      if (it->second.kind == Op::TensorElem) {
        const TensorDecl& t = spec.tensors[i];
        return error(s.offset, "expected an element of tensor '" + t.name + "' (" + t.name + "[...] with " +
                                   plural(t.shape.size(), "index") + "), found the bare tensor name");
      }
      const Type type = it->second.kind == Op::Constant ? spec.constants[i].type : spec.params[i].type;
      ExprPtr e = node(it->second.kind, type, s.offset);
      std::const_pointer_cast<Expr>(e)->index = static_cast<int>(i);
      return e;
    }
    for (const VarInfo& v : kVars) {
      if (s.name == v.name) {
        if (v.var == Var::Score && m_kind == ModKind::Mask) {
          return error(s.offset,
                       "'score' is not available in mask_mod (expected one of b, h, q_idx, kv_idx)");
        }
        ExprPtr e = node(Op::Var, v.type, s.offset);
        std::const_pointer_cast<Expr>(e)->var = v.var;
        return e;
      }
    }
    for (const FuncInfo& f : kFunctions) {
      if (s.name == f.name) {
        return error(s.offset,
                     "expected a call " + s.name + "(...), found the bare function name '" + s.name + "'");
      }
    }
    if (is_broken(s.name) || full()) {
      return nullptr;
    }
    std::string message = "unknown variable " + quote_input(s.name);
    if (m_all_binding_names.count(s.name) > 0) {
      message += " (a binding can only use bindings defined before it)";
    } else {
      message += did_you_mean(s.name, visible_names());
    }
    return error(s.offset, message);
  }

  ExprPtr check_call(const Syntax& s) {
    const FuncInfo* info = nullptr;
    for (const FuncInfo& f : kFunctions) {
      if (s.name == f.name) {
        info = &f;
      }
    }
    if (!info) {
      if (full()) {
        return nullptr;
      }
      const std::string what = kind_of(s.name);
      if (!what.empty()) {
        return error(s.offset, "'" + s.name + "' is " + what + ", not a function");
      }
      std::vector<std::string> names;
      for (const FuncInfo& f : kFunctions) {
        names.push_back(f.name);
      }
      return error(s.offset, "unknown function " + quote_input(s.name) + did_you_mean(s.name, names));
    }
    if (s.args.size() != info->arity) {
      return error(s.op_offset, "expected " + plural(info->arity, "argument") + " for '" + s.name +
                                    "', found " + std::to_string(s.args.size()));
    }
    std::vector<ExprPtr> args;
    bool ok = true;
    bool all_int = true;
    for (const SyntaxPtr& a : s.args) {
      ExprPtr e = check(*a);
      if (e && !numeric(e->type)) {
        error(a->offset,
              "expected an int or float argument for '" + s.name + "', found " + type_name(e->type));
        e = nullptr;
      }
      ok = ok && e;
      all_int = all_int && e && e->type == Type::Int;
      args.push_back(e);
    }
    if (!ok) {
      return nullptr;
    }
    const bool keeps_int = info->func == Func::Abs || info->func == Func::Min || info->func == Func::Max ||
                           info->func == Func::Clamp;
    const Type arg_type = keeps_int && all_int ? Type::Int : Type::Float;
    for (ExprPtr& a : args) {
      a = promote(a, arg_type);
    }
    const Type result = info->func == Func::Floor ? Type::Int : arg_type;
    ExprPtr e = node(Op::Call, result, s.offset, std::move(args));
    std::const_pointer_cast<Expr>(e)->func = info->func;
    return e;
  }

  ExprPtr check_index(const Syntax& s) {
    const auto& tensors = m_ctx.spec.tensors;
    size_t index = tensors.size();
    if (const auto it = m_declared.find(s.name); it != m_declared.end() && it->second.kind == Op::TensorElem) {
      index = it->second.index;
    }
    if (index == tensors.size()) {
      if (is_broken(s.name) || full()) {
        return nullptr;
      }
      const std::string what = kind_of(s.name);
      if (!what.empty()) {
        return error(s.offset, "'" + s.name + "' is " + what + ", not a tensor; it cannot be indexed");
      }
      std::vector<std::string> names;
      for (const TensorDecl& t : tensors) {
        names.push_back(t.name);
      }
      return error(s.offset, "unknown tensor " + quote_input(s.name) + did_you_mean(s.name, names));
    }
    const TensorDecl& t = tensors[index];
    if (s.args.size() != t.shape.size()) {
      return error(s.op_offset, "expected " + plural(t.shape.size(), "index") + " for tensor '" + t.name +
                                    "', found " + std::to_string(s.args.size()));
    }
    std::vector<ExprPtr> args;
    bool ok = true;
    for (size_t i = 0; i < s.args.size(); ++i) {
      ExprPtr e = check(*s.args[i]);
      if (e && e->type != Type::Int) {
        error(s.args[i]->offset, "expected an int index for dimension " + std::to_string(i + 1) +
                                     " of tensor '" + t.name + "', found " + type_name(e->type));
        e = nullptr;
      }
      ok = ok && e;
      args.push_back(e);
    }
    if (!ok) {
      return nullptr;
    }
    const Type type = t.dtype == TensorDType::Float32 ? Type::Float : Type::Int;
    ExprPtr e = node(Op::TensorElem, type, s.offset, std::move(args));
    std::const_pointer_cast<Expr>(e)->index = static_cast<int>(index);
    return e;
  }

  ExprPtr check_unary(const Syntax& s) {
    ExprPtr operand = check(*s.args[0]);
    if (!operand) {
      return nullptr;
    }
    if (s.op == "not") {
      if (operand->type != Type::Bool) {
        return error(s.args[0]->offset,
                     "expected a bool operand for 'not', found " + type_name(operand->type));
      }
      return node(Op::Not, Type::Bool, s.offset, {operand});
    }
    if (!numeric(operand->type)) {
      return error(s.args[0]->offset, "expected an int or float operand for unary '" + s.op + "', found " +
                                          type_name(operand->type));
    }
    if (s.op == "+") {
      return operand;
    }
    return node(Op::Neg, operand->type, s.offset, {operand});
  }

  ExprPtr check_binary(const Syntax& s) {
    ExprPtr l = check(*s.args[0]);
    ExprPtr r = check(*s.args[1]);
    if (!l || !r) {
      return nullptr;
    }
    const Op op = binary_ops().at(s.op);
    if (op == Op::And || op == Op::Or) {
      for (size_t i = 0; i < 2; ++i) {
        const Type t = (i == 0 ? l : r)->type;
        if (t != Type::Bool) {
          return error(s.args[i]->offset, "expected bool operands for '" + s.op + "', found " + type_name(t));
        }
      }
      return node(op, Type::Bool, s.offset, {l, r});
    }
    if ((op == Op::Eq || op == Op::Ne) && (l->type == Type::Bool || r->type == Type::Bool)) {
      if (l->type != r->type) {
        return error(s.op_offset, "expected two numbers or two bools for '" + s.op + "', found " +
                                      type_name(l->type) + " and " + type_name(r->type));
      }
      return node(op, Type::Bool, s.offset, {l, r});
    }
    for (size_t i = 0; i < 2; ++i) {
      const Type t = (i == 0 ? l : r)->type;
      if (!numeric(t)) {
        return error(s.args[i]->offset,
                     "expected int or float operands for '" + s.op + "', found " + type_name(t));
      }
    }
    const bool both_int = l->type == Type::Int && r->type == Type::Int;
    Type operand_type = both_int ? Type::Int : Type::Float;
    Type result = operand_type;
    switch (op) {
      case Op::Div:
        operand_type = result = Type::Float;
        break;
      case Op::Lt:
      case Op::Le:
      case Op::Gt:
      case Op::Ge:
      case Op::Eq:
      case Op::Ne:
        result = Type::Bool;
        break;
      case Op::FloorDiv:
      case Op::Mod:
        if (both_int) {
          const auto divisor = fold_literal(*r, m_ctx.spec);
          if (divisor && divisor->int_value == 0) {
            return error(s.args[1]->offset, "expected a non-zero divisor for int '" + s.op + "', found 0");
          }
        }
        break;
      case Op::Pow:
        if (both_int) {
          const auto exponent = fold_literal(*r, m_ctx.spec);
          if (exponent && exponent->int_value < 0) {
            const std::string e = std::to_string(exponent->int_value);
            return error(s.args[1]->offset, "expected a non-negative exponent for int ** int, found " + e +
                                                " (use a float base, e.g. 2.0 ** " + e + ")");
          }
        }
        break;
      default:
        break;
    }
    return node(op, result, s.offset, {promote(l, operand_type), promote(r, operand_type)});
  }

  ExprPtr check_select(const Syntax& s) {
    ExprPtr cond = check(*s.args[0]);
    ExprPtr yes = check(*s.args[1]);
    ExprPtr no = check(*s.args[2]);
    if (!cond || !yes || !no) {
      return nullptr;
    }
    if (cond->type != Type::Bool) {
      return error(s.args[0]->offset, "expected a bool condition after 'if', found " + type_name(cond->type));
    }
    if (yes->type == Type::Bool || no->type == Type::Bool) {
      if (yes->type != no->type) {
        return error(s.op_offset, "expected both branches of 'if' to be numbers or both bools, found " +
                                      type_name(yes->type) + " and " + type_name(no->type));
      }
      return node(Op::Select, Type::Bool, s.offset, {cond, yes, no});
    }
    const Type t = yes->type == Type::Int && no->type == Type::Int ? Type::Int : Type::Float;
    return node(Op::Select, t, s.offset, {cond, promote(yes, t), promote(no, t)});
  }

  // Recursion depth is the syntax tree's, which the parser bounds; the guard keeps a tree built
  // some other way from overflowing the stack.
  ExprPtr check(const Syntax& s) {
    if (m_depth >= kMaxExprDepth) {
      return error(s.offset, "expression nested deeper than " + std::to_string(kMaxExprDepth));
    }
    ++m_depth;
    ExprPtr e = check_node(s);
    --m_depth;
    return e;
  }

  ExprPtr check_node(const Syntax& s) {
    switch (s.kind) {
      case SyntaxKind::IntLit: {
        ExprPtr e = node(Op::IntLit, Type::Int, s.offset);
        std::const_pointer_cast<Expr>(e)->int_value = s.int_value;
        return e;
      }
      case SyntaxKind::FloatLit: {
        ExprPtr e = node(Op::FloatLit, Type::Float, s.offset);
        std::const_pointer_cast<Expr>(e)->float_value = s.float_value;
        return e;
      }
      case SyntaxKind::BoolLit: {
        ExprPtr e = node(Op::BoolLit, Type::Bool, s.offset);
        std::const_pointer_cast<Expr>(e)->bool_value = s.bool_value;
        return e;
      }
      case SyntaxKind::Name:
        return check_name(s);
      case SyntaxKind::Call:
        return check_call(s);
      case SyntaxKind::Index:
        return check_index(s);
      case SyntaxKind::Unary:
        return check_unary(s);
      case SyntaxKind::Binary:
        return check_binary(s);
      case SyntaxKind::Select:
        return check_select(s);
    }
    return nullptr;
  }

  ExprPtr check_result(ExprPtr e) {
    if (m_kind == ModKind::Score) {
      if (!numeric(e->type)) {
        return error_at(
            e->pos, "expected an expression of type int or float for score_mod, found " + type_name(e->type));
      }
      return promote(e, Type::Float);
    }
    if (e->type != Type::Bool) {
      return error_at(e->pos,
                      "expected an expression of type bool for mask_mod, found " + type_name(e->type));
    }
    return e;
  }

  ExprPtr error_at(SourcePos pos, std::string message) {
    if (!full()) {
      m_out.push_back(Diagnostic{m_ctx.file, pos.line, pos.col, escape_nonprintable(message)});
    }
    return nullptr;
  }

  // Node count with every Binding node replaced by its value (what the canonical form prints).
  // Bindings are sized once, in order (m_binding_sizes), so this never recurses through them;
  // saturates at kMaxInlinedNodes + 1.
  size_t inlined_size(const Expr& e) const {
    if (e.op == Op::Binding) {
      const size_t i = static_cast<size_t>(e.index);
      return i < m_binding_sizes.size() ? m_binding_sizes[i] : 1;
    }
    size_t n = 1;
    for (const ExprPtr& a : e.args) {
      n += inlined_size(*a);
      if (n > kMaxInlinedNodes) {
        return kMaxInlinedNodes + 1;  // enough to fail; do not walk a huge tree
      }
    }
    return n;
  }

  ModKind m_kind;
  const CheckContext& m_ctx;
  Diagnostics& m_out;
  const std::vector<Binding>* m_bindings = nullptr;  // bindings checked so far
  std::map<std::string, size_t> m_binding_index;      // name → index in *m_bindings
  std::map<std::string, SourcePos> m_pending_bindings;  // every binding name seen so far
  std::set<std::string> m_broken_bindings;
  std::set<std::string> m_all_binding_names;  // including those defined further down
  std::map<std::string, Declared> m_declared;  // constants, params and tensors of the spec
  std::vector<size_t> m_binding_sizes;        // inlined_size of each binding's value, in order
  int m_depth = 0;                            // check() calls active
};

}  // namespace

std::optional<ModFunction> check_mod(const SyntaxMod& mod, ModKind kind, const CheckContext& ctx,
                                     Diagnostics& out) {
  return Checker(kind, ctx, out).run(mod);
}

const char* mod_field_name(ModKind kind) { return kind == ModKind::Score ? "score_mod" : "mask_mod"; }

}  // namespace kg::spec
