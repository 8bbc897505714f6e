// flash_common.cuh — what both template families (flash_fwd_sm80.cuh, flash_fwd_sm90.cuh) share:
// cp.async wrappers, b16 packing, the kernel parameter block and its host-side filling, the walk
// over non-Empty key/value tiles and the masking modes.
//
// Pasted by kernelgen into a generated template .cu inside its namespace (named after the key), after
// common.cuh, interval_rules.inc and the generated spec section, right before the family's file.

// ---- PTX wrappers ----------------------------------------------------------------------------

__device__ __forceinline__ uint32_t kg_smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global → shared copy; `valid == false` zero-fills the destination (src-size 0, nothing read).
__device__ __forceinline__ void kg_cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void kg_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Wait until at most N of this thread's committed groups are still in flight. Other threads'
// copies become visible only after a following __syncthreads().
template <int N>
__device__ __forceinline__ void kg_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Two fp32 values → one b16x2 register of element type T (round to nearest; `lo` in the lower
// half, as the MMA fragment layouts expect for the lower column index).
template <typename T>
__device__ __forceinline__ uint32_t kg_pack2(float lo, float hi) {
  static_assert(kg_is_bf16<T> || kg_is_fp16<T>, "bf16 or fp16");
  uint32_t r;
  if constexpr (kg_is_bf16<T>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    r = *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    r = *reinterpret_cast<uint32_t*>(&v);
  }
  return r;
}

// ---- Parameters ------------------------------------------------------------------------------

template <typename Element>
struct KgFlashParams {
  // Inputs and outputs (device pointers; see kernelgen/attention_abi.h).
  const Element* q;
  const Element* k;
  const Element* v;
  Element* out;
  float* lse;  // nullptr: not written

  // Strides in elements.
  long long q_batch_stride, q_head_stride, q_row_stride;
  long long k_batch_stride, k_head_stride, k_row_stride;
  long long v_batch_stride, v_head_stride, v_row_stride;
  long long out_batch_stride, out_head_stride, out_row_stride;

  // Heads: query head h reads key/value head h / group.
  int group;  // heads_q / heads_kv

  // Softmax.
  float scale;       // softmax_scale: score = q·k · scale (score_mod's input)
  float scale_log2;  // softmax_scale · log2(e): the base-2 logit when there is no score_mod

  // Sizes, the spec's params and tensors (read by score_mod / mask_mod / classify_tile).
  KgModArgs mod;
};
// KgAttentionArgs → KgFlashParams (after kg_check_common_args passed). False when the spec's
// params or tensors break a rule of kernelgen/attention_abi.h (kg_fill_mod_args).
template <typename Element>
inline bool kg_make_flash_params(const KgAttentionArgs* args, KgFlashParams<Element>* p) {
  if (kg_fill_mod_args(args, &p->mod) != nullptr) return false;
  p->q = static_cast<const Element*>(args->q);
  p->k = static_cast<const Element*>(args->k);
  p->v = static_cast<const Element*>(args->v);
  p->out = static_cast<Element*>(args->out);
  p->lse = args->lse;
  p->q_batch_stride = args->q_stride[0];
  p->q_head_stride = args->q_stride[1];
  p->q_row_stride = args->q_stride[2];
  p->k_batch_stride = args->k_stride[0];
  p->k_head_stride = args->k_stride[1];
  p->k_row_stride = args->k_stride[2];
  p->v_batch_stride = args->v_stride[0];
  p->v_head_stride = args->v_stride[1];
  p->v_row_stride = args->v_stride[2];
  p->out_batch_stride = args->out_stride[0];
  p->out_head_stride = args->out_stride[1];
  p->out_row_stride = args->out_stride[2];
  p->group = args->heads_q / args->heads_kv;
  p->scale = args->softmax_scale;
  p->scale_log2 = args->softmax_scale * 1.44269504088896340736f;
  return true;
}

// ---- Tile walk and masking ---------------------------------------------------------------------

// The walk over the key/value tiles that are not Empty for query rows [q_lo, q_hi], with each
// tile's class. A warp classifies 32 tiles at once (lane i: tile base + i) and keeps two ballots,
// so a thread evaluates kg_classify_tile once per 32 tiles instead of once per tile, and the walk
// hands out the class it already knows (no second classification of a visited tile). Sparse masks
// (a window, a 2-D neighbourhood) skip most tiles of a row: a serial walk spent more time
// classifying the skipped tiles than computing the visited ones. Every lane of the warp must call
// next() together (the ballots); the result is uniform across the CTA.
template <int kBlockN>
struct KgTileWalk {
  int base = -32;       // first tile of the classified window (a multiple of 32); -32: none yet
  uint32_t visit = 0u;  // bit i: tile base + i is not Empty
  uint32_t full = 0u;   // bit i: tile base + i is Full

  // First non-Empty tile ≥ n, or n_tiles when none; *cls its class. classify(window, &visit,
  // &full) sets the two ballots of tiles window .. window + 31 (window a multiple of 32); it runs
  // once per window, and the walk answers from its ballots until n leaves the window.
  template <class Classify>
  __device__ __forceinline__ int walk(int n, int n_tiles, KgTileClass* cls, Classify&& classify) {
    while (n < n_tiles) {
      const int window = n & ~31;
      if (window != base) {
        base = window;
        classify(window, &visit, &full);
      }
      const uint32_t rest = visit & (0xffffffffu << (n & 31));
      if (rest != 0u) {
        const int bit = __ffs(static_cast<int>(rest)) - 1;
        *cls = ((full >> bit) & 1u) != 0u ? kg_tile_full : kg_tile_partial;
        return window + bit;
      }
      n = window + 32;
    }
    *cls = kg_tile_empty;
    return n_tiles;
  }

  // The walk of one warp: lane i classifies tile window + i.
  __device__ __forceinline__ int next(const KgModArgs& ma, int b, int h, int q_lo, int q_hi, int n, int n_tiles,
                                      KgTileClass* cls) {
    if constexpr (!kg_has_mask_mod) {
      *cls = kg_tile_full;
      return n < n_tiles ? n : n_tiles;
    } else {
      return walk(n, n_tiles, cls, [&](int window, uint32_t* visit_bits, uint32_t* full_bits) {
        const int t = window + static_cast<int>(threadIdx.x & 31u);
        KgTileClass c = kg_tile_empty;
        if (t < n_tiles) {
          const int kv_lo = t * kBlockN;
          c = kg_classify_tile(ma, b, h, q_lo, q_hi, kv_lo, min(kv_lo + kBlockN, ma.seqlen_kv) - 1);
        }
        *visit_bits = __ballot_sync(0xffffffffu, c != kg_tile_empty);
        *full_bits = __ballot_sync(0xffffffffu, c == kg_tile_full);
      });
    }
  }
};

// How a tile's scores are masked.
enum KgMaskMode {
  kg_mask_none = 0,   // Full tile, not the last one: every score is kept
  kg_mask_bound = 1,  // Full tile that reaches past seqlen_kv: keep kv < seqlen_kv
  kg_mask_bits = 2,   // Partial tile: keep what mask_bits says (mask_mod and the seqlen_kv bound)
};

