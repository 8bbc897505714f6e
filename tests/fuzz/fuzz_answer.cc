// Fuzz target: reading a model's answer (core/loop/answer.h, parse_answer).
//
// Each input is an answer's content. parse_answer must return, never crash or throw, and what it
// accepts must hold: a non-empty source of at most kMaxSourceBytes that, put back alone in a
// ```cuda block (a fence longer than any backtick run in it), is accepted again as the very same
// source (the extraction is a fixed point). Sources that mention <think> are not re-checked:
// thinking is removed before blocks are found, by design. A crash, an uncaught exception, a
// broken property or a sanitizer report is a finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "loop/answer.h"

namespace {

constexpr std::string_view kEntry = "kg_causal_forward";

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_answer: %s\n", what.c_str());
  std::abort();
}

std::string rewrapped(const std::string& source) {
  size_t longest = 0, run = 0;
  for (char c : source) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(std::max<size_t>(3, longest + 1), '`');
  return fence + "cuda\n" + source + fence + "\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  auto parsed = kg::loop::parse_answer(content, kEntry);
  if (!parsed) {
    if (parsed.error().message.empty()) {
      finding("a refusal without a message");
    }
    return 0;
  }
  const std::string& source = parsed->source;
  if (source.empty() || source.size() > kg::loop::kMaxSourceBytes || parsed->blocks < 1) {
    finding("accepted a source of " + std::to_string(source.size()) + " bytes from " +
            std::to_string(parsed->blocks) + " blocks");
  }
  if (source.find("think>") == std::string::npos) {
    auto again = kg::loop::parse_answer(rewrapped(source), kEntry);
    if (!again) {
      finding("the accepted source is refused when parsed again: " + again.error().message);
    }
    if (again->source != source) {
      finding("the accepted source changes when parsed again");
    }
  }
  return 0;
}
