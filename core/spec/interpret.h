// Direct evaluation of score_mod / mask_mod in double precision: the CPU semantics of the
// expression language, independent of the code generators (tests compare the two).
//
// Values: Int is 64-bit two's complement (wrapping; generated GPU code uses 32-bit ints, which
// agrees for the sizes tests use), Float is double, Bool is bool. Python semantics throughout:
// `//` floors and `%` takes the sign of the divisor (for ints and floats), `**` of two ints is an
// int, floor() gives an int, min/max return the first argument unless the second is strictly
// smaller/larger. Where Python would raise, the result is defined instead:
//   int x // 0 == 0 and x % 0 == 0; float division and modulo by 0 follow IEEE (inf/nan);
//   int ** negative int (only reachable through a param) == 1 / base**n truncated toward zero
//   (so 1, -1 or 0); log/sqrt of negatives give NaN; floor() of NaN is 0 and of ±inf or values
//   beyond int64 saturates; a tensor index outside the declared shape reads 0 (never memory
//   outside the tensor).
// Int params are read from RuntimeValues::params (doubles) by truncation toward zero.
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

// score_mod(score, b, h, q_idx, kv_idx); identity when the spec has none. `spec` must be checked
// (parse_spec). Throws std::invalid_argument when `rt` lacks a param or tensor the spec declares,
// or when an expression is nested deeper than kMaxExprDepth (spec/limits.h; never for a checked spec).
double eval_score_mod(const Spec& spec, const RuntimeValues& rt, double score, int b, int h, int q_idx,
                      int kv_idx);

// mask_mod(b, h, q_idx, kv_idx); true when the spec has none.
bool eval_mask_mod(const Spec& spec, const RuntimeValues& rt, int b, int h, int q_idx, int kv_idx);

}  // namespace kg::spec
