// reference_fwd.cuh — the plain fp32 reference forward kernel (the verifier's trusted baseline).
//
// Pasted by kernelgen into `<name>_reference.cu` inside its anonymous namespace, after common.cuh
// and the generated spec section (kg_element, kg_head_dim, KgModArgs, kg_score_mod, kg_mask_mod,
// kg_fill_mod_args; here lowered with precise math: expf, logf, tanhf).
//
// Obviously correct before fast: one CTA per (query row i, head h, batch b), fp32 throughout.
//   pass 1:  m = max_j s_j,   s_j = mask_mod(b,h,i,j) ? score_mod(q_i·k_j · scale, b,h,i,j) : -inf
//   pass 2:  l = Σ_j e^(s_j - m),  o = Σ_j e^(s_j - m) v_j     (scores recomputed, kv in chunks)
//   out_i = o / l (0 when l = 0),  lse_i = m + ln l (-inf when l = 0)
// Any seqlen_kv: kv is walked in chunks of kRefThreads, nothing is sized by a sequence length.

constexpr int kRefThreads = 128;
constexpr int kRefDimsPerThread = (kg_head_dim + kRefThreads - 1) / kRefThreads;

struct KgRefParams {
  // Inputs and outputs (device pointers; see kernelgen/attention_abi.h).
  const kg_element* q;
  const kg_element* k;
  const kg_element* v;
  kg_element* out;
  float* lse;  // nullptr: not written
  // Strides in elements: {batch, head, token}.
  long long q_stride[3], k_stride[3], v_stride[3], out_stride[3];
  int group;    // heads_q / heads_kv
  float scale;  // softmax_scale
  KgModArgs mod;
};

template <typename T>
__device__ __forceinline__ float kg_ref_to_float(T x) {
  if constexpr (kg_is_bf16<T>) {
    return __bfloat162float(x);
  } else {
    return __half2float(x);
  }
}
template <typename T>
__device__ __forceinline__ void kg_ref_store(T* p, float x) {
  if constexpr (kg_is_bf16<T>) {
    *p = __float2bfloat16_rn(x);
  } else {
    *p = __float2half_rn(x);
  }
}

// Block-wide max / sum over kRefThreads threads; every thread gets the result.
__device__ float kg_ref_block_reduce(float x, bool is_max, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = is_max ? fmaxf(x, y) : x + y;
  }
  const int warp = threadIdx.x / 32;
  if ((threadIdx.x & 31) == 0) scratch[warp] = x;
  __syncthreads();
  float r = scratch[0];
  for (int w = 1; w < kRefThreads / 32; ++w) r = is_max ? fmaxf(r, scratch[w]) : r + scratch[w];
  __syncthreads();  // scratch is reused by the next reduction
  return r;
}

// s_ij: the masked, modded score of query row i (in shared memory, fp32) against key j.
__device__ float kg_ref_score(const KgRefParams& p, const float* q_row, const kg_element* k_head, int b, int h,
                              int i, int j) {
  if (!kg_mask_mod(b, h, i, j, p.mod)) return -INFINITY;
  const kg_element* k_row = k_head + j * p.k_stride[2];
  float dot = 0.0f;
  for (int d = 0; d < kg_head_dim; ++d) dot = fmaf(q_row[d], kg_ref_to_float(k_row[d]), dot);
  return kg_score_mod(dot * p.scale, b, h, i, j, p.mod);
}

__global__ void __launch_bounds__(kRefThreads) kg_reference_kernel(const KgRefParams p) {
  __shared__ float q_row[kg_head_dim];
  __shared__ float p_chunk[kRefThreads];
  __shared__ float scratch[kRefThreads / 32];
  const int i = blockIdx.x;  // query row
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int tid = threadIdx.x;
  const int seqlen_kv = p.mod.seqlen_kv;

  const kg_element* q_src = p.q + b * p.q_stride[0] + h * p.q_stride[1] + i * p.q_stride[2];
  const kg_element* k_head = p.k + b * p.k_stride[0] + (h / p.group) * p.k_stride[1];
  const kg_element* v_head = p.v + b * p.v_stride[0] + (h / p.group) * p.v_stride[1];
  for (int d = tid; d < kg_head_dim; d += kRefThreads) q_row[d] = kg_ref_to_float(q_src[d]);
  __syncthreads();

  // Pass 1: m = max_j s_ij.
  float m = -INFINITY;
  for (int j = tid; j < seqlen_kv; j += kRefThreads) m = fmaxf(m, kg_ref_score(p, q_row, k_head, b, h, i, j));
  m = kg_ref_block_reduce(m, true, scratch);
  const float base = m == -INFINITY ? 0.0f : m;  // fully masked row: every e^(s - base) is 0

  // Pass 2: l and o, one chunk of kRefThreads keys at a time.
  float o[kRefDimsPerThread];
  for (int t = 0; t < kRefDimsPerThread; ++t) o[t] = 0.0f;
  float l_part = 0.0f;
  for (int j0 = 0; j0 < seqlen_kv; j0 += kRefThreads) {
    const int j = j0 + tid;
    const float pj = j < seqlen_kv ? expf(kg_ref_score(p, q_row, k_head, b, h, i, j) - base) : 0.0f;
    p_chunk[tid] = pj;
    l_part += pj;
    __syncthreads();
    const int n = min(kRefThreads, seqlen_kv - j0);
    for (int jj = 0; jj < n; ++jj) {
      const kg_element* v_row = v_head + (j0 + jj) * p.v_stride[2];
      for (int t = 0; t < kRefDimsPerThread; ++t) {
        const int d = tid + t * kRefThreads;
        if (d < kg_head_dim) o[t] = fmaf(p_chunk[jj], kg_ref_to_float(v_row[d]), o[t]);
      }
    }
    __syncthreads();  // p_chunk is rewritten by the next chunk
  }
  const float l = kg_ref_block_reduce(l_part, false, scratch);

  kg_element* out_row = p.out + b * p.out_stride[0] + h * p.out_stride[1] + i * p.out_stride[2];
  for (int t = 0; t < kRefDimsPerThread; ++t) {
    const int d = tid + t * kRefThreads;
    if (d < kg_head_dim) kg_ref_store(&out_row[d], l > 0.0f ? o[t] / l : 0.0f);
  }
  if (p.lse != nullptr && tid == 0) {
    const long long row = (static_cast<long long>(b) * p.mod.heads_q + h) * p.mod.seqlen_q + i;
    p.lse[row] = l > 0.0f ? m + logf(l) : -INFINITY;
  }
}

// Validates `args` (kernelgen/attention_abi.h) and enqueues the reference forward pass on `stream`.
inline cudaError_t kg_reference_fwd(const KgAttentionArgs* args, cudaStream_t stream) {
  if (kg_check_common_args(args, kg_head_dim) != nullptr) return cudaErrorInvalidValue;
  KgRefParams p;
  if (kg_fill_mod_args(args, &p.mod) != nullptr) return cudaErrorInvalidValue;
  if (args->seqlen_q == 0) return cudaSuccess;
  p.q = static_cast<const kg_element*>(args->q);
  p.k = static_cast<const kg_element*>(args->k);
  p.v = static_cast<const kg_element*>(args->v);
  p.out = static_cast<kg_element*>(args->out);
  p.lse = args->lse;
  for (int i = 0; i < 3; ++i) {
    p.q_stride[i] = args->q_stride[i];
    p.k_stride[i] = args->k_stride[i];
    p.v_stride[i] = args->v_stride[i];
    p.out_stride[i] = args->out_stride[i];
  }
  p.group = args->heads_q / args->heads_kv;
  p.scale = args->softmax_scale;
  const dim3 grid(args->seqlen_q, args->heads_q, args->batch);
  kg_reference_kernel<<<grid, kRefThreads, 0, stream>>>(p);
  return cudaGetLastError();
}
