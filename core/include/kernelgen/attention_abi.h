/* kernelgen/attention_abi.h — the KernelGen attention kernel ABI, version 1.
 *
 * One contract shared by every kernel KernelGen emits (template kernels, LLM candidates, the fp32
 * reference) and by the verifier that judges them. Plain C so that any host language can call it.
 *
 * A kernel for spec `<name>` defines, with C linkage:
 *
 *   cudaError_t kg_<name>_forward(const KgAttentionArgs *args, cudaStream_t stream);
 *
 * and the reference kernel, when emitted, defines kg_<name>_reference_forward with the same
 * signature. The call enqueues all work on `stream` and returns without synchronizing. It returns
 * cudaErrorInvalidValue, enqueuing nothing, when `args` is NULL or breaks a rule below, and the
 * launch error otherwise (cudaSuccess when every launch was accepted). The reference also defines
 *
 *   cudaError_t kg_<name>_reference_count_kept(const KgAttentionArgs *args,
 *                                              unsigned long long *kept_dev, cudaStream_t stream);
 *
 * which atomically adds to *kept_dev (device memory) the number of (b, hq, i, j), i < seqlen_q,
 * j < seqlen_kv, that mask_mod keeps (every pair when the spec has none), same return rules.
 *
 * Semantics (PyTorch FlexAttention's):
 *   out[b, h, i, :] = sum_j p[i, j] * v[b, h / (heads_q / heads_kv), j, :]
 *   p[i, :]         = softmax_j(s[i, j]),  s[i, j] = mask_mod(b, h, i, j) ? score_mod(q·k * scale, b, h, i, j) : -inf
 *   lse[b, h, i]    = log(sum_j exp(s[i, j]))      (natural logarithm)
 * A row whose scores are all -inf gives out = 0 and lse = -inf, never NaN.
 */
#ifndef KERNELGEN_ATTENTION_ABI_H
#define KERNELGEN_ATTENTION_ABI_H

#include <stdint.h>

#define KG_ABI_VERSION 1u

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KgAttentionArgs {
  /* Must be KG_ABI_VERSION; a kernel rejects any other value with cudaErrorInvalidValue. */
  uint32_t abi_version;
  /* Must equal the spec's head_dim (64, 128 or 256). */
  int32_t head_dim;

  /* Device pointers. Element type is the spec's dtype (bf16 or fp16) for q, k, v and out.
   *   q   [batch, heads_q,  seqlen_q,  head_dim]
   *   k,v [batch, heads_kv, seqlen_kv, head_dim]
   *   out [batch, heads_q,  seqlen_q,  head_dim]
   * The last dimension is contiguous; the others follow the strides below. Each pointer and each
   * stride * element size must be 16-byte aligned (strides multiples of 8 elements). out must not
   * overlap q, k or v. */
  const void *q;
  const void *k;
  const void *v;
  void *out;
  /* Optional log-sum-exp output, fp32, contiguous [batch, heads_q, seqlen_q]. NULL: not written. */
  float *lse;

  /* Sizes. batch, heads_q, heads_kv >= 1; seqlen_q, seqlen_kv >= 0 (any value, no tile multiple
   * needed); heads_q % heads_kv == 0 (MHA, GQA and MQA). seqlen_kv == 0 makes every row fully masked. */
  int32_t batch;
  int32_t heads_q;
  int32_t heads_kv;
  int32_t seqlen_q;
  int32_t seqlen_kv;

  /* Strides in elements, in the order {batch, head, token}. */
  int64_t q_stride[3];
  int64_t k_stride[3];
  int64_t v_stride[3];
  int64_t out_stride[3];

  /* Multiplies q·k before score_mod; usually 1/sqrt(head_dim). */
  float softmax_scale;

  /* The spec's runtime `params`, in spec order, as doubles (integer params hold whole values).
   * May be NULL when the spec declares none. Host memory: read during the call only. */
  const double *params;
  /* The spec's runtime `tensors`, in spec order: device pointers to contiguous row-major arrays of
   * the declared dtype and shape (named dimensions take the sizes above). May be NULL when the spec
   * declares none. Host array of device pointers: read during the call only. */
  const void *const *tensors;
} KgAttentionArgs;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KERNELGEN_ATTENTION_ABI_H */
