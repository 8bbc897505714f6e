#include "util/text.h"

#include <cstdint>
#include <cstdio>

namespace kg {

namespace {

// Length of the valid UTF-8 sequence at `s` (1..4), or 0 when it is not one. Overlong forms,
// surrogates and code points above U+10FFFF are invalid.
size_t utf8_length(std::string_view s) {
  const auto b0 = static_cast<uint8_t>(s[0]);
  size_t n = 0;
  uint32_t cp = 0;
  if (b0 < 0x80) {
    return 1;
  } else if ((b0 & 0xe0) == 0xc0) {
    n = 2;
    cp = b0 & 0x1f;
  } else if ((b0 & 0xf0) == 0xe0) {
    n = 3;
    cp = b0 & 0x0f;
  } else if ((b0 & 0xf8) == 0xf0) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (s.size() < n) {
    return 0;
  }
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  // C1 controls (U+0080–U+009F) act on some terminals too.
  if (cp >= 0x80 && cp <= 0x9f) {
    return 0;
  }
  return n;
}

void hex_byte(std::string& out, uint8_t b) {
  char buf[5];
  std::snprintf(buf, sizeof buf, "\\x%02x", b);
  out += buf;
}

std::string render(std::string_view text, size_t limit, bool keep_newlines) {
  std::string out;
  const std::string_view shown = text.substr(0, limit);
  out.reserve(shown.size());
  size_t i = 0;
  while (i < shown.size()) {
    const auto b = static_cast<uint8_t>(shown[i]);
    if (b == '\n') {
      out += keep_newlines ? "\n" : "\\n";
      ++i;
    } else if (b == '\t') {
      out += "\\t";
      ++i;
    } else if (b == '\r') {
      out += "\\r";
      ++i;
    } else if (b < 0x20 || b == 0x7f) {
      hex_byte(out, b);
      ++i;
    } else if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
    } else if (const size_t n = utf8_length(shown.substr(i)); n > 0) {
      out.append(shown.substr(i, n));
      i += n;
    } else {
      hex_byte(out, b);
      ++i;
    }
  }
  if (text.size() > limit) {
    out += "…(" + std::to_string(text.size() - limit) + " more bytes)";
  }
  return out;
}

}  // namespace

std::string printable(std::string_view text, size_t limit) { return render(text, limit, false); }

std::string printable_lines(std::string_view text, size_t limit) { return render(text, limit, true); }

}  // namespace kg
