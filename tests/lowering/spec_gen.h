// Random well-typed specs for the lowering's differential fuzzer (tests/lowering/lowering_fuzz.cc).
//
// A generated spec declares a few constants, params and small index tensors and has random
// score_mod / mask_mod expression trees over every operator, function, variable, param and tensor
// of the language (docs/design.md §2). Values stay where the 32-bit ints of the template kernel
// cannot overflow (ints are bounded by construction, below 2^30), so the template, the reference
// and the interpreter are all expected to agree on every int and bool.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kg::lowering_fuzz {

struct GeneratedSpec {
  std::string name;
  std::string yaml;
  // Int- and bool-valued subexpressions of score_mod that feed a discontinuity (floor results,
  // comparisons, select conditions), each usable as the result of a score_mod with the same
  // bindings: the template must compute them exactly.
  std::vector<std::string> score_probes;
  // Largest magnitude any float intermediate of score_mod can reach (a bound, for the fp32
  // tolerance of the template's continuous values); infinity when unbounded.
  double float_bound = 0.0;
  // The pieces `yaml` is made of.
  std::string decls;                        // dtype, head_dim, constants, params, tensors
  std::vector<std::string> score_bindings;  // `name = expr` lines
  std::string score_result;                 // empty: no score_mod
  std::string mask_text;                    // empty: no mask_mod
};

// Sizes the generated specs are evaluated at (tensors are declared over them).
inline constexpr int k_batch = 2, k_heads_q = 4, k_heads_kv = 2, k_seqlen_q = 300, k_seqlen_kv = 280;

// One random spec named `name` (deterministic in `rng`'s state).
GeneratedSpec generate_spec(std::mt19937_64& rng, const std::string& name);

// `spec` with score_mod's result replaced by `probe` (same bindings), as YAML.
std::string probe_spec_yaml(const GeneratedSpec& spec, size_t probe, const std::string& name);

}  // namespace kg::lowering_fuzz
