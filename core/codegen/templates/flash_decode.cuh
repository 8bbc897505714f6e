// flash_decode.cuh — split-KV forward for few query rows and long keys (flash-decoding).
//
// Pasted by kernelgen into every generated template .cu (both families), inside its anonymous
// namespace, after flash_common.cuh and before the family's file, whose kg_flash_fwd() asks
// kg_decode_plan() whether this path should run and then calls kg_flash_decode(). Uses only
// mma.sync m16n8k16, ldmatrix and cp.async, so it runs on sm_80 … sm_90a alike.
//
// Why a separate kernel: with seqlen_q ≤ 64 the family kernels launch one CTA per (query tile,
// query head, batch) = heads_q · batch CTAs of 128 rows that are mostly padding, and every query
// head of a GQA group reads the same K/V again. Decoding (seqlen_q = 1) is then a pure stream of
// K and V from HBM, and what counts is bytes in flight per SM, not tensor throughput.
//
// Work decomposition:
//   rows    the query heads of one KV group are packed into the M dimension: tile row r of row
//           tile t is flat = 16t + r over (query position, head in group), query-major:
//           q_idx = flat / group, h = h_kv · group + flat % group. K/V are read once per group.
//   splits  the key/value tiles [0, n_tiles) are cut into num_splits contiguous chunks; one CTA
//           per (row tile, split, kv head, batch). Each writes its partial O (fp32, normalised)
//           and its log-sum-exp; kg_decode_combine_kernel merges them into out and lse. With one
//           split the CTA writes out and lse itself.
//   warps   the 4 warps share the 16 rows and split each 64-key tile's columns (16 keys each):
//           every warp keeps its own running max, sum and O accumulator, merged through shared
//           memory at the end (m = max m_w, l = Σ l_w 2^(m_w - m), O = Σ O_w 2^(m_w - m)).
// Per warp and tile:
//   S = Q Kᵀ on its 16 keys                        (mma.sync m16n8k16, fp32)
//   S ← score_mod(S · scale)·log2(e), -inf where masked
//   m' = max(m, rowmax S);  P = 2^(S - m');  l = l·2^(m - m') + rowsum P;  O = O·2^(m - m')
//   O += P V                                       (P re-packed from the S accumulators)
// Masks: the tile box [q rows] × [heads of the row tile] × [kv tile] is classified per head with
// the spec's kg_classify_tile (interval_rules.inc); Empty tiles are never loaded, Full tiles skip
// mask_mod, Partial tiles evaluate it per element with each row's own (b, h, q_idx, kv_idx).
//
// Scratch: the ABI has no workspace, so partials go to cached cudaMalloc buffers (kg_scratch in
// scratch.cuh: a ring of slots per device, each grown on demand, never freed otherwise).

// ---- Configuration ----------------------------------------------------------------------------

// Tuning decisions:
//   kBlockM 16    one m16 MMA tile of rows: decode has group·seqlen_q rows per KV head (4 for
//                 32/8 heads); more rows per CTA would only multiply padding. Row groups larger
//                 than 16 get more row tiles, which read the same K/V tile at about the same time
//                 (adjacent CTAs), so the repeat reads hit L2.
//   4 warps,      each warp owns 16 keys of the tile (one k16 step of P V, two n8 tiles of S), so
//   kBlockN 64    a 64-key tile gives all four warps work; the per-warp state is Q (kHeadDim/4
//                 registers), O (kHeadDim/2) and S (8).
//   kStages       cp.async stages of K+V tiles, sized so two CTAs fit an SM (228 KB) at d ≤ 128:
//                 d64 4 stages × 16 KB, d128 3 × 32 KB = 96 KB (2 tiles = 64 KB in flight per
//                 CTA, 128 KB per SM, far over the ~30 KB that Little's law asks of an H200 SM at
//                 ~4.8 TB/s / 132 SMs and ~0.8 µs latency); d256 2 × 64 KB, one CTA per SM.
//   kQInRegs      d256 re-reads Q from shared memory each k16 step: O alone is 128 registers.
template <typename Element_, int kHeadDim_, int kStages_, bool kQInRegs_, int kMinBlocks_>
struct KgDecodeTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kStages = kStages_;
  static constexpr bool kQInRegs = kQInRegs_;
  static constexpr int kMinBlocks = kMinBlocks_;  // __launch_bounds__ minimum CTAs per SM
  static constexpr int kBlockM = 16;
  static constexpr int kNWarps = 4;
  static constexpr int kNThreads = kNWarps * 32;
  static constexpr int kWarpKeys = 16;                 // keys of a tile per warp
  static constexpr int kBlockN = kWarpKeys * kNWarps;  // keys per tile
  static constexpr int kKSteps = kHeadDim / 16;        // k16 steps of S = Q Kᵀ
  static constexpr int kNTilesO = kHeadDim / 8;        // n8 tiles of O
  static constexpr int kChunksPerRow = kHeadDim / 8;   // 16-byte chunks per shared-memory row
  static constexpr int kOStride = kHeadDim + 8;        // fp32 merge rows: +8 floats, no bank conflicts

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "head_dim must be 64, 128 or 256");
  static_assert(kStages >= 2, "a pipeline needs two stages");
  static_assert(kNTilesO % 2 == 0, "ldmatrix.x4.trans feeds n8 tiles of O in pairs");
  static_assert(kChunksPerRow >= 8, "the XOR swizzle permutes chunks in groups of 8");
  static_assert((kBlockM * kChunksPerRow) % kNThreads == 0, "Q tile copies divide evenly among threads");
  static_assert((kBlockN * kChunksPerRow) % kNThreads == 0, "K/V tile copies divide evenly among threads");
  static_assert((kBlockM * kHeadDim / 4) % kNThreads == 0, "merge units divide evenly among threads");
};

template <typename Element, int kHeadDim>
struct KgDecodeConfig;
template <typename Element>
struct KgDecodeConfig<Element, 64> {
  using Traits = KgDecodeTraits<Element, 64, 4, true, 2>;
};
template <typename Element>
struct KgDecodeConfig<Element, 128> {
  using Traits = KgDecodeTraits<Element, 128, 3, true, 2>;
};
template <typename Element>
struct KgDecodeConfig<Element, 256> {
  using Traits = KgDecodeTraits<Element, 256, 2, false, 1>;
};

// Host-side choice limits.
constexpr int kg_decode_max_q = 64;              // seqlen_q above this: the family kernels
constexpr int kg_decode_max_splits = 64;         // bounds the scratch and the combine's loop
constexpr int kg_decode_min_tiles_per_split = 4; // ≥ 256 keys per split: amortises the Q load,
                                                 // the pipeline prologue and the partial write
constexpr int kg_decode_max_devices = kg_max_devices;  // per-device caches; beyond: family kernels

// ---- Shared memory ----------------------------------------------------------------------------

// [rows][kHeadDim] b16 tiles, 16-byte chunks of row r XOR-swizzled by r % 8 (as flash_fwd_sm80.cuh:
// conflict-free ldmatrix and cp.async). After the main loop the K and V stages (adjacent, read as
// one region) hold the fp32 O of each warp, [kNWarps][kBlockM][kOStride].
template <class Tr>
struct KgDecodeSmem {
  typename Tr::Element q[Tr::kBlockM * Tr::kHeadDim];
  typename Tr::Element k[Tr::kStages][Tr::kBlockN * Tr::kHeadDim];
  typename Tr::Element v[Tr::kStages][Tr::kBlockN * Tr::kHeadDim];
  float warp_max[Tr::kNWarps][Tr::kBlockM];  // m_w per row, base-2 logits
  float warp_sum[Tr::kNWarps][Tr::kBlockM];  // l_w per row
  float row_max[Tr::kBlockM];                // m = max_w m_w
  float row_sum[Tr::kBlockM];                // l = Σ_w l_w 2^(m_w - m)
};

template <class Tr>
__device__ __forceinline__ int kg_dec_swz(int row, int chunk) {
  return row * Tr::kHeadDim + ((chunk ^ (row & 7)) << 3);
}

// ---- PTX wrappers (own names: the families define theirs after this file) -------------------

__device__ __forceinline__ void kg_dec_ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void kg_dec_ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// C += A B  (A 16x16 row-major, B 16x8 column-major, C 16x8 fp32); fragment layouts as in
// flash_fwd_sm80.cuh (g = lane/4, t = lane%4).
template <typename T>
__device__ __forceinline__ void kg_dec_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  static_assert(kg_is_bf16<T> || kg_is_fp16<T>, "bf16 or fp16");
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

// ---- Tile classification over a packed row tile ---------------------------------------------

// The query box of one row tile: positions [q_lo, q_hi] and heads [h_lo, h_hi] (a superset of the
// (q, h) pairs its rows hold; classification over a superset is still sound).
struct KgDecodeBox {
  int b, q_lo, q_hi, h_lo, h_hi;
};

// Class of key/value tile n for every head of the box: Empty when Empty for all, Full when Full
// for all, else Partial. CTA-uniform.
template <int kBlockN>
__device__ __forceinline__ KgTileClass kg_dec_classify(const KgModArgs& ma, const KgDecodeBox& box, int n) {
  if constexpr (!kg_has_mask_mod) {
    return kg_tile_full;
  } else {
    const int kv_lo = n * kBlockN;
    const int kv_hi = min(kv_lo + kBlockN, ma.seqlen_kv) - 1;
    bool all_empty = true, all_full = true;
    for (int h = box.h_lo; h <= box.h_hi && (all_empty || all_full); ++h) {
      const KgTileClass c = kg_classify_tile(ma, box.b, h, box.q_lo, box.q_hi, kv_lo, kv_hi);
      all_empty = all_empty && c == kg_tile_empty;
      all_full = all_full && c == kg_tile_full;
    }
    return all_empty ? kg_tile_empty : (all_full ? kg_tile_full : kg_tile_partial);
  }
}

// First tile in [n, n_end) that is not Empty for the box; n_end when none.
template <int kBlockN>
__device__ __forceinline__ int kg_dec_next_tile(const KgModArgs& ma, const KgDecodeBox& box, int n, int n_end) {
  if constexpr (kg_has_mask_mod) {
    while (n < n_end && kg_dec_classify<kBlockN>(ma, box, n) == kg_tile_empty) ++n;
  }
  return n;
}

// ---- Partials ---------------------------------------------------------------------------------

// Scratch for num_splits > 1. Row index: row = (b · heads_kv + h_kv) · (group · seqlen_q) + flat,
// which enumerates every (b, h, q) once.
struct KgDecodePartials {
  float* o;    // [num_splits][rows][head_dim], normalised (O / l); 0 for a fully masked split
  float* lse;  // [num_splits][rows], natural log-sum-exp of the split; -inf when fully masked
  long long rows;
};

// ---- The split kernel -------------------------------------------------------------------------

// Grid (flattened in x, row tile fastest so the row tiles of one split run side by side and share
// the K/V reads in L2): x = row_tile + row_tiles · (split + num_splits · (h_kv + heads_kv · b)).
template <class Tr, bool kSplit, bool kWriteLse>
__global__ void __launch_bounds__(Tr::kNThreads, Tr::kMinBlocks)
    kg_decode_kernel(const KgFlashParams<typename Tr::Element> p, const KgDecodePartials part, int row_tiles,
                     int num_splits, int tiles_per_split) {
  using Element = typename Tr::Element;
  constexpr int kBlockN = Tr::kBlockN;
  constexpr int kNTilesO = Tr::kNTilesO;
  constexpr float kLn2 = 0.69314718055994530942f;
  constexpr float kLog2e = 1.44269504088896340736f;

  extern __shared__ __align__(128) unsigned char kg_smem_raw[];
  KgDecodeSmem<Tr>& smem = *reinterpret_cast<KgDecodeSmem<Tr>*>(kg_smem_raw);

  const int heads_kv = p.mod.heads_kv;
  long long bid = blockIdx.x;
  const int row_tile = static_cast<int>(bid % row_tiles);
  bid /= row_tiles;
  const int split = static_cast<int>(bid % num_splits);
  bid /= num_splits;
  const int h_kv = static_cast<int>(bid % heads_kv);
  const int b = static_cast<int>(bid / heads_kv);

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;   // fragment row group
  const int tig = lane & 3;  // thread in group
  const int group = p.group;
  const int seqlen_q = p.mod.seqlen_q;
  const int seqlen_kv = p.mod.seqlen_kv;
  const int rows_per_kv = group * seqlen_q;   // rows of this KV head
  const int flat0 = row_tile * Tr::kBlockM;   // first row of the tile (always < rows_per_kv)
  const int flat_last = min(flat0 + Tr::kBlockM, rows_per_kv) - 1;

  // The box for tile classification.
  KgDecodeBox box;
  box.b = b;
  box.q_lo = flat0 / group;
  box.q_hi = flat_last / group;
  box.h_lo = h_kv * group + (box.q_lo == box.q_hi ? flat0 % group : 0);
  box.h_hi = h_kv * group + (box.q_lo == box.q_hi ? flat_last % group : group - 1);

  // This thread's two fragment rows (g and g + 8): padding rows past the last valid one take the
  // tile's first row's (q, h), so the mods only ever see real indices (their results are dropped).
  int row_q[2], row_h[2];
  bool row_valid[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int flat = flat0 + g + 8 * r;
    row_valid[r] = flat <= flat_last;
    const int f = row_valid[r] ? flat : flat0;
    row_q[r] = f / group;
    row_h[r] = h_kv * group + f % group;
  }

  const Element* k_head = p.k + b * p.k_batch_stride + h_kv * p.k_head_stride;
  const Element* v_head = p.v + b * p.v_batch_stride + h_kv * p.v_head_stride;

  // Q rows → shared memory (rows past the last are zero-filled).
  constexpr int kQIters = Tr::kBlockM * Tr::kChunksPerRow / Tr::kNThreads;
#pragma unroll
  for (int i = 0; i < kQIters; ++i) {
    const int idx = tid + i * Tr::kNThreads;
    const int row = idx / Tr::kChunksPerRow;
    const int chunk = idx % Tr::kChunksPerRow;
    const int flat = flat0 + row;
    const bool valid = flat <= flat_last;
    const int qi = valid ? flat / group : 0;
    const int hq = valid ? h_kv * group + flat % group : 0;
    const Element* src = p.q + b * p.q_batch_stride + hq * p.q_head_stride + qi * p.q_row_stride + chunk * 8;
    kg_cp_async_16(kg_smem_u32(&smem.q[kg_dec_swz<Tr>(row, chunk)]), valid ? src : p.q, valid);
  }
  kg_cp_async_commit();

  // K/V tile n → stage `slot`; rows ≥ seqlen_kv are zero-filled (0 · V must not be NaN).
  const auto load_kv = [&](int n, int slot) {
    const int kv0 = n * kBlockN;
    const int rows_valid = seqlen_kv - kv0;
    constexpr int kIters = kBlockN * Tr::kChunksPerRow / Tr::kNThreads;
    // Fully unrolled, d256's 16 iterations keep 32 precomputed addresses live across the main loop
    // and spill (ptxas, nvcc 13.0); two at a time cost nothing measurable next to the copies.
    constexpr int kUnroll = kIters > 8 ? 2 : kIters;
#pragma unroll kUnroll
    for (int i = 0; i < kIters; ++i) {
      const int idx = tid + i * Tr::kNThreads;
      const int row = idx / Tr::kChunksPerRow;
      const int chunk = idx % Tr::kChunksPerRow;
      const bool valid = row < rows_valid;
      const long long kr = static_cast<long long>(kv0 + row);
      const Element* ks = valid ? k_head + kr * p.k_row_stride + chunk * 8 : k_head;
      const Element* vs = valid ? v_head + kr * p.v_row_stride + chunk * 8 : v_head;
      kg_cp_async_16(kg_smem_u32(&smem.k[slot][kg_dec_swz<Tr>(row, chunk)]), ks, valid);
      kg_cp_async_16(kg_smem_u32(&smem.v[slot][kg_dec_swz<Tr>(row, chunk)]), vs, valid);
    }
  };

  // This split's tiles.
  const int n_tiles = (seqlen_kv + kBlockN - 1) / kBlockN;
  const int t_begin = min(split * tiles_per_split, n_tiles);
  const int t_end = min(t_begin + tiles_per_split, n_tiles);

  // Prologue: the first kStages - 1 visited tiles, one commit group each (empty groups when there
  // are fewer, so that the group count below stays exact).
  int n_load = kg_dec_next_tile<kBlockN>(p.mod, box, t_begin, t_end);
#pragma unroll
  for (int s = 0; s < Tr::kStages - 1; ++s) {
    if (n_load < t_end) {
      load_kv(n_load, s);
      n_load = kg_dec_next_tile<kBlockN>(p.mod, box, n_load + 1, t_end);
    }
    kg_cp_async_commit();
  }

  kg_cp_async_wait<Tr::kStages - 1>();  // the Q group has landed
  __syncthreads();

  const auto load_q_frag = [&](uint32_t(&a)[4], int ks) {
    kg_dec_ldmatrix_x4(a, kg_smem_u32(&smem.q[kg_dec_swz<Tr>(lane & 15, ks * 2 + (lane >> 4))]));
  };
  uint32_t q_frag[Tr::kQInRegs ? Tr::kKSteps : 1][4];
  if constexpr (Tr::kQInRegs) {
#pragma unroll
    for (int ks = 0; ks < Tr::kKSteps; ++ks) load_q_frag(q_frag[ks], ks);
  }

  float acc_o[kNTilesO][4];  // this warp's O, unnormalised
  float row_max[2];          // m_w of rows g, g + 8 (base-2 logits)
  float row_sum[2];          // this thread's part of l_w (quad-reduced at the end)
#pragma unroll
  for (int i = 0; i < kNTilesO; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc_o[i][j] = 0.0f;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
  }

  // Main loop, one barrier per visited tile (visit i in slot i % kStages):
  //   wait until at most kStages - 2 groups are in flight → visit i's tile has landed (this
  //   thread's copies); __syncthreads() → everyone's, and every warp is done with visit i - 1
  //   prefetch the next visited tile into visit i - 1's slot; commit (maybe an empty group)
  //   compute visit i
  int n = kg_dec_next_tile<kBlockN>(p.mod, box, t_begin, t_end);
  int slot = 0;
  while (n < t_end) {
    const int kv0 = n * kBlockN;
    const KgTileClass cls = kg_dec_classify<kBlockN>(p.mod, box, n);

    kg_cp_async_wait<Tr::kStages - 2>();
    __syncthreads();
    if (n_load < t_end) {
      load_kv(n_load, slot == 0 ? Tr::kStages - 1 : slot - 1);
      n_load = kg_dec_next_tile<kBlockN>(p.mod, box, n_load + 1, t_end);
    }
    kg_cp_async_commit();

    const int kw0 = kv0 + warp * Tr::kWarpKeys;  // this warp's first key
    // Partial tile: mask bit nt·4 + 2r + c keeps S element [nt][2r + c] (key kw0 + 8nt + 2·tig + c).
    uint32_t mask_bits = 0u;
    bool warp_any = true;
    if (kg_has_mask_mod && cls == kg_tile_partial) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int kv_idx = kw0 + nt * 8 + 2 * tig + c;
            const bool keep = kv_idx < seqlen_kv && kg_mask_mod(b, row_h[r], row_q[r], kv_idx, p.mod);
            mask_bits |= static_cast<uint32_t>(keep) << (nt * 4 + 2 * r + c);
          }
        }
      }
      // Nothing of this warp's 16 keys survives: its state cannot change (warp-uniform skip).
      warp_any = __any_sync(0xffffffffu, mask_bits != 0u);
    } else if (kw0 >= seqlen_kv) {
      warp_any = false;  // the last tile's keys past seqlen_kv
    }

    if (warp_any) {
      // S = Q Kᵀ on this warp's 16 keys: ldmatrix.x4 matrices (keys 0-7, d 0-7), (0-7, 8-15),
      // (8-15, 0-7), (8-15, 8-15) → B fragments of the two n8 tiles.
      float acc_s[2][4];
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc_s[nt][j] = 0.0f;
      }
      const typename Tr::Element* k_s = smem.k[slot];
#pragma unroll
      for (int ks = 0; ks < Tr::kKSteps; ++ks) {
        if constexpr (!Tr::kQInRegs) load_q_frag(q_frag[0], ks);
        uint32_t kb[4];
        const int row = warp * Tr::kWarpKeys + (lane & 7) + ((lane >> 4) << 3);
        kg_dec_ldmatrix_x4(kb, kg_smem_u32(&k_s[kg_dec_swz<Tr>(row, ks * 2 + ((lane >> 3) & 1))]));
        const uint32_t(&qa)[4] = q_frag[Tr::kQInRegs ? ks : 0];
        kg_dec_mma<Element>(acc_s[0], qa, kb[0], kb[1]);
        kg_dec_mma<Element>(acc_s[1], qa, kb[2], kb[3]);
      }

      // S ← base-2 logits, -inf where masked (mask_bits on Partial tiles, the seqlen_kv bound on
      // the last tile, nothing on Full tiles inside the sequence).
      const bool partial = kg_has_mask_mod && cls == kg_tile_partial;
      const bool bound = kv0 + kBlockN > seqlen_kv;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int kv_idx = kw0 + nt * 8 + 2 * tig + c;
            float& x = acc_s[nt][2 * r + c];
            bool keep = true;
            if (partial) {
              keep = (mask_bits >> (nt * 4 + 2 * r + c)) & 1u;
            } else if (bound) {
              keep = kv_idx < seqlen_kv;
            }
            if constexpr (kg_has_score_mod) {
              // On masked elements too, then a select: straight-line code (tensor reads are bounded).
              const float v = kg_score_mod(x * p.scale, b, row_h[r], row_q[r], kv_idx, p.mod) * kLog2e;
              x = keep ? v : -INFINITY;
            } else {
              x = keep ? x * p.scale_log2 : -INFINITY;
            }
          }
        }
      }

      // Online softmax; a row lives in the 4 threads of a quad.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = fmaxf(fmaxf(acc_s[0][2 * r], acc_s[0][2 * r + 1]), fmaxf(acc_s[1][2 * r], acc_s[1][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(row_max[r], mx);
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // 2^(-inf - base) = 0, never NaN
        const float alpha = kg_exp2_approx(row_max[r] - base);
        row_max[r] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const float pe = kg_exp2_approx(acc_s[nt][2 * r + c] - base);
            acc_s[nt][2 * r + c] = pe;
            sum += pe;
          }
        }
        row_sum[r] = row_sum[r] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < kNTilesO; ++dt) {
          acc_o[dt][2 * r] *= alpha;
          acc_o[dt][2 * r + 1] *= alpha;
        }
      }

      // O += P V: the C fragments of S's two n8 tiles are the A fragment of P (one k16 step);
      // ldmatrix.x4.trans on this warp's 16 V rows → B fragments of two n8 tiles of O.
      uint32_t pa[4];
      pa[0] = kg_pack2<Element>(acc_s[0][0], acc_s[0][1]);
      pa[1] = kg_pack2<Element>(acc_s[0][2], acc_s[0][3]);
      pa[2] = kg_pack2<Element>(acc_s[1][0], acc_s[1][1]);
      pa[3] = kg_pack2<Element>(acc_s[1][2], acc_s[1][3]);
      const typename Tr::Element* v_s = smem.v[slot];
      const int vrow = warp * Tr::kWarpKeys + (lane & 7) + (((lane >> 3) & 1) << 3);
#pragma unroll
      for (int dp = 0; dp < kNTilesO / 2; ++dp) {
        uint32_t vb[4];
        kg_dec_ldmatrix_x4_trans(vb, kg_smem_u32(&v_s[kg_dec_swz<Tr>(vrow, dp * 2 + (lane >> 4))]));
        kg_dec_mma<Element>(acc_o[2 * dp], pa, vb[0], vb[1]);
        kg_dec_mma<Element>(acc_o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }

    slot = slot == Tr::kStages - 1 ? 0 : slot + 1;
    n = kg_dec_next_tile<kBlockN>(p.mod, box, n + 1, t_end);
  }
  kg_cp_async_wait<0>();  // only empty groups can be in flight; the stages are reused below
  __syncthreads();

  // ---- Merge the warps: m = max m_w, l = Σ l_w 2^(m_w - m), O = Σ O_w 2^(m_w - m) ----
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (tig == 0) {
      smem.warp_max[warp][g + 8 * r] = row_max[r];
      smem.warp_sum[warp][g + 8 * r] = l;
    }
  }
  __syncthreads();
  float* o_smem = reinterpret_cast<float*>(&smem.k[0][0]);
  static_assert(sizeof(float) * Tr::kNWarps * Tr::kBlockM * Tr::kOStride <= sizeof(smem.k) + sizeof(smem.v),
                "the warps' O fits the K and V stages (adjacent members)");
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = g + 8 * r;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < Tr::kNWarps; ++w) m = fmaxf(m, smem.warp_max[w][row]);
    const float f = row_max[r] == -INFINITY ? 0.0f : kg_exp2_approx(row_max[r] - m);
    float* dst = o_smem + (warp * Tr::kBlockM + row) * Tr::kOStride + 2 * tig;
#pragma unroll
    for (int dt = 0; dt < kNTilesO; ++dt) {
      *reinterpret_cast<float2*>(dst + dt * 8) = make_float2(acc_o[dt][2 * r] * f, acc_o[dt][2 * r + 1] * f);
    }
  }
  if (tid < Tr::kBlockM) {
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < Tr::kNWarps; ++w) m = fmaxf(m, smem.warp_max[w][tid]);
    float l = 0.0f;
#pragma unroll
    for (int w = 0; w < Tr::kNWarps; ++w) {
      const float mw = smem.warp_max[w][tid];
      l += mw == -INFINITY ? 0.0f : smem.warp_sum[w][tid] * kg_exp2_approx(mw - m);
    }
    smem.row_max[tid] = m;
    smem.row_sum[tid] = l;
  }
  __syncthreads();

  // ---- Write: 4 consecutive columns per unit, units spread over all threads ----
  constexpr int kUnitsPerRow = Tr::kHeadDim / 4;
  constexpr int kUnitIters = Tr::kBlockM * kUnitsPerRow / Tr::kNThreads;
#pragma unroll
  for (int i = 0; i < kUnitIters; ++i) {
    const int idx = tid + i * Tr::kNThreads;
    const int row = idx / kUnitsPerRow;
    const int col = (idx % kUnitsPerRow) * 4;
    const int flat = flat0 + row;
    if (flat > flat_last) continue;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int w = 0; w < Tr::kNWarps; ++w) {
      const float4 x = *reinterpret_cast<const float4*>(o_smem + (w * Tr::kBlockM + row) * Tr::kOStride + col);
      o.x += x.x;
      o.y += x.y;
      o.z += x.z;
      o.w += x.w;
    }
    const float l = smem.row_sum[row];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // a fully masked row: out = 0
    o.x *= inv;
    o.y *= inv;
    o.z *= inv;
    o.w *= inv;
    const float lse = l > 0.0f ? (smem.row_max[row] + log2f(l)) * kLn2 : -INFINITY;
    const int qi = flat / group;
    const int hq = h_kv * group + flat % group;
    if constexpr (kSplit) {
      const long long prow = (static_cast<long long>(b) * heads_kv + h_kv) * rows_per_kv + flat;
      const long long at = static_cast<long long>(split) * part.rows + prow;
      *reinterpret_cast<float4*>(part.o + at * Tr::kHeadDim + col) = o;
      if (col == 0) part.lse[at] = lse;
    } else {
      Element* dst = p.out + b * p.out_batch_stride + hq * p.out_head_stride + qi * p.out_row_stride + col;
      uint2 packed;
      packed.x = kg_pack2<Element>(o.x, o.y);
      packed.y = kg_pack2<Element>(o.z, o.w);
      *reinterpret_cast<uint2*>(dst) = packed;
      if constexpr (kWriteLse) {
        if (col == 0) p.lse[(static_cast<long long>(b) * p.mod.heads_q + hq) * seqlen_q + qi] = lse;
      }
    }
  }
}

// ---- The combine kernel ---------------------------------------------------------------------

// One warp per (b, h, q) row: lse = log Σ_s e^(lse_s), out = Σ_s e^(lse_s - lse) O_s. Splits with
// lse_s = -inf weigh 0; a row with every split fully masked gives out = 0 and lse = -inf.
template <typename Element, int kHeadDim, bool kWriteLse>
__global__ void __launch_bounds__(128) kg_decode_combine_kernel(const KgFlashParams<Element> p,
                                                                const KgDecodePartials part, int num_splits) {
  const long long row = static_cast<long long>(blockIdx.x) * 4 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= part.rows) return;
  float m = -INFINITY;
  for (int s = lane; s < num_splits; s += 32) m = fmaxf(m, part.lse[s * part.rows + row]);
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  float sum = 0.0f;
  if (m != -INFINITY) {
    for (int s = lane; s < num_splits; s += 32) sum += __expf(part.lse[s * part.rows + row] - m);
  }
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  const float lse = sum > 0.0f ? m + __logf(sum) : -INFINITY;

  constexpr int kPerLane = kHeadDim / 32;
  float o[kPerLane];
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) o[e] = 0.0f;
  if (sum > 0.0f) {
    for (int s = 0; s < num_splits; ++s) {
      const float ls = part.lse[s * part.rows + row];
      if (ls == -INFINITY) continue;  // uniform across the warp
      const float w = __expf(ls - lse);
      const float* src = part.o + (s * part.rows + row) * kHeadDim;
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) o[e] += w * src[e * 32 + lane];
    }
  }

  // row → (b, h, q): row = (b · heads_kv + h_kv) · (group · seqlen_q) + q · group + hg.
  const int group = p.group;
  const long long rows_per_kv = static_cast<long long>(group) * p.mod.seqlen_q;
  const long long bk = row / rows_per_kv;
  const int flat = static_cast<int>(row - bk * rows_per_kv);
  const int b = static_cast<int>(bk / p.mod.heads_kv);
  const int h = static_cast<int>(bk % p.mod.heads_kv) * group + flat % group;
  const int qi = flat / group;
  Element* dst = p.out + b * p.out_batch_stride + h * p.out_head_stride + qi * p.out_row_stride;
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    if constexpr (kg_is_bf16<Element>) {
      dst[e * 32 + lane] = __float2bfloat16_rn(o[e]);
    } else {
      dst[e * 32 + lane] = __float2half_rn(o[e]);
    }
  }
  if constexpr (kWriteLse) {
    if (lane == 0) p.lse[(static_cast<long long>(b) * p.mod.heads_q + h) * p.mod.seqlen_q + qi] = lse;
  }
}

// ---- Host: per-device caches, the plan, the launch ---------------------------------------------

// Per-device figures, cached (a slot of 0 means not asked yet). The caches use the compiler's
// __atomic builtins: the generated file includes no C++ library header.
struct KgDecodeDevice {
  int sms;         // cudaDevAttrMultiProcessorCount
  int smem_optin;  // cudaDevAttrMaxSharedMemoryPerBlockOptin, bytes
};
inline cudaError_t kg_decode_device(int device, KgDecodeDevice* out) {
  static int sms_cache[kg_decode_max_devices];
  static int smem_cache[kg_decode_max_devices];
  int sms = __atomic_load_n(&sms_cache[device], __ATOMIC_RELAXED);
  int smem = __atomic_load_n(&smem_cache[device], __ATOMIC_RELAXED);
  if (sms == 0 || smem == 0) {
    cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (e != cudaSuccess) return e;
    e = cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (e != cudaSuccess) return e;
    __atomic_store_n(&smem_cache[device], smem, __ATOMIC_RELAXED);
    __atomic_store_n(&sms_cache[device], sms, __ATOMIC_RELAXED);
  }
  out->sms = sms;
  out->smem_optin = smem;
  return cudaSuccess;
}

// Resident CTAs per SM of `kKernel` with `smem_bytes` (≤ the device's opt-in limit) on `device`,
// cached per kernel and device. Sets the > 48 KB dynamic shared memory attribute first.
template <auto kKernel, int kThreads>
inline cudaError_t kg_decode_occupancy(int device, int smem_bytes, int* out) {
  static int cache[kg_decode_max_devices];
  int n = __atomic_load_n(&cache[device], __ATOMIC_RELAXED);
  if (n == 0) {
    if (smem_bytes > 48 * 1024) {
      const cudaError_t e = cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
      if (e != cudaSuccess) return e;
    }
    const cudaError_t e =
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kKernel, kThreads, static_cast<size_t>(smem_bytes));
    if (e != cudaSuccess) return e;
    if (n < 1) n = -1;  // cannot be resident at all: remembered as "never use the decode path"
    __atomic_store_n(&cache[device], n, __ATOMIC_RELAXED);
  }
  *out = n;
  return cudaSuccess;
}


// How the decode path would run a call; use == false: the family kernel should.
struct KgDecodePlan {
  bool use = false;
  int device = 0;
  int row_tiles = 0;        // 16-row tiles per KV head
  int num_splits = 1;
  int tiles_per_split = 0;  // 64-key tiles per split
};

// Number of splits for `ctas` CTAs (one per row tile and KV head) over `slots` resident CTAs and
// `n_tiles` key tiles. FlashAttention-2's rule: one split when the CTAs already fill ~a wave;
// otherwise the fewest splits whose last wave is at least 85 % as full as the best count's, so the
// grid ends in about one (or two) full waves with each split ≥ kg_decode_min_tiles_per_split tiles.
inline int kg_decode_num_splits(long long ctas, long long slots, int n_tiles) {
  if (ctas * 10 >= slots * 8) return 1;
  const int max_splits = max(1, min(kg_decode_max_splits, n_tiles / kg_decode_min_tiles_per_split));
  double eff[kg_decode_max_splits + 1] = {};
  double best = 0.0;
  for (int s = 1; s <= max_splits; ++s) {
    const long long total = ctas * s;
    const long long waves = (total + slots - 1) / slots;
    eff[s] = static_cast<double>(total) / static_cast<double>(waves * slots);
    best = eff[s] > best ? eff[s] : best;
  }
  for (int s = 1; s <= max_splits; ++s) {
    if (eff[s] >= 0.85 * best) return s;
  }
  return 1;
}

template <class Tr>
inline cudaError_t kg_decode_plan_for(const KgFlashParams<typename Tr::Element>& p, KgDecodePlan* plan) {
  plan->use = false;
  const KgModArgs& ma = p.mod;
  if (ma.seqlen_q < 1 || ma.seqlen_q > kg_decode_max_q) return cudaSuccess;
  const long long rows_per_kv = static_cast<long long>(p.group) * ma.seqlen_q;
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  if (device < 0 || device >= kg_decode_max_devices) return cudaSuccess;
  KgDecodeDevice dev;
  e = kg_decode_device(device, &dev);
  if (e != cudaSuccess) return e;
  const int sms = dev.sms;
  // The family kernels run one CTA per (query head, batch) here (one query tile). They win when
  // they already fill the GPU and a KV group has many rows (a 128-row tile well used, K/V not
  // re-read per head); the decode path wins when they launch less than a wave, or when a group's
  // rows fit four 16-row tiles (GQA packing reads K/V once instead of `group` times).
  const long long family_ctas = static_cast<long long>(ma.heads_q) * ma.batch;
  if (rows_per_kv > 4 * 16 && family_ctas >= sms) return cudaSuccess;
  // Shared memory over the device's limit (sm_86/89 opt in to 99 KB; d128 needs ~101 KB): the
  // family kernels, which fit.
  constexpr int kSmemBytes = static_cast<int>(sizeof(KgDecodeSmem<Tr>));
  if (kSmemBytes > dev.smem_optin) return cudaSuccess;
  int per_sm = 0;
  e = kg_decode_occupancy<&kg_decode_kernel<Tr, false, false>, Tr::kNThreads>(device, kSmemBytes, &per_sm);
  if (e != cudaSuccess) return e;
  if (per_sm < 1) return cudaSuccess;
  plan->device = device;
  plan->row_tiles = static_cast<int>((rows_per_kv + 15) / 16);
  const int n_tiles = (ma.seqlen_kv + Tr::kBlockN - 1) / Tr::kBlockN;
  const long long ctas = static_cast<long long>(plan->row_tiles) * ma.heads_kv * ma.batch;
  int splits = kg_decode_num_splits(ctas, static_cast<long long>(sms) * per_sm, n_tiles);
  plan->tiles_per_split = n_tiles > 0 ? (n_tiles + splits - 1) / splits : 0;
  splits = plan->tiles_per_split > 0 ? (n_tiles + plan->tiles_per_split - 1) / plan->tiles_per_split : 1;
  plan->num_splits = splits;  // every split has ≥ 1 tile (fewer splits when the division is uneven)
  if (ctas * splits > 0x7fffffffll) return cudaSuccess;  // grid x limit: leave it to the family kernel
  plan->use = true;
  return cudaSuccess;
}

// Whether the decode path should run this call (*use), and how. Errors are CUDA errors of the
// device queries (nothing is enqueued).
inline cudaError_t kg_decode_plan(const KgFlashParams<kg_element>& p, KgDecodePlan* plan) {
  return kg_decode_plan_for<typename KgDecodeConfig<kg_element, kg_head_dim>::Traits>(p, plan);
}

template <class Tr, bool kSplit, bool kWriteLse>
inline cudaError_t kg_decode_launch(const KgFlashParams<typename Tr::Element>& p, const KgDecodePartials& part,
                                    const KgDecodePlan& plan, cudaStream_t stream) {
  constexpr int kSmemBytes = static_cast<int>(sizeof(KgDecodeSmem<Tr>));
  const auto kernel = &kg_decode_kernel<Tr, kSplit, kWriteLse>;
  if constexpr (kSmemBytes > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
    if (e != cudaSuccess) return e;
  }
  const long long ctas = static_cast<long long>(plan.row_tiles) * plan.num_splits * p.mod.heads_kv * p.mod.batch;
  kernel<<<static_cast<unsigned>(ctas), Tr::kNThreads, kSmemBytes, stream>>>(p, part, plan.row_tiles, plan.num_splits,
                                                                              plan.tiles_per_split);
  return cudaGetLastError();
}

// Enqueues the decode path for `plan` (from kg_decode_plan, use == true). One split: one kernel
// writes out and lse. Several: scratch (kg_scratch), the split kernel, the combine kernel;
// the first error is returned, and no kernel after a failed launch is enqueued.
inline cudaError_t kg_flash_decode(const KgFlashParams<kg_element>& p, const KgDecodePlan& plan, cudaStream_t stream) {
  using Tr = typename KgDecodeConfig<kg_element, kg_head_dim>::Traits;
  KgDecodePartials part = {nullptr, nullptr, 0};
  if (plan.num_splits == 1) {
    return p.lse != nullptr ? kg_decode_launch<Tr, false, true>(p, part, plan, stream)
                            : kg_decode_launch<Tr, false, false>(p, part, plan, stream);
  }
  part.rows = static_cast<long long>(p.mod.batch) * p.mod.heads_q * p.mod.seqlen_q;
  const size_t o_bytes = static_cast<size_t>(plan.num_splits) * part.rows * kg_head_dim * sizeof(float);
  const size_t lse_bytes = static_cast<size_t>(plan.num_splits) * part.rows * sizeof(float);
  void* scratch = nullptr;
  cudaError_t e = kg_scratch(plan.device, o_bytes + lse_bytes, &scratch);
  if (e != cudaSuccess) return e;
  part.o = static_cast<float*>(scratch);
  part.lse = reinterpret_cast<float*>(static_cast<unsigned char*>(scratch) + o_bytes);  // o_bytes % 256 == 0
  e = kg_decode_launch<Tr, true, false>(p, part, plan, stream);
  if (e == cudaSuccess) {
    const unsigned blocks = static_cast<unsigned>((part.rows + 3) / 4);
    if (p.lse != nullptr) {
      kg_decode_combine_kernel<kg_element, kg_head_dim, true><<<blocks, 128, 0, stream>>>(p, part, plan.num_splits);
    } else {
      kg_decode_combine_kernel<kg_element, kg_head_dim, false><<<blocks, 128, 0, stream>>>(p, part, plan.num_splits);
    }
    e = cudaGetLastError();
  }
  return e;
}
