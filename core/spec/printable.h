// Text from a spec file shown in diagnostics and build logs. A spec is hostile input: a name or a
// scalar may hold terminal escape sequences, invalid UTF-8 or bidirectional overrides. Everything a
// diagnostic quotes from input goes through here, so nothing but printable text reaches a terminal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kg::spec {

// kg::printable (util/text.h) without a length limit: every byte that is not printable written as
// `\xHH` (two lowercase hex digits):
// ASCII control bytes (0x00-0x1f, 0x7f; tab and newline included), bytes of invalid or overlong
// UTF-8, and the UTF-8 encodings of C1 controls (U+0080-U+009F), bidirectional and zero-width
// format characters (U+200B-U+200F, U+202A-U+202E, U+2060-U+2069, U+FEFF) and surrogates.
// Printable ASCII (backslash included) and other valid UTF-8 pass unchanged, so escaping escaped
// text changes nothing.
std::string escape_nonprintable(std::string_view text);

// `text` escaped and in single quotes ('abc'); longer than `max_bytes` of input, it is cut there
// and the quote says how long the whole is: 'aaaa...' (12345 bytes).
std::string quote_input(std::string_view text, size_t max_bytes = 64);

}  // namespace kg::spec
