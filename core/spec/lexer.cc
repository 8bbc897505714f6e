#include "spec/lexer.h"

#include <array>
#include <charconv>
#include <cmath>

#include "spec/limits.h"
#include "spec/printable.h"

namespace kg::spec {
namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

constexpr std::array kKeywords = {"True", "False", "and", "or", "not", "if", "else"};
constexpr std::array kPunct2 = {"//", "**", "<=", ">=", "==", "!="};
constexpr std::array kPunct1 = {"+", "-", "*", "/", "%", "<", ">", "=", "(", ")", "[", "]", ","};

// Operators from other languages, with what to write instead.
struct Unsupported {
  const char* text;
  const char* advice;
};
constexpr std::array kUnsupported = {
    Unsupported{"&&", "use 'and'"},
    Unsupported{"||", "use 'or'"},
    Unsupported{"<<", "shifts are not part of the language"},
    Unsupported{">>", "shifts are not part of the language"},
    Unsupported{"&", "use 'and'"},
    Unsupported{"|", "use 'or'"},
    Unsupported{"!", "use 'not'"},
    Unsupported{"^", "use '**' for powers"},
    Unsupported{"~", "use 'not' or '-'"},
    Unsupported{"?", "use 'x if c else y'"},
    Unsupported{":", "use 'x if c else y'"},
    Unsupported{";", "put each binding on its own line"},
    Unsupported{"{", "only ( ) and [ ] are brackets"},
    Unsupported{"}", "only ( ) and [ ] are brackets"},
    Unsupported{".", "attributes and methods are not part of the language"},
};

Expected<Token, LexError> lex_number(std::string_view text, size_t start, size_t& i) {
  while (i < text.size()) {
    const char c = text[i];
    if (is_name_char(c) || c == '.') {
      ++i;
    } else if ((c == '+' || c == '-') && (text[i - 1] == 'e' || text[i - 1] == 'E') && i + 1 < text.size() &&
               is_digit(text[i + 1])) {
      ++i;
    } else {
      break;
    }
  }
  const std::string spelling(text.substr(start, i - start));
  if (spelling.size() > kMaxNumberLength) {
    return unexpected(LexError{start, "number of " + std::to_string(spelling.size()) +
                                          " characters is too long (expected at most " +
                                          std::to_string(kMaxNumberLength) + ")"});
  }
  // Python's forms, scanned by hand (std::regex recurses per character on long input):
  //   int    0 | [1-9][0-9]*
  //   float  ([0-9]+ '.' [0-9]* | '.' [0-9]+) exponent? | [0-9]+ exponent    exponent: [eE][+-]?[0-9]+
  const std::string_view s(spelling);
  size_t k = 0;
  auto digits = [&]() {
    const size_t from = k;
    while (k < s.size() && is_digit(s[k])) {
      ++k;
    }
    return k - from;
  };
  const size_t int_digits = digits();
  const bool has_dot = k < s.size() && s[k] == '.';
  size_t frac_digits = 0;
  if (has_dot) {
    ++k;
    frac_digits = digits();
  }
  bool valid = int_digits + frac_digits > 0;
  const bool has_exponent = valid && k < s.size() && (s[k] == 'e' || s[k] == 'E');
  if (has_exponent) {
    ++k;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) {
      ++k;
    }
    valid = digits() > 0;
  }
  valid = valid && k == s.size();
  Token t;
  t.text = spelling;
  t.offset = start;
  if (valid && !has_dot && !has_exponent) {
    if (int_digits > 1 && s[0] == '0') {
      return unexpected(
          LexError{start, "invalid number '" + spelling + "' (leading zeros are not allowed in integers)"});
    }
    t.kind = TokenKind::Int;
    const auto r = std::from_chars(spelling.data(), spelling.data() + spelling.size(), t.int_value);
    if (r.ec != std::errc() || t.int_value > kMaxIntLiteral) {
      return unexpected(
          LexError{start, "integer literal " + spelling + " is out of range (expected at most 2147483647)"});
    }
    return t;
  }
  if (valid) {
    t.kind = TokenKind::Float;
    const auto r = std::from_chars(spelling.data(), spelling.data() + spelling.size(), t.float_value);
    if (r.ec != std::errc() || !std::isfinite(t.float_value)) {
      return unexpected(LexError{start, "float literal " + spelling + " is out of range"});
    }
    return t;
  }
  return unexpected(LexError{start, "invalid number '" + spelling + "'"});
}

LexError too_many_tokens(size_t offset) {
  return LexError{offset, "expected at most " + std::to_string(kMaxModTokens) + " tokens in one mod, found more"};
}

}  // namespace

Expected<std::vector<Token>, LexError> lex(std::string_view text) {
  std::vector<Token> tokens;
  int depth = 0;  // open ( and [: newlines inside them are blanks
  size_t last_end = 0;
  auto push_newline = [&]() {
    if (!tokens.empty() && tokens.back().kind != TokenKind::Newline) {
      Token t;
      t.kind = TokenKind::Newline;
      t.offset = last_end;
      tokens.push_back(t);
    }
  };
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') {
        ++i;
      }
      continue;
    }
    if (c == '\n') {
      if (depth == 0) {
        push_newline();
      }
      ++i;
      continue;
    }
    if (c == '\\') {
      size_t j = i + 1;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) {
        ++j;
      }
      if (j == text.size() || text[j] == '\n') {
        i = j + 1;  // line continuation
        continue;
      }
      return unexpected(LexError{i, "unexpected character '\\' (a line continuation must end the line)"});
    }
    const size_t start = i;
    if (is_digit(c) || (c == '.' && i + 1 < text.size() && is_digit(text[i + 1]))) {
      auto number = lex_number(text, start, i);
      if (!number) {
        return unexpected(number.error());
      }
      tokens.push_back(*number);
      last_end = i;
      if (tokens.size() > kMaxModTokens) {
        return unexpected(too_many_tokens(start));
      }
      continue;
    }
    if (is_name_start(c)) {
      while (i < text.size() && is_name_char(text[i])) {
        ++i;
      }
      Token t;
      t.text = std::string(text.substr(start, i - start));
      t.offset = start;
      t.kind = TokenKind::Name;
      for (const char* k : kKeywords) {
        if (t.text == k) {
          t.kind = TokenKind::Keyword;
        }
      }
      tokens.push_back(t);
      last_end = i;
      if (tokens.size() > kMaxModTokens) {
        return unexpected(too_many_tokens(start));
      }
      continue;
    }
    std::string punct;
    for (const char* p : kPunct2) {
      if (text.substr(i, 2) == p) {
        punct = p;
      }
    }
    if (c == '"' || c == '\'') {
      return unexpected(LexError{
          i, "expected an expression, found a string literal (strings are not part of the language)"});
    }
    if (punct.empty()) {
      for (const Unsupported& u : kUnsupported) {
        const std::string_view s(u.text);
        if (text.substr(i, s.size()) == s) {
          return unexpected(LexError{i, "'" + std::string(s) + "' is not supported; " + u.advice});
        }
      }
      for (const char* p : kPunct1) {
        if (text.substr(i, 1) == p) {
          punct = p;
        }
      }
    }
    if (punct.empty()) {
      size_t n = 1;
      if (static_cast<unsigned char>(c) >= 0x80) {  // show the whole UTF-8 sequence
        while (i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) {
          ++n;
        }
      }
      return unexpected(LexError{i, "unexpected character '" + std::string(text.substr(i, n)) + "'"});
    }
    if (punct == "(" || punct == "[") {
      ++depth;
    } else if ((punct == ")" || punct == "]") && depth > 0) {
      --depth;
    }
    Token t;
    t.kind = TokenKind::Punct;
    t.text = punct;
    t.offset = start;
    tokens.push_back(t);
    i += punct.size();
    last_end = i;
    if (tokens.size() > kMaxModTokens) {
      return unexpected(too_many_tokens(start));
    }
  }
  if (!tokens.empty() && tokens.back().kind == TokenKind::Newline) {
    tokens.pop_back();
  }
  Token end;
  end.kind = TokenKind::End;
  end.offset = last_end;
  tokens.push_back(end);
  return tokens;
}

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::Int:
    case TokenKind::Float:
      return "number " + quote_input(token.text);
    case TokenKind::Name:
      return "identifier " + quote_input(token.text);
    case TokenKind::Keyword:
      return "keyword '" + token.text + "'";
    case TokenKind::Punct:
      return "'" + token.text + "'";
    case TokenKind::Newline:
      return "end of line";
    case TokenKind::End:
      break;
  }
  return "end of expression";
}

}  // namespace kg::spec
