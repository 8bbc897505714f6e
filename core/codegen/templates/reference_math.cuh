// reference_math.cuh — the runtime helpers of the reference kernel's mods (codegen/reference_lower.h).
//
// Pasted by kernelgen into `<name>_reference.cu` after common.cuh, before the reference's generated
// mods. They restate spec/interpret.cc (the CPU interpreter, which defines the semantics) for the
// GPU and share nothing with the template kernel's lowering (codegen/lower.h, common.cuh):
//   Int   -> long long, wrapping two's complement (computed on unsigned long long: no UB)
//   Float -> double, every + - * / rounded once (the __d*_rn intrinsics are never fused into FMA)
//   Bool  -> bool
// Host-compilable the same way as common.cuh (the lowering's differential fuzzer builds it with
// the host compiler, __device__ and __forceinline__ defined away).

// ---- Int: 64-bit, wrapping --------------------------------------------------------------------
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_add(long long a, long long b) {
  return static_cast<long long>(static_cast<unsigned long long>(a) + static_cast<unsigned long long>(b));
}
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_sub(long long a, long long b) {
  return static_cast<long long>(static_cast<unsigned long long>(a) - static_cast<unsigned long long>(b));
}
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_mul(long long a, long long b) {
  return static_cast<long long>(static_cast<unsigned long long>(a) * static_cast<unsigned long long>(b));
}
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_neg(long long a) { return kg_ref_sub(0, a); }
// a // b, floored; x // 0 == 0 and x // -1 == -x (wrapping).
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_floordiv(long long a, long long b) {
  if (b == 0) return 0;
  if (b == -1) return kg_ref_neg(a);
  long long q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}
// a % b with the sign of b; x % 0 == 0 and x % -1 == 0.
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_mod(long long a, long long b) {
  if (b == 0 || b == -1) return 0;
  long long r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
// a ** e; a negative exponent truncates 1 / a**|e| toward zero (1, -1 or 0).
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_pow(long long a, long long e) {
  if (e < 0) {
    if (a == 1) return 1;
    if (a == -1) return (e % 2 == 0) ? 1 : -1;
    return 0;
  }
  long long r = 1;
  while (e > 0) {
    if (e & 1) r = kg_ref_mul(r, a);
    a = kg_ref_mul(a, a);
    e >>= 1;
  }
  return r;
}
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_iabs(long long a) { return a < 0 ? kg_ref_neg(a) : a; }
// min/max pick the first argument unless the second is strictly smaller/larger.
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_imin(long long a, long long b) { return b < a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_imax(long long a, long long b) { return b > a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_iclamp(long long x, long long lo, long long hi) {
  return kg_ref_imin(kg_ref_imax(x, lo), hi);
}

// ---- Float: double, uncontracted ----------------------------------------------------------------
#ifdef __CUDA_ARCH__
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fadd(double a, double b) { return __dadd_rn(a, b); }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fsub(double a, double b) { return __dsub_rn(a, b); }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fmul(double a, double b) { return __dmul_rn(a, b); }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fdiv(double a, double b) { return __ddiv_rn(a, b); }
#else
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fadd(double a, double b) { return a + b; }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fsub(double a, double b) { return a - b; }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fmul(double a, double b) { return a * b; }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fdiv(double a, double b) { return a / b; }
#endif
// CPython's float_divmod: r = a % b (sign of b), q = a // b (floor, then nudged to the nearest
// integer of (a - r) / b). b == 0: q = floor(a / b), r = NaN.
[[maybe_unused]] __device__ __forceinline__ void kg_ref_divmod(double a, double b, double& q, double& r) {
  if (b == 0.0) {
    q = floor(kg_ref_fdiv(a, b));
    r = fmod(a, b);
    return;
  }
  r = fmod(a, b);
  double div = kg_ref_fdiv(kg_ref_fsub(a, r), b);
  if (r != 0.0) {
    if ((b < 0.0) != (r < 0.0)) {
      r = kg_ref_fadd(r, b);
      div = kg_ref_fsub(div, 1.0);
    }
  } else {
    r = copysign(0.0, b);
  }
  if (div != 0.0) {
    q = floor(div);
    if (kg_ref_fsub(div, q) > 0.5) q = kg_ref_fadd(q, 1.0);
  } else {
    q = copysign(0.0, kg_ref_fdiv(a, b));
  }
}
[[maybe_unused]] __device__ __forceinline__ double kg_ref_ffloordiv(double a, double b) {
  double q = 0.0, r = 0.0;
  kg_ref_divmod(a, b, q, r);
  return q;
}
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fmod(double a, double b) {
  double q = 0.0, r = 0.0;
  kg_ref_divmod(a, b, q, r);
  return r;
}
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fmin(double a, double b) { return b < a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fmax(double a, double b) { return b > a ? b : a; }
[[maybe_unused]] __device__ __forceinline__ double kg_ref_fclamp(double x, double lo, double hi) {
  return kg_ref_fmin(kg_ref_fmax(x, lo), hi);
}
// log2, exactly the exponent at a power of two (device log2 is within an ulp elsewhere).
[[maybe_unused]] __device__ __forceinline__ double kg_ref_log2(double x) {
  if (x > 0.0 && x < static_cast<double>(INFINITY)) {
    int e = 0;
    if (frexp(x, &e) == 0.5) return static_cast<double>(e - 1);
  }
  return log2(x);
}
// floor(x) -> int: NaN gives 0; beyond int64 saturates.
[[maybe_unused]] __device__ __forceinline__ long long kg_ref_floor(double x) {
  if (x != x) return 0;
  const double f = floor(x);
  if (f >= 9223372036854775807.0) return 9223372036854775807LL;
  if (f <= -9223372036854775808.0) return -9223372036854775807LL - 1;
  return static_cast<long long>(f);
}
// int -> float (round to nearest, like the interpreter's static_cast<double>(int64)).
[[maybe_unused]] __device__ __forceinline__ double kg_ref_to_double(long long x) { return static_cast<double>(x); }
