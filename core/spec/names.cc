#include "spec/names.h"

#include <algorithm>
#include <array>

namespace kg::spec {
namespace {

constexpr std::array kReservedWords = {
    // C and C++ (including alternative tokens and contextual words that would confuse codegen).
    "alignas", "alignof", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
    "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr",
    "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default",
    "delete", "do", "double", "dynamic_cast", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not_eq", "nullptr",
    "operator", "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "requires",
    "restrict", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
    "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename",
    "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq", "_Bool",
    "_Complex", "_Imaginary",
    // Python.
    "None", "as", "assert", "async", "await", "def", "del", "elif", "except", "finally", "from", "global",
    "import", "in", "is", "lambda", "nonlocal", "pass", "raise", "with", "yield"};

constexpr std::array kBuiltinVariables = {"score", "b", "h", "q_idx", "kv_idx"};
constexpr std::array kBuiltinFunctions = {"abs", "min",  "max",  "clamp", "exp",  "exp2",
                                          "log", "log2", "sqrt", "tanh",  "floor"};
constexpr std::array kLanguageKeywords = {"True", "False", "and", "or", "not", "if", "else"};

template <size_t N>
bool contains(const std::array<const char*, N>& words, std::string_view s) {
  return std::any_of(words.begin(), words.end(), [&](const char* w) { return s == w; });
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

bool is_identifier(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(s[0])) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [&](char c) { return alpha(c) || digit(c); });
}

bool is_reserved_word(std::string_view s) { return contains(kReservedWords, s); }

bool is_builtin_name(std::string_view s) {
  return contains(kBuiltinVariables, s) || contains(kBuiltinFunctions, s) || contains(kLanguageKeywords, s);
}

std::string builtin_kind(std::string_view s) {
  if (contains(kBuiltinVariables, s)) {
    return "built-in variable";
  }
  if (contains(kBuiltinFunctions, s)) {
    return "built-in function";
  }
  return "keyword";
}

std::optional<std::string> closest_name(std::string_view word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(1, word.size() / 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance && c != word) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  const auto best = closest_name(word, candidates);
  return best ? " (did you mean '" + *best + "'?)" : "";
}

const char* tensor_dtype_name(TensorDType t) {
  switch (t) {
    case TensorDType::Int32:
      return "int32";
    case TensorDType::Int64:
      return "int64";
    case TensorDType::Float32:
      return "float32";
  }
  return "?";
}

const char* dim_name(Dim d) {
  switch (d) {
    case Dim::Batch:
      return "batch";
    case Dim::HeadsQ:
      return "heads_q";
    case Dim::HeadsKv:
      return "heads_kv";
    case Dim::SeqQ:
      return "seq_q";
    case Dim::SeqKv:
      return "seq_kv";
    case Dim::Fixed:
      return "";
  }
  return "?";
}

std::string dim_text(const TensorDim& d) {
  return d.dim == Dim::Fixed ? std::to_string(d.extent) : std::string(dim_name(d.dim));
}

}  // namespace kg::spec
