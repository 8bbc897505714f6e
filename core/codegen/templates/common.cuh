// common.cuh — helpers shared by every emitted kernel (template and reference).
//
// Pasted by kernelgen (core/codegen) into each generated .cu, inside that file's anonymous
// namespace, right after the includes. Everything here is internal to one translation unit, so
// several generated kernels linked into one target never collide.
//
// The expression language follows Python: `//` and `%` floor toward -inf (the result of `%` takes
// the divisor's sign), `**` on ints is exact integer power. Ints are 32-bit (wrapping).
//
// The template kernel evaluates a float subexpression in double wherever its value feeds a
// discontinuity (a comparison, floor, float `//` / `%`): the kg_d* helpers below, which compute what
// the CPU interpreter (spec/interpret.h) computes, uncontracted (no FMA) and exact at powers of two.
// Everything else float is fp32 with fast intrinsics. The reference kernel has its own helpers
// (reference_math.cuh) and uses none of these for its mods.
//
// Host-compilable: with __device__/__forceinline__ and the intrinsics defined away (the lowering's
// differential fuzzer compiles this file with the host compiler), nothing here needs a GPU.

// Element type tests (templates instantiate only what a spec uses: no unused-function warnings).
template <typename T>
inline constexpr bool kg_is_bf16 = false;
template <>
inline constexpr bool kg_is_bf16<__nv_bfloat16> = true;
template <typename T>
inline constexpr bool kg_is_fp16 = false;
template <>
inline constexpr bool kg_is_fp16<__half> = true;

// ---- Python integer semantics ----------------------------------------------------------------

// a // b  (floor division; x // 0 == 0, as spec/interpret.h defines it)
[[maybe_unused]] __host__ __device__ __forceinline__ int kg_floordiv(int a, int b) {
  if (b == 0) return 0;
  const int q = a / b;
  return q - static_cast<int>((q * b != a) & ((a < 0) != (b < 0)));  // branch-free: per-element masks
}

// a % b  (result has the sign of b; x % 0 == 0)
[[maybe_unused]] __host__ __device__ __forceinline__ int kg_mod(int a, int b) {
  if (b == 0) return 0;
  const int r = a % b;
  return ((r != 0) & ((r < 0) != (b < 0))) ? r + b : r;
}

// ---- Double precision where a value feeds a discontinuity ----------------------------------
// Uncontracted arithmetic: nvcc would fuse a*b+c into one rounding, the interpreter rounds twice.
#ifdef __CUDA_ARCH__
[[maybe_unused]] __device__ __forceinline__ double kg_dadd(double a, double b) { return __dadd_rn(a, b); }
[[maybe_unused]] __device__ __forceinline__ double kg_dsub(double a, double b) { return __dsub_rn(a, b); }
[[maybe_unused]] __device__ __forceinline__ double kg_dmul(double a, double b) { return __dmul_rn(a, b); }
[[maybe_unused]] __device__ __forceinline__ double kg_ddiv(double a, double b) { return __ddiv_rn(a, b); }
#else
[[maybe_unused]] __device__ __forceinline__ double kg_dadd(double a, double b) { return a + b; }
[[maybe_unused]] __device__ __forceinline__ double kg_dsub(double a, double b) { return a - b; }
[[maybe_unused]] __device__ __forceinline__ double kg_dmul(double a, double b) { return a * b; }
[[maybe_unused]] __device__ __forceinline__ double kg_ddiv(double a, double b) { return a / b; }
#endif

// a // b and a % b on doubles: CPython's float_divmod (floor quotient rounded to the nearest
// integer, remainder with the sign of b; b == 0 gives floor(a / b) and NaN).
[[maybe_unused]] __device__ __forceinline__ void kg_ddivmod(double a, double b, double* fd, double* md) {
  if (b == 0.0) {
    *fd = floor(kg_ddiv(a, b));
    *md = fmod(a, b);
    return;
  }
  double m = fmod(a, b);
  double div = kg_ddiv(kg_dsub(a, m), b);
  if (m != 0.0) {
    if ((b < 0.0) != (m < 0.0)) {
      m = kg_dadd(m, b);
      div = kg_dsub(div, 1.0);
    }
  } else {
    m = copysign(0.0, b);
  }
  double q;
  if (div != 0.0) {
    q = floor(div);
    if (kg_dsub(div, q) > 0.5) q = kg_dadd(q, 1.0);
  } else {
    q = copysign(0.0, kg_ddiv(a, b));
  }
  *fd = q;
  *md = m;
}
[[maybe_unused]] __device__ __forceinline__ double kg_floordivd(double a, double b) {
  double q, m;
  kg_ddivmod(a, b, &q, &m);
  return q;
}
[[maybe_unused]] __device__ __forceinline__ double kg_modd(double a, double b) {
  double q, m;
  kg_ddivmod(a, b, &q, &m);
  return m;
}
// min/max as the interpreter (and Python) pick: the first argument unless the second is strictly
// smaller/larger, so NaN and signed zeros come out as there (fminf/fmaxf would drop a NaN).
[[maybe_unused]] __device__ __forceinline__ double kg_dmin(double a, double b) { return b < a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ double kg_dmax(double a, double b) { return b > a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ double kg_dclamp(double x, double lo, double hi) {
  return kg_dmin(kg_dmax(x, lo), hi);
}
// log2 exact at powers of two (the bucket boundaries of log-bucketed biases), log2 elsewhere.
[[maybe_unused]] __device__ __forceinline__ double kg_dlog2(double x) {
  int e = 0;
  const double m = frexp(x, &e);
  return (m == 0.5 && x > 0.0 && x <= 1.7976931348623157e308) ? static_cast<double>(e - 1) : log2(x);
}
// floor(x) -> int32: NaN gives 0, values beyond int32 saturate (the interpreter saturates at int64;
// the two agree wherever the 32-bit kernel's ints do not overflow).
[[maybe_unused]] __device__ __forceinline__ int kg_dfloor_int(double x) {
  if (x != x) return 0;
  const double f = floor(x);
  if (f >= 2147483647.0) return 2147483647;
  if (f <= -2147483648.0) return -2147483647 - 1;
  return static_cast<int>(f);
}

// ---- Fast float where the value is continuous ----------------------------------------------
// min/max/clamp with the interpreter's choice (see kg_dmin).
[[maybe_unused]] __device__ __forceinline__ float kg_fmin(float a, float b) { return b < a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ float kg_fmax(float a, float b) { return b > a ? b : a; }

// a ** e on ints. A negative exponent (a float in Python) truncates toward zero: 1, ±1 or 0.
[[maybe_unused]] __device__ __forceinline__ int kg_ipow(int a, int e) {
  if (e < 0) {
    return a == 1 ? 1 : (a == -1 ? ((e & 1) ? -1 : 1) : 0);
  }
  int r = 1;
  while (e > 0) {
    if (e & 1) r *= a;
    a *= a;
    e >>= 1;
  }
  return r;
}

[[maybe_unused]] __device__ __forceinline__ int kg_imin(int a, int b) { return a < b ? a : b; }
[[maybe_unused]] __device__ __forceinline__ int kg_imax(int a, int b) { return a > b ? a : b; }
[[maybe_unused]] __device__ __forceinline__ int kg_iabs(int a) { return a < 0 ? -a : a; }
// clamp(x, lo, hi) = min(max(x, lo), hi), like torch.clamp
[[maybe_unused]] __device__ __forceinline__ int kg_iclamp(int x, int lo, int hi) { return kg_imin(kg_imax(x, lo), hi); }
[[maybe_unused]] __device__ __forceinline__ float kg_fclamp(float x, float lo, float hi) { return kg_fmin(kg_fmax(x, lo), hi); }

// ---- Fast math for the template kernel ------------------------------------------------------
// Error bounds (CUDA C Programming Guide, intrinsic functions) against bf16's 2^-8 relative
// rounding step: __expf ≤ 2 + floor(|1.16 x|) ulp (≈1e-5 relative for |x| < 80); __logf ≤ 2^-21.4
// absolute on [0.5, 2], 3 ulp elsewhere; kg_fast_tanh below ≤ ~2e-7 absolute. All are more than
// 100x under the bf16 tolerance the verifier applies. The reference kernel uses expf/logf/tanhf.

// 2^x via ex2.approx.ftz (max relative error 2^-22; -inf -> +0, which the softmax relies on).
[[maybe_unused]] __device__ __forceinline__ float kg_exp2_approx(float x) {
#ifdef __CUDA_ARCH__
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);  // host builds of this file (tests)
#endif
}

// tanh(x) = sign(x) * (1 - 2 / (e^{2|x|} + 1)). Absolute error ~1 ulp of 1.0; saturates to ±1.
[[maybe_unused]] __device__ __forceinline__ float kg_fast_tanh(float x) {
  const float e = kg_exp2_approx(2.8853900817779268f * fabsf(x));  // 2·log2(e)·|x|
  return copysignf(1.0f - __fdividef(2.0f, e + 1.0f), x);
}

// ---- Index tensors ---------------------------------------------------------------------------
// Whether index i lies inside a dimension of extent n. A read outside the declared shape gives 0
// and touches no memory (the semantics of spec/interpret.h; Python would wrap negative indices or
// raise, so such specs are bugs, but never memory-unsafe ones).
[[maybe_unused]] __device__ __forceinline__ bool kg_in_range(int i, long long n) { return i >= 0 && static_cast<long long>(i) < n; }

// ---- Host-side argument validation shared by both entry points ------------------------------
// Returns nullptr when `a` satisfies every rule of kernelgen/attention_abi.h that does not depend
// on the spec's params and tensors, otherwise the rule it breaks (for debuggers and reviewers; the
// entry point answers cudaErrorInvalidValue).
inline const char* kg_check_common_args(const KgAttentionArgs* a, int head_dim) {
  if (a == nullptr) return "args is NULL";
  if (a->abi_version != KG_ABI_VERSION) return "abi_version != KG_ABI_VERSION";
  if (a->head_dim != head_dim) return "head_dim differs from the spec's head_dim";
  if (a->batch < 1) return "batch < 1";
  if (a->heads_q < 1) return "heads_q < 1";
  if (a->heads_kv < 1) return "heads_kv < 1";
  if (a->seqlen_q < 0) return "seqlen_q < 0";
  if (a->seqlen_kv < 0) return "seqlen_kv < 0";
  if (a->heads_q % a->heads_kv != 0) return "heads_q % heads_kv != 0";
  if (a->batch > 65535) return "batch > 65535 (grid z limit)";
  if (a->heads_q > 65535) return "heads_q > 65535 (grid y limit)";
  // 16-byte alignment: pointers, and strides of 8 elements (2-byte elements).
  const auto misaligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) != 0; };
  const auto bad_strides = [](const int64_t* s) { return (s[0] % 8) != 0 || (s[1] % 8) != 0 || (s[2] % 8) != 0; };
  // Empty tensors may have NULL data (PyTorch does that); only non-empty ones must be valid.
  if (a->seqlen_q > 0) {
    if (a->q == nullptr) return "q is NULL";
    if (a->out == nullptr) return "out is NULL";
    if (misaligned(a->q)) return "q is not 16-byte aligned";
    if (misaligned(a->out)) return "out is not 16-byte aligned";
    if ((reinterpret_cast<uintptr_t>(a->lse) & 3u) != 0) return "lse is not 4-byte aligned";
  }
  if (a->seqlen_kv > 0) {
    if (a->k == nullptr) return "k is NULL";
    if (a->v == nullptr) return "v is NULL";
    if (misaligned(a->k)) return "k is not 16-byte aligned";
    if (misaligned(a->v)) return "v is not 16-byte aligned";
  }
  if (bad_strides(a->q_stride)) return "q_stride is not a multiple of 8 elements";
  if (bad_strides(a->k_stride)) return "k_stride is not a multiple of 8 elements";
  if (bad_strides(a->v_stride)) return "v_stride is not a multiple of 8 elements";
  if (bad_strides(a->out_stride)) return "out_stride is not a multiple of 8 elements";
  return nullptr;
}

// An integer param must hold a whole value that fits int32.
[[maybe_unused]] inline bool kg_is_int32_value(double x) {
  return x >= -2147483648.0 && x <= 2147483647.0 && static_cast<double>(static_cast<int>(x)) == x;
}
