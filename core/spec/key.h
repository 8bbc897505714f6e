// Cache keys (docs/design.md §7): what identifies a kernel across machines and releases.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spec/spec.h"
#include "util/expected.h"

namespace kg::spec {

// Normalises a target architecture, or a set of them, to the canonical spelling the key and every
// record use. One architecture: "sm_<digits>[a|f]". Accepts "sm_90a", "sm90a", "90a",
// "compute_90a", "compute90a" (any case, surrounding blanks ignored); the digits are the compute
// capability without the dot (2 or 3 digits, e.g. 80, 90, 100). A set: architectures separated by
// ',' or ';' ("80;86;89;90a", "sm_90a, sm_80"), normalised to the resolved architectures sorted by
// compute capability (then no suffix, "a", "f") without duplicates, joined by ',' without blanks:
// "sm_80,sm_86,sm_89,sm_90a". A set of one is exactly that architecture's spelling ("90a,90a" →
// "sm_90a"), so its key is the key of the single architecture. "" means kDefaultArch.
// Fails with a message naming the input and the accepted forms for anything else ("sm_9",
// "hopper", "90b", an empty element such as "80,,90a", more than kMaxArchSetSize elements).
inline constexpr size_t kMaxArchSetSize = 16;
Expected<std::string, Failure> resolve_arch(std::string_view arch);

// The architectures of a resolved set (a resolve_arch result), in its order: "sm_80,sm_90a" →
// {"sm_80", "sm_90a"}; "sm_90a" → {"sm_90a"}; "" → {}. Does not check the elements.
std::vector<std::string> arch_set(std::string_view resolved);

// The cache key of `spec` for `resolved_arch` (a resolve_arch result): XXH3-128 over the framed
// fields "kernelgen-key", kCacheFormatVersion, canonical_form(spec), resolved_arch,
// kGeneratorVersion, kPromptVersion and kVerifierVersion — 32 lowercase hex digits. Changes exactly when one of
// them does.
std::string spec_key(const Spec& spec, const std::string& resolved_arch);

// Every input of spec_key, in the order it hashes them: {"format", "1"}, {"canonical spec", ...},
// {"arch", ...}, {"generator", ...}, {"prompts", ...}, {"verifier", ...} (`kernelgen explain`).
std::vector<std::pair<std::string, std::string>> key_inputs(const Spec& spec, const std::string& resolved_arch);

}  // namespace kg::spec
