#include "llm/redact.h"

#include <algorithm>

namespace kg::llm {

std::string redact_secret(std::string_view text, std::string_view secret) {
  if (secret.empty()) {
    return std::string(text);
  }
  const size_t min_run = std::min<size_t>(8, secret.size());
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    // The longest run starting at text[i] that occurs anywhere in the secret.
    size_t longest = 0;
    for (size_t j = 0; j < secret.size(); ++j) {
      size_t n = 0;
      while (i + n < text.size() && j + n < secret.size() && text[i + n] == secret[j + n]) {
        ++n;
      }
      longest = std::max(longest, n);
    }
    if (longest >= min_run) {
      out += "<redacted>";
      i += longest;
    } else {
      out += text[i];
      ++i;
    }
  }
  return out;
}

}  // namespace kg::llm
