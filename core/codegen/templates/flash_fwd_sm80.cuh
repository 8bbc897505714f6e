// flash_fwd_sm80.cuh — FlashAttention-2-class forward kernel on mma.sync tensor cores.
//
// TemplateFamily::Sm80MmaSync (core/codegen/codegen.cc): runs on sm_80 and later; the template
// for every arch but sm_90a (flash_fwd_sm90.cuh), and for head_dim 256 on sm_90a too.
//
// Pasted by kernelgen into a generated .cu inside its namespace (named after the key), after common.cuh,
// interval_rules.inc, the generated spec section and flash_common.cuh, which define:
//   kg_element                    __nv_bfloat16 or __half
//   kg_head_dim                   64, 128 or 256
//   KgModArgs                     sizes + the spec's params (float/int) + tensors (device pointers)
//   kg_has_score_mod, kg_has_mask_mod, kg_mask_reads_tensors   (constexpr bool)
//   kg_score_mod(score, b, h, q_idx, kv_idx, ma) -> float      score is q·k·softmax_scale
//   kg_mask_mod(b, h, q_idx, kv_idx, ma) -> bool
//   kg_classify_tile(ma, b, h, q_lo, q_hi, kv_lo, kv_hi) -> KgTileClass   (inclusive ranges)
//   kg_fill_mod_args(args, &ma) -> nullptr or the broken rule
// and is followed by the extern "C" entry point that calls kg_flash_fwd().
//
// Algorithm (per CTA: one batch b, one query head h, kBlockM query rows):
//   load Q tile → registers (A fragments, kept for the whole CTA)
//   for each key/value tile that kg_classify_tile does not call Empty, in order:
//     S = Q Kᵀ                                    (mma.sync m16n8k16, fp32 accumulators)
//     S ← score_mod(S · scale) · log2(e), -inf where masked   (or S · scale·log2(e) unmodded)
//     m' = max(m, rowmax S);  P = 2^(S - m');  l = l · 2^(m - m') + rowsum P;  O = O · 2^(m - m')
//     O += P V                                    (P re-packed from the S accumulators)
//   out = O / l, lse = (m + log2 l) · ln 2
// K/V tiles are double-buffered in shared memory with cp.async: tile n+1 loads while tile n computes.

// ---- PTX wrappers (cp.async and the parameter block are in flash_common.cuh) -------------

// Four 8x8 b16 matrices; lanes 8j..8j+7 give the row addresses of matrix j, register j receives
// matrix j's (row lane/4, cols 2·(lane%4) + {0,1}) — or, with .trans, (rows 2·(lane%4) + {0,1}, col lane/4).
__device__ __forceinline__ void kg_ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void kg_ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Per element type: the m16n8k16 MMA and packing two fp32 values into one b16x2 register
// (lower column index in the lower half, as the fragment layouts expect).
template <typename T>
struct KgElemOps {
  static_assert(kg_is_bf16<T> || kg_is_fp16<T>, "bf16 or fp16");
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) { return kg_pack2<T>(lo, hi); }
  // C += A B  (A 16x16 row-major, B 16x8 column-major, C 16x8 fp32)
  __device__ static __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (kg_is_bf16<T>) {
      asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
          "{%0, %1, %2, %3};\n"
          : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
      asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
          "{%0, %1, %2, %3};\n"
          : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
  }
};

// ---- Kernel traits -----------------------------------------------------------------------------

// Fragment layouts used throughout (PTX ISA, mma.m16n8k16, g = lane/4, t = lane%4):
//   A (16x16): a[0] = (row g,   k 2t..2t+1)   a[1] = (row g+8, k 2t..2t+1)
//              a[2] = (row g,   k 2t+8..+9)   a[3] = (row g+8, k 2t+8..+9)
//   B (16x8):  b[0] = (k 2t..2t+1, col g)     b[1] = (k 2t+8..+9, col g)
//   C (16x8):  c[0..1] = (row g, cols 2t..2t+1)   c[2..3] = (row g+8, cols 2t..2t+1)
// Warp w owns query rows [w·kRowsPerWarp, (w+1)·kRowsPerWarp) of the CTA tile, as kMTiles m16 tiles.
template <typename Element_, int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, bool kQInRegs_ = true>
struct KgFlashTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;  // query rows per CTA
  static constexpr int kBlockN = kBlockN_;  // key/value rows per pipeline stage
  static constexpr int kNWarps = kNWarps_;
  static constexpr bool kQInRegs = kQInRegs_;  // Q fragments in registers, else re-read from smem per tile
  static constexpr int kNThreads = kNWarps * 32;
  static constexpr int kRowsPerWarp = kBlockM / kNWarps;
  static constexpr int kMTiles = kRowsPerWarp / 16;   // m16 tiles per warp
  static constexpr int kNTilesS = kBlockN / 8;        // n8 tiles of S per m16 tile
  static constexpr int kKStepsQK = kHeadDim / 16;     // k16 steps of S = Q Kᵀ
  static constexpr int kNTilesO = kHeadDim / 8;       // n8 tiles of O per m16 tile
  static constexpr int kKStepsPV = kBlockN / 16;      // k16 steps of O += P V
  static constexpr int kChunksPerRow = kHeadDim / 8;  // 16-byte chunks per shared-memory row

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "head_dim must be 64, 128 or 256");
  static_assert(kBlockM % (16 * kNWarps) == 0, "every warp owns whole m16 tiles");
  static_assert(kBlockN % 16 == 0, "P V consumes key/value rows 16 at a time");
  static_assert(kNTilesS % 2 == 0 && kNTilesO % 2 == 0, "ldmatrix.x4 feeds n8 tiles in pairs");
  static_assert(kNTilesS * 4 <= 32, "one m16 tile's mask bits fit a 32-bit word");
  static_assert(kChunksPerRow >= 8, "the XOR swizzle permutes chunks in groups of 8");
  static_assert((kBlockM * kChunksPerRow) % kNThreads == 0, "Q/O tile copies divide evenly among threads");
  static_assert((kBlockN * kChunksPerRow) % kNThreads == 0, "K/V tile copies divide evenly among threads");
};

// Tile configurations, chosen to keep Q resident in registers without spilling. Registers per
// thread for the three big arrays: Q = kMTiles·kHeadDim/4 (b16 pairs), O = kMTiles·kHeadDim/2 and
// S = kMTiles·kBlockN/2 (fp32).
//   head_dim 128: 8 warps × 16 rows, BLOCK_M 128, BLOCK_N 64. Q in registers (32 regs), O (64),
//     S (32). FlashAttention-2 uses 4 warps × 32 rows but reloads Q from shared memory every tile;
//     32 rows/warp with Q resident would need 64 + 128 + 64 registers and spill. 16 rows/warp reads
//     each K/V fragment for 16 rows only (smem reads per FLOP ~1.6x FA2's): the first thing to
//     measure on H100; the wgmma family (B from smem, 64-row warpgroup tiles) removes the question.
//   head_dim 64: 4 warps × 32 rows, BLOCK_M 128, BLOCK_N 64: Q 32 + O 64 + S 64 registers; each
//     K/V fragment feeds two m16 tiles, halving shared-memory reads per FLOP.
//   head_dim 256: 4 warps × 16 rows, BLOCK_M 64, BLOCK_N 32, Q re-read from shared memory each
//     tile (as FlashAttention-2 does): O alone is 128 registers, and Q resident (64 more) spilled
//     even with BLOCK_N 16 (ptxas, nvcc 13.0). Correct, not tuned: 256 is a "welcome" size.
// Shared memory: Q tile + 2 stages × (K + V) tiles, e.g. 32 + 64 KB = 96 KB for head_dim 128.
// One CTA per SM at head_dim 128 (>128 registers × 256 threads); the grid order below keeps the
// K/V of one head hot in L2 across its query tiles.
template <typename Element, int kHeadDim>
struct KgFlashConfig;
template <typename Element>
struct KgFlashConfig<Element, 64> {
  using Traits = KgFlashTraits<Element, 64, 128, 64, 4>;
};
template <typename Element>
struct KgFlashConfig<Element, 128> {
  using Traits = KgFlashTraits<Element, 128, 128, 64, 8>;
};
template <typename Element>
struct KgFlashConfig<Element, 256> {
  using Traits = KgFlashTraits<Element, 256, 64, 32, 4, /*kQInRegs=*/false>;
};

// ---- Shared memory -------------------------------------------------------------------------

// All tiles are [rows][kHeadDim] with the 16-byte chunks of row r XOR-swizzled by r % 8: the 8 row
// addresses of each ldmatrix phase (same logical chunk, 8 consecutive rows) and the 8 chunks a
// cp.async phase writes land in 8 distinct groups of 4 banks — no bank conflicts, no padding.
template <class Tr>
struct KgFlashSmem {
  typename Tr::Element q[Tr::kBlockM * Tr::kHeadDim];     // Q tile; the O staging tile in the epilogue
  typename Tr::Element k[2][Tr::kBlockN * Tr::kHeadDim];  // K tiles, two pipeline stages
  typename Tr::Element v[2][Tr::kBlockN * Tr::kHeadDim];  // V tiles, two pipeline stages
};

// Element offset of 16-byte chunk `chunk` of row `row`.
template <class Tr>
__device__ __forceinline__ int kg_swz(int row, int chunk) {
  return row * Tr::kHeadDim + ((chunk ^ (row & 7)) << 3);
}

// Copies rows [0, kRows) of a [rows][kHeadDim] global tile into shared memory; rows ≥ rows_valid
// are zero-filled (never read), so K/V beyond seqlen_kv are exact zeros (0·V must not be NaN).
template <class Tr, int kRows>
__device__ __forceinline__ void kg_load_tile(typename Tr::Element* dst, const typename Tr::Element* src,
                                             long long row_stride, int rows_valid, int tid) {
  constexpr int kIters = kRows * Tr::kChunksPerRow / Tr::kNThreads;
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int idx = tid + i * Tr::kNThreads;
    const int row = idx / Tr::kChunksPerRow;
    const int chunk = idx % Tr::kChunksPerRow;
    const bool valid = row < rows_valid;
    const typename Tr::Element* g = valid ? src + row * row_stride + chunk * 8 : src;
    kg_cp_async_16(kg_smem_u32(dst + kg_swz<Tr>(row, chunk)), g, valid);
  }
}

// S accumulators (q·k) → base-2 logits: score_mod(q·k·scale)·log2(e), or q·k·scale·log2(e)
// without a score_mod; -inf where masked.
template <class Tr, int kMode>
__device__ __forceinline__ void kg_scores_to_logits(float (&s)[Tr::kMTiles][Tr::kNTilesS][4],
                                                    const uint32_t (&mask_bits)[Tr::kMTiles],
                                                    const KgFlashParams<typename Tr::Element>& p, int b, int h,
                                                    int q_row0, int kv0, int g, int tig) {
  constexpr float kLog2e = 1.44269504088896340736f;
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int q_idx = q_row0 + mt * 16 + g + 8 * r;
#pragma unroll
      for (int nt = 0; nt < Tr::kNTilesS; ++nt) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int kv_idx = kv0 + nt * 8 + 2 * tig + c;
          float& x = s[mt][nt][2 * r + c];
          bool keep = true;
          if constexpr (kMode == kg_mask_bound) keep = kv_idx < p.mod.seqlen_kv;
          if constexpr (kMode == kg_mask_bits) keep = (mask_bits[mt] >> (nt * 4 + 2 * r + c)) & 1u;
          if constexpr (kg_has_score_mod) {
            // score_mod takes the natural scaled score; only its result moves to base 2.
            // On masked elements too, then a select: straight-line code (tensor reads are bounded).
            const float v = kg_score_mod(x * p.scale, b, h, q_idx, kv_idx, p.mod) * kLog2e;
            x = keep ? v : -INFINITY;
          } else {
            x = keep ? x * p.scale_log2 : -INFINITY;
          }
        }
      }
    }
  }
}

// ---- The kernel --------------------------------------------------------------------------------

template <class Tr, bool kWriteLse>
__global__ void __launch_bounds__(Tr::kNThreads, 1) kg_flash_fwd_kernel(const KgFlashParams<typename Tr::Element> p) {
  using Element = typename Tr::Element;
  using Ops = KgElemOps<Element>;
  constexpr int kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN;
  constexpr int kMTiles = Tr::kMTiles;
  constexpr int kNTilesS = Tr::kNTilesS;
  constexpr int kNTilesO = Tr::kNTilesO;
  constexpr float kLn2 = 0.69314718055994530942f;

  extern __shared__ __align__(128) unsigned char kg_smem_raw[];
  KgFlashSmem<Tr>& smem = *reinterpret_cast<KgFlashSmem<Tr>*>(kg_smem_raw);

  // Grid: x = query tile, reversed so that the longest causal rows start first; y = query head
  // (heads of one batch adjacent: GQA groups share K/V in L2); z = batch.
  const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int h_kv = h / p.group;
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;    // fragment row group
  const int tig = lane & 3;   // thread in group
  const int seqlen_q = p.mod.seqlen_q;
  const int seqlen_kv = p.mod.seqlen_kv;

  const int q0 = m_block * kBlockM;
  const int q_rows = min(kBlockM, seqlen_q - q0);  // ≥ 1
  const int q_hi = q0 + q_rows - 1;
  const int q_row0 = q0 + warp * Tr::kRowsPerWarp;  // this warp's first query row
  const Element* q_tile = p.q + b * p.q_batch_stride + h * p.q_head_stride + q0 * p.q_row_stride;
  const Element* k_head = p.k + b * p.k_batch_stride + h_kv * p.k_head_stride;
  const Element* v_head = p.v + b * p.v_batch_stride + h_kv * p.v_head_stride;

  // cp.async groups, in commit order: Q, then one group (K + V) per visited tile (an empty group
  // when there is none left to prefetch).
  kg_load_tile<Tr, kBlockM>(smem.q, q_tile, p.q_row_stride, q_rows, tid);
  kg_cp_async_commit();

  const int n_tiles = (seqlen_kv + kBlockN - 1) / kBlockN;
  KgTileWalk<kBlockN> walk;
  KgTileClass cls;
  int n = walk.next(p.mod, b, h, q0, q_hi, 0, n_tiles, &cls);
  if (n < n_tiles) {
    const int kv0 = n * kBlockN;
    kg_load_tile<Tr, kBlockN>(smem.k[0], k_head + kv0 * p.k_row_stride, p.k_row_stride, seqlen_kv - kv0, tid);
    kg_load_tile<Tr, kBlockN>(smem.v[0], v_head + kv0 * p.v_row_stride, p.v_row_stride, seqlen_kv - kv0, tid);
  }
  kg_cp_async_commit();

  kg_cp_async_wait<1>();  // Q has landed (the first K/V tile may still be in flight)
  __syncthreads();

  // Q fragments (A operands of S = Q Kᵀ). ldmatrix.x4 matrices: rows 0-7 / 8-15 of the m16 tile ×
  // k 0-7 / 8-15 of the k16 step → a[0..3]. Kept in registers for the whole CTA when kQInRegs.
  const auto load_q_frag = [&](uint32_t(&a)[4], int mt, int ks) {
    const int row = warp * Tr::kRowsPerWarp + mt * 16 + (lane & 15);
    const int chunk = ks * 2 + (lane >> 4);
    kg_ldmatrix_x4(a, kg_smem_u32(&smem.q[kg_swz<Tr>(row, chunk)]));
  };
  uint32_t q_frag[kMTiles][Tr::kQInRegs ? Tr::kKStepsQK : 1][4];
  if constexpr (Tr::kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int ks = 0; ks < Tr::kKStepsQK; ++ks) load_q_frag(q_frag[mt][ks], mt, ks);
    }
  }

  float acc_o[kMTiles][kNTilesO][4];  // O, unnormalised, fp32
  float row_max[kMTiles][2];          // m: running max of the base-2 logits of rows g and g+8
  float row_sum[kMTiles][2];          // l: this thread's part of Σ 2^(s - m) (quad-reduced at the end)
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int i = 0; i < kNTilesO; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc_o[mt][i][j] = 0.0f;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.0f;
    }
  }

  // Pipeline, one barrier per visited tile n (in stage `stage`):
  //   wait for tile n's copies; __syncthreads()  — tile n visible to all, and every warp is done
  //                                                with tile n-1, whose stage is now free
  //   prefetch the next visited tile into that free stage (overlaps all of tile n's math)
  //   compute tile n
  int stage = 0;
  while (n < n_tiles) {
    const int kv0 = n * kBlockN;

    kg_cp_async_wait<0>();  // tile n's K and V have landed (for this thread's copies)...
    __syncthreads();        // ...and for everyone's; stage ^ 1 is free

    KgTileClass cls_next;
    const int n_next = walk.next(p.mod, b, h, q0, q_hi, n + 1, n_tiles, &cls_next);
    if (n_next < n_tiles) {
      const int kv1 = n_next * kBlockN;
      kg_load_tile<Tr, kBlockN>(smem.k[stage ^ 1], k_head + kv1 * p.k_row_stride, p.k_row_stride, seqlen_kv - kv1, tid);
      kg_load_tile<Tr, kBlockN>(smem.v[stage ^ 1], v_head + kv1 * p.v_row_stride, p.v_row_stride, seqlen_kv - kv1, tid);
    }
    kg_cp_async_commit();

    // Partial tile: mask_mod per element; bit nt·4 + 2r + c of mask_bits[mt] keeps S element
    // [mt][nt][2r + c].
    uint32_t mask_bits[kMTiles];
    bool any_kept = true;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) mask_bits[mt] = 0u;
    if (kg_has_mask_mod && cls == kg_tile_partial) {
      uint32_t any = 0u;
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int q_idx = q_row0 + mt * 16 + g + 8 * r;
#pragma unroll
          for (int nt = 0; nt < kNTilesS; ++nt) {
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int kv_idx = kv0 + nt * 8 + 2 * tig + c;
              const bool keep = kv_idx < seqlen_kv && kg_mask_mod(b, h, q_idx, kv_idx, p.mod);
              mask_bits[mt] |= static_cast<uint32_t>(keep) << (nt * 4 + 2 * r + c);
            }
          }
        }
        any |= mask_bits[mt];
      }
      // A data-dependent mask (tensor reads) that the interval classifier could not bound: skip
      // the MMAs when no element of the tile survives. Uniform branch (cls is CTA-uniform).
      if constexpr (kg_mask_reads_tensors) any_kept = __syncthreads_or(any != 0u) != 0;
    }

    if (any_kept) {
      // S = Q Kᵀ. ldmatrix.x4 on K rows: matrices (kv 0-7, d 0-7), (kv 0-7, d 8-15),
      // (kv 8-15, d 0-7), (kv 8-15, d 8-15) → B fragments of two n8 tiles.
      float acc_s[kMTiles][kNTilesS][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kNTilesS; ++nt) {
#pragma unroll
          for (int j = 0; j < 4; ++j) acc_s[mt][nt][j] = 0.0f;
        }
      }
      const Element* k_s = smem.k[stage];
#pragma unroll
      for (int ks = 0; ks < Tr::kKStepsQK; ++ks) {
        if constexpr (!Tr::kQInRegs) {
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) load_q_frag(q_frag[mt][0], mt, ks);
        }
#pragma unroll
        for (int np = 0; np < kNTilesS / 2; ++np) {
          uint32_t kb[4];
          const int row = np * 16 + (lane & 7) + ((lane >> 4) << 3);
          const int chunk = ks * 2 + ((lane >> 3) & 1);
          kg_ldmatrix_x4(kb, kg_smem_u32(&k_s[kg_swz<Tr>(row, chunk)]));
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            const uint32_t(&qa)[4] = q_frag[mt][Tr::kQInRegs ? ks : 0];
            Ops::mma(acc_s[mt][2 * np], qa, kb[0], kb[1]);
            Ops::mma(acc_s[mt][2 * np + 1], qa, kb[2], kb[3]);
          }
        }
      }

      // S ← base-2 logits, masked. Full tiles skip mask_mod; only the last tile checks seqlen_kv.
      if (kg_has_mask_mod && cls == kg_tile_partial) {
        kg_scores_to_logits<Tr, kg_mask_bits>(acc_s, mask_bits, p, b, h, q_row0, kv0, g, tig);
      } else if (kv0 + kBlockN > seqlen_kv) {
        kg_scores_to_logits<Tr, kg_mask_bound>(acc_s, mask_bits, p, b, h, q_row0, kv0, g, tig);
      } else {
        kg_scores_to_logits<Tr, kg_mask_none>(acc_s, mask_bits, p, b, h, q_row0, kv0, g, tig);
      }

      // Online softmax. Each row lives in the 4 threads of a quad: reduce over xor 1, 2.
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < kNTilesS; ++nt) mx = fmaxf(mx, fmaxf(acc_s[mt][nt][2 * r], acc_s[mt][nt][2 * r + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float m_new = fmaxf(row_max[mt][r], mx);
          // m' = -inf: nothing kept in this row yet. Subtract 0 so that 2^(-inf - base) = 0, not NaN.
          const float base = m_new == -INFINITY ? 0.0f : m_new;
          const float alpha = kg_exp2_approx(row_max[mt][r] - base);  // 2^(m - m'); 0 when m = -inf
          row_max[mt][r] = m_new;
          float sum = 0.0f;
#pragma unroll
          for (int nt = 0; nt < kNTilesS; ++nt) {
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const float pe = kg_exp2_approx(acc_s[mt][nt][2 * r + c] - base);  // P = 2^(s - m')
              acc_s[mt][nt][2 * r + c] = pe;
              sum += pe;
            }
          }
          row_sum[mt][r] = row_sum[mt][r] * alpha + sum;  // l = l·2^(m - m') + Σ P
#pragma unroll
          for (int dt = 0; dt < kNTilesO; ++dt) {  // O = O·2^(m - m')
            acc_o[mt][dt][2 * r] *= alpha;
            acc_o[mt][dt][2 * r + 1] *= alpha;
          }
        }
      }

      // O += P V. The C fragments of S n8 tiles 2kk and 2kk+1 are exactly the A fragment of P for
      // k16 step kk. ldmatrix.x4.trans on V rows: matrices (kv 0-7, d 0-7), (kv 8-15, d 0-7),
      // (kv 0-7, d 8-15), (kv 8-15, d 8-15) → B fragments of two n8 tiles of O.
      const Element* v_s = smem.v[stage];
#pragma unroll
      for (int kk = 0; kk < Tr::kKStepsPV; ++kk) {
        uint32_t pa[kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          pa[mt][0] = Ops::pack(acc_s[mt][2 * kk][0], acc_s[mt][2 * kk][1]);
          pa[mt][1] = Ops::pack(acc_s[mt][2 * kk][2], acc_s[mt][2 * kk][3]);
          pa[mt][2] = Ops::pack(acc_s[mt][2 * kk + 1][0], acc_s[mt][2 * kk + 1][1]);
          pa[mt][3] = Ops::pack(acc_s[mt][2 * kk + 1][2], acc_s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < kNTilesO / 2; ++dp) {
          uint32_t vb[4];
          const int row = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
          const int chunk = dp * 2 + (lane >> 4);
          kg_ldmatrix_x4_trans(vb, kg_smem_u32(&v_s[kg_swz<Tr>(row, chunk)]));
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            Ops::mma(acc_o[mt][2 * dp], pa[mt], vb[0], vb[1]);
            Ops::mma(acc_o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
          }
        }
      }
    }

    stage ^= 1;
    n = n_next;
    cls = cls_next;
  }
  kg_cp_async_wait<0>();  // only empty groups can be in flight here; be explicit anyway

  // Epilogue: out = O / l (0 for a fully masked row), lse = ln Σ e^s = (m + log2 l)·ln 2.
  Element* out_tile = p.out + b * p.out_batch_stride + h * p.out_head_stride + q0 * p.out_row_stride;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
      for (int dt = 0; dt < kNTilesO; ++dt) {
        acc_o[mt][dt][2 * r] *= inv;
        acc_o[mt][dt][2 * r + 1] *= inv;
      }
      if constexpr (kWriteLse) {
        const int q_idx = q_row0 + mt * 16 + g + 8 * r;
        if (tig == 0 && q_idx < seqlen_q) {
          const long long row = (static_cast<long long>(b) * p.mod.heads_q + h) * seqlen_q + q_idx;
          p.lse[row] = l > 0.0f ? (row_max[mt][r] + log2f(l)) * kLn2 : -INFINITY;
        }
      }
    }
  }

  // Stage O through this warp's own rows of the Q tile (no other warp reads them), then write it
  // with coalesced 16-byte stores, skipping rows ≥ seqlen_q.
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = warp * Tr::kRowsPerWarp + mt * 16 + g + 8 * r;
#pragma unroll
      for (int dt = 0; dt < kNTilesO; ++dt) {
        *reinterpret_cast<uint32_t*>(&smem.q[kg_swz<Tr>(row, dt) + 2 * tig]) =
            Ops::pack(acc_o[mt][dt][2 * r], acc_o[mt][dt][2 * r + 1]);
      }
    }
  }
  __syncthreads();
  constexpr int kOutIters = kBlockM * Tr::kChunksPerRow / Tr::kNThreads;
#pragma unroll
  for (int i = 0; i < kOutIters; ++i) {
    const int idx = tid + i * Tr::kNThreads;
    const int row = idx / Tr::kChunksPerRow;
    const int chunk = idx % Tr::kChunksPerRow;
    if (row < q_rows) {
      *reinterpret_cast<uint4*>(out_tile + row * p.out_row_stride + chunk * 8) =
          *reinterpret_cast<const uint4*>(&smem.q[kg_swz<Tr>(row, chunk)]);
    }
  }
}

// ---- Launch --------------------------------------------------------------------------------------

// Turns the runtime LSE flag into a template parameter and launches one CTA per (query tile,
// head, batch).
template <class Tr, bool kWriteLse>
cudaError_t kg_launch_flash_fwd(const KgFlashParams<typename Tr::Element>& p, cudaStream_t stream) {
  constexpr int kSmemBytes = static_cast<int>(sizeof(KgFlashSmem<Tr>));
  const auto kernel = &kg_flash_fwd_kernel<Tr, kWriteLse>;
  if constexpr (kSmemBytes > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
    if (e != cudaSuccess) return e;
  }
  const dim3 grid((p.mod.seqlen_q + Tr::kBlockM - 1) / Tr::kBlockM, p.mod.heads_q, p.mod.batch);
  kernel<<<grid, Tr::kNThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

// Validates `args` (kernelgen/attention_abi.h) and enqueues the forward pass on `stream`.
inline cudaError_t kg_flash_fwd(const KgAttentionArgs* args, cudaStream_t stream) {
  using Traits = typename KgFlashConfig<kg_element, kg_head_dim>::Traits;
  if (kg_check_common_args(args, kg_head_dim) != nullptr) return cudaErrorInvalidValue;
  KgFlashParams<kg_element> p;
  if (!kg_make_flash_params(args, &p)) return cudaErrorInvalidValue;
  if (args->seqlen_q == 0) return cudaSuccess;  // nothing to compute or write
  // Few query rows and long keys: split-KV with GQA packing (flash_decode.cuh) when it would
  // launch more useful CTAs than this kernel.
  KgDecodePlan plan;
  const cudaError_t plan_error = kg_decode_plan(p, &plan);
  if (plan_error != cudaSuccess) return plan_error;
  if (plan.use) return kg_flash_decode(p, plan, stream);
  // A walk over long rows of tiles reads the hulls of the tensors it scans from tables that a
  // pre-pass builds (scratch.cuh), ahead of the kernel on the same stream.
  if constexpr (kg_mask_reads_tensors) {
    if (args->seqlen_kv >= kg_hull_min_kv) {
      const cudaError_t e = kg_build_hulls(&p.mod, stream);
      if (e != cudaSuccess) return e;
    }
  }
  // seqlen_kv == 0 still launches: no tile is visited, so every row writes out = 0, lse = -inf.
  return p.lse != nullptr ? kg_launch_flash_fwd<Traits, true>(p, stream)
                          : kg_launch_flash_fwd<Traits, false>(p, stream);
}
