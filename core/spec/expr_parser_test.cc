#include "spec/expr_parser.h"

#include <gtest/gtest.h>

namespace kg::spec {
namespace {

// S-expression of a syntax tree.
std::string sexpr(const Syntax& s) {
  std::string out;
  switch (s.kind) {
    case SyntaxKind::IntLit:
      return std::to_string(s.int_value);
    case SyntaxKind::FloatLit:
      return std::to_string(s.float_value);
    case SyntaxKind::BoolLit:
      return s.bool_value ? "True" : "False";
    case SyntaxKind::Name:
      return s.name;
    case SyntaxKind::Call:
      out = "(call " + s.name;
      break;
    case SyntaxKind::Index:
      out = "(index " + s.name;
      break;
    case SyntaxKind::Unary:
    case SyntaxKind::Binary:
      out = "(" + s.op;
      break;
    case SyntaxKind::Select:
      out = "(if";
      break;
  }
  for (const SyntaxPtr& a : s.args) {
    out += " " + sexpr(*a);
  }
  return out + ")";
}

std::string parse(std::string_view text) {
  const auto map = ScalarSourceMap::single_line({1, 1}, text);
  auto mod = parse_mod(text, map);
  if (!mod) {
    return std::to_string(mod.error().pos.col) + ": " + mod.error().message;
  }
  std::string out;
  for (const SyntaxBinding& b : mod->bindings) {
    out += b.name + "=" + sexpr(*b.value) + "; ";
  }
  return out + sexpr(*mod->result);
}

TEST(ExprParser, PythonPrecedence) {
  EXPECT_EQ(parse("-2**2"), "(- (** 2 2))");
  EXPECT_EQ(parse("2**-x"), "(** 2 (- x))");
  EXPECT_EQ(parse("a**b**c"), "(** a (** b c))");
  EXPECT_EQ(parse("a - b - c"), "(- (- a b) c)");
  EXPECT_EQ(parse("a + b * c // d % e"), "(+ a (% (// (* b c) d) e))");
  EXPECT_EQ(parse("not a == b and c or d"), "(or (and (not (== a b)) c) d)");
  EXPECT_EQ(parse("a if b else c if d else e"), "(if b a (if d c e))");
  EXPECT_EQ(parse("x + 1 if c else y"), "(if c (+ x 1) y)");
  EXPECT_EQ(parse("a < b <= c"), "(and (< a b) (<= b c))");
  EXPECT_EQ(parse("+-a"), "(+ (- a))");
  EXPECT_EQ(parse("f() + g(a, b)[0]"), "14: expected an operator or end of expression, found '['");
  EXPECT_EQ(parse("t[a, b + 1] * max(x, (y))"), "(* (index t a (+ b 1)) (call max x y))");
}

TEST(ExprParser, Bindings) { EXPECT_EQ(parse("a = 1\nb = a + 1\nb * 2"), "a=1; b=(+ a 1); (* b 2)"); }

TEST(ExprParser, ErrorsPointAtTheProblem) {
  EXPECT_EQ(parse("(a + b"), "7: expected ')' to close '(' at 1:1, found end of expression");
  EXPECT_EQ(parse("a +* b"), "4: expected an expression after '+', found '*'");
  EXPECT_EQ(parse("a b"), "3: expected an operator or end of expression, found identifier 'b'");
  EXPECT_EQ(parse("a = 1 = 2\na"), "7: expected an operator or end of line, found '=' (use '==' to compare)");
  EXPECT_EQ(parse("max(a,)"), "7: expected an expression after ',', found ')'");
  EXPECT_EQ(parse("if a"), "1: expected an expression, found keyword 'if'");
  EXPECT_EQ(parse("a if b"), "7: expected 'else' after 'if' at 1:3, found end of expression");
  EXPECT_EQ(parse("   "), "1: expected an expression, found end of expression");
  EXPECT_EQ(parse("not"), "4: expected an expression after 'not', found end of expression");
}

}  // namespace
}  // namespace kg::spec
