// Identifier rules shared by the YAML reader and the type checker: what a name may be, which
// words are reserved, and "did you mean" suggestions for misspelt names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec/ast.h"
#include "spec/limits.h"

namespace kg::spec {

// kMaxNameLength (spec/limits.h) bounds every name.

// [A-Za-z_][A-Za-z0-9_]*
bool is_identifier(std::string_view s);

// C, C++ or Python keyword (names end up in generated C++ and in Python-like prompts).
bool is_reserved_word(std::string_view s);

// Why `name` cannot be a spec's `name:` although it is an identifier that is not reserved; ""
// when it can. The spec name names files written into a build directory that is on the include
// path (<name>.cu, <name>.h, <name>_reference.cu), so it must not be:
// - the basename of a C, C++, POSIX/glibc or CUDA toolkit header (compared ignoring case, for
//   case-insensitive file systems): <name>.h beside the kernel would be found before the real
//   <math.h> or <cuda_fp16.h>; C++ header names (vector, cmath, ...) are refused too, so that no
//   emitted file is named after a standard header at all;
// - a name ending in "_reference": spec `x` with a reference kernel writes x_reference.cu
//   defining kg_x_reference_forward, which spec `x_reference` would overwrite.
std::string spec_name_problem(std::string_view name);

// Whether `name` (ignoring case) is the basename of a well-known system or CUDA header.
bool is_system_header_name(std::string_view name);

// Names the expression language gives a meaning to: the built-in variables (score b h q_idx
// kv_idx), the built-in functions, True/False and the keywords and/or/not/if/else.
bool is_builtin_name(std::string_view s);

// What `s` is when is_builtin_name(s): "built-in variable", "built-in function" or "keyword".
std::string builtin_kind(std::string_view s);

// The candidate closest to `word` by edit distance when it is close enough to be a likely typo
// (distance <= max(1, size/3)); ties go to the earlier candidate. nullopt when none is.
std::optional<std::string> closest_name(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — ready to append to a message.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// How spec files spell a tensor element type: "int32", "int64", "float32".
const char* tensor_dtype_name(TensorDType t);

// How spec files spell a named dimension: "batch", "heads_q", "heads_kv", "seq_q", "seq_kv";
// "" for Dim::Fixed.
const char* dim_name(Dim d);

// A shape entry as spec files write it: its name, or its fixed extent in decimal.
std::string dim_text(const TensorDim& d);

}  // namespace kg::spec
