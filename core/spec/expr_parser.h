// Parser for the mod language: text → untyped syntax tree with names unresolved. The type
// checker (typecheck.h) turns the tree into spec::Expr.
//
// Grammar (Python's precedence, lowest first):
//   mod        := { NAME '=' expr NEWLINE } expr
//   expr       := or_expr [ 'if' or_expr 'else' expr ]
//   or_expr    := and_expr { 'or' and_expr }
//   and_expr   := not_expr { 'and' not_expr }
//   not_expr   := 'not' not_expr | comparison
//   comparison := sum { ('<'|'<='|'>'|'>='|'=='|'!=') sum }   chained as in Python:
//                 a < b < c  means  (a < b) and (b < c)
//   sum        := term { ('+'|'-') term }
//   term       := factor { ('*'|'/'|'//'|'%') factor }
//   factor     := ('-'|'+') factor | power
//   power      := primary [ '**' factor ]                     right-assoc: -2**2 == -(2**2)
//   primary    := INT | FLOAT | 'True' | 'False' | '(' expr ')'
//               | NAME | NAME '(' [ expr { ',' expr } ] ')' | NAME '[' expr { ',' expr } ']'
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spec/source_map.h"
#include "util/expected.h"

namespace kg::spec {

enum class SyntaxKind {
  IntLit,
  FloatLit,
  BoolLit,
  Name,    // name
  Call,    // name(args)
  Index,   // name[args]
  Unary,   // op args[0]: "-", "+", "not"
  Binary,  // args[0] op args[1]: arithmetic, comparison, "and", "or"
  Select,  // args = {condition, if_true, if_false}
};

struct Syntax;
using SyntaxPtr = std::shared_ptr<const Syntax>;  // shared: a chained comparison reuses its middle

struct Syntax {
  SyntaxKind kind = SyntaxKind::IntLit;
  size_t offset = 0;     // first byte of the expression in the mod text
  size_t op_offset = 0;  // Unary/Binary/Select: the operator (`if` for Select); Call/Index: '(' / '['
  std::string name;      // Name, Call, Index
  std::string op;        // Unary, Binary
  int64_t int_value = 0;
  double float_value = 0.0;
  bool bool_value = false;
  int depth = 1;  // of the tree below and including this node: 1 for a leaf (kMaxExprDepth bounds it)
  std::vector<SyntaxPtr> args;
};

struct SyntaxBinding {
  std::string name;
  size_t offset = 0;
  SyntaxPtr value;
};

struct SyntaxMod {
  std::vector<SyntaxBinding> bindings;
  SyntaxPtr result;
};

// A parse failure: where (a file position, already mapped) and what.
struct ParseError {
  SourcePos pos;
  std::string message;
};

// Parses the text of one mod. `map` converts offsets in `text` to file positions for errors
// (and for messages that cite a position, like an unclosed '('). Refuses, with
// "expression nested deeper than N" at the construct that crossed the limit, a tree deeper than
// kMaxExprDepth (spec/limits.h) and nesting of parentheses, brackets, unary operators, `**` and
// `else` branches deeper than that: the parser, and every stage after it, recurse that deep.
Expected<SyntaxMod, ParseError> parse_mod(std::string_view text, const ScalarSourceMap& map);

}  // namespace kg::spec
