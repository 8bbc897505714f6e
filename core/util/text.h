// Text from outside (spec files, requests, remote answers) made safe to print.
#pragma once

#include <string>
#include <string_view>

namespace kg {

// `text` with every byte that could act on a terminal or a log — C0 and C1 control characters,
// DEL and bytes of invalid UTF-8 — written as \xHH, and tab, newline and carriage return as
// \t, \n, \r. Valid UTF-8 sequences of printable characters pass through.
// At most `limit` bytes of input are rendered; longer text ends in "…(N more bytes)".
std::string printable(std::string_view text, size_t limit = 512);

// printable() for messages of several lines (spec diagnostics, compiler output): '\n' stays a
// line break; everything else is escaped as printable() does.
std::string printable_lines(std::string_view text, size_t limit = 16384);

}  // namespace kg
