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
// <think>…</think> left in it is removed here too, as is everything before a </think> that has
// no opening tag, and everything after a <think> that is never closed). `entry` is the exported
// function the code must define (`kg_causal_forward`).
//
// Blocks are fenced by ``` or ~~~ (3 or more, any indentation, which is removed from the block's
// lines as far as the fence's; an info string after the fence; CRs before line ends dropped).
// The candidate is the final top-level block; when that is a prose wrapper (```markdown, ```text,
// a bare ```) holding blocks of its own, the last block inside it; and when that does not name
// `entry` at all (a trailing ```bash build line), the last block that does, if any.
//
// Errors (Error kind), one sentence each, quotable in the next prompt: no fenced block; the final
// block never closed; an empty block; larger than kMaxSourceBytes; a block marked python, py,
// triton, torch (...), or whose code is Python/Triton/PyTorch, or CUDA C++ mixed with them (the
// markers found are named: 'import triton', '@triton.jit', 'tl.load', 'def ' ...; comments and
// string literals do not count); a block in another language with no CUDA C++ in it; the entry
// not defined (absent, or declared without a body) or defined without C linkage (neither
// `extern "C"` on it or on an earlier declaration, nor an enclosing `extern "C" { }`). Never
// throws; about linear in the size of `content`.
Expected<ParsedAnswer, Failure> parse_answer(std::string_view content, std::string_view entry);

// The longest candidate source accepted.
inline constexpr size_t kMaxSourceBytes = 512 * 1024;

}  // namespace kg::loop
