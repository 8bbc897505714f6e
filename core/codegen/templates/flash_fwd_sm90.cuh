// flash_fwd_sm90.cuh — FlashAttention-3-class forward kernel on Hopper warpgroup MMA (wgmma).
//
// TemplateFamily::Sm90aWgmma (core/codegen/codegen.cc): sm_90a only (wgmma needs the arch-specific
// target), head_dim 64, 128 and 256; every other arch uses flash_fwd_sm80.cuh.
//
// Pasted by kernelgen into a generated .cu inside its namespace (named after the key), after common.cuh,
// interval_rules.inc, the generated spec section and flash_common.cuh, which define:
//   kg_element, kg_head_dim, KgModArgs, kg_has_score_mod, kg_has_mask_mod, kg_mask_reads_tensors, kg_wide_kv_tiles,
//   kg_score_mod, kg_mask_mod, kg_classify_tile, kg_fill_mod_args     (the spec section)
//   KgFlashParams, kg_make_flash_params, KgTileWalk, KgMaskMode, cp.async wrappers, kg_pack2
// and is followed by the extern "C" entry point that calls kg_flash_fwd().
//
// Algorithm (a persistent CTA per SM, taking work tiles round-robin: a work tile is one batch b,
// one query head h and kBlockM = 128 query rows; 3 warpgroups of 128 threads: warpgroup 0 loads,
// warpgroups 1 and 2 compute, consumer c owning query rows [64c, 64c + 64) and all of their math):
//   producer, per work tile: Q tile → one of two Q buffers (once the consumers wrote the output of
//     the work tile before the last from it); then for each key/value tile t_i that the tile walk
//     (KgTileWalk: kg_classify_tile, 32 tiles per warp at once) does not call Empty: wait until
//     stage i % kStages is free, copy K_i, then V_i into it, and let each stage's mbarrier
//     complete when the copies have landed. The ring runs on across work tiles, so the next work
//     tile's loads overlap the current one's last tiles and epilogue.
//   consumers, per work tile, for each visited tile:
//     wait K_i; issue S_i = Q K_iᵀ                      (wgmma m64nBLOCK_Nk16, A and B from smem)
//     wait V_{i-1}; issue O += P_{i-1} V_{i-1}          (wgmma, A = P from registers, B = V from smem)
//     [per-element mask_mod of a Partial tile, while both run on the tensor cores]
//     wait S_i → K_i's stage back to the producer; S ← score_mod(S · scale) · log2(e), masked
//     m' = max(m, rowmax S);  P_i = 2^(S - m');  l = l · 2^(m - m') + rowsum P_i   (overlaps P V)
//     wait P V → V_{i-1}'s stage back;  O = O · 2^(m - m');  P_i → bf16/fp16 A fragments
//   O += P_last V_last;  out = O / l,  lse = (m + log2 l) · ln 2
// Softmax of tile i thus overlaps the P V product of tile i-1 (FlashAttention-3's intra-warpgroup
// pipelining). The consumers never wait for each other (no CTA barrier in the loop), so one
// warpgroup's softmax runs while the other's MMAs do; the register split (setmaxnreg) gives the
// consumers 224 registers each.
//
// Loads: cp.async (16 bytes per thread and copy, coalesced) from the producer's 128 threads, each
// stage's completion tracked by cp.async.mbarrier.arrive.noinc. Not TMA: a tensor map needs the
// driver's cuTensorMapEncodeTiled, reached only through cudaGetDriverEntryPoint, which the
// verifier refuses to every kernel (it reaches the whole driver API). Q, K and V tiles use one
// swizzled layout (KgWgSmem) either way.
// ---- wgmma and proxy wrappers --------------------------------------------------------------------

// Orders this warpgroup's register and shared-memory accesses before the wgmma that follow.
// Needed before the first wgmma and whenever registers a wgmma reads (accumulators, A fragments)
// were written by ordinary instructions.
__device__ __forceinline__ void kg_wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
// Closes the wgmma issued since the last commit into one group.
__device__ __forceinline__ void kg_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N committed groups are still running.
template <int N>
__device__ __forceinline__ void kg_wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Compiler-only fence on registers an asynchronous wgmma reads or writes: the compiler must assume
// each is read and rewritten here, so it neither moves their other uses across this point nor
// reuses their registers for something else while a wgmma may still be using them.
template <int N>
__device__ __forceinline__ void kg_wg_fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N, int M>
__device__ __forceinline__ void kg_wg_fence_regs(float (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i) kg_wg_fence_regs(r[i]);
}
template <int N, int M>
__device__ __forceinline__ void kg_wg_fence_regs(uint32_t (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int j = 0; j < M; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
  }
}
// Makes this thread's completed shared-memory writes (st, cp.async) visible to the async proxy,
// which wgmma reads shared memory through. Before the barrier that publishes them.
__device__ __forceinline__ void kg_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Barrier among `threads` threads (a multiple of 32) on hardware barrier `id` (1..15; 0 is __syncthreads).
template <int kId, int kThreads>
__device__ __forceinline__ void kg_named_barrier() {
  asm volatile("bar.sync %0, %1;\n" ::"n"(kId), "n"(kThreads) : "memory");
}

// Arrival without waiting on hardware barrier `id`, which `kThreads` threads use in all (those
// arriving and those waiting in bar.sync).
template <int kId, int kThreads>
__device__ __forceinline__ void kg_named_barrier_arrive() {
  asm volatile("bar.arrive %0, %1;\n" ::"n"(kId), "n"(kThreads) : "memory");
}

// mbarriers in shared memory (PTX ISA, "mbarrier"): a phase completes when `count` arrivals have
// happened; waiters name the parity of the phase they wait for.
__device__ __forceinline__ void kg_mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void kg_mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Spins until the phase of parity `parity` has completed (acquire: what the arrivals published is
// visible afterwards). A fresh barrier counts its phase before the first as completed: waiting
// for parity 1 returns at once.
__device__ __forceinline__ void kg_mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0u);
}
// One arrival on `bar` once every cp.async this thread issued so far has landed (the barrier's
// count includes it: .noinc).
__device__ __forceinline__ void kg_cp_async_mbar_arrive(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
// Register reallocation between warpgroups (every warp of the warpgroup executes it).
template <int kRegs>
__device__ __forceinline__ void kg_setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void kg_setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// Shared-memory matrix descriptor (PTX ISA, wgmma "matrix descriptor"): start address, leading and
// stride byte offsets (all >> 4), layout 1 = 128-byte swizzle in bits 62-63; base offset 0 (every
// tile is 1024-byte aligned).
//   K-major operand (Q, K: 16 k-elements = 32 bytes of each 128-byte row): SBO = 1024 bytes between
//     8-row groups; LBO unused (1).
//   MN-major operand (V as B of P V, transposed): LBO = bytes between 64-column blocks, SBO = 1024
//     bytes between 8-row (k) groups.
__device__ __forceinline__ uint64_t kg_wg_desc(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}
// The descriptor of the same matrix `bytes` further on (a multiple of 16): only the start address
// field (bits 0-13, address >> 4) moves, and it cannot carry out of the field, since every shared
// address is below 2^18. Built from the two halves, so the high word (the constant strides and the
// swizzle mode) is never recomputed: one add per wgmma instead of an and, a shift and two ors on
// the uniform datapath, which ptxas issued as one dependent chain ahead of each wgmma (H200,
// head_dim 128: about a fifth of the consumers' samples went to those chains).
__device__ __forceinline__ uint64_t kg_wg_desc_at(uint64_t desc, uint32_t bytes) {
  const uint32_t lo = static_cast<uint32_t>(desc) + (bytes >> 4);
  const uint32_t hi = static_cast<uint32_t>(desc >> 32);
  uint64_t out;
  asm("mov.b64 %0, {%1, %2};" : "=l"(out) : "r"(lo), "r"(hi));
  return out;
}

// D(64xN, fp32 accumulators) (+)= A(64x16) · B(16xN), one warpgroup. scale_d = 0 overwrites D.
//   ss: A and B from shared memory (descriptors); rs: A from registers (the m16n8k16 A fragment
//   layout per warp: warp w of the warpgroup holds rows 16w..16w+15). kTransB = 1: B is MN-major.
// Accumulator layout (per warp, rows 16w + g and 16w + g + 8, g = lane/4, t = lane%4):
//   d[4j + 2r + c] = D[16w + g + 8r][8j + 2t + c]   — the mma.sync C layout, one n8 tile per j.
template <typename T, int N>
struct KgWgmma;

// Operand lists of the wgmma wrappers below: "{%0, ..., %R-1}" and "+f"(d[0]) ... "+f"(d[R-1]).
#define KG_WG_REGS_32 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" "}"
#define KG_WG_DOPS_32(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define KG_WG_REGS_64 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" "}"
#define KG_WG_DOPS_64(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define KG_WG_REGS_96 "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95" "}"
#define KG_WG_DOPS_96(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
  "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
  "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
  "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
  "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
template <>
struct KgWgmma<__nv_bfloat16, 64> {
  template <int kTransB>
  __device__ static __forceinline__ void ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " KG_WG_REGS_32 ", %32, %33, p, 1, 1, 0, %35;\n}\n"
        : KG_WG_DOPS_32(d)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
  template <int kTransB>
  __device__ static __forceinline__ void rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " KG_WG_REGS_32 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : KG_WG_DOPS_32(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
};
template <>
struct KgWgmma<__half, 64> {
  template <int kTransB>
  __device__ static __forceinline__ void ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " KG_WG_REGS_32 ", %32, %33, p, 1, 1, 0, %35;\n}\n"
        : KG_WG_DOPS_32(d)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
  template <int kTransB>
  __device__ static __forceinline__ void rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " KG_WG_REGS_32 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : KG_WG_DOPS_32(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
};
template <>
struct KgWgmma<__nv_bfloat16, 128> {
  template <int kTransB>
  __device__ static __forceinline__ void ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " KG_WG_REGS_64 ", %64, %65, p, 1, 1, 0, %67;\n}\n"
        : KG_WG_DOPS_64(d)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
  template <int kTransB>
  __device__ static __forceinline__ void rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " KG_WG_REGS_64 ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
        : KG_WG_DOPS_64(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
};
template <>
struct KgWgmma<__half, 128> {
  template <int kTransB>
  __device__ static __forceinline__ void ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " KG_WG_REGS_64 ", %64, %65, p, 1, 1, 0, %67;\n}\n"
        : KG_WG_DOPS_64(d)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
  template <int kTransB>
  __device__ static __forceinline__ void rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " KG_WG_REGS_64 ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
        : KG_WG_DOPS_64(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
};
template <>
struct KgWgmma<__nv_bfloat16, 192> {
  template <int kTransB>
  __device__ static __forceinline__ void ss(float (&d)[96], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 " KG_WG_REGS_96 ", %96, %97, p, 1, 1, 0, %99;\n}\n"
        : KG_WG_DOPS_96(d)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
  template <int kTransB>
  __device__ static __forceinline__ void rs(float (&d)[96], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %101, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 " KG_WG_REGS_96 ", {%96, %97, %98, %99}, %100, p, 1, 1, %102;\n}\n"
        : KG_WG_DOPS_96(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
};
template <>
struct KgWgmma<__half, 192> {
  template <int kTransB>
  __device__ static __forceinline__ void ss(float (&d)[96], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16 " KG_WG_REGS_96 ", %96, %97, p, 1, 1, 0, %99;\n}\n"
        : KG_WG_DOPS_96(d)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
  template <int kTransB>
  __device__ static __forceinline__ void rs(float (&d)[96], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %101, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16 " KG_WG_REGS_96 ", {%96, %97, %98, %99}, %100, p, 1, 1, %102;\n}\n"
        : KG_WG_DOPS_96(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
};

// ---- Kernel traits -------------------------------------------------------------------------------

template <typename Element_, int kHeadDim_, int kBlockN_, int kStages_, int kQBufs_>
struct KgWgTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = 128;  // query rows per CTA: 2 consumer warpgroups × 64 (wgmma's M)
  static constexpr int kBlockN = kBlockN_;  // key/value rows per tile
  static constexpr int kStages = kStages_;  // shared-memory stages of K and of V
  static constexpr int kQBufs = kQBufs_;    // Q buffers: 2 lets the next work tile's Q load early
  static constexpr int kNWarpgroups = 3;    // 1 producer + 2 consumers
  static constexpr int kNThreads = kNWarpgroups * 128;
  static constexpr int kConsumerWarps = 8;
  // setmaxnreg budgets. setmaxnreg.inc only takes registers that other warps of the CTA gave back
  // with setmaxnreg.dec, so the split must fit the CTA's launch allocation: 384 threads at 168
  // registers (__launch_bounds__(384, 1): 65536 / 384 rounded down to 8) = 64512 = 128 · 56 +
  // 256 · 224. A 64/224 split (65536, the whole register file, as FlashAttention-3's 4-warpgroup
  // kernel uses at its 512 × 128 launch allocation) hung every kernel on an H200 in the
  // consumers' setmaxnreg.inc. A consumer holds S (kSRegs), O (kORegs) and the P fragments
  // (kSRegs / 2); the producer holds the copy addresses and the tile walk (kg_classify_tile of the
  // spec). FlashAttention-3's 24/240 split spills in the producer here (ptxas, nvcc 13.0: 124
  // bytes for causal at 24, 20 at 40, none at 56), where its TMA producer needs one thread and a
  // few registers; a mask that reads tensors spills at 56 (the tile hull tables' walk:
  // NvccCompile's allowance). At 224 no spec's consumer spills (the previous kernel used up to
  // 254 without the producer).
  static constexpr int kLaunchRegs = 65536 / kNThreads / 8 * 8;
  static constexpr int kProducerRegs = 56;
  static constexpr int kConsumerRegs = 224;
  static constexpr int kColBlocks = kHeadDim / 64;    // 128-byte swizzle atoms are 64 elements wide
  static constexpr int kChunksPerRow = kHeadDim / 8;  // 16-byte chunks per row
  static constexpr int kSRegs = kBlockN / 2;          // S: 64 x kBlockN fp32 over 128 threads
  static constexpr int kORegs = kHeadDim / 2;         // O: 64 x kHeadDim fp32 over 128 threads
  // O += P V runs as kPVParts wgmma of n kPVN each (column blocks of V): one n256 wgmma would
  // take 128 accumulator operands in one asm statement; two n128 ones read the same V bytes and
  // issue the same tensor-core work.
  static constexpr int kPVN = kHeadDim < 128 ? kHeadDim : 128;
  static constexpr int kPVParts = kHeadDim / kPVN;
  static constexpr int kNTilesS = kBlockN / 8;        // n8 column tiles of S per thread row
  static constexpr int kNTilesO = kHeadDim / 8;
  static constexpr int kKStepsQK = kHeadDim / 16;     // k16 steps of S = Q Kᵀ
  static constexpr int kKStepsPV = kBlockN / 16;      // k16 steps of O += P V
  static constexpr int kMaskWords = (kSRegs + 31) / 32;  // one bit per S register
  // Ping-pong turns between the consumers (see the kernel). Measured on an H200 (B=2, H=16, bf16,
  // median of 20 runs, the same process): head_dim 128 full 0.567 → 0.523 ms at S=4096 and
  // 9.25 → 8.62 ms at S=16384, causal 0.343 → 0.327 ms at S=4096; head_dim 64 unchanged within
  // noise (0.380 → 0.385, 5.53 → 5.70 / 5.83 → 5.78 ms at S=16384), where a tile's MMAs are too
  // short for the turn to pay its two barriers. At head_dim 256 a tile's MMAs are longer still.
  // head_dim 64 with 192-key tiles (1.5x the MMAs of 128): causal 0.238 → 0.231 ms at S=4096 and
  // 2.833 → 2.783 ms at S=16384 with the turns, full unchanged (0.356 → 0.357, 5.23 → 5.21 ms).
  // Still off at head_dim 64 with 128-key tiles for sparse masks (tmpl-16): a window of 1024 keys
  // 0.400 → 0.408 ms and a 13x13 neighbourhood (128x128 image) 0.900 → 0.993 ms at S=16384.
  static constexpr bool kPingPong = kHeadDim >= 128 || kBlockN > 128;

  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "the wgmma family covers head_dim 64, 128, 256");
  static_assert(kQBufs == 1 || kQBufs == 2, "one or two Q buffers");
  static_assert(kBlockN == 64 || kBlockN == 128 || kBlockN == 192, "wgmma wrappers exist for N = 64, 128, 192");
  static_assert(kStages >= 2, "at least double buffering");
  static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= kNThreads * kLaunchRegs,
                "setmaxnreg.inc takes only what the CTA's warps gave back: the split fits the launch allocation");
  static_assert(kProducerRegs % 8 == 0 && kConsumerRegs % 8 == 0, "setmaxnreg takes multiples of 8");
  static_assert((64 * kChunksPerRow) % 128 == 0, "a warpgroup's O rows divide evenly among its threads");
};

// Tile configurations (head_dim: BLOCK_M x BLOCK_N, stages; shared memory; registers per consumer
// thread for S + O + P fragments):
//   128: 128 x 128, 2 stages: 2 × Q 32 KB + 2 × (K 32 + V 32) = 192 KB; S 64 + O 64 + P 32
//        registers. BLOCK_N 128 keeps each wgmma at n128 (full tensor-core rate); a third stage
//        no longer fits beside the second Q buffer, and K/V hit in L2 (every head's K/V is re-read
//        by all its query tiles), so one tile of lead is enough.
//   64:  128 x 128, 3 stages: 2 × Q 16 KB + 3 × (16 + 16) = 128 KB; S 64 + O 32 + P 32 registers.
//        Each tile carries half the math of head_dim 128, so loads get a deeper pipeline.
//        128 x 192 (kg_wide_kv_tiles: no mask, or one the generator finds dense enough; see
//        wide_kv_tiles in codegen.cc): 2 × Q 16 KB + 3 × (24 + 24) = 176 KB; S 96 + O 32 + P 48.
//        Against 128 x 128 on an H200 (B=2, H=16, bf16, the same process): full 0.382 → 0.356 ms
//        (S=4096) and 5.56 → 5.23 ms (16384), causal 0.255 → 0.231 and 3.258 → 2.783 ms, a
//        fourth stage no faster (full 0.354, causal 0.246 ms at 4096); a window of 1024 keys
//        0.132 → 0.136 ms and a 13x13 neighbourhood 1.232 → 1.298 ms (more masked keys visited).
//   256: 128 x 64, 2 stages, one Q buffer: Q 64 KB + 2 × (K 32 + V 32) = 192 KB; S 32 + O 128 + P
//        16 registers. O alone takes 128 registers, so BLOCK_N halves to keep S and P beside it
//        (FlashAttention-3 takes 80 at 256); a second Q buffer (64 KB more) does not fit beside two
//        stages, so the next work tile's Q waits for this one's epilogue, while a tile's MMAs are
//        4x those of head_dim 128 at half the keys: that wait is a small share of a work tile.
// Two Q buffers (64, 128): the producer loads the next work tile's Q while the consumers still
// compute (and stage their O through) the current one. One CTA of 384 threads per SM (the
// register file).
template <typename Element, int kHeadDim>
struct KgWgConfig;
template <typename Element>
struct KgWgConfig<Element, 64> {
  using Traits = KgWgTraits<Element, 64, kg_wide_kv_tiles ? 192 : 128, 3, 2>;
};
template <typename Element>
struct KgWgConfig<Element, 128> {
  using Traits = KgWgTraits<Element, 128, 128, 2, 2>;
};
template <typename Element>
struct KgWgConfig<Element, 256> {
  using Traits = KgWgTraits<Element, 256, 64, 2, 1>;
};

// ---- Shared memory -------------------------------------------------------------------------------

// Every tile is stored as [kColBlocks][rows][64] elements: 64-element (128-byte) rows, the 16-byte
// chunk j of row r at position j ^ (r % 8) — the 128-byte swizzle that wgmma descriptors name,
// conflict-free for the cp.async writes (8 chunks of one row per phase) and the epilogue. The
// same layout is K-major for Q and K (operands of S = Q Kᵀ) and MN-major for V (B of O += P V).
template <class Tr>
struct KgWgSmem {
  using Element = typename Tr::Element;
  static constexpr int kQElems = Tr::kBlockM * Tr::kHeadDim;
  static constexpr int kKvElems = Tr::kBlockN * Tr::kHeadDim;
  Element q[Tr::kQBufs][kQElems];     // Q tiles of alternate work tiles; O staging in the epilogue
  Element k[Tr::kStages][kKvElems];   // K tiles, kStages pipeline stages
  Element v[Tr::kStages][kKvElems];   // V tiles, kStages pipeline stages
  // The ring's mbarriers: *_full completes when the producer's 128 threads' copies into the stage
  // have landed (cp.async.mbarrier.arrive.noinc), k_full also when the tile's entry is in tile[s];
  // *_empty when the 8 consumer warps released it. q_full[i] completes when Q of a work tile has
  // landed in q[i] and its index is in work[i] (or work[i] says there is no more work); q_empty[i]
  // when the 8 consumer warps have written that tile's output (staged through q[i]).
  uint64_t q_full[Tr::kQBufs], q_empty[Tr::kQBufs];
  int work[Tr::kQBufs];
  // The producer walks the tiles and the consumers follow (KgWgTile): visits[i] is 1 when work
  // tile work[i] visits a key/value tile, tile[s] is the entry of the tile in stage s.
  int visits[Tr::kQBufs];
  int tile[Tr::kStages];
  uint32_t walk[2][4][2];  // KgWgTileWalk: the producer warps' ballots, two windows in turn
  uint64_t k_full[Tr::kStages], v_full[Tr::kStages];
  uint64_t k_empty[Tr::kStages], v_empty[Tr::kStages];
  static_assert((kQElems * sizeof(Element)) % 1024 == 0 && (kKvElems * sizeof(Element)) % 1024 == 0,
                "every tile starts 1024-byte aligned (the swizzle repeats every 8 rows of 128 bytes)");
};

// The entry the producer writes for each visited key/value tile (KgWgSmem::tile): the tile index
// times 4, bit 0 set when the tile is Full, bit 1 when another tile of the same work tile follows.
// Only the producer warpgroup walks the tiles (KgTileWalk); the consumers read the sequence from
// the ring. A walk of a mask that reads tensors scans the tile's elements (the document mask's
// ids): in the consumers it stalled both warpgroups at every 32 tiles, and at every work tile.
__device__ __forceinline__ int kg_wg_tile_entry(int n, KgTileClass cls, bool more) {
  return n * 4 + (cls == kg_tile_full ? 1 : 0) + (more ? 2 : 0);
}

// The producer warpgroup's walk. A mask that reads no tensors classifies with arithmetic: one
// warp's walk (KgTileWalk) in each producer warp. One that reads tensors scans the tiles'
// elements, and the producer stops issuing loads while it does: at d128 the 2-stage ring drains
// in two tiles, so the consumers waited for every window of 32 tiles. Here each of the 4 warps
// classifies a quarter of every tile of the window (query half warp >> 1, key half warp & 1;
// lane i: tile base + i), and the quarters' ballots meet in shared memory (named barrier 6, the
// producer's): a tile is visited when a quarter is not Empty, and Full when every non-empty
// quarter is Full. The class of a part is sound for the part, so the combination is sound, and
// exact where the parts are; a lane scans half the query and half the key elements (the document
// mask: 64 + 64 ids instead of 128 + 128). All 128 producer threads call next() together.
template <int kBlockN>
struct KgWgTileWalk {
  KgTileWalk<kBlockN> one;
  int buf = 0;  // which of the two exchange slots the next window uses

  __device__ __forceinline__ int next(uint32_t (*xchg)[4][2], const KgModArgs& ma, int b, int h, int q_lo, int q_hi,
                                      int n, int n_tiles, KgTileClass* cls) {
    if constexpr (!kg_mask_reads_tensors) {
      return one.next(ma, b, h, q_lo, q_hi, n, n_tiles, cls);
    } else {
      return one.walk(n, n_tiles, cls, [&](int window, uint32_t* visit, uint32_t* full) {
        const int warp = (threadIdx.x >> 5) & 3;
        const int lane = threadIdx.x & 31;
        const int t = window + lane;
        const int q_mid = q_lo + ((q_hi - q_lo + 1) >> 1);  // the second half's first row
        const int sq_lo = (warp >> 1) != 0 ? q_mid : q_lo;
        const int sq_hi = (warp >> 1) != 0 ? q_hi : q_mid - 1;
        bool vis = false;  // an empty quarter (a 1-row tile's first half) is neither
        bool ful = true;
        if (t < n_tiles && sq_lo <= sq_hi) {
          const int kv_lo = t * kBlockN;
          const int kv_hi = min(kv_lo + kBlockN, ma.seqlen_kv) - 1;
          const int kv_mid = kv_lo + ((kv_hi - kv_lo + 1) >> 1);
          const int skv_lo = (warp & 1) != 0 ? kv_mid : kv_lo;
          const int skv_hi = (warp & 1) != 0 ? kv_hi : kv_mid - 1;
          if (skv_lo <= skv_hi) {
            const KgTileClass c = kg_classify_tile(ma, b, h, sq_lo, sq_hi, skv_lo, skv_hi);
            vis = c != kg_tile_empty;
            ful = c == kg_tile_full;
          }
        }
        const uint32_t v = __ballot_sync(0xffffffffu, vis);
        const uint32_t f = __ballot_sync(0xffffffffu, ful);
        if (lane == 0) {
          xchg[buf][warp][0] = v;
          xchg[buf][warp][1] = f;
        }
        // A slot is rewritten two windows later, after every warp has passed the barrier of the
        // window between, so after every warp has read it.
        kg_named_barrier<6, 128>();
        *visit = xchg[buf][0][0] | xchg[buf][1][0] | xchg[buf][2][0] | xchg[buf][3][0];
        *full = *visit & xchg[buf][0][1] & xchg[buf][1][1] & xchg[buf][2][1] & xchg[buf][3][1];
        buf ^= 1;
      });
    }
  }
};

// Element offset of 16-byte chunk `chunk` (0 .. kHeadDim/8 - 1) of row `row` in a tile of kRows rows.
template <int kRows>
__device__ __forceinline__ int kg_wg_swz(int row, int chunk) {
  return (chunk >> 3) * (kRows * 64) + row * 64 + (((chunk & 7) ^ (row & 7)) << 3);
}

// A compile-time bool as a value (selects a template path from a generic lambda).
template <bool kValue>
struct KgBool {
  static constexpr bool value = kValue;
};

// Issues the copies of rows [0, kRows) of a [rows][kHeadDim] global tile into shared memory
// (kThreads threads, `tid` in [0, kThreads)); rows ≥ rows_valid are zero-filled (nothing read), so
// K/V beyond seqlen_kv are exact zeros (0·V must not be NaN).
// Thread tid copies chunk tid % kChunksPerRow of rows tid / kChunksPerRow + i · kRowStep: its
// global address advances by a fixed step, and its shared address by a fixed step plus a swizzle
// term that repeats every kPeriod copies (8 rows), so a copy costs a 64-bit add beside the
// cp.async. Tiles with every row valid (all but the last of a row of tiles) skip the per-row
// bound. Computing each copy's row, chunk, swizzle and bound from its index took about ten
// instructions per copy, on the SM sub-partitions the consumers issue from (H200, head_dim 128:
// 385 producer instructions per tile).
template <class Tr, int kRows, int kThreads>
__device__ __forceinline__ void kg_wg_load_tile(typename Tr::Element* dst, const typename Tr::Element* src,
                                                long long row_stride, int rows_valid, int tid) {
  using Element = typename Tr::Element;
  constexpr int kChunks = Tr::kChunksPerRow;
  static_assert(kThreads % kChunks == 0, "a thread keeps one chunk column");
  constexpr int kRowStep = kThreads / kChunks;  // rows between a thread's copies
  static_assert(kRows % kRowStep == 0, "the copies divide evenly among the threads");
  static_assert(kRowStep % 8 == 0 || 8 % kRowStep == 0, "the swizzle phase repeats within 8 rows");
  constexpr int kIters = kRows / kRowStep;
  constexpr int kPeriod = kRowStep % 8 == 0 ? 1 : 8 / kRowStep;
  // head_dim 256 copies in blocks of 8 per thread: its Q tile (32 copies per thread) unrolled
  // whole spilled the producer's 56 registers (248 bytes, ptxas, nvcc 13.0), blocks of 16 still
  // 4 bytes. Narrower rows unroll whole (at most 16 copies per thread).
  constexpr int kUnroll = kChunks > 16 && kIters > 8 ? 8 : kIters;
  static_assert(kIters % kUnroll == 0 && kUnroll % kPeriod == 0, "whole unrolled blocks, whole swizzle periods");
  const int row0 = tid / kChunks;
  const int chunk = tid % kChunks;
  const uint32_t s_row0 = kg_smem_u32(dst) + ((chunk >> 3) * (kRows * 64) + row0 * 64) * sizeof(Element);
  uint32_t swz[kPeriod];
#pragma unroll
  for (int k = 0; k < kPeriod; ++k) swz[k] = (((chunk & 7) ^ ((row0 + k * kRowStep) & 7)) << 3) * sizeof(Element);
  const long long g_step = kRowStep * row_stride;
  const auto copy_rows = [&](auto bounded) {
    const Element* g = src + row0 * row_stride + chunk * 8;
#pragma unroll 1
    for (int i0 = 0; i0 < kIters; i0 += kUnroll) {
#pragma unroll
      for (int i1 = 0; i1 < kUnroll; ++i1) {
        const int i = i0 + i1;
        const uint32_t d = s_row0 + i * (kRowStep * 64 * sizeof(Element)) + swz[i1 % kPeriod];
        if constexpr (decltype(bounded)::value) {
          const bool valid = row0 + i * kRowStep < rows_valid;
          kg_cp_async_16(d, valid ? g : src, valid);
        } else {
          kg_cp_async_16(d, g, true);
        }
        g += g_step;
      }
    }
  };
  if (rows_valid >= kRows) {
    copy_rows(KgBool<false>{});
  } else {
    copy_rows(KgBool<true>{});
  }
}

// ---- Scores -----------------------------------------------------------------------------------

// mask_mod of every S element this thread holds (and, for the last tile, kv_idx < seqlen_kv):
// bit e % 32 of word e / 32 keeps S register e. Returns whether any bit is set.
template <class Tr, bool kCheckBound>
__device__ __forceinline__ bool kg_wg_mask_bits(uint32_t (&mask)[Tr::kMaskWords], const KgModArgs& ma, int b, int h,
                                                int q_row, int kv0, int tig) {
  uint32_t any = 0u;
#pragma unroll
  for (int w = 0; w < Tr::kMaskWords; ++w) mask[w] = 0u;
#pragma unroll
  for (int j = 0; j < Tr::kNTilesS; ++j) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int e = 4 * j + 2 * r + c;
        const int kv_idx = kv0 + 8 * j + 2 * tig + c;
        // `&`, not `&&`: straight-line code (mask_mod has no side effects).
        const bool keep = (!kCheckBound || kv_idx < ma.seqlen_kv) & kg_mask_mod(b, h, q_row + 8 * r, kv_idx, ma);
        mask[e / 32] |= static_cast<uint32_t>(keep) << (e % 32);
      }
    }
  }
#pragma unroll
  for (int w = 0; w < Tr::kMaskWords; ++w) any |= mask[w];
  return any != 0u;
}

// S accumulators (q·k) → base-2 logits: score_mod(q·k·scale)·log2(e), or q·k·scale·log2(e)
// without a score_mod; -inf where masked. kFold (no score_mod, scale > 0): q·k stays unscaled, the
// softmax folds scale·log2(e) into its exp2 argument (one FFMA per element instead of FMUL + FADD).
// Register e = 4j + 2r + c holds S[q_row + 8r][kv0 + 8j + 2t + c].
template <class Tr, int kMode, bool kFold>
__device__ __forceinline__ void kg_wg_scores_to_logits(float (&s)[Tr::kSRegs], const uint32_t (&mask)[Tr::kMaskWords],
                                                       const KgFlashParams<typename Tr::Element>& p, int b, int h,
                                                       int q_row, int kv0, int tig) {
  constexpr float kLog2e = 1.44269504088896340736f;
#pragma unroll
  for (int j = 0; j < Tr::kNTilesS; ++j) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int e = 4 * j + 2 * r + c;
        const int kv_idx = kv0 + 8 * j + 2 * tig + c;
        float& x = s[e];
        bool keep = true;
        if constexpr (kMode == kg_mask_bound) keep = kv_idx < p.mod.seqlen_kv;
        if constexpr (kMode == kg_mask_bits) keep = (mask[e / 32] >> (e % 32)) & 1u;
        if constexpr (kg_has_score_mod) {
          // score_mod takes the natural scaled score; only its result moves to base 2. It runs on
          // masked elements too, then a select: straight-line code (its tensor reads are bounded).
          const float v = kg_score_mod(x * p.scale, b, h, q_row + 8 * r, kv_idx, p.mod) * kLog2e;
          x = keep ? v : -INFINITY;
        } else if constexpr (kFold) {
          if constexpr (kMode != kg_mask_none) x = keep ? x : -INFINITY;
        } else {
          x = keep ? x * p.scale_log2 : -INFINITY;
        }
      }
    }
  }
}

// op over v[0 .. kN) as a balanced tree, log2 kN deep. A running max or sum is a chain of kN dependent
// instructions, and the warp (issuing in order) stalls on every link: at head_dim 128 the max
// chain's FMNMX drew more stall samples than any other instruction of the softmax but MUFU.EX2
// (H200, ncu source counters).
template <int kN, class Op>
__device__ __forceinline__ float kg_tree_reduce(float (&v)[kN], Op op) {
#pragma unroll
  for (int w = 1; w < kN; w *= 2) {
#pragma unroll
    for (int i = 0; i + w < kN; i += 2 * w) v[i] = op(v[i], v[i + w]);
  }
  return v[0];
}

// Online softmax of one S tile, rows q_row and q_row + 8 (each row lives in the 4 threads of a
// quad: reduce over xor 1, 2). In units where the base-2 logit is u · kMul (kMul = scale·log2(e)
// when kFold, else 1: s and m are then already base-2 logits):
//   m' = max(m, rowmax s);  P = 2^((s - m')·kMul);  alpha = 2^((m - m')·kMul);  l = l·alpha + Σ P
// Every exponential runs on MUFU (ex2.approx.f32). Two ways to take load off it measured slower
// on an H200 (same process, bf16): a cubic on the FMA pipe for every 4th n8 tile, head_dim 64
// causal 0.229 -> 0.237 ms and full 0.357 -> 0.390 ms (S=4096); ex2.approx.bf16x2 on packed
// pairs, head_dim 128 full 0.441 -> 0.470 ms, its largest difference from the fp32 path up to 8x. The
// extra instructions cost more issue slots than the MUFU cycles they saved.
template <class Tr, bool kFold>
__device__ __forceinline__ void kg_wg_softmax(float (&s)[Tr::kSRegs], float (&row_max)[2], float (&row_sum)[2],
                                              float (&alpha)[2], float mul) {
  if constexpr (!kFold) mul = 1.0f;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float t[Tr::kNTilesS];
#pragma unroll
    for (int j = 0; j < Tr::kNTilesS; ++j) t[j] = fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]);
    float mx = kg_tree_reduce(t, [](float a, float b) { return fmaxf(a, b); });
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(row_max[r], mx);
    // m' = -inf: nothing kept in this row yet. Subtract 0 so that 2^(-inf - base) = 0, not NaN.
    const float base = m_new == -INFINITY ? 0.0f : m_new * mul;
    alpha[r] = kg_exp2_approx(fmaf(row_max[r], mul, -base));  // 2^(m - m'); 0 when m = -inf
    row_max[r] = m_new;
#pragma unroll
    for (int j = 0; j < Tr::kNTilesS; ++j) {
      float& x0 = s[4 * j + 2 * r];
      float& x1 = s[4 * j + 2 * r + 1];
      x0 = kg_exp2_approx(kFold ? fmaf(x0, mul, -base) : x0 - base);  // P = 2^(s - m')
      x1 = kg_exp2_approx(kFold ? fmaf(x1, mul, -base) : x1 - base);
      t[j] = x0 + x1;
    }
    const float sum = kg_tree_reduce(t, [](float a, float b) { return a + b; });
    row_sum[r] = row_sum[r] * alpha[r] + sum;  // l = l·2^(m - m') + Σ P
  }
}

// ---- The kernel ----------------------------------------------------------------------------------

template <class Tr, bool kWriteLse>
__global__ void __launch_bounds__(Tr::kNThreads, 1)
    kg_flash_fwd_sm90_kernel(const KgFlashParams<typename Tr::Element> p, int* work_counter) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Tr::Element;
  using Mma = KgWgmma<Element, Tr::kBlockN>;   // S = Q Kᵀ: m64 n(BLOCK_N) k16
  using MmaO = KgWgmma<Element, Tr::kPVN>;     // O += P V: m64 n(head_dim / kPVParts) k16
  constexpr int kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN;
  constexpr int kStages = Tr::kStages;
  constexpr float kLn2 = 0.69314718055994530942f;
  constexpr uint32_t kRowBytes = 128;  // one swizzled row: 64 elements

  // The dynamic allocation has 1 KB of slack: round the base up to the 1024-byte alignment the
  // swizzled tiles need.
  extern __shared__ __align__(128) unsigned char kg_smem_raw[];
  KgWgSmem<Tr>& smem =
      *reinterpret_cast<KgWgSmem<Tr>*>(kg_smem_raw + ((1024u - (kg_smem_u32(kg_smem_raw) & 1023u)) & 1023u));

  // Persistent: at most one CTA per SM. CTA i starts with work tile i; each next one comes from
  // work_counter (zero at launch: kg_work_counter) as gridDim.x + atomicAdd(work_counter, 1), in
  // the order a non-persistent grid is dispatched in: the query tile fastest, reversed so that
  // the longest causal rows start first; then the query head (heads of one batch adjacent: GQA
  // groups share K/V in L2); then the batch. Taking work dynamically keeps the work tiles in
  // flight at one time a contiguous range and hands long causal rows out first; a static
  // round-robin over the same order measured 9-13 % slower for causal d128 and full d64 at
  // S=16384 (H200, B=2, H=16). The producer runs ahead into the next work tile (its Q
  // and first K/V tiles) while the consumers finish the current one, which hides the pipeline's
  // fill and drain that a CTA per work tile paid every time: for a sliding window or a 2-D
  // neighbourhood a work tile visits only a few K/V tiles.
  const int seqlen_q = p.mod.seqlen_q;
  const int seqlen_kv = p.mod.seqlen_kv;
  const int m_blocks = (seqlen_q + kBlockM - 1) / kBlockM;
  const int n_work = m_blocks * p.mod.heads_q * p.mod.batch;
  const int n_tiles = (seqlen_kv + kBlockN - 1) / kBlockN;
  struct Work {
    int b, h, q0, q_rows, q_hi;
  };
  const auto work_of = [&](int w) {
    Work t;
    const int rest = w / m_blocks;
    t.q0 = (m_blocks - 1 - (w - rest * m_blocks)) * kBlockM;
    t.h = rest % p.mod.heads_q;
    t.b = rest / p.mod.heads_q;
    t.q_rows = min(kBlockM, seqlen_q - t.q0);  // ≥ 1
    t.q_hi = t.q0 + t.q_rows - 1;
    return t;
  };
  const int tid = threadIdx.x;
  // Warpgroup 0 loads, 1 and 2 compute. Read through a shuffle so that the compiler knows it is
  // warp-uniform: the role branches and the wgmma descriptors derived from it then stay uniform
  // (computing descriptors per thread between wgmma would serialize the MMAs).
  const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0);
  const int wg_tid = tid & 127;

  if (tid == 0) {
#pragma unroll
    for (int i = 0; i < Tr::kQBufs; ++i) {
      kg_mbar_init(kg_smem_u32(&smem.q_full[i]), 129);  // 128 copy arrivals + the work index
      kg_mbar_init(kg_smem_u32(&smem.q_empty[i]), Tr::kConsumerWarps);
    }
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      kg_mbar_init(kg_smem_u32(&smem.k_full[s]), 129);  // 128 copy arrivals + the tile entry
      kg_mbar_init(kg_smem_u32(&smem.v_full[s]), 128);
      kg_mbar_init(kg_smem_u32(&smem.k_empty[s]), Tr::kConsumerWarps);
      kg_mbar_init(kg_smem_u32(&smem.v_empty[s]), Tr::kConsumerWarps);
    }
  }
  __syncthreads();  // the barriers are initialised; the last CTA-wide barrier (the roles part here)

  if (wg == 0) {
    // ---- Producer warpgroup: per work tile, Q, then K and V of every visited tile ----
    // It keeps only addresses and the tile walk: give registers to the consumers.
    kg_setmaxnreg_dec<Tr::kProducerRegs>();
    // Visit i (counted over all work tiles of this CTA) uses stage i % kStages in phase
    // (i / kStages) & 1; work tile j uses Q buffer j % kQBufs in phase (j / kQBufs) & 1. A stage is refilled
    // once all consumer warps released it: K right after its S = Q Kᵀ, V after its O += P V, Q once
    // the work tile's output is written. K of visit i + 1 is issued before V of visit i + 1 waits
    // for its stage, so K runs a tile ahead of V (V is consumed one iteration after K).
    int stage = 0;
    uint32_t phase = 0;
    int j = 0;
    for (;; ++j) {
      const int qb = j % Tr::kQBufs;
      kg_mbar_wait(kg_smem_u32(&smem.q_empty[qb]), ((j / Tr::kQBufs) & 1) ^ 1u);
      // Thread 0 takes the next work tile and publishes its index to the producer (barrier 6) and,
      // through q_full, to the consumers. The slot is free: its last readers released q_empty.
      if (wg_tid == 0) {
        int next = static_cast<int>(blockIdx.x);
        if (j > 0) next = work_counter != nullptr ? static_cast<int>(gridDim.x) + atomicAdd(work_counter, 1) : n_work;
        smem.work[qb] = min(next, n_work);
      }
      kg_named_barrier<6, 128>();
      const int w = smem.work[qb];
      if (w >= n_work) {  // no more work: tell the consumers (the slot says so)
        kg_mbar_arrive(kg_smem_u32(&smem.q_full[qb]));
        if (wg_tid == 0) kg_mbar_arrive(kg_smem_u32(&smem.q_full[qb]));
        break;
      }
      const Work t = work_of(w);
      const int h_kv = t.h / p.group;
      const Element* q_tile = p.q + t.b * p.q_batch_stride + t.h * p.q_head_stride + t.q0 * p.q_row_stride;
      const Element* k_head = p.k + t.b * p.k_batch_stride + h_kv * p.k_head_stride;
      const Element* v_head = p.v + t.b * p.v_batch_stride + h_kv * p.v_head_stride;
      kg_wg_load_tile<Tr, kBlockM, 128>(smem.q[qb], q_tile, p.q_row_stride, t.q_rows, wg_tid);
      kg_cp_async_mbar_arrive(kg_smem_u32(&smem.q_full[qb]));
      // The first tile is found while Q is in flight; each next one before the current tile is
      // published, so that its entry can say whether another follows.
      KgWgTileWalk<kBlockN> walk;
      KgTileClass cls;
      int n = walk.next(smem.walk, p.mod, t.b, t.h, t.q0, t.q_hi, 0, n_tiles, &cls);
      if (wg_tid == 0) {
        smem.visits[qb] = n < n_tiles ? 1 : 0;
        kg_mbar_arrive(kg_smem_u32(&smem.q_full[qb]));  // release: the index and visits are written
      }
      while (n < n_tiles) {
        KgTileClass next_cls;
        const int next = walk.next(smem.walk, p.mod, t.b, t.h, t.q0, t.q_hi, n + 1, n_tiles, &next_cls);
        const int kv = n * kBlockN;
        kg_mbar_wait(kg_smem_u32(&smem.k_empty[stage]), phase ^ 1u);
        kg_wg_load_tile<Tr, kBlockN, 128>(smem.k[stage], k_head + kv * p.k_row_stride, p.k_row_stride,
                                          seqlen_kv - kv, wg_tid);
        kg_cp_async_mbar_arrive(kg_smem_u32(&smem.k_full[stage]));
        if (wg_tid == 0) {  // the stage's last readers released it (k_empty): its entry is free too
          smem.tile[stage] = kg_wg_tile_entry(n, cls, next < n_tiles);
          kg_mbar_arrive(kg_smem_u32(&smem.k_full[stage]));  // release: the entry is written
        }
        kg_mbar_wait(kg_smem_u32(&smem.v_empty[stage]), phase ^ 1u);
        kg_wg_load_tile<Tr, kBlockN, 128>(smem.v[stage], v_head + kv * p.v_row_stride, p.v_row_stride,
                                          seqlen_kv - kv, wg_tid);
        kg_cp_async_mbar_arrive(kg_smem_u32(&smem.v_full[stage]));
        if (++stage == kStages) {
          stage = 0;
          phase ^= 1u;
        }
        n = next;
        cls = next_cls;
      }
    }
    kg_cp_async_wait<0>();  // no copy outlives its thread
    return;
  }

  // ---- Consumer warpgroups: warpgroup c = wg - 1 owns query rows [64c, 64c + 64) of each tile ----
  kg_setmaxnreg_inc<Tr::kConsumerRegs>();
  const int c = wg - 1;
  const int lane = tid & 31;
  const int g = lane >> 2;             // accumulator row group
  const int tig = lane & 3;            // thread in group
  const int row_in_tile = c * 64 + (wg_tid >> 5) * 16 + g;  // this thread's rows: this and +8

  // O += P V with V in `stage`: k16 step kk reads V rows 16kk..16kk+15 (two 8-row groups, SBO),
  // kPVN columns per part (kPVN / 64 column blocks, LBO apart; part q starts at column block
  // q · kPVN / 64); V is MN-major (transposed B). Part q accumulates O registers
  // acc_o[q]: together the accumulator layout of one n(head_dim) wgmma (kg_o below).
  // Descriptors of stage 0's K and V tiles; stage s is kKvBytes · s further on.
  constexpr uint32_t kKvBytes = KgWgSmem<Tr>::kKvElems * sizeof(Element);
  const uint64_t desc_k0 = kg_wg_desc(kg_smem_u32(smem.k[0]), 16, 8 * kRowBytes);
  const uint64_t desc_v0 = kg_wg_desc(kg_smem_u32(smem.v[0]), kBlockN * kRowBytes, 8 * kRowBytes);
  const auto issue_pv = [&](float (&acc_o)[Tr::kPVParts][Tr::kPVN / 2], uint32_t (&p_frag)[Tr::kKStepsPV][4],
                            int stage) {
    const uint64_t dv = kg_wg_desc_at(desc_v0, stage * kKvBytes);
    kg_wg_fence();
#pragma unroll
    for (int part = 0; part < Tr::kPVParts; ++part) {
      float(&acc)[Tr::kPVN / 2] = acc_o[part];
#pragma unroll
      for (int kk = 0; kk < Tr::kKStepsPV; ++kk) {
        const uint32_t off = part * (Tr::kPVN / 64) * (kBlockN * kRowBytes) + kk * 16 * kRowBytes;
        MmaO::template rs<1>(acc, p_frag[kk], kg_wg_desc_at(dv, off), 1);
      }
    }
  };
  // A consumer warp hands a stage back (one arrival per warp; the warp's wgmma that read it have
  // completed: wgmma.wait_group is warp-synchronous).
  const auto release = [&](uint64_t& bar) {
    if (lane == 0) kg_mbar_arrive(kg_smem_u32(&bar));
  };
  // The producer's cp.async writes are generic-proxy writes: after observing them through the
  // mbarrier, order them before this thread's wgmma (async proxy) reads.
  const auto acquire = [&](uint64_t& bar, uint32_t phase) {
    kg_mbar_wait(kg_smem_u32(&bar), phase);
    kg_fence_proxy_async();
  };
  // Without a score_mod and with scale > 0 (the usual 1/sqrt(d)), max commutes with the scaling:
  // keep q·k unscaled and fold scale·log2(e) into the exp2 argument (kg_wg_softmax). row_max is
  // then in q·k units; m_mul converts it to a base-2 logit.
  const bool fold = !kg_has_score_mod && p.scale_log2 > 0.0f;
  const float m_mul = fold ? p.scale_log2 : 1.0f;
  // Ping-pong (FlashAttention-3; Tr::kPingPong): the consumers take turns issuing the two MMAs
  // of an iteration, on hardware barriers 4 (consumer 0's turn) and 5 (consumer 1's). A consumer
  // waits for its turn, issues S_i and P_{i-1} V_{i-1}, then hands the turn over; its softmax runs
  // while the other's MMAs occupy the tensor cores, instead of both warpgroups computing
  // softmax (and leaving the tensor cores idle) at the same time. Both visit the same tiles, so
  // the turns stay paired; consumer 1 gives consumer 0 the first turn. The last hand-over of the
  // kernel is never waited for, which a barrier allows (its state ends with the CTA).
  const auto turn_wait = [&]() {
    if constexpr (Tr::kPingPong) {
      if (c == 0) {
        kg_named_barrier<4, 256>();
      } else {
        kg_named_barrier<5, 256>();
      }
    }
  };
  const auto turn_pass = [&]() {
    if constexpr (Tr::kPingPong) {
      if (c == 0) {
        kg_named_barrier_arrive<5, 256>();
      } else {
        kg_named_barrier_arrive<4, 256>();
      }
    }
  };
  if (Tr::kPingPong && c == 1) kg_named_barrier_arrive<4, 256>();

  int stage = 0;  // the K/V ring runs on across work tiles, as in the producer
  uint32_t phase = 0;
  int j = 0;
  for (;; ++j) {
    const int qb = j % Tr::kQBufs;
    acquire(smem.q_full[qb], (j / Tr::kQBufs) & 1);
    const int w = smem.work[qb];
    if (w >= n_work) break;
    const Work t = work_of(w);
    const int b = t.b;
    const int h = t.h;
    const int q0 = t.q0;
    const int q_row = q0 + row_in_tile;

    float acc_o[Tr::kPVParts][Tr::kPVN / 2];  // O, unnormalised, fp32, one array per O += P V part
    // Register i of O in the layout of one n(head_dim) wgmma (i constant after unrolling).
    const auto kg_o = [&](int i) -> float& { return acc_o[i / (Tr::kPVN / 2)][i % (Tr::kPVN / 2)]; };
    uint32_t p_frag[Tr::kKStepsPV][4];     // P as the A fragments of O += P V
    float row_max[2] = {-INFINITY, -INFINITY};  // m: running max of rows q_row, q_row + 8 (base-2 logit / m_mul)
    float row_sum[2] = {0.0f, 0.0f};            // l: this thread's part of Σ 2^(s - m) (quad-reduced at the end)
#pragma unroll
    for (int i = 0; i < Tr::kORegs; ++i) kg_o(i) = 0.0f;
#pragma unroll
    for (int i = 0; i < Tr::kKStepsPV; ++i) {
#pragma unroll
      for (int k = 0; k < 4; ++k) p_frag[i][k] = 0u;
    }

    // This warpgroup's 64 rows of the Q tile.
    const uint64_t desc_q = kg_wg_desc(kg_smem_u32(smem.q[qb]) + c * 64 * kRowBytes, 16, 8 * kRowBytes);

    // Iteration i (tile n = t_i in stage i % kStages):
    //   wait for K of t_i; issue S_i = Q K_iᵀ; wait for V of t_{i-1}; issue P_{i-1} V_{i-1}
    //   mask bits of a Partial tile while both run; wait S_i → release K of t_i; softmax of S_i
    //   wait P_{i-1} V_{i-1} → release V of t_{i-1}; rescale O; P_i → A fragments
    // The two warpgroups share the ring but never wait for each other: one warpgroup's softmax
    // overlaps the other's MMAs without a CTA barrier per tile.
    // The first visited tile of a work tile has no P V before it: it is peeled off (kFirst), so
    // that every other iteration issues and commits both groups unconditionally. With one loop
    // body and the P V under `if`, ptxas closed the second group with an empty wgmma on every
    // iteration, a third group that wait_group 1 then waited for: the P V it stood behind no
    // longer overlapped the softmax.
    int prev_stage = 0;  // the stage of the previous visited tile (its V is still held)
    uint32_t prev_phase = 0;
    bool more = smem.visits[qb] != 0;
    const bool visited = more;
    // The tiles come from the producer (KgWgSmem::tile): the entry of the tile in this iteration's
    // stage is read once its K has landed.
    const auto visit = [&](auto first) {
      constexpr bool kFirst = decltype(first)::value;
      acquire(smem.k_full[stage], phase);
      const int entry = smem.tile[stage];
      more = (entry & 2) != 0;
      const KgTileClass cls = (entry & 1) != 0 ? kg_tile_full : kg_tile_partial;
      const int kv0 = (entry >> 2) * kBlockN;

      // Partial tile: mask_mod per element, computed while the MMAs run. Every visited tile's MMAs
      // run: a mask that reads tensors has its tiles classified from the tensors (KgWgTileWalk),
      // so a Partial tile of it keeps some score but for an interval hull that overlaps without a
      // match. (Skipping a tile whose elements all turn out masked needed a branch per tile on the
      // consumers' vote; ptxas could not prove it uniform and serialized every wgmma of the kernel,
      // C7520: the document mask at d128 ran 1.2x slower with the skip, H200.)
      const bool partial = kg_has_mask_mod && cls == kg_tile_partial;
      uint32_t mask[Tr::kMaskWords];
#pragma unroll
      for (int i = 0; i < Tr::kMaskWords; ++i) mask[i] = 0u;
      const bool last = kv0 + kBlockN > seqlen_kv;  // the only tile that reaches past seqlen_kv

      float acc_s[Tr::kSRegs];  // S, then the logits, then P (fp32); the first k16 step overwrites it
      // (Not on the first tile: there ptxas counted the fences as writes of the accumulators
      // inside a pipeline stage and serialized every wgmma, C7515.)
      if constexpr (!kFirst) {
        kg_wg_fence_regs(acc_o);
        kg_wg_fence_regs(p_frag);
      }
      turn_wait();
      {
        kg_wg_fence();
        // S = Q Kᵀ: k16 step ks reads 32 bytes of every row of column block ks / 4.
        const uint64_t dk = kg_wg_desc_at(desc_k0, stage * kKvBytes);
#pragma unroll
        for (int ks = 0; ks < Tr::kKStepsQK; ++ks) {
          const uint32_t koff = (ks & 3) * 32u;
          const uint64_t da = kg_wg_desc_at(desc_q, (ks >> 2) * (kBlockM * kRowBytes) + koff);
          const uint64_t db = kg_wg_desc_at(dk, (ks >> 2) * (kBlockN * kRowBytes) + koff);
          Mma::template ss<0>(acc_s, da, db, ks > 0 ? 1 : 0);
        }
      }
      kg_wg_commit();  // group: S_i
      if constexpr (!kFirst) {
        acquire(smem.v_full[prev_stage], prev_phase);
        issue_pv(acc_o, p_frag, prev_stage);  // O += P_{i-1} V_{i-1}
        kg_wg_commit();                       // group: P_{i-1} V_{i-1}
      }
      turn_pass();

      if (partial) {  // overlaps the MMAs
        if (last) {
          kg_wg_mask_bits<Tr, true>(mask, p.mod, b, h, q_row, kv0, tig);
        } else {
          kg_wg_mask_bits<Tr, false>(mask, p.mod, b, h, q_row, kv0, tig);
        }
      }

      float alpha[2] = {1.0f, 1.0f};
      kg_wg_wait<kFirst ? 0 : 1>();  // S_i done (P_{i-1} V_{i-1} may still run): K of t_i is free
      release(smem.k_empty[stage]);
      {
        kg_wg_fence_regs(acc_s);

        // S ← base-2 logits, masked (Full tiles skip mask_mod; only the last tile checks
        // seqlen_kv), then the online softmax.
        const auto softmax = [&](auto fold) {
          constexpr bool kFold = decltype(fold)::value;
          if (partial) {
            kg_wg_scores_to_logits<Tr, kg_mask_bits, kFold>(acc_s, mask, p, b, h, q_row, kv0, tig);
          } else if (last) {
            kg_wg_scores_to_logits<Tr, kg_mask_bound, kFold>(acc_s, mask, p, b, h, q_row, kv0, tig);
          } else {
            kg_wg_scores_to_logits<Tr, kg_mask_none, kFold>(acc_s, mask, p, b, h, q_row, kv0, tig);
          }
          kg_wg_softmax<Tr, kFold>(acc_s, row_max, row_sum, alpha, p.scale_log2);
        };
        if (fold) {
          softmax(KgBool<true>{});
        } else {
          softmax(KgBool<false>{});
        }
      }
      if constexpr (!kFirst) {
        kg_wg_wait<0>();  // P_{i-1} V_{i-1} done: O, the P fragments and V of t_{i-1} are free
        kg_wg_fence_regs(acc_o);
        kg_wg_fence_regs(p_frag);
        release(smem.v_empty[prev_stage]);
#pragma unroll
        for (int jo = 0; jo < Tr::kNTilesO; ++jo) {  // O = O·2^(m - m') (O is still 0 on the first tile)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            kg_o(4 * jo + 2 * r) *= alpha[r];
            kg_o(4 * jo + 2 * r + 1) *= alpha[r];
          }
        }
      }
      // P → A fragments: k16 step kk covers S n8 tiles 2kk (registers 8kk..8kk+3) and 2kk+1.
#pragma unroll
      for (int kk = 0; kk < Tr::kKStepsPV; ++kk) {
        p_frag[kk][0] = kg_pack2<Element>(acc_s[8 * kk + 0], acc_s[8 * kk + 1]);  // row g,   k 2t..2t+1
        p_frag[kk][1] = kg_pack2<Element>(acc_s[8 * kk + 2], acc_s[8 * kk + 3]);  // row g+8, k 2t..2t+1
        p_frag[kk][2] = kg_pack2<Element>(acc_s[8 * kk + 4], acc_s[8 * kk + 5]);  // row g,   k 2t+8..+9
        p_frag[kk][3] = kg_pack2<Element>(acc_s[8 * kk + 6], acc_s[8 * kk + 7]);  // row g+8, k 2t+8..+9
      }
      prev_stage = stage;
      prev_phase = phase;
      if (++stage == kStages) {
        stage = 0;
        phase ^= 1u;
      }
    };
    if (more) {
      visit(KgBool<true>{});
      while (more) visit(KgBool<false>{});
    }

    // The last P V (committed and waited for unconditionally, as above; empty when no tile was
    // visited).
    if (visited) acquire(smem.v_full[prev_stage], prev_phase);
    kg_wg_fence_regs(acc_o);
    kg_wg_fence_regs(p_frag);
    if (visited) issue_pv(acc_o, p_frag, prev_stage);
    kg_wg_commit();
    kg_wg_wait<0>();
    kg_wg_fence_regs(acc_o);
    kg_wg_fence_regs(p_frag);
    if (visited) release(smem.v_empty[prev_stage]);

    // Epilogue: out = O / l (0 for a fully masked row), lse = ln Σ e^s = (m + log2 l)·ln 2.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
      for (int jo = 0; jo < Tr::kNTilesO; ++jo) {
        kg_o(4 * jo + 2 * r) *= inv;
        kg_o(4 * jo + 2 * r + 1) *= inv;
      }
      if constexpr (kWriteLse) {
        const int q_idx = q_row + 8 * r;
        if (tig == 0 && q_idx < seqlen_q) {
          const long long row = (static_cast<long long>(b) * p.mod.heads_q + h) * seqlen_q + q_idx;
          p.lse[row] = l > 0.0f ? (row_max[r] * m_mul + log2f(l)) * kLn2 : -INFINITY;
        }
      }
    }

    // Stage O through this warpgroup's own 64 rows of the work tile's Q buffer (its S wgmmas have
    // all completed; the other warpgroup never reads them; the producer refills the buffer only
    // after q_empty), then write them with coalesced 16-byte stores, skipping rows ≥ seqlen_q.
    Element* q_buf = smem.q[qb];
#pragma unroll
    for (int jo = 0; jo < Tr::kNTilesO; ++jo) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        *reinterpret_cast<uint32_t*>(&q_buf[kg_wg_swz<kBlockM>(row_in_tile + 8 * r, jo) + 2 * tig]) =
            kg_pack2<Element>(kg_o(4 * jo + 2 * r), kg_o(4 * jo + 2 * r + 1));
      }
    }
    if (c == 0) {
      kg_named_barrier<1, 128>();
    } else {
      kg_named_barrier<2, 128>();
    }
    Element* out_tile = p.out + b * p.out_batch_stride + h * p.out_head_stride + q0 * p.out_row_stride;
    constexpr int kOutIters = 64 * Tr::kChunksPerRow / 128;
#pragma unroll
    for (int i = 0; i < kOutIters; ++i) {
      const int idx = wg_tid + i * 128;
      const int row = c * 64 + idx / Tr::kChunksPerRow;
      const int chunk = idx % Tr::kChunksPerRow;
      if (row < t.q_rows) {
        *reinterpret_cast<uint4*>(out_tile + row * p.out_row_stride + chunk * 8) =
            *reinterpret_cast<const uint4*>(&q_buf[kg_wg_swz<kBlockM>(row, chunk)]);
      }
    }
    // The staged rows are read (into registers) by this warp: the Q buffer can be refilled once
    // every consumer warp says so.
    __syncwarp();
    release(smem.q_empty[qb]);
  }
#else
  // Built for an arch without wgmma (the generated file targets sm_90a): never launched there.
  __trap();
#endif
}

// ---- Launch --------------------------------------------------------------------------------------

// Work counters of the persistent kernel: kg_work_slots ints per device, allocated on the
// device's first launch with more work tiles than CTAs (cudaMalloc: no stream-ordered pool, whose
// lazy set-up a sandbox that forbids opening device files refuses) and never freed. A launch
// takes the next slot round-robin, zeroes it on its stream (cudaMemsetAsync) and launches behind
// that, so launches on one stream never share a counter and launches on different streams share
// one only if kg_work_slots launches were enqueued between them while the first still runs.
constexpr int kg_work_slots = 1024;
inline cudaError_t kg_work_counter(int device, int** out) {
  static int* slots[kg_decode_max_devices];
  static unsigned next[kg_decode_max_devices];
  int* base = __atomic_load_n(&slots[device], __ATOMIC_ACQUIRE);
  if (base == nullptr) {
    void* mine = nullptr;
    const cudaError_t e = cudaMalloc(&mine, kg_work_slots * sizeof(int));
    if (e != cudaSuccess) return e;
    int* expected = nullptr;
    if (__atomic_compare_exchange_n(&slots[device], &expected, static_cast<int*>(mine), false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      base = static_cast<int*>(mine);
    } else {
      cudaFree(mine);  // another host thread won the race
      base = expected;
    }
  }
  *out = base + __atomic_fetch_add(&next[device], 1u, __ATOMIC_RELAXED) % kg_work_slots;
  return cudaSuccess;
}

// Turns the runtime LSE flag into a template parameter and launches the persistent grid: one CTA
// per SM (the kernel's registers and shared memory allow no second), fewer when there are fewer
// work tiles (query tile, head, batch), each of those then taking one.
template <class Tr, bool kWriteLse>
cudaError_t kg_launch_flash_fwd_sm90(const KgFlashParams<typename Tr::Element>& p, cudaStream_t stream) {
  constexpr int kSmemBytes = static_cast<int>(sizeof(KgWgSmem<Tr>)) + 1024;  // + alignment slack
  static_assert(kSmemBytes <= 227 * 1024, "over the sm_90 shared memory per block");
  const auto kernel = &kg_flash_fwd_sm90_kernel<Tr, kWriteLse>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (e != cudaSuccess) return e;
  // More than 2^31 work tiles would be 2^38 query rows (Q alone over 32 TB): refused, not wrapped.
  const long long work = static_cast<long long>((p.mod.seqlen_q + Tr::kBlockM - 1) / Tr::kBlockM) * p.mod.heads_q *
                         p.mod.batch;
  if (work > 0x7fffffffll) return cudaErrorInvalidValue;
  int device = 0;
  e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  // A device beyond the per-device caches (SM count, counters) runs a CTA per work tile, as does
  // a launch with no more work tiles than SMs: no CTA takes a second one, so no counter is needed.
  long long ctas = work;
  int* counter = nullptr;
  if (device >= 0 && device < kg_decode_max_devices) {
    KgDecodeDevice dev;
    e = kg_decode_device(device, &dev);
    if (e != cudaSuccess) return e;
    if (work > dev.sms) {
      e = kg_work_counter(device, &counter);
      if (e != cudaSuccess) return e;
      e = cudaMemsetAsync(counter, 0, sizeof(int), stream);
      if (e != cudaSuccess) return e;
      ctas = dev.sms;
    }
  }
  kernel<<<static_cast<unsigned>(ctas), Tr::kNThreads, kSmemBytes, stream>>>(p, counter);
  return cudaGetLastError();
}

// Validates `args` (kernelgen/attention_abi.h) and enqueues the forward pass on `stream`.
inline cudaError_t kg_flash_fwd(const KgAttentionArgs* args, cudaStream_t stream) {
  using Traits = typename KgWgConfig<kg_element, kg_head_dim>::Traits;
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
  return p.lse != nullptr ? kg_launch_flash_fwd_sm90<Traits, true>(p, stream)
                          : kg_launch_flash_fwd_sm90<Traits, false>(p, stream);
}
