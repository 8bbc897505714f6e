// Static checks on a candidate kernel's source, before anything compiles or runs (docs/design.md §4).
//
// The source is first reduced to code: comments removed and the contents of string and character
// literals blanked (line structure kept, so findings name lines). On that text:
//   - the entry `kg_<name>_forward` is defined (a body, not only a declaration) with C linkage
//     (`extern "C"` on it or on an enclosing block);
//   - no call or use of an identifier on the deny list: stream, graph and host-callback creation
//     (cudaStreamCreate*, cudaLaunchHostFunc, cudaStreamPerThread, ...), device switching/reset,
//     thread creation (std::thread, pthread_*), process creation (fork, exec*, system, popen,
//     posix_spawn), files (fopen, open, std::ofstream, mmap, ...), sockets, dynamic loading
//     (dlopen, dlsym), raw syscalls, exit handlers and early exits (atexit, _Exit, quick_exit, ...),
//     the environment (getenv, secure_getenv, ...); token pasting (`##`, `%:%:`) is refused too,
//     since it can assemble a denied name, and so are line directives (`#line`, `# N "file"`:
//     they would make the candidate's lines look like a header's to the checks on the
//     preprocessed text), trigraphs and the name `___` (nvcc's generated code uses it);
//   - `%:include` is an include (`%:` is the digraph of `#`);
//   - every #include names a header on the allowlist: CUDA headers, C/C++ standard headers without
//     file, thread or process access, and "kernelgen/attention_abi.h".
// String literals are scanned separately for driver-API names that would only be reachable through
// cudaGetDriverEntryPoint (cuStreamCreate, cuLaunchHostFunc, ...).
//
// This is the first, fast layer, with exact line numbers; spelling (macros, `&name`, `(name)()`,
// split literals) can hide a name from it. The compile stage checks what nvcc really compiled
// (host_check.h: the host translation, the host object's symbols and machine code), and the
// sandbox (process.h) and the run-time checks catch what a determined author hides beyond that.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "verify/report.h"

namespace kg::verify {

// `source` with comments removed and literal contents replaced by spaces; newlines are kept, so
// line numbers stay valid. `"C"` is kept as is (extern "C").
std::string strip_comments_and_literals(const std::string& source);

// The contents of the string literals of `source` (comments excluded), one per element.
std::vector<std::string> string_literals(const std::string& source);

// Runs every static check on `source` for the spec called `spec_name`. Returns the findings
// (stage "static", kinds missing_entry, forbidden_call, forbidden_header), empty when the source
// passes. Messages name the line and the identifier or header.
std::vector<Finding> static_check(const std::string& source, const std::string& spec_name);

// The entry point's symbol: "kg_<spec_name>_forward".
std::string entry_symbol(const std::string& spec_name);

// True when `id` is on the deny list above (both layers of the source check use it).
bool is_denied_identifier(std::string_view id);
// True for the denied names that are also common words (`open`, `thread`, `exit`, ...): those are
// denied only as calls, template calls or qualified names, never as variable names.
bool is_common_word(std::string_view id);
// The first denied driver-API name that `literal` (a string literal's decoded contents) contains,
// "" when none.
std::string denied_driver_name_in(std::string_view literal);

}  // namespace kg::verify
