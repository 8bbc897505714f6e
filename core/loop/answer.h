// Reading a model's answer (docs/design.md §5): the kernel is the answer's final fenced code
// block. A reply without one, with a block in another language (Triton, PyTorch, plain Python),
// or whose code lacks the exact entry point is no candidate, and the error says which, in words
// the next prompt can quote.
#pragma once

#include <string>
#include <string_view>

#include "util/expected.h"

namespace kg::loop {

struct ParsedAnswer {
  std::string source;    // the .cu text of the final fenced block
  std::string language;  // the fence's info string ("cuda", "cpp", "" when none)
  int blocks = 0;        // fenced blocks in the answer
};

// Takes the candidate out of `content` (reasoning already split off by the endpoint; a
// <think>…</think> left in it is removed here too). `entry` is the exported function the code
// must define (`kg_causal_forward`). Errors (Error kind), one sentence each: no fenced block;
// an unterminated block; an empty block; a block that is Python/Triton/PyTorch rather than CUDA
// C++ (say which markers were found); the entry missing or not extern "C"; larger than
// kMaxSourceBytes.
Expected<ParsedAnswer, Failure> parse_answer(std::string_view content, std::string_view entry);

// The longest candidate source accepted.
inline constexpr size_t kMaxSourceBytes = 512 * 1024;

}  // namespace kg::loop
