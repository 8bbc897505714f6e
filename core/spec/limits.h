// Bounds on spec input (docs/design.md §2: every input is hostile). A spec that exceeds one is refused with
// a positioned diagnostic naming the limit; no stage after the reader ever sees a larger one.
//
// Each bound protects a stage that would otherwise crash (stack overflow on deep recursion) or
// stall (work that grows faster than the input):
//
//   kMaxSpecBytes      the whole spec file (read_file / parse_spec refuse larger text)
//   kMaxYamlDepth      nesting of YAML mappings and sequences (a spec needs 3: tensors → doc → shape)
//   kMaxExprDepth      depth of a score_mod / mask_mod expression tree, counting every operator,
//                      call, index and parenthesis: `((x))` is 3 deep, `1+1+1` (left-deep) is 3 deep.
//                      The parser counts the syntax tree, the type checker the typed tree (which
//                      gains the implicit float() conversions). Every recursive stage after them
//                      (canonical form, interpreter, CPU reference, C++/Python/interval emitters)
//                      relies on it and also refuses a deeper tree by itself rather than overflow
//                      its stack.
//   kMaxExprNodes      nodes of one mod once bindings are substituted (what the canonical form
//                      prints; bindings can double a tree per line)
//   kMaxModTokens      tokens of one mod's text
//   kMaxBindings       `name = expr` lines of one mod
//   kMaxConstants, kMaxParams, kMaxTensors, kMaxTensorRank   declarations of each kind
//   kMaxNameLength     spec, constant, param, tensor and binding names
//   kMaxNumberLength   spelling of a number (in a mod or a constant's value)
//   kMaxDiagnostics    diagnostics reported for one spec; the last one says that more were dropped
//
// Changing a bound changes which specs are accepted, never the canonical form of an accepted one.
#pragma once

#include <cstddef>

namespace kg::spec {

inline constexpr size_t kMaxSpecBytes = 1 << 20;  // 1 MiB
inline constexpr int kMaxYamlDepth = 32;
inline constexpr int kMaxExprDepth = 256;
inline constexpr size_t kMaxExprNodes = 100000;
inline constexpr size_t kMaxModTokens = 200000;
inline constexpr size_t kMaxBindings = 1000;
inline constexpr size_t kMaxConstants = 1000;
inline constexpr size_t kMaxParams = 256;
inline constexpr size_t kMaxTensors = 64;
inline constexpr size_t kMaxTensorRank = 8;
inline constexpr size_t kMaxNameLength = 64;
inline constexpr size_t kMaxNumberLength = 100;
inline constexpr size_t kMaxDiagnostics = 100;

}  // namespace kg::spec
