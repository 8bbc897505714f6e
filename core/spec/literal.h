// Compile-time values of expression leaves, shared by the type checker (checks on literal
// operands) and the canonical form (which writes a constant exactly as its literal).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "spec/ast.h"

namespace kg::spec {

struct Literal {
  Type type = Type::Int;
  int64_t int_value = 0;
  double float_value = 0.0;
  bool bool_value = false;
};

// The value of `e` when it is known at compile time without evaluating operators other than
// negation and promotion: a literal, a constant (from `spec`), or `-x` / ToFloat(x) of such.
// nullopt for anything else, and for a chain of negations and promotions longer than kMaxExprDepth.
std::optional<Literal> fold_literal(const Expr& e, const Spec& spec);

// "int", "float" or "bool".
std::string type_name(Type t);

// Exact, deterministic text: ints in decimal, floats as the shortest text that reads back to the
// same double and always with a '.' or exponent (0.5, 1.0, 1e+100, -0.0), bools True / False.
std::string literal_text(const Literal& v);

}  // namespace kg::spec
