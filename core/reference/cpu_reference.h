// CPU double-precision attention forward for a spec: the ground truth for tests of the GPU
// reference on small shapes. O(batch·heads·Sq·Skv·D); meant for shapes up to a few hundred tokens.
#pragma once

#include <vector>

#include "spec/ast.h"
#include "spec/interpret.h"

namespace kg::reference {

// Dense inputs in double: q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D], contiguous.
struct CpuProblem {
  spec::RuntimeValues rt;  // sizes, params, tensors
  int head_dim = 128;
  double softmax_scale = 1.0;
  std::vector<double> q, k, v;
};

// out [B, Hq, Sq, D]; lse [B, Hq, Sq] (natural log; -inf for fully masked rows, whose out is 0).
void cpu_attention_forward(const spec::Spec& spec, const CpuProblem& p, std::vector<double>& out,
                           std::vector<double>& lse);

}  // namespace kg::reference
