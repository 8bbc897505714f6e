// Host side of the GPU checks (tests/gpu/kg_gpu_tests) and of the verifier runner
// (runner/kg_verify_runner): random attention problems for a spec (inputs in several memory
// layouts, params, index tensors), poisoned outputs with guard zones, kernel launches through the
// ABI, and element-by-element comparison with diagnostics.
//
// Every CUDA call is checked: a failure throws CudaError naming the call and where it was made.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <kernelgen/attention_abi.h>

#include "spec/ast.h"

namespace kg::gpu {

// An entry point of the ABI: kg_<name>_forward or kg_<name>_reference_forward.
using ForwardFn = cudaError_t (*)(const KgAttentionArgs*, cudaStream_t);

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws CudaError("<call> failed at file:line: <cuda error name>: <message>") unless e == cudaSuccess.
void cuda_check(cudaError_t e, const char* call, const char* file, int line);
#define KG_CUDA(call) ::kg::gpu::cuda_check((call), #call, __FILE__, __LINE__)

// Host conversions, round to nearest even (bf16, fp16).
uint16_t float_to_bits(float x, spec::DType dtype);
float bits_to_float(uint16_t bits, spec::DType dtype);

// Memory layout of q, k, v (all three the same kind). `out` is contiguous [B, Hq, Sq, D] for
// BHSD and [B, Sq, Hq, D + 8] (token-major, 8 elements of padding per head) otherwise.
enum class Layout {
  BHSD,    // contiguous [B, H, S, D]
  BSHD,    // [B, S, H, D]: token stride H*D, head stride D
  Packed,  // one [B, S, Hq + 2*Hkv, D] buffer, q then k then v heads (needs Sq == Skv)
};
const char* layout_name(Layout layout);

struct Shape {
  int batch = 1, heads_q = 1, heads_kv = 1, seqlen_q = 1, seqlen_kv = 1;
  Layout layout = Layout::BHSD;
  bool lse = true;         // pass an LSE buffer (false: lse = NULL)
  double score_std = 2.0;  // standard deviation of q·k·scale; ~20 makes scores reach ±50
  double v_mean = 0.0;     // mean of v's elements (non-zero keeps long-sequence outputs O(1))
  // Fill q, k, v on the device (device_ops.h) instead of on the host: fast for large shapes, but
  // Problem::q/k/v stay empty (no CPU reference). Not with Layout::Packed.
  bool device_fill = false;
  std::string str() const;  // "B=2 Hq=8 Hkv=2 Sq=65 Skv=63 layout=bshd lse=on scores~N(0,2^2)"
};

class SharedArena;  // shared_arena.h

// Device memory, never empty (at least 16 bytes) so pointers are never NULL: cudaMalloc'd and
// owned, or (with an arena) a piece of the judge's shared arena, which outlives the buffer.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes, SharedArena* arena = nullptr);
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;
  unsigned char* data() const { return m_ptr; }
  size_t bytes() const { return m_bytes; }

 private:
  unsigned char* m_ptr = nullptr;
  size_t m_bytes = 0;
  bool m_owned = true;
};

// 64-bit FNV-1a over bytes: detects any change to an input buffer.
uint64_t checksum(const void* data, size_t bytes);

// One problem: random inputs on the host and the device. Fresh values on every construction.
struct Problem {
  // `arena`: where the input buffers live (the judge's shared arena, so that the candidate host
  // can read them); nullptr: cudaMalloc.
  Problem(const spec::Spec& spec, const Shape& shape, std::mt19937_64& rng, SharedArena* arena = nullptr);

  // New random contents for q, k, v, params and tensors, in the same device buffers (same
  // pointers): catches kernels that cache results keyed on pointers or shapes.
  void refill(std::mt19937_64& rng);

  const spec::Spec* spec;
  Shape shape;
  int head_dim;
  float softmax_scale;

  // Logical inputs as the kernels see them (already rounded to the dtype):
  // q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D], contiguous.
  std::vector<float> q, k, v;
  const void* q_dev = nullptr;
  const void* k_dev = nullptr;
  const void* v_dev = nullptr;
  int64_t q_stride[3], k_stride[3], v_stride[3];

  std::vector<double> params;  // spec order
  // Index tensors, spec order: host bytes and device copies. Allocations are larger than the
  // declared shape (sequence dims sized max(Sq, Skv), head dims max(Hq, Hkv)) so that a spec that
  // indexes a [batch, seq_kv] tensor with q_idx stays in bounds on the CPU too.
  std::vector<std::vector<unsigned char>> tensor_host;
  std::vector<const void*> tensor_dev_ptrs;
  std::string describe_params() const;  // "num_heads=17 cap=0.53"

  // Checksums of every input device buffer at upload; inputs_unchanged() re-reads them (copies
  // on `stream`, synchronizing only it; NULL: the legacy default stream).
  bool inputs_unchanged(std::string& what, cudaStream_t stream = nullptr) const;

 private:
  void fill(std::mt19937_64& rng);
  void fill_device_qkv(std::mt19937_64& rng);  // q, k, v (buffers 0-2) and their device checksums
  SharedArena* m_arena = nullptr;
  std::vector<DeviceBuffer> m_buffers;  // q/k/v storage (1 when packed) then tensors
  std::vector<std::vector<unsigned char>> m_uploaded;  // host images (host-filled buffers)
  std::vector<unsigned long long> m_device_sums;       // device checksums (device-filled q/k/v)
  DeviceBuffer m_sum;                                   // scratch for device_checksum
};

// Output buffers for one launch, poisoned (NaN) including padding and 4 KiB guard zones on both
// sides, so that unwritten elements and stray writes are both visible.
struct Outputs {
  // `arena`: where out and lse live (see Problem); nullptr: cudaMalloc.
  explicit Outputs(const Problem& p, SharedArena* arena = nullptr);
  // Poisons out and lse, guards and padding included, and waits for it (on `stream`; NULL: the
  // legacy default stream). poison_async enqueues the same work without waiting.
  void poison(cudaStream_t stream = nullptr);
  void poison_async(cudaStream_t stream);
  // Copies the whole allocations to out_all / lse_all on `stream` (NULL: the legacy default
  // stream) and synchronizes that stream only: work the kernel left on another stream is not
  // waited for.
  void download(cudaStream_t stream = nullptr);
  const uint16_t* out_alloc() const { return reinterpret_cast<const uint16_t*>(m_out.data()); }
  const float* lse_alloc() const { return reinterpret_cast<const float*>(m_lse.data()); }

  int64_t out_stride[3];
  void* out_dev = nullptr;   // first element of out
  float* lse_dev = nullptr;  // NULL when shape.lse is false
  // After download(): the whole allocations, guards included.
  std::vector<uint16_t> out_all;
  std::vector<float> lse_all;
  size_t out_guard = 0, lse_guard = 0;  // elements before the data
  size_t out_span = 0, lse_span = 0;    // elements of data (padding included)

  uint16_t out_at(int b, int h, int i, int d) const;  // after download()
  float lse_at(int b, int h, int i) const;
  static uint16_t poison_bits(spec::DType dtype);
  static uint32_t lse_poison_bits();

 private:
  const Problem* m_p;
  DeviceBuffer m_out, m_lse;
};

// Fills KgAttentionArgs for `p` writing into `o`, calls `fn` on `stream`, and synchronizes.
// Returns the entry point's result; a launch or execution failure after it accepted the call
// throws CudaError.
cudaError_t run_kernel(ForwardFn fn, const Problem& p, Outputs& o, cudaStream_t stream);
KgAttentionArgs make_args(const Problem& p, Outputs& o);

// Expected outputs in double: out [B, Hq, Sq, D], lse [B, Hq, Sq].
struct Expected {
  std::vector<double> out, lse;
};
Expected expected_from(const Problem& p, const Outputs& o);  // a downloaded kernel's outputs

// |got - want| <= abs + rel*|want| (+ half an ulp of the dtype at max(|got|, |want|) when
// `half_ulp`), LSE likewise with lse_abs/lse_rel. NaN/Inf never pass; LSE -inf passes exactly where
// the expected LSE is -inf.
struct Tolerance {
  double abs = 0, rel = 0;
  bool half_ulp = false;
  double lse_abs = 0, lse_rel = 0;
  // Per row (b, h, i) over its D elements: rms(got - want) <= row_rel * max(rms(want), row_floor).
  // 0: no row check.
  double row_rel = 0, row_floor = 0;
};

// The verifier's tolerance for a kernel against the fp32 reference kernel, per dtype
// (docs/verifier.md): out |got - want| <= abs + rel*|want| with bf16 2e-2 + 2e-2, fp16 5e-3 + 5e-3;
// LSE 1e-3 + 1e-3. Both kernels read the same rounded inputs; what differs is the rounding of P to
// the dtype before P·V (2^-9 relative for bf16, 2^-12 for fp16), fp32 accumulation order, fast
// exp2, and the final rounding of out to the dtype (another half ulp on each side). The bounds are
// a few times those, and far under the error of a wrong mask, scale or score_mod (O(0.1) and up).
// LSE is fp32 in both kernels, from fp32 scores of identical inputs: differences are summation
// order and exp2/log approximations (~1e-6 relative); a dropped key of weight w moves LSE by ~w,
// so 1e-3 still sees any missing mass the output check would.
// Rows: the elementwise bound is loose where outputs are small (long rows of zero-mean v average to
// O(1/sqrt(S))), so each row's error norm is bounded too: rms(got - want) <= row_rel * rms(want)
// (floor 1e-3), bf16 1e-2, fp16 2.5e-3. An honest kernel's row error is a couple of roundings to the
// dtype (2^-9 and 2^-12 relative, about 2e-3 and 3e-4 as a row rms); quantising P coarsely (4 bits
// and below) lands above the bound however long the row.
Tolerance default_tolerance(spec::DType dtype);

struct CompareReport {
  bool ok = true;
  size_t bad = 0, nonfinite = 0, clobbered = 0;
  size_t unwritten = 0;  // bad elements still holding the exact poison bits (counted in bad, not nonfinite)
  size_t lse_bad = 0, lse_clobbered = 0;
  size_t rows_bad = 0;  // rows over the row bound (Tolerance::row_rel)
  double worst_err = 0, worst_ratio = 0;  // ratio: error / allowed
  // The row with the largest rms error / allowed (valid when row_worst_b >= 0).
  int row_worst_b = -1, row_worst_h = 0, row_worst_i = 0;
  double row_worst_ratio = 0, row_worst_rms_err = 0, row_worst_rms_want = 0;
  double lse_worst_err = 0;
  // The element with the largest error / allowed (valid when worst_b >= 0), and LSE's.
  int worst_b = -1, worst_h = 0, worst_i = 0, worst_d = 0;
  double worst_got = 0, worst_want = 0, worst_allowed = 0;
  int lse_worst_b = -1, lse_worst_h = 0, lse_worst_i = 0;
  double lse_worst_got = 0, lse_worst_want = 0, lse_worst_ratio = 0, lse_worst_allowed = 0;
  std::string detail;  // multi-line; empty when ok
};

// Compares a downloaded kernel output with `want`: every element, padding and guards untouched,
// LSE (when on). `want_name` names the expectation in messages ("reference", "cpu").
CompareReport compare(const Problem& p, const Outputs& got, const Expected& want, const Tolerance& tol,
                      const char* want_name);

// True when two downloaded outputs hold identical bits (out and lse).
bool identical(const Outputs& a, const Outputs& b);

}  // namespace kg::gpu
