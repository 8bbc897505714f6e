// Whether a GPU has verified a cached kernel (docs/design.md §1: "template kernels record whether a GPU
// has verified them yet"). One enum from the verifier through the cache and the protocol to the
// client; the strings below are its only spellings, in records, protocol messages and output.
#pragma once

#include <optional>
#include <string_view>

namespace kg::cache {

enum class Verification {
  Unverified,  // generated where no GPU could check it (or verification was skipped)
  Verified,    // passed the verifier on a GPU
  Failed,      // rejected by the verifier; never stored, but reported to whoever asked
};

// "unverified", "verified", "failed".
constexpr const char* verification_name(Verification v) {
  switch (v) {
    case Verification::Verified:
      return "verified";
    case Verification::Failed:
      return "failed";
    case Verification::Unverified:
      break;
  }
  return "unverified";
}

// The inverse of verification_name; nullopt for any other text.
constexpr std::optional<Verification> parse_verification(std::string_view s) {
  for (Verification v : {Verification::Unverified, Verification::Verified, Verification::Failed}) {
    if (s == verification_name(v)) {
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace kg::cache
