#include "util/text.h"

#include <cstdint>

namespace kg {

namespace {

void append_hex(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 0xf];
}

// Length of the valid UTF-8 sequence at text[i] whose code point is printable; 0 when the bytes
// there are not one (invalid, overlong, surrogate, C1 control or bidirectional/zero-width format
// character).
size_t printable_utf8(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    cp = lead & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  const bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  const bool bad = overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f) ||
                   (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
                   (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff;
  return bad ? 0 : n;
}

std::string render(std::string_view text, size_t limit, bool keep_newlines) {
  const std::string_view shown = text.substr(0, limit);
  std::string out;
  out.reserve(shown.size());
  size_t i = 0;
  while (i < shown.size()) {
    const auto c = static_cast<unsigned char>(shown[i]);
    if ((c >= 0x20 && c < 0x7f) || (keep_newlines && c == '\n')) {
      out += static_cast<char>(c);
      ++i;
    } else if (const size_t n = c >= 0x80 ? printable_utf8(shown, i) : 0; n > 0) {
      out.append(shown.substr(i, n));
      i += n;
    } else {
      append_hex(out, c);
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
