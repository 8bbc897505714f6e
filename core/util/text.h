// Text from outside (spec files, requests, remote answers) made safe to print.
#pragma once

#include <string>
#include <string_view>

namespace kg {

// `text` with every byte that is not printable written as \xHH (two lowercase hex digits):
// ASCII control bytes (0x00-0x1f, 0x7f; tab and newline included), bytes of invalid or overlong
// UTF-8, and the UTF-8 encodings of C1 controls (U+0080-U+009F), bidirectional and zero-width
// format characters (U+200B-U+200F, U+202A-U+202E, U+2060-U+2069, U+FEFF) and surrogates.
// Printable ASCII (backslash included) and other valid UTF-8 pass unchanged, so escaping escaped
// text changes nothing. At most `limit` bytes of input are rendered; longer text ends in
// "…(N more bytes)".
std::string printable(std::string_view text, size_t limit = 512);

// printable() for messages of several lines (spec diagnostics, compiler output): '\n' stays a
// line break; everything else is escaped as printable() does.
std::string printable_lines(std::string_view text, size_t limit = 16384);

}  // namespace kg
