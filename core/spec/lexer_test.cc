#include "spec/lexer.h"

#include <gtest/gtest.h>

namespace kg::spec {
namespace {

std::string kinds(std::string_view text) {
  auto tokens = lex(text);
  if (!tokens) {
    return "error@" + std::to_string(tokens.error().offset) + ": " + tokens.error().message;
  }
  std::string s;
  for (const Token& t : *tokens) {
    switch (t.kind) {
      case TokenKind::Int:
        s += "I(" + t.text + ") ";
        break;
      case TokenKind::Float:
        s += "F(" + t.text + ") ";
        break;
      case TokenKind::Name:
        s += "N(" + t.text + ") ";
        break;
      case TokenKind::Keyword:
        s += "K(" + t.text + ") ";
        break;
      case TokenKind::Punct:
        s += t.text + " ";
        break;
      case TokenKind::Newline:
        s += "NL ";
        break;
      case TokenKind::End:
        s += "END";
        break;
    }
  }
  return s;
}

TEST(Lexer, Tokens) {
  EXPECT_EQ(kinds("a//2**-b<=1.5e3!=.5"), "N(a) // I(2) ** - N(b) <= F(1.5e3) != F(.5) END");
  EXPECT_EQ(kinds("x if not True else 2."), "N(x) K(if) K(not) K(True) K(else) F(2.) END");
  EXPECT_EQ(kinds("f(a, b[1])"), "N(f) ( N(a) , N(b) [ I(1) ] ) END");
}

TEST(Lexer, NewlinesOnlyOutsideBrackets) {
  EXPECT_EQ(kinds("\n\n a = 1  # c\n\n (b +\n c)\n\n"), "N(a) = I(1) NL ( N(b) + N(c) ) END");
  EXPECT_EQ(kinds("a + \\\n b"), "N(a) + N(b) END");
}

TEST(Lexer, EndAndNewlineSitAfterTheLastToken) {
  auto tokens = lex("ab  # note\ncd   ");
  ASSERT_TRUE(tokens);
  ASSERT_EQ(tokens->size(), 4u);
  EXPECT_EQ((*tokens)[1].offset, 2u);   // NL right after "ab"
  EXPECT_EQ((*tokens)[3].offset, 13u);  // END right after "cd"
}

TEST(Lexer, Errors) {
  EXPECT_EQ(kinds("a || b"), "error@2: '||' is not supported; use 'or'");
  EXPECT_EQ(kinds("a ^ 2"), "error@2: '^' is not supported; use '**' for powers");
  EXPECT_EQ(kinds("a ? b : c"), "error@2: '?' is not supported; use 'x if c else y'");
  EXPECT_EQ(kinds("1x"), "error@0: invalid number '1x'");
  EXPECT_EQ(kinds("1e999"), "error@0: float literal 1e999 is out of range");
  EXPECT_EQ(kinds("2147483648"),
            "error@0: integer literal 2147483648 is out of range (expected at most 2147483647)");
  EXPECT_EQ(kinds("a × b"), "error@2: unexpected character '×'");
  EXPECT_EQ(kinds("a \\ b"), "error@2: unexpected character '\\' (a line continuation must end the line)");
}

}  // namespace
}  // namespace kg::spec
