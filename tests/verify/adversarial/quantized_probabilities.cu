// Adversarial candidate for specs/causal.yaml (tests/verify): rounds the probabilities that multiply V to 5 significant bits on rows of 4096 keys or more (the row sums and the LSE stay exact): every output element stays within the elementwise tolerance, but each long row of zero-mean values is off by about 1.3 %.
// expect: row_error
// stage: correctness
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include "kernelgen/attention_abi.h"

namespace {

constexpr int kD = 128;         // head_dim
constexpr int kPer = kD / 32;   // dims per lane
constexpr int kWarps = 4;       // query rows per block

__global__ void attention(const KgAttentionArgs a) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarps + threadIdx.x / 32;
  const int h = blockIdx.y, b = blockIdx.z;
  if (row >= a.seqlen_q) return;
  const int hk = h / (a.heads_q / a.heads_kv);
  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(a.q) + b * a.q_stride[0] + h * a.q_stride[1] +
                           static_cast<long long>(row) * a.q_stride[2];
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(a.k) + b * a.k_stride[0] + hk * a.k_stride[1];
  const __nv_bfloat16* v = static_cast<const __nv_bfloat16*>(a.v) + b * a.v_stride[0] + hk * a.v_stride[1];
  float qr[kPer];
  for (int t = 0; t < kPer; ++t) qr[t] = __bfloat162float(q[lane + 32 * t]) * a.softmax_scale;
  float m = -INFINITY, l = 0.0f, acc[kPer];
  for (int t = 0; t < kPer; ++t) acc[t] = 0.0f;
  const int last = min(row, a.seqlen_kv - 1);  // causal: kv_idx <= q_idx
  for (int j = 0; j <= last; ++j) {
    const __nv_bfloat16* kr = k + static_cast<long long>(j) * a.k_stride[2];
    float s = 0.0f;
    for (int t = 0; t < kPer; ++t) s += qr[t] * __bfloat162float(kr[lane + 32 * t]);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new);
    const float p = __expf(s - m_new);
    float pv = p;  // the probability that multiplies V: 5 significant bits on long rows
    if (a.seqlen_kv >= 4096) {
      int e;
      const float f = frexpf(p, &e);
      pv = ldexpf(rintf(f * 32.0f) / 32.0f, e);
    }
    l = l * corr + p;
    const __nv_bfloat16* vr = v + static_cast<long long>(j) * a.v_stride[2];
    for (int t = 0; t < kPer; ++t) acc[t] = acc[t] * corr + pv * __bfloat162float(vr[lane + 32 * t]);
    m = m_new;
  }
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(a.out) + b * a.out_stride[0] + h * a.out_stride[1] +
                       static_cast<long long>(row) * a.out_stride[2];
  const float lf = static_cast<float>(l);
  for (int t = 0; t < kPer; ++t) out[lane + 32 * t] = __float2bfloat16_rn(lf > 0.0f ? static_cast<float>(acc[t]) / lf : 0.0f);
  if (a.lse != nullptr && lane == 0) {
    a.lse[(static_cast<long long>(b) * a.heads_q + h) * a.seqlen_q + row] = lf > 0.0f ? static_cast<float>(m) + logf(lf) : -INFINITY;
  }
}

}  // namespace

extern "C" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t stream) {
  if (a == nullptr || a->abi_version != KG_ABI_VERSION || a->head_dim != kD || a->batch < 1 || a->heads_q < 1 ||
      a->heads_kv < 1 || a->seqlen_q < 0 || a->seqlen_kv < 0 || a->heads_q % a->heads_kv != 0) {
    return cudaErrorInvalidValue;
  }
  if (a->seqlen_q == 0) return cudaSuccess;
  const dim3 grid((a->seqlen_q + kWarps - 1) / kWarps, a->heads_q, a->batch);
  attention<<<grid, 32 * kWarps, 0, stream>>>(*a);
  return cudaGetLastError();
}
