// Tokens of the mod expression language (a small Python subset).
//
// Newlines separate the lines of a multi-line mod, except inside ( ) and [ ] or after a `\`
// line continuation, as in Python. `#` starts a comment that runs to the end of the line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.h"

namespace kg::spec {

enum class TokenKind {
  Int,      // 123 (int_value set)
  Float,    // 1.5, .5, 1e-3, 2. (float_value set)
  Name,     // identifier that is not a keyword
  Keyword,  // True False and or not if else
  Punct,    // + - * / // % ** < <= > >= == != = ( ) [ ] ,
  Newline,  // end of one line of a multi-line mod (offset: just after the line's last token)
  End,      // end of the text (offset: just after the last token)
};

struct Token {
  TokenKind kind = TokenKind::End;
  std::string text;   // source spelling ("" for Newline and End)
  size_t offset = 0;  // byte offset in the lexed text
  int64_t int_value = 0;
  double float_value = 0.0;
};

struct LexError {
  size_t offset = 0;
  std::string message;
};

// Largest integer literal: generated GPU code computes in 32-bit ints.
inline constexpr int64_t kMaxIntLiteral = 2147483647;

// Splits `text` into tokens; the last token is always End. Leading, trailing and repeated
// Newlines are dropped. Fails on a character or number the language does not have.
Expected<std::vector<Token>, LexError> lex(std::string_view text);

// How a token is named in "found ..." messages: "'+'", "identifier 'x'", "number '3'",
// "keyword 'if'", "end of line", "end of expression".
std::string describe(const Token& token);

}  // namespace kg::spec
