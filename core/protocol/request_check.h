// Limits on what a request may carry (docs/protocol.md §4) and the checks the daemon makes at the
// door, before any job sees a request. The client makes the same checks before it sends, so that
// a request the daemon would refuse fails with the same message without a daemon.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/protocol.h"
#include "util/expected.h"
#include "util/text.h"

namespace kg::protocol {

// Largest spec text (YAML bytes) a generate request may carry: 1 MiB. Specs are a few hundred bytes.
inline constexpr size_t kMaxSpecBytes = size_t{1} << 20;
// Largest `file` (a path, for diagnostics only): PATH_MAX.
inline constexpr size_t kMaxFileBytes = 4096;
// Largest `arch` before it is resolved ("sm_90a" and its spellings are a few bytes; a set of
// spec::kMaxArchSetSize architectures, "sm_80,sm_86,...,sm_121f", under 160).
inline constexpr size_t kMaxArchBytes = 160;
// Largest spec name: it names <name>.cu, <name>.h and kg_<name>_forward.
inline constexpr size_t kMaxNameBytes = 128;

// Refuses `request` when a field exceeds its limit. The error names the field, its size and the
// limit ("the spec is 2097152 bytes; the limit is 1048576").
Expected<void, std::string> check_generate(const GenerateRequest& request);

// Refuses a spec name longer than kMaxNameBytes (the spec parser has checked that it is a C
// identifier).
Expected<void, std::string> check_name(std::string_view name);

}  // namespace kg::protocol
