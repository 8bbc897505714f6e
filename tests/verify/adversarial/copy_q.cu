// Adversarial candidate for specs/causal.yaml (tests/verify): copies q into out.
// expect: wrong_output
// stage: correctness
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include "kernelgen/attention_abi.h"

namespace {
constexpr int kD = 128;
// out[b, h, i, :] = q[b, h, i, :]: the right shape, the wrong numbers, and very fast.
__global__ void copy_q(const KgAttentionArgs a) {
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, d = threadIdx.x;
  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(a.q) + b * a.q_stride[0] + h * a.q_stride[1] + static_cast<long long>(i) * a.q_stride[2];
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(a.out) + b * a.out_stride[0] + h * a.out_stride[1] + static_cast<long long>(i) * a.out_stride[2];
  out[d] = q[d];
  if (a.lse != nullptr && d == 0) a.lse[(static_cast<long long>(b) * a.heads_q + h) * a.seqlen_q + i] = 0.0f;
}
}  // namespace

extern "C" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t stream) {
  if (a == nullptr || a->abi_version != KG_ABI_VERSION || a->head_dim != kD) return cudaErrorInvalidValue;
  if (a->seqlen_q == 0) return cudaSuccess;
  copy_q<<<dim3(a->seqlen_q, a->heads_q, a->batch), kD, 0, stream>>>(*a);
  return cudaGetLastError();
}
