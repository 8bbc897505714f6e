// reference_fwd.cuh — the plain fp32 reference forward kernel (the verifier's trusted baseline).
//
// Pasted by kernelgen into `<name>_reference.cu` inside its namespace (named after the key), after common.cuh,
// reference_math.cuh, the generated spec section (kg_element, kg_head_dim, KgModArgs,
// kg_fill_mod_args) and the reference's own mods (kg_ref_score_mod, kg_ref_mask_mod: lowered by
// codegen/reference_lower.h in double, exactly as the CPU interpreter evaluates them, and
// independently of the template kernel's lowering).
//
// Plain before fast: fp32 scores and softmax (the mods in double), two passes, no online rescaling. One CTA takes kRefRows query
// rows of one (batch, head) and walks the keys in chunks of kRefKeys staged in shared memory, so
// every k and v row read from memory serves kRefRows queries.
//   pass 1:  m_i = max_j s_ij,   s_ij = mask_mod(b,h,i,j) ? score_mod(q_i·k_j · scale, b,h,i,j) : -inf
//   pass 2:  l_i = Σ_j e^(s_ij - m_i),  o_i = Σ_j e^(s_ij - m_i) v_j   (scores recomputed the same way)
//   out_i = o_i / l_i (0 when l_i = 0),  lse_i = m_i + ln l_i (-inf when l_i = 0)
// mask_mod and score_mod are only evaluated for i < seqlen_q and j < seqlen_kv. Any lengths: the
// last row block and key chunk are partial, and nothing is sized by a sequence length.

constexpr int kRefThreads = 128;
constexpr int kRefRows = kg_head_dim <= 128 ? 16 : 8;                   // query rows per CTA
constexpr int kRefKeys = kg_head_dim <= 128 ? 64 : 32;                  // keys per chunk
constexpr int kRefPitch = kg_head_dim + 1;                              // padded: no bank conflicts
constexpr int kRefScoresPerThread = kRefRows * kRefKeys / kRefThreads;  // (row, key) pairs per chunk
constexpr int kRefOutsPerThread = kRefRows * kg_head_dim / kRefThreads; // (row, d) outputs
constexpr int kRefRowStep = kRefThreads / kRefKeys;                     // rows between a thread's pairs
static_assert(kRefThreads % kRefKeys == 0 && kRefRows % kRefRowStep == 0, "score pairs tile the block");
static_assert((kRefRows * kg_head_dim) % kRefThreads == 0 && kg_head_dim % 32 == 0, "outputs tile the block");

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

struct KgRefShared {
  float q[kRefRows][kRefPitch];
  float kv[kRefKeys][kRefPitch];  // the chunk's k rows, then its v rows
  float p[kRefRows][kRefKeys];    // the chunk's probabilities; also per-thread partials to reduce
  float row_max[kRefRows];
  float row_sum[kRefRows];
};

// Rows j0 .. j0 + kRefKeys - 1 of one (batch, kv head) of k or v into sm.kv as fp32; rows at or past
// seqlen_kv are zero (their scores are -inf and never read).
__device__ void kg_ref_load_chunk(KgRefShared& sm, const kg_element* head, long long token_stride, int j0,
                                  int seqlen_kv) {
  for (int e = threadIdx.x; e < kRefKeys * kg_head_dim; e += kRefThreads) {
    const int jj = e / kg_head_dim, d = e % kg_head_dim;
    const int j = j0 + jj;
    sm.kv[jj][d] = j < seqlen_kv ? kg_ref_to_float(head[j * token_stride + d]) : 0.0f;
  }
}

// This thread's scores of the chunk in sm.kv: key jj = tid % kRefKeys against rows
// r_t = tid / kRefKeys + t * kRefRowStep. Each dot product runs over d in order with fmaf.
__device__ void kg_ref_scores(const KgRefShared& sm, const KgRefParams& p, int b, int h, int i0, int j0,
                              float (&s)[kRefScoresPerThread]) {
  const int jj = threadIdx.x % kRefKeys;
  float dot[kRefScoresPerThread];
  for (int t = 0; t < kRefScoresPerThread; ++t) dot[t] = 0.0f;
  for (int d = 0; d < kg_head_dim; ++d) {
    const float kd = sm.kv[jj][d];
    for (int t = 0; t < kRefScoresPerThread; ++t) {
      dot[t] = fmaf(sm.q[threadIdx.x / kRefKeys + t * kRefRowStep][d], kd, dot[t]);
    }
  }
  const int j = j0 + jj;
  for (int t = 0; t < kRefScoresPerThread; ++t) {
    const int i = i0 + threadIdx.x / kRefKeys + t * kRefRowStep;
    s[t] = -INFINITY;
    if (i < p.mod.seqlen_q && j < p.mod.seqlen_kv && kg_ref_mask_mod(b, h, i, j, p.mod)) {
      // score = q·k·scale in fp32; the mod in double; its result back to fp32.
      s[t] = static_cast<float>(kg_ref_score_mod(static_cast<double>(dot[t] * p.scale), b, h, i, j, p.mod));
    }
  }
}

// Combines the per-thread partials of each row (this thread's t-th row gets part[t]) into out[row]:
// their maximum (is_max) or their sum.
__device__ void kg_ref_reduce_rows(KgRefShared& sm, const float (&part)[kRefScoresPerThread], bool is_max,
                                   float* out) {
  __syncthreads();  // sm.p may still be read by the chunk loop
  for (int t = 0; t < kRefScoresPerThread; ++t) {
    sm.p[threadIdx.x / kRefKeys + t * kRefRowStep][threadIdx.x % kRefKeys] = part[t];
  }
  __syncthreads();
  if (threadIdx.x < kRefRows) {
    float x = sm.p[threadIdx.x][0];
    for (int jj = 1; jj < kRefKeys; ++jj) x = is_max ? fmaxf(x, sm.p[threadIdx.x][jj]) : x + sm.p[threadIdx.x][jj];
    out[threadIdx.x] = x;
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kRefThreads) kg_reference_kernel(const KgRefParams p) {
  __shared__ KgRefShared sm;
  const int i0 = blockIdx.x * kRefRows;  // first query row
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int tid = threadIdx.x;
  const int seqlen_q = p.mod.seqlen_q;
  const int seqlen_kv = p.mod.seqlen_kv;

  const kg_element* q_head = p.q + b * p.q_stride[0] + h * p.q_stride[1];
  const kg_element* k_head = p.k + b * p.k_stride[0] + (h / p.group) * p.k_stride[1];
  const kg_element* v_head = p.v + b * p.v_stride[0] + (h / p.group) * p.v_stride[1];
  for (int e = tid; e < kRefRows * kg_head_dim; e += kRefThreads) {
    const int r = e / kg_head_dim, d = e % kg_head_dim;
    sm.q[r][d] = i0 + r < seqlen_q ? kg_ref_to_float(q_head[(i0 + r) * p.q_stride[2] + d]) : 0.0f;
  }

  // Pass 1: m_i = max_j s_ij.
  float s[kRefScoresPerThread];
  float part[kRefScoresPerThread];
  for (int t = 0; t < kRefScoresPerThread; ++t) part[t] = -INFINITY;
  for (int j0 = 0; j0 < seqlen_kv; j0 += kRefKeys) {
    __syncthreads();  // the previous chunk is no longer read (and sm.q is complete)
    kg_ref_load_chunk(sm, k_head, p.k_stride[2], j0, seqlen_kv);
    __syncthreads();
    kg_ref_scores(sm, p, b, h, i0, j0, s);
    for (int t = 0; t < kRefScoresPerThread; ++t) part[t] = fmaxf(part[t], s[t]);
  }
  kg_ref_reduce_rows(sm, part, true, sm.row_max);
  float base[kRefScoresPerThread];  // fully masked row: every e^(s - base) is 0
  for (int t = 0; t < kRefScoresPerThread; ++t) {
    const float m = sm.row_max[tid / kRefKeys + t * kRefRowStep];
    base[t] = m == -INFINITY ? 0.0f : m;
  }

  // Pass 2: l_i and o_i, chunk by chunk. This thread owns outputs (r_u, d_u), u < kRefOutsPerThread.
  float o[kRefOutsPerThread];
  for (int u = 0; u < kRefOutsPerThread; ++u) o[u] = 0.0f;
  for (int t = 0; t < kRefScoresPerThread; ++t) part[t] = 0.0f;
  for (int j0 = 0; j0 < seqlen_kv; j0 += kRefKeys) {
    __syncthreads();  // sm.kv and sm.p of the previous chunk are no longer read
    kg_ref_load_chunk(sm, k_head, p.k_stride[2], j0, seqlen_kv);
    __syncthreads();
    kg_ref_scores(sm, p, b, h, i0, j0, s);
    for (int t = 0; t < kRefScoresPerThread; ++t) {
      const float pj = expf(s[t] - base[t]);
      sm.p[tid / kRefKeys + t * kRefRowStep][tid % kRefKeys] = pj;
      part[t] += pj;
    }
    __syncthreads();  // every score of the chunk is in sm.p; the k rows are no longer read
    kg_ref_load_chunk(sm, v_head, p.v_stride[2], j0, seqlen_kv);
    __syncthreads();
    const int n = min(kRefKeys, seqlen_kv - j0);
    for (int u = 0; u < kRefOutsPerThread; ++u) {
      const int e = tid + u * kRefThreads;
      const int r = e / kg_head_dim, d = e % kg_head_dim;
      for (int jj = 0; jj < n; ++jj) o[u] = fmaf(sm.p[r][jj], sm.kv[jj][d], o[u]);
    }
  }
  kg_ref_reduce_rows(sm, part, false, sm.row_sum);

  for (int u = 0; u < kRefOutsPerThread; ++u) {
    const int e = tid + u * kRefThreads;
    const int r = e / kg_head_dim, d = e % kg_head_dim;
    if (i0 + r < seqlen_q) {
      const float l = sm.row_sum[r];
      kg_element* out_row = p.out + b * p.out_stride[0] + h * p.out_stride[1] + (i0 + r) * p.out_stride[2];
      kg_ref_store(&out_row[d], l > 0.0f ? o[u] / l : 0.0f);
    }
  }
  if (p.lse != nullptr && tid < kRefRows && i0 + tid < seqlen_q) {
    const float m = sm.row_max[tid], l = sm.row_sum[tid];
    const long long row = (static_cast<long long>(b) * p.mod.heads_q + h) * seqlen_q + i0 + tid;
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
  const dim3 grid((args->seqlen_q + kRefRows - 1) / kRefRows, args->heads_q, args->batch);
  kg_reference_kernel<<<grid, kRefThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// ---- Exact count of kept (b, hq, i, j) for the verifier's FLOP floor ------------------------------
// One thread per key column j of a row i; rows are spread over blockIdx.x (grid-stride), (h, b) over
// blockIdx.y / .z. Each thread counts its pairs, a warp sums with shuffles, lane 0 adds once.
constexpr int kRefCountThreads = 256;

__global__ void __launch_bounds__(kRefCountThreads) kg_reference_count_kernel(const KgModArgs ma,
                                                                              unsigned long long* kept) {
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  unsigned long long n = 0;
  for (int i = blockIdx.x; i < ma.seqlen_q; i += gridDim.x) {
    for (int j = threadIdx.x; j < ma.seqlen_kv; j += kRefCountThreads) n += kg_ref_mask_mod(b, h, i, j, ma) ? 1u : 0u;
  }
  for (int off = 16; off > 0; off /= 2) n += __shfl_down_sync(0xffffffffu, n, off);
  if ((threadIdx.x & 31) == 0 && n != 0) atomicAdd(kept, n);
}

// Every pair is kept: one thread adds batch * heads_q * seqlen_q * seqlen_kv.
__global__ void kg_reference_count_all_kernel(unsigned long long pairs, unsigned long long* kept) {
  if (pairs != 0) atomicAdd(kept, pairs);
}

// Adds to *kept (device memory) the number of (b, hq, i, j), i < seqlen_q, j < seqlen_kv, that
// mask_mod keeps, evaluated exactly as kg_reference_fwd does. cudaErrorInvalidValue (nothing
// enqueued) for bad args or kept == nullptr.
inline cudaError_t kg_reference_count(const KgAttentionArgs* args, unsigned long long* kept, cudaStream_t stream) {
  if (kept == nullptr || kg_check_common_args(args, kg_head_dim) != nullptr) return cudaErrorInvalidValue;
  KgModArgs ma;
  if (kg_fill_mod_args(args, &ma) != nullptr) return cudaErrorInvalidValue;
  if (args->seqlen_q == 0 || args->seqlen_kv == 0) return cudaSuccess;
  if constexpr (!kg_ref_has_mask_mod) {
    const unsigned long long pairs = static_cast<unsigned long long>(args->batch) * args->heads_q *
                                     static_cast<unsigned long long>(args->seqlen_q) * args->seqlen_kv;
    kg_reference_count_all_kernel<<<1, 1, 0, stream>>>(pairs, kept);
  } else {
    // Enough CTAs to fill the GPU several times over, whatever the shape.
    const int rows_per_cta = 4;
    const dim3 grid(static_cast<unsigned>(min(65535, (args->seqlen_q + rows_per_cta - 1) / rows_per_cta)),
                    args->heads_q, args->batch);
    kg_reference_count_kernel<<<grid, kRefCountThreads, 0, stream>>>(ma, kept);
  }
  return cudaGetLastError();
}
