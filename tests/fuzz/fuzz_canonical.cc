// Fuzz target: reading a canonical spec back (core/spec/canonical_reader.h, read_canonical), as
// `kernelgen cache verify` does with the canonical text a cache record names. The cache is on disk
// and shared: the text may be anything.
//
// Each input is a canonical text. read_canonical must return, never crash or throw. What it
// accepts must be the input exactly: the spec's canonical form is the input byte for byte, and
// the spec file it wrote reads back to the same spec. A crash, an uncaught exception, a broken
// property or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spec/canonical_reader.h"
#include "spec/spec.h"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_canonical: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto read = kg::spec::read_canonical(text, "fuzz.canonical");
  if (!read) {
    if (read.error().message.empty()) {
      finding("a refusal without a message");
    }
    return 0;
  }
  if (kg::spec::canonical_form(read->spec) != text) {
    finding("accepted a text that is not the canonical form of what it read");
  }
  auto again = kg::spec::parse_spec(read->yaml, "fuzz.yaml");
  if (!again) {
    finding("the spec file it wrote does not parse");
  }
  if (kg::spec::canonical_form(*again) != text) {
    finding("the spec file it wrote reads back as a different spec");
  }
  return 0;
}
