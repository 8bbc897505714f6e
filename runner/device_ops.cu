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

__global__ void compare_out_kernel(const uint16_t* got, const uint16_t* want, size_t guard, size_t span, bool is_bf16,
                                   float abs_tol, float rel_tol, uint16_t poison, DeviceCompareCounts* c) {
  const size_t total = span + 2 * guard;
  for (size_t j = blockIdx.x * size_t(blockDim.x) + threadIdx.x; j < total; j += size_t(gridDim.x) * blockDim.x) {
    const uint16_t g = got[j];
    if (j < guard || j >= guard + span) {
      if (g != poison) {
        atomicAdd(&c->clobbered, 1ull);
      }
      continue;
    }
    const float gv = to_float(g, is_bf16), wv = to_float(want[j], is_bf16);
    const float allowed = abs_tol + rel_tol * fabsf(wv);
    const float err = fabsf(gv - wv);
    const bool finite = isfinite(gv) && isfinite(wv);
    if (!(finite && err <= allowed)) {
      atomicAdd(&c->bad, 1ull);
      if (g == poison) {
        atomicAdd(&c->unwritten, 1ull);
      } else if (!isfinite(gv)) {
        atomicAdd(&c->nonfinite, 1ull);
      }
    }
    atomicMax(&c->worst_key, worst_key(finite ? err / allowed : INFINITY, j - guard));
  }
}

__global__ void compare_lse_kernel(const float* got, const float* want, size_t guard, size_t span, float abs_tol,
                                   float rel_tol, uint32_t poison, DeviceCompareCounts* c) {
  const size_t total = span + 2 * guard;
  for (size_t j = blockIdx.x * size_t(blockDim.x) + threadIdx.x; j < total; j += size_t(gridDim.x) * blockDim.x) {
    const float g = got[j];
    if (j < guard || j >= guard + span) {
      if (__float_as_uint(g) != poison) {
        atomicAdd(&c->lse_clobbered, 1ull);
      }
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
      pass = isfinite(g) && isfinite(w) && err <= allowed;
      ratio = isfinite(g) && isfinite(w) ? err / allowed : INFINITY;
    }
    if (!pass) {
      atomicAdd(&c->lse_bad, 1ull);
    }
    atomicMax(&c->lse_worst_key, worst_key(ratio, j - guard));
  }
}

}  // namespace

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
