// Version numbers that feed cache keys and emitted files. Bump the one whose output changes.
#pragma once

namespace kg {

// The kernelgen release (wrapper, daemon, library).
inline constexpr const char* kVersion = "0.1.0";

// Template generator + reference generator. Any change to emitted code for
// some spec bumps it; it is part of every key.
inline constexpr const char* kGeneratorVersion = "tmpl-16";

// The closed loop's prompts (core/loop/prompts/, core/loop/prompt.cc). Part of every key, as
// docs/design.md §7 has it ("generator version (templates + prompts)"): bump it whenever a prompt
// template or what build_prompt puts into a prompt changes.
inline constexpr const char* kPromptVersion = "prompt-1";

// Layout of AC records and CAS blobs in the LMDB cache.
inline constexpr int kCacheFormatVersion = 1;

// Verifier checks and tolerances (core/verify, runner/, docs/verifier.md). Part of every key:
// bump it when a check's meaning or a tolerance changes.
inline constexpr const char* kVerifierVersion = "verify-2";

// Target used when none is given.
inline constexpr const char* kDefaultArch = "sm_90a";

}  // namespace kg
