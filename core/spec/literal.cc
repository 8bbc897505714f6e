#include "spec/literal.h"

#include "spec/limits.h"

#include <charconv>
#include <vector>

namespace kg::spec {

namespace {

// The value of a leaf: a literal or a constant.
std::optional<Literal> leaf_literal(const Expr& e, const Spec& spec) {
  switch (e.op) {
    case Op::IntLit:
      return Literal{Type::Int, e.int_value, 0.0, false};
    case Op::FloatLit:
      return Literal{Type::Float, 0, e.float_value, false};
    case Op::BoolLit:
      return Literal{Type::Bool, 0, 0.0, e.bool_value};
    case Op::Constant: {
      if (e.index < 0 || static_cast<size_t>(e.index) >= spec.constants.size()) {
        return std::nullopt;
      }
      const ConstantDecl& c = spec.constants[static_cast<size_t>(e.index)];
      return Literal{c.type, c.int_value, c.float_value, c.bool_value};
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

// A loop over the chain of Neg / ToFloat nodes rather than recursion; a chain longer than any
// checked spec holds (kMaxExprDepth) is not folded, so that a caller folding every node of a long
// chain (the canonical printer) stays linear.
std::optional<Literal> fold_literal(const Expr& e, const Spec& spec) {
  std::vector<Op> chain;  // from e down to the leaf
  const Expr* leaf = &e;
  while ((leaf->op == Op::Neg || leaf->op == Op::ToFloat) && !leaf->args.empty() && leaf->args[0]) {
    if (chain.size() >= static_cast<size_t>(kMaxExprDepth)) {
      return std::nullopt;
    }
    chain.push_back(leaf->op);
    leaf = leaf->args[0].get();
  }
  if (leaf->op == Op::Neg || leaf->op == Op::ToFloat) {
    return std::nullopt;  // malformed: no operand
  }
  auto v = leaf_literal(*leaf, spec);
  for (auto op = chain.rbegin(); v && op != chain.rend(); ++op) {
    if (*op == Op::Neg) {
      if (v->type == Type::Bool) {
        return std::nullopt;
      }
      // Ints are at most 32-bit here (literals and constants are range-checked); a long chain of
      // negations only flips the sign, so this never overflows.
      v->int_value = -v->int_value;
      v->float_value = -v->float_value;
    } else {
      if (v->type != Type::Int) {
        return std::nullopt;
      }
      v = Literal{Type::Float, 0, static_cast<double>(v->int_value), false};
    }
  }
  return v;
}

std::string type_name(Type t) {
  switch (t) {
    case Type::Int:
      return "int";
    case Type::Float:
      return "float";
    case Type::Bool:
      return "bool";
  }
  return "?";
}

std::string literal_text(const Literal& v) {
  switch (v.type) {
    case Type::Int:
      return std::to_string(v.int_value);
    case Type::Bool:
      return v.bool_value ? "True" : "False";
    case Type::Float:
      break;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v.float_value);  // shortest round trip
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eni") == std::string::npos) {  // not 1.5, 1e+20, inf, nan
    s += ".0";
  }
  return s;
}

}  // namespace kg::spec
