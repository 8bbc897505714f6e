#include "device_ops.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

namespace kg::gpu {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(size_t n) {
  const size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 4096 ? (blocks == 0 ? 1 : blocks) : 4096);  // grid-stride loops
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void fill_normal_kernel(uint16_t* dst, size_t n, bool is_bf16, uint64_t seed, float mean) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t r = splitmix64(seed ^ splitmix64(i));
    // Box-Muller on two 24-bit uniforms in (0, 1].
    const float u1 = (float((r >> 40) & 0xFFFFFF) + 1.0f) * (1.0f / 16777216.0f);
    const float u2 = float((r >> 16) & 0xFFFFFF) * (1.0f / 16777216.0f);
    const float z = mean + sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    if (is_bf16) {
      const __nv_bfloat16 b = __float2bfloat16_rn(z);
      dst[i] = *reinterpret_cast<const uint16_t*>(&b);
    } else {
      const __half h = __float2half_rn(z);
      dst[i] = *reinterpret_cast<const uint16_t*>(&h);
    }
  }
}

template <typename T>
__global__ void fill_kernel(T* dst, size_t n, T value) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = value;
  }
}

__global__ void checksum_kernel(const uint16_t* data, size_t n, unsigned long long* result) {
  unsigned long long acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    acc += splitmix64((uint64_t(i) << 16) ^ data[i] ^ 0xC0FFEEull);
  }
  for (int o = 16; o > 0; o >>= 1) {
    acc += __shfl_xor_sync(0xffffffffu, acc, o);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(result, acc);
  }
}

__device__ __forceinline__ float to_float(uint16_t bits, bool is_bf16) {
  if (is_bf16) {
    return __uint_as_float(uint32_t(bits) << 16);
  }
  __half h;
  memcpy(&h, &bits, 2);
  return __half2float(h);
}

__device__ __forceinline__ unsigned long long worst_key(float ratio, size_t idx) {
  const float r = isfinite(ratio) ? ratio : INFINITY;
  return (static_cast<unsigned long long>(__float_as_uint(r)) << 32) | static_cast<unsigned long long>(idx & 0xFFFFFFFFu);
}

// Per-thread comparison tallies, folded over the warp and added to the device counters once per
// warp (one atomic per counter per warp, and none for a zero: a per-element atomic on one address
// would serialise the whole comparison).
struct Tally {
  unsigned long long bad = 0, unwritten = 0, nonfinite = 0, clobbered = 0, worst = 0, max_err = 0;

  __device__ void note_error(float err) {
    if (isfinite(err) && __float_as_uint(err) > max_err) {
      max_err = __float_as_uint(err);
    }
  }

  __device__ void flush(unsigned long long* bad_c, unsigned long long* unwritten_c, unsigned long long* nonfinite_c,
                        unsigned long long* clobbered_c, unsigned long long* worst_c, unsigned long long* max_err_c) {
    for (int o = 16; o > 0; o >>= 1) {
      bad += __shfl_xor_sync(0xffffffffu, bad, o);
      unwritten += __shfl_xor_sync(0xffffffffu, unwritten, o);
      nonfinite += __shfl_xor_sync(0xffffffffu, nonfinite, o);
      clobbered += __shfl_xor_sync(0xffffffffu, clobbered, o);
      const unsigned long long w = __shfl_xor_sync(0xffffffffu, worst, o);
      worst = w > worst ? w : worst;
      const unsigned long long e = __shfl_xor_sync(0xffffffffu, max_err, o);
      max_err = e > max_err ? e : max_err;
    }
    if ((threadIdx.x & 31) != 0) {
      return;
    }
    if (bad) atomicAdd(bad_c, bad);
    if (unwritten_c && unwritten) atomicAdd(unwritten_c, unwritten);
    if (nonfinite_c && nonfinite) atomicAdd(nonfinite_c, nonfinite);
    if (clobbered) atomicAdd(clobbered_c, clobbered);
    if (worst) atomicMax(worst_c, worst);
    if (max_err) atomicMax(max_err_c, max_err);
  }
};

// Grid-stride loops below keep every thread of a warp in the loop to the same trip count (the
// bound is rounded up to whole grid strides), so the warp-wide folds see all 32 lanes.
__device__ __forceinline__ size_t loop_end(size_t total) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  return (total + stride - 1) / stride * stride;
}

__global__ void compare_out_kernel(const uint16_t* got, const uint16_t* want, size_t guard, size_t span, bool is_bf16,
                                   float abs_tol, float rel_tol, uint16_t poison, DeviceCompareCounts* c) {
  const size_t total = span + 2 * guard;
  Tally t;
  for (size_t j = blockIdx.x * size_t(blockDim.x) + threadIdx.x; j < loop_end(total);
       j += size_t(gridDim.x) * blockDim.x) {
    if (j >= total) {
      continue;
    }
    const uint16_t g = got[j];
    if (j < guard || j >= guard + span) {
      t.clobbered += g != poison;
      continue;
    }
    const float gv = to_float(g, is_bf16), wv = to_float(want[j], is_bf16);
    const float allowed = abs_tol + rel_tol * fabsf(wv);
    const float err = fabsf(gv - wv);
    const bool finite = isfinite(gv) && isfinite(wv);
    t.note_error(err);
    if (!(finite && err <= allowed)) {
      ++t.bad;
      if (g == poison) {
        ++t.unwritten;
      } else if (!isfinite(gv)) {
        ++t.nonfinite;
      }
    }
    const unsigned long long key = worst_key(finite ? err / allowed : INFINITY, j - guard);
    t.worst = key > t.worst ? key : t.worst;
  }
  t.flush(&c->bad, &c->unwritten, &c->nonfinite, &c->clobbered, &c->worst_key, &c->max_err_bits);
}

__global__ void compare_lse_kernel(const float* got, const float* want, size_t guard, size_t span, float abs_tol,
                                   float rel_tol, uint32_t poison, DeviceCompareCounts* c) {
  const size_t total = span + 2 * guard;
  Tally t;
  for (size_t j = blockIdx.x * size_t(blockDim.x) + threadIdx.x; j < loop_end(total);
       j += size_t(gridDim.x) * blockDim.x) {
    if (j >= total) {
      continue;
    }
    const float g = got[j];
    if (j < guard || j >= guard + span) {
      t.clobbered += __float_as_uint(g) != poison;
      continue;
    }
    const float w = want[j];
    bool pass;
    float ratio = 0.0f;
    if (isinf(w) && w < 0) {
      pass = isinf(g) && g < 0;
      ratio = pass ? 0.0f : INFINITY;
    } else {
      const float allowed = abs_tol + rel_tol * fabsf(w);
      const float err = fabsf(g - w);
      t.note_error(err);
      pass = isfinite(g) && isfinite(w) && err <= allowed;
      ratio = isfinite(g) && isfinite(w) ? err / allowed : INFINITY;
    }
    t.bad += !pass;
    const unsigned long long key = worst_key(ratio, j - guard);
    t.worst = key > t.worst ? key : t.worst;
  }
  t.flush(&c->lse_bad, nullptr, nullptr, &c->lse_clobbered, &c->lse_worst_key, &c->lse_max_err_bits);
}

__global__ void transform_kernel(const uint16_t* src, uint16_t* dst, size_t n, int d, SignMask signs, int exp,
                                 bool is_bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const int dim = static_cast<int>(i % size_t(d));
    uint16_t bits = src[i];
    if ((signs.words[dim >> 5] >> (dim & 31)) & 1u) {
      bits ^= 0x8000u;  // the sign bit of bf16 and fp16
    }
    if (exp != 0) {
      const float x = ldexpf(to_float(bits, is_bf16), exp);
      if (is_bf16) {
        const __nv_bfloat16 b = __float2bfloat16_rn(x);
        bits = *reinterpret_cast<const uint16_t*>(&b);
      } else {
        const __half h = __float2half_rn(x);
        bits = *reinterpret_cast<const uint16_t*>(&h);
      }
    }
    dst[i] = bits;
  }
}

__global__ void compare_rows_kernel(const uint16_t* got, const uint16_t* want, size_t rows, int d, bool is_bf16,
                                    float row_rel, float row_floor, DeviceCompareCounts* c) {
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  unsigned long long bad = 0, worst = 0;
  for (size_t row = blockIdx.x * size_t(blockDim.x / 32) + threadIdx.x / 32; row < rows; row += warps) {
    float err2 = 0.0f, want2 = 0.0f;
    bool finite = true;
    for (int e = lane; e < d; e += 32) {
      const float gv = to_float(got[row * d + e], is_bf16), wv = to_float(want[row * d + e], is_bf16);
      finite = finite && isfinite(gv) && isfinite(wv);
      err2 += (gv - wv) * (gv - wv);
      want2 += wv * wv;
    }
    for (int o = 16; o > 0; o >>= 1) {
      err2 += __shfl_xor_sync(0xffffffffu, err2, o);
      want2 += __shfl_xor_sync(0xffffffffu, want2, o);
    }
    finite = __all_sync(0xffffffffu, finite);
    if (finite) {
      const float allowed = row_rel * fmaxf(sqrtf(want2 / d), row_floor);
      const float ratio = sqrtf(err2 / d) / allowed;
      bad += ratio > 1.0f;
      const unsigned long long key = worst_key(ratio, row);
      worst = key > worst ? key : worst;
    }
  }
  if (lane == 0) {
    if (bad) atomicAdd(&c->rows_bad, bad);
    if (worst) atomicMax(&c->row_worst_key, worst);
  }
}

}  // namespace

void device_compare_rows(const uint16_t* got_all, const uint16_t* want_all, size_t guard, size_t rows, int d,
                         bool is_bf16, float row_rel, float row_floor, DeviceCompareCounts* counts,
                         cudaStream_t stream) {
  const size_t threads = rows * 32;
  compare_rows_kernel<<<grid_for(threads), kThreads, 0, stream>>>(got_all + guard, want_all + guard, rows, d, is_bf16,
                                                                  row_rel, row_floor, counts);
}

void device_transform(const uint16_t* src, uint16_t* dst, size_t n, int d, SignMask signs, int exp, bool is_bf16,
                      cudaStream_t stream) {
  transform_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, dst, n, d, signs, exp, is_bf16);
}

void device_fill_normal(void* dst, size_t n, bool is_bf16, uint64_t seed, float mean, cudaStream_t stream) {
  fill_normal_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<uint16_t*>(dst), n, is_bf16, seed, mean);
}

void device_fill_u16(void* dst, size_t n, uint16_t value, cudaStream_t stream) {
  fill_kernel<uint16_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<uint16_t*>(dst), n, value);
}

void device_fill_u32(void* dst, size_t n, uint32_t value, cudaStream_t stream) {
  fill_kernel<uint32_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<uint32_t*>(dst), n, value);
}

void device_checksum(const void* data, size_t bytes, unsigned long long* result_dev, cudaStream_t stream) {
  cudaMemsetAsync(result_dev, 0, sizeof(unsigned long long), stream);
  const size_t n = bytes / 2;
  checksum_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<const uint16_t*>(data), n, result_dev);
}

void device_compare_out(const uint16_t* got_all, const uint16_t* want_all, size_t guard, size_t span, bool is_bf16,
                        float abs_tol, float rel_tol, uint16_t poison, DeviceCompareCounts* counts,
                        cudaStream_t stream) {
  compare_out_kernel<<<grid_for(span + 2 * guard), kThreads, 0, stream>>>(got_all, want_all, guard, span, is_bf16,
                                                                          abs_tol, rel_tol, poison, counts);
}

void device_compare_lse(const float* got_all, const float* want_all, size_t guard, size_t span, float abs_tol,
                        float rel_tol, uint32_t poison, DeviceCompareCounts* counts, cudaStream_t stream) {
  compare_lse_kernel<<<grid_for(span + 2 * guard), kThreads, 0, stream>>>(got_all, want_all, guard, span, abs_tol,
                                                                          rel_tol, poison, counts);
}

}  // namespace kg::gpu
