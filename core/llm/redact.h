// Keeping a secret out of text that is shown or stored (endpoint.h: the API key never appears in
// a message, a log line, a record or an error).
#pragma once

#include <string>
#include <string_view>

namespace kg::llm {

// `text` with every run of 8 or more bytes that also occurs in `secret` (all of it, when it is
// shorter than 8 bytes) replaced by "<redacted>": servers quote keys back in parts ("Incorrect API
// key provided: sk-abcd****wxyz"), so whole-key matching is not enough. An empty secret changes
// nothing.
std::string redact_secret(std::string_view text, std::string_view secret);

}  // namespace kg::llm
