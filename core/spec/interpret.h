// Direct evaluation of score_mod / mask_mod in double precision: the CPU semantics of the
// expression language, independent of the code generators (tests compare the two).
#pragma once

#include <cstdint>
#include <vector>

#include "spec/ast.h"

namespace kg::spec {

// Runtime values a mod may read. `tensors[i]` points to host memory laid out as Spec::tensors[i]
// declares, with named dimensions taken from the sizes here.
struct RuntimeValues {
  int32_t batch = 1, heads_q = 1, heads_kv = 1, seqlen_q = 0, seqlen_kv = 0;
  std::vector<double> params;        // Spec::params order
  std::vector<const void*> tensors;  // Spec::tensors order
};

// score_mod(score, b, h, q_idx, kv_idx); identity when the spec has none.
double eval_score_mod(const Spec& spec, const RuntimeValues& rt, double score, int b, int h, int q_idx,
                      int kv_idx);

// mask_mod(b, h, q_idx, kv_idx); true when the spec has none.
bool eval_mask_mod(const Spec& spec, const RuntimeValues& rt, int b, int h, int q_idx, int kv_idx);

}  // namespace kg::spec
