#include "spec/expr_parser.h"

#include <algorithm>
#include <array>
#include <optional>

#include "spec/lexer.h"
#include "spec/limits.h"

namespace kg::spec {
namespace {

std::string pos_text(SourcePos p) { return std::to_string(p.line) + ":" + std::to_string(p.col); }

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ScalarSourceMap& map) : m_tokens(std::move(tokens)), m_map(map) {}

  Expected<SyntaxMod, ParseError> parse_mod() {
    SyntaxMod mod;
    while (true) {
      const Token& first = peek();
      const bool is_binding =
          first.kind == TokenKind::Name && peek(1).kind == TokenKind::Punct && peek(1).text == "=";
      if (is_binding) {
        SyntaxBinding binding;
        binding.name = first.text;
        binding.offset = first.offset;
        m_pos += 2;
        binding.value = parse_expr("after '='");
        if (!binding.value) {
          return unexpected(*m_error);
        }
        if (!expect_line_end()) {
          return unexpected(*m_error);
        }
        mod.bindings.push_back(std::move(binding));
        if (peek().kind == TokenKind::End) {
          const SyntaxBinding& last = mod.bindings.back();
          return unexpected(
              ParseError{m_map.at(last.offset), "expected an expression as the last line, found binding '" +
                                                    last.name + "' (use '==' to compare)"});
        }
        continue;
      }
      const size_t line_start = first.offset;
      mod.result = parse_expr("");
      if (!mod.result) {
        return unexpected(*m_error);
      }
      if (!expect_line_end()) {
        return unexpected(*m_error);
      }
      if (peek().kind != TokenKind::End) {
        return unexpected(ParseError{m_map.at(line_start),
                                     "expected a binding 'name = expr' (only the last line may be a bare "
                                     "expression), found an expression"});
      }
      return mod;
    }
  }

 private:
  const Token& peek(size_t ahead = 0) const { return m_tokens[std::min(m_pos + ahead, m_tokens.size() - 1)]; }
  bool at_punct(const char* p) const { return peek().kind == TokenKind::Punct && peek().text == p; }
  bool at_keyword(const char* k) const { return peek().kind == TokenKind::Keyword && peek().text == k; }
  SyntaxPtr fail(const Token& at, std::string message) { return fail_at(at.offset, std::move(message)); }
  SyntaxPtr fail_at(size_t offset, std::string message) {
    if (!m_error) {
      m_error = ParseError{m_map.at(offset), std::move(message)};
    }
    return nullptr;
  }
  SyntaxPtr too_deep(size_t offset) {
    return fail_at(offset, "expression nested deeper than " + std::to_string(kMaxExprDepth));
  }

  // One level of parser recursion, released on scope exit; `ok` is false past kMaxExprDepth.
  class Nesting {
   public:
    explicit Nesting(Parser& p) : m_p(p), ok(++p.m_nesting <= kMaxExprDepth) {}
    ~Nesting() { --m_p.m_nesting; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& m_p;

   public:
    const bool ok;
  };

  // Sets node->depth from its arguments; false (and the error) past kMaxExprDepth.
  bool set_depth(Syntax& node, size_t error_offset) {
    int depth = 0;
    for (const SyntaxPtr& a : node.args) {
      depth = std::max(depth, a->depth);
    }
    node.depth = depth + 1;
    if (node.depth > kMaxExprDepth) {
      too_deep(error_offset);
      return false;
    }
    return true;
  }

  bool expect_line_end() {
    const Token& t = peek();
    if (t.kind == TokenKind::Newline) {
      ++m_pos;
      return true;
    }
    if (t.kind == TokenKind::End) {
      return true;
    }
    std::string found = describe(t);
    if (t.kind == TokenKind::Punct && t.text == "=") {
      found += " (use '==' to compare)";
    } else if (t.kind == TokenKind::Punct && (t.text == ")" || t.text == "]")) {
      found += " without a matching '" + std::string(t.text == ")" ? "(" : "[") + "'";
    }
    const bool more_lines = std::any_of(m_tokens.begin() + static_cast<long>(m_pos), m_tokens.end(),
                                        [](const Token& x) { return x.kind == TokenKind::Newline; });
    fail(t, std::string("expected an operator or end of ") + (more_lines ? "line" : "expression") +
                ", found " + found);
    return false;
  }

  // nullptr (and the error) when the node would make the tree too deep.
  SyntaxPtr make(SyntaxKind kind, size_t offset, size_t op_offset, std::string op, std::vector<SyntaxPtr> args) {
    auto s = std::make_shared<Syntax>();
    s->kind = kind;
    s->offset = offset;
    s->op_offset = op_offset;
    s->op = std::move(op);
    s->args = std::move(args);
    if (!set_depth(*s, op_offset)) {
      return nullptr;
    }
    return s;
  }

  // `context` says what the expression follows, for "expected an expression <context>".
  SyntaxPtr parse_expr(const std::string& context) {
    const Nesting nesting(*this);
    if (!nesting.ok) {
      return too_deep(peek().offset);
    }
    SyntaxPtr value = parse_or(context);
    if (!value || !at_keyword("if")) {
      return value;
    }
    const Token if_token = peek();
    ++m_pos;
    SyntaxPtr cond = parse_or("after 'if'");
    if (!cond) {
      return nullptr;
    }
    if (!at_keyword("else")) {
      return fail(peek(), "expected 'else' after 'if' at " + pos_text(m_map.at(if_token.offset)) +
                              ", found " + describe(peek()));
    }
    ++m_pos;
    SyntaxPtr otherwise = parse_expr("after 'else'");
    if (!otherwise) {
      return nullptr;
    }
    return make(SyntaxKind::Select, value->offset, if_token.offset, "if", {cond, value, otherwise});
  }

  SyntaxPtr parse_or(const std::string& context) {
    SyntaxPtr left = parse_and(context);
    while (left && at_keyword("or")) {
      const Token op = peek();
      ++m_pos;
      SyntaxPtr right = parse_and("after 'or'");
      if (!right) {
        return nullptr;
      }
      left = make(SyntaxKind::Binary, left->offset, op.offset, "or", {left, right});
    }
    return left;
  }

  SyntaxPtr parse_and(const std::string& context) {
    SyntaxPtr left = parse_not(context);
    while (left && at_keyword("and")) {
      const Token op = peek();
      ++m_pos;
      SyntaxPtr right = parse_not("after 'and'");
      if (!right) {
        return nullptr;
      }
      left = make(SyntaxKind::Binary, left->offset, op.offset, "and", {left, right});
    }
    return left;
  }

  SyntaxPtr parse_not(const std::string& context) {
    if (at_keyword("not")) {
      const Token op = peek();
      const Nesting nesting(*this);
      if (!nesting.ok) {
        return too_deep(op.offset);
      }
      ++m_pos;
      SyntaxPtr operand = parse_not("after 'not'");
      if (!operand) {
        return nullptr;
      }
      return make(SyntaxKind::Unary, op.offset, op.offset, "not", {operand});
    }
    return parse_comparison(context);
  }

  bool at_comparison() const {
    static constexpr std::array kOps = {"<", "<=", ">", ">=", "==", "!="};
    return std::any_of(kOps.begin(), kOps.end(), [&](const char* op) { return at_punct(op); });
  }

  SyntaxPtr parse_comparison(const std::string& context) {
    SyntaxPtr left = parse_sum(context);
    SyntaxPtr chain;  // a < b < c  →  (a < b) and (b < c)
    while (left && at_comparison()) {
      const Token op = peek();
      ++m_pos;
      SyntaxPtr right = parse_sum("after '" + op.text + "'");
      if (!right) {
        return nullptr;
      }
      SyntaxPtr cmp = make(SyntaxKind::Binary, left->offset, op.offset, op.text, {left, right});
      chain = chain && cmp ? make(SyntaxKind::Binary, chain->offset, op.offset, "and", {chain, cmp}) : cmp;
      if (!chain) {
        return nullptr;
      }
      left = right;
    }
    return chain ? chain : left;
  }

  SyntaxPtr parse_sum(const std::string& context) {
    SyntaxPtr left = parse_term(context);
    while (left && (at_punct("+") || at_punct("-"))) {
      const Token op = peek();
      ++m_pos;
      SyntaxPtr right = parse_term("after '" + op.text + "'");
      if (!right) {
        return nullptr;
      }
      left = make(SyntaxKind::Binary, left->offset, op.offset, op.text, {left, right});
    }
    return left;
  }

  SyntaxPtr parse_term(const std::string& context) {
    SyntaxPtr left = parse_factor(context);
    while (left && (at_punct("*") || at_punct("/") || at_punct("//") || at_punct("%"))) {
      const Token op = peek();
      ++m_pos;
      SyntaxPtr right = parse_factor("after '" + op.text + "'");
      if (!right) {
        return nullptr;
      }
      left = make(SyntaxKind::Binary, left->offset, op.offset, op.text, {left, right});
    }
    return left;
  }

  SyntaxPtr parse_factor(const std::string& context) {
    if (at_punct("-") || at_punct("+")) {
      const Token op = peek();
      const Nesting nesting(*this);
      if (!nesting.ok) {
        return too_deep(op.offset);
      }
      ++m_pos;
      SyntaxPtr operand = parse_factor("after unary '" + op.text + "'");
      if (!operand) {
        return nullptr;
      }
      return make(SyntaxKind::Unary, op.offset, op.offset, op.text, {operand});
    }
    return parse_power(context);
  }

  SyntaxPtr parse_power(const std::string& context) {
    SyntaxPtr base = parse_primary(context);
    if (!base || !at_punct("**")) {
      return base;
    }
    const Token op = peek();
    const Nesting nesting(*this);
    if (!nesting.ok) {
      return too_deep(op.offset);
    }
    ++m_pos;
    SyntaxPtr exponent = parse_factor("after '**'");
    if (!exponent) {
      return nullptr;
    }
    return make(SyntaxKind::Binary, base->offset, op.offset, "**", {base, exponent});
  }

  SyntaxPtr expected_expression(const std::string& context) {
    return fail(peek(), "expected an expression" + (context.empty() ? "" : " " + context) + ", found " +
                            describe(peek()));
  }

  SyntaxPtr parse_primary(const std::string& context) {
    const Token t = peek();
    auto leaf = std::make_shared<Syntax>();
    leaf->offset = t.offset;
    switch (t.kind) {
      case TokenKind::Int:
        ++m_pos;
        leaf->kind = SyntaxKind::IntLit;
        leaf->int_value = t.int_value;
        return leaf;
      case TokenKind::Float:
        ++m_pos;
        leaf->kind = SyntaxKind::FloatLit;
        leaf->float_value = t.float_value;
        return leaf;
      case TokenKind::Keyword:
        if (t.text == "True" || t.text == "False") {
          ++m_pos;
          leaf->kind = SyntaxKind::BoolLit;
          leaf->bool_value = t.text == "True";
          return leaf;
        }
        return expected_expression(context);
      case TokenKind::Name:
        ++m_pos;
        leaf->name = t.text;
        if (at_punct("(") || at_punct("[")) {
          return parse_arguments(leaf);
        }
        leaf->kind = SyntaxKind::Name;
        return leaf;
      case TokenKind::Punct:
        if (t.text == "(") {
          ++m_pos;
          SyntaxPtr inner = parse_expr("after '('");
          if (!inner) {
            return nullptr;
          }
          if (!at_punct(")")) {
            return fail(peek(), "expected ')' to close '(' at " + pos_text(m_map.at(t.offset)) + ", found " +
                                    describe(peek()));
          }
          ++m_pos;
          return inner;
        }
        return expected_expression(context);
      case TokenKind::Newline:
      case TokenKind::End:
        break;
    }
    return expected_expression(context);
  }

  // name( args ) or name[ args ]; `node` holds the name.
  SyntaxPtr parse_arguments(std::shared_ptr<Syntax> node) {
    const Token open = peek();
    ++m_pos;
    const bool is_call = open.text == "(";
    const std::string close = is_call ? ")" : "]";
    node->kind = is_call ? SyntaxKind::Call : SyntaxKind::Index;
    node->op_offset = open.offset;
    if (is_call && at_punct(")")) {
      ++m_pos;
      return node;
    }
    while (true) {
      SyntaxPtr arg = parse_expr(node->args.empty() ? "after '" + open.text + "'" : "after ','");
      if (!arg) {
        return nullptr;
      }
      node->args.push_back(arg);
      if (at_punct(",")) {
        ++m_pos;
        continue;
      }
      if (at_punct(close.c_str())) {
        ++m_pos;
        if (!set_depth(*node, open.offset)) {
          return nullptr;
        }
        return node;
      }
      return fail(peek(), "expected ',' or '" + close + "' to close '" + open.text + "' at " +
                              pos_text(m_map.at(open.offset)) + ", found " + describe(peek()));
    }
  }

  std::vector<Token> m_tokens;
  const ScalarSourceMap& m_map;
  size_t m_pos = 0;
  int m_nesting = 0;  // parse_expr / unary / `**` calls active (Nesting)
  std::optional<ParseError> m_error;
};

}  // namespace

Expected<SyntaxMod, ParseError> parse_mod(std::string_view text, const ScalarSourceMap& map) {
  auto tokens = lex(text);
  if (!tokens) {
    return unexpected(ParseError{map.at(tokens.error().offset), tokens.error().message});
  }
  if (tokens->size() == 1) {
    return unexpected(ParseError{map.at(0), "expected an expression, found end of expression"});
  }
  return Parser(std::move(*tokens), map).parse_mod();
}

}  // namespace kg::spec
