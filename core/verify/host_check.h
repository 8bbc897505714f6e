// Checks on the host side of a compiled candidate (docs/verifier.md, stage 2): what the host
// compiler really compiled, and the object it made. Spelling cannot hide a name from them: macros,
// token pasting (`##`, `%:%:`), `&name`, `(name)(...)`, split or escaped string literals are all
// gone by then.
//
// Three layers, each given nvcc's own files (nvcc --keep, so nothing is compiled twice):
//   1. the host translation (`<stem>.cudafe1.cpp`: preprocessed, device function bodies inside
//      `#if 0`): on the lines that came from the candidate's file (line markers `# N "file"`),
//      denied names (static_check.h's list), driver-API names in string literals after adjacent
//      literals are joined and escapes decoded, stream handles made from numbers
//      (`(cudaStream_t)2`, cudaStreamPerThread's own expansion), and host inline assembly
//      (`asm`, `__asm__`, `__asm`, and `section(...)` attributes that put bytes into code);
//   2. the host object's undefined symbols (what the candidate's code calls, however spelt): each
//      must be on the allowlist (symbol_refusal);
//   3. the host object's machine code (objdump -d): no `syscall`, `sysenter` or `int $0x80`.
// Device code (PTX `asm volatile(...)` in __device__ functions) is not host code and stays allowed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "util/expected.h"
#include "verify/report.h"

namespace kg::verify {

// The candidate's own code from a host translation: the text of the lines that line markers
// attribute to `candidate_path` (outside `#if 0` blocks), one line per element of `lines`, which
// holds each line's number in the candidate's file.
struct CandidateCode {
  std::string code;        // the lines, each ended by '\n'
  std::vector<int> lines;  // lines[i]: candidate line number of code line i
  int line_at(size_t pos) const;  // candidate line number of byte `pos` of `code` (0: none)
};
CandidateCode candidate_code(const std::string& translation, const std::string& candidate_path);

// Layer 1 on the text of a host translation. Findings: forbidden_call (names, driver names,
// numeric stream handles), host_inline_asm; stage "compile"; messages start "line N:" (the
// candidate's line).
std::vector<Finding> translation_check(const std::string& translation, const std::string& candidate_path);

// The undefined global and weak symbols of a relocatable ELF object (.symtab), in table order.
// Errors: unreadable, not a 64-bit little-endian ELF, no symbol table.
Expected<std::vector<std::string>, Failure> undefined_symbols(const std::string& object_path);

// Why `symbol` may not be referenced by a candidate's host object: nullopt when it is on the
// allowlist (CUDA runtime API but the denied calls, nvcc's host stub helpers, libm, memory and
// string functions, printing to stdout/stderr, the C++ runtime's support symbols); otherwise a
// short reason ("denied: creates a stream", "not on the allowlist").
std::optional<std::string> symbol_refusal(std::string_view symbol);

// Layer 2: a forbidden_symbol finding (stage "compile") per refused symbol of `undefined`.
std::vector<Finding> symbol_check(const std::vector<std::string>& undefined);

// Layer 3 on `objdump -d` output: a host_inline_asm finding per system-call instruction (at most
// a few, naming the function they are in).
std::vector<Finding> machine_code_check(const std::string& disassembly);

// Runs `objdump -d` (binutils, found on `env`'s PATH) on `object_path` and returns its output.
// Errors: objdump cannot run or fails.
Expected<std::string, Failure> disassemble(const std::string& object_path, const config::Environment& env);

// All three layers. `translation_path`: nvcc's .cudafe1.cpp ("" skips layer 1); `candidate_path`:
// the source path nvcc was given (it names the candidate's lines). Errors: a file cannot be read,
// objdump cannot run.
Expected<std::vector<Finding>, Failure> host_check(const std::string& translation_path,
                                                   const std::string& candidate_path, const std::string& object_path,
                                                   const config::Environment& env);

}  // namespace kg::verify
