// A spec's score_mod / mask_mod written as Python (docs/design.md §5: the prompt states the math as the
// Python function it corresponds to; the GPU checks compare against PyTorch FlexAttention).
//
// Pure function of the spec: no timestamps, no absolute paths (only the spec file's basename).
#pragma once

#include <string>

#include "spec/ast.h"

namespace kg::codegen {

enum class PythonFlavor {
  // Scalar Python for people and prompts: `def score_mod(score, b, h, q_idx, kv_idx):` and
  // `def mask_mod(b, h, q_idx, kv_idx):` (identity / `return True` when the spec has none), bindings
  // as locals, `x if c else y`, `and/or/not`, math.* calls. Constants are module-level values;
  // params and tensors are declared as annotated module-level names (`num_heads: int`) that the
  // caller sets; tensors are nested lists indexed `doc_id[b][kv_idx]`.
  Plain,
  // A module for torch.nn.attention.flex_attention. Defines metadata (NAME, DTYPE, HEAD_DIM,
  // CONSTANTS, PARAMS, TENSORS) and
  //   make_mods(params: dict | None, tensors: dict | None) -> (score_mod | None, mask_mod | None)
  // whose functions take 0-d tensors (score float32, indices int32) and use torch.where, & | ~,
  // torch.minimum/maximum/clamp/... Absent mods are None (no block mask / identity score).
  // Subexpressions that read no tensor (constants, params, literals) stay Python scalars and follow
  // Python semantics exactly; tensor ints are torch.int32 (as FlexAttention's indices), tensor floats
  // float32. `//` and `%` floor as in Python (torch follows Python for both).
  Torch,
};

// The whole Python module text for `spec` (a checked Spec: every node typed). Throws
// std::invalid_argument for an expression deeper than kMaxExprDepth (spec/limits.h), which a
// checked spec never has.
std::string emit_python_mods(const spec::Spec& spec, PythonFlavor flavor);

}  // namespace kg::codegen
