// Device-side helpers of the GPU checks and the verifier runner: fast random inputs, poison fills,
// checksums and whole-tensor comparison on the GPU (for shapes too large to compare on the host
// at every timed run). Everything is enqueued on the given stream and returns without waiting;
// launch errors are thrown as CudaError (gpu_problem.h) by the callers' checks.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace kg::gpu {

// n elements of 2-byte type (bf16 when is_bf16, else fp16) drawn from N(mean, 1), rounded to
// nearest even. Element i depends only on (seed, i): the same seed gives the same tensor.
void device_fill_normal(void* dst, size_t n, bool is_bf16, uint64_t seed, float mean, cudaStream_t stream);

// Fills n 16-bit / 32-bit words with `value`.
void device_fill_u16(void* dst, size_t n, uint16_t value, cudaStream_t stream);
void device_fill_u32(void* dst, size_t n, uint32_t value, cudaStream_t stream);

// Order-independent 64-bit checksum of `bytes` (even) bytes: sum over 16-bit words w_i of
// mix(i, w_i). Writes it to *result_dev (device memory) after zeroing it. Any change of any
// word changes it with overwhelming probability.
void device_checksum(const void* data, size_t bytes, unsigned long long* result_dev, cudaStream_t stream);

// One element-wise transform of a contiguous [..., d] tensor of 2-byte elements: the sign of
// dimension i flipped where bit i of `signs` is set (d <= 256), then the value scaled by 2^exp
// (exp 0 or 1: doubling is exact in bf16 and fp16, subnormals included, and no input comes near
// overflow). Used for fresh timed inputs whose reference output is known exactly: flipping the same
// dimensions of q and k leaves every product q_i k_i, hence every score, bit for bit; flipping and
// doubling dimensions of v does exactly that to the output (fp32 accumulation commutes with both),
// and the LSE stays.
struct SignMask {
  uint32_t words[8];
};
void device_transform(const uint16_t* src, uint16_t* dst, size_t n, int d, SignMask signs, int exp, bool is_bf16,
                      cudaStream_t stream);

// Comparison counters, in device memory; zero them (cudaMemsetAsync) before a comparison.
struct DeviceCompareCounts {
  unsigned long long bad;        // elements outside tolerance (including the next two)
  unsigned long long unwritten;  // elements still holding the exact poison bits
  unsigned long long nonfinite;  // other NaN/Inf elements
  unsigned long long clobbered;  // guard elements that lost their poison
  unsigned long long lse_bad;
  unsigned long long lse_clobbered;
  // (float bits of error/allowed) << 32 | element index; the max over elements. Non-finite: +inf.
  unsigned long long worst_key;
  unsigned long long lse_worst_key;
  // Float bits of the largest finite |got - want| (non-negative floats order like their bits).
  unsigned long long max_err_bits;
  unsigned long long lse_max_err_bits;
  unsigned long long rows_bad;        // rows over the row error bound (device_compare_rows)
  // (float bits of row rms error / allowed) << 32 | row index; the max over rows.
  unsigned long long row_worst_key;
};

// Compares `got` with `want`, two allocations of the same layout: `guard` poisoned elements,
// `span` contiguous data elements, `guard` poisoned elements. |got - want| <= abs + rel*|want|;
// NaN/Inf never pass; guard elements must equal `poison`.
void device_compare_out(const uint16_t* got_all, const uint16_t* want_all, size_t guard, size_t span, bool is_bf16,
                        float abs_tol, float rel_tol, uint16_t poison, DeviceCompareCounts* counts,
                        cudaStream_t stream);
// Row error norms of contiguous rows of `d` elements (the data span of a BHSD output, `rows` rows
// after `guard` elements): rms(got - want) <= row_rel * max(rms(want), row_floor) per row, computed
// in fp32 by one warp per row. Rows holding NaN/Inf are left to device_compare_out.
void device_compare_rows(const uint16_t* got_all, const uint16_t* want_all, size_t guard, size_t rows, int d,
                         bool is_bf16, float row_rel, float row_floor, DeviceCompareCounts* counts,
                         cudaStream_t stream);
// The same for LSE (fp32): -inf passes exactly where want is -inf.
void device_compare_lse(const float* got_all, const float* want_all, size_t guard, size_t span, float abs_tol,
                        float rel_tol, uint32_t poison, DeviceCompareCounts* counts, cudaStream_t stream);

}  // namespace kg::gpu
