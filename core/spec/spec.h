// Loading, checking and canonicalising attention specs (docs/design.md §2).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spec/ast.h"
#include "util/expected.h"

namespace kg::spec {

// One problem found in a spec. `line`/`col` are 1-based; 0 when the problem has no position
// (e.g. the file cannot be read).
struct Diagnostic {
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;  // "expected X, found Y" where that fits

  // "file:line:col: error: message" (position parts omitted when 0).
  std::string str() const;
};

using Diagnostics = std::vector<Diagnostic>;

// Parses and type-checks YAML text. `file` is used in diagnostics only. On failure returns every
// diagnostic found (at least one), in file order; at most kMaxDiagnostics of them, and then one more
// (without a position) saying so. Input beyond any bound of spec/limits.h (size, nesting, counts,
// lengths) is refused with a positioned diagnostic. Text quoted from the input in a message has its
// non-printable bytes escaped (spec/printable.h), so messages are safe to print as they are.
// Never throws for any input.
Expected<Spec, Diagnostics> parse_spec(std::string_view yaml_text, const std::string& file);

// Reads `path` (at most kMaxSpecBytes + 1 bytes of it) and calls parse_spec. A file that cannot be
// read gives one diagnostic without a position.
Expected<Spec, Diagnostics> load_spec_file(const std::string& path);

// The canonical text of a checked spec: sorted top-level fields, typed and fully parenthesised
// expressions, bindings and constants substituted, absent mods written as their identity. Two
// specs have the same canonical text exactly when they mean the same kernel. Stable across
// releases for a given kCanonicalVersion.
std::string canonical_form(const Spec& spec);

// Bumped whenever canonical_form's output changes for some spec.
inline constexpr int kCanonicalVersion = 1;

}  // namespace kg::spec
