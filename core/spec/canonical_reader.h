// Reading a canonical spec back (the inverse of canonical_form, spec.h): what a cache record keeps
// of its spec (AcRecord::canonical_digest) is enough to check the record's key again and to verify
// its kernel on a GPU where the spec file is not at hand (`kernelgen cache verify`).
//
// The canonical text is not YAML: its expressions carry type suffixes (q_idx:i) and explicit
// conversions (float(x)). yaml_from_canonical writes a spec file that means the same: the suffixes
// and conversions dropped (the type checker puts the same conversions back: int->float promotion
// is decided by the same rules at the same places), params and tensors as YAML maps in their
// (ABI) order. read_canonical then parses that file and accepts it only when its canonical form is
// the given text, byte for byte: whatever the rewriting cannot express is an error, never a
// different spec.
#pragma once

#include <string>
#include <string_view>

#include "spec/ast.h"
#include "util/expected.h"

namespace kg::spec {

// A spec file (YAML) meaning what `canonical` (canonical_form's text, kCanonicalVersion) means.
// Errors (Error kind) say "line N: expected X, found Y" for text that is not canonical_form's
// layout: another header or version, fields missing, out of order or unknown, a malformed
// params/tensors list or name. The expressions are rewritten without being checked: read_canonical
// checks the result. Never throws; the text may be hostile (a damaged cache).
Expected<std::string, Failure> yaml_from_canonical(std::string_view canonical);

// A spec read back from its canonical text, and the spec file it was read from.
struct CanonicalSpec {
  Spec spec;
  std::string yaml;  // yaml_from_canonical(text): what the verifier's runner parses again
};

// yaml_from_canonical, then parse_spec (diagnostics name `file`), then the round trip: the spec's
// canonical_form must equal `canonical`. Errors (Error kind): as yaml_from_canonical; "does not
// parse: <first diagnostic>"; "reads back as a different spec" (the text was altered, or made by
// a KernelGen whose canonical form differs).
Expected<CanonicalSpec, Failure> read_canonical(std::string_view canonical, const std::string& file);

}  // namespace kg::spec
