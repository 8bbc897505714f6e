// attention_demo: runs each kernel KernelGen generated for this project on random inputs and
// compares it with the fp32 reference kernel generated from the same spec.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "alibi_causal.h"
#include "causal.h"
#include "document_mask.h"
#include "neighborhood_2d.h"
#include "softcap_causal.h"

namespace {

using ForwardFn = cudaError_t (*)(const KgAttentionArgs*, cudaStream_t);

struct Kernel {
  const char* name;
  ForwardFn forward;
  ForwardFn reference;
  int head_dim;
  int num_tensors;  // document_mask: q_doc [B, Sq], kv_doc [B, Skv]
};

#define CHECK_CUDA(call)                                                                    \
  do {                                                                                      \
    cudaError_t err_ = (call);                                                              \
    if (err_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,            \
                   cudaGetErrorString(err_));                                               \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

struct Shape {
  int batch = 2, heads_q = 16, heads_kv = 4, seqlen_q = 4096, seqlen_kv = 4096;
};

template <typename T>
T* device_copy(const std::vector<T>& host) {
  T* ptr = nullptr;
  CHECK_CUDA(cudaMalloc(&ptr, host.size() * sizeof(T)));
  CHECK_CUDA(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return ptr;
}

// Runs one kernel and its reference on the same random inputs; returns false on a mismatch.
bool run(const Kernel& kernel, const Shape& s, std::mt19937& rng) {
  const int d = kernel.head_dim;
  const size_t nq = size_t(s.batch) * s.heads_q * s.seqlen_q * d;
  const size_t nkv = size_t(s.batch) * s.heads_kv * s.seqlen_kv * d;
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<__nv_bfloat16> q(nq), k(nkv), v(nkv);
  for (auto& x : q) x = __float2bfloat16(normal(rng));
  for (auto& x : k) x = __float2bfloat16(normal(rng));
  for (auto& x : v) x = __float2bfloat16(normal(rng));

  // Document ids: runs of random length, the same layout for queries and keys.
  std::vector<int> q_doc(size_t(s.batch) * s.seqlen_q), kv_doc(size_t(s.batch) * s.seqlen_kv);
  for (int b = 0; b < s.batch; ++b) {
    int doc = 0;
    for (int i = 0; i < s.seqlen_kv; ++i) {
      if (rng() % 512 == 0) ++doc;
      kv_doc[size_t(b) * s.seqlen_kv + i] = doc;
      if (i < s.seqlen_q) q_doc[size_t(b) * s.seqlen_q + i] = doc;
    }
  }

  auto* dq = device_copy(q);
  auto* dk = device_copy(k);
  auto* dv = device_copy(v);
  int* dq_doc = device_copy(q_doc);
  int* dkv_doc = device_copy(kv_doc);
  __nv_bfloat16 *out = nullptr, *ref = nullptr;
  float *lse = nullptr, *ref_lse = nullptr;
  CHECK_CUDA(cudaMalloc(&out, nq * sizeof(__nv_bfloat16)));
  CHECK_CUDA(cudaMalloc(&ref, nq * sizeof(__nv_bfloat16)));
  const size_t nrows = size_t(s.batch) * s.heads_q * s.seqlen_q;
  CHECK_CUDA(cudaMalloc(&lse, nrows * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&ref_lse, nrows * sizeof(float)));

  const double params[] = {double(s.heads_q)};  // alibi_causal: num_heads
  const void* tensors[] = {dq_doc, dkv_doc};

  KgAttentionArgs args{};
  args.abi_version = KG_ABI_VERSION;
  args.head_dim = d;
  args.q = dq;
  args.k = dk;
  args.v = dv;
  args.out = out;
  args.lse = lse;
  args.batch = s.batch;
  args.heads_q = s.heads_q;
  args.heads_kv = s.heads_kv;
  args.seqlen_q = s.seqlen_q;
  args.seqlen_kv = s.seqlen_kv;
  const int64_t qs[3] = {int64_t(s.heads_q) * s.seqlen_q * d, int64_t(s.seqlen_q) * d, d};
  const int64_t kvs[3] = {int64_t(s.heads_kv) * s.seqlen_kv * d, int64_t(s.seqlen_kv) * d, d};
  for (int i = 0; i < 3; ++i) {
    args.q_stride[i] = qs[i];
    args.out_stride[i] = qs[i];
    args.k_stride[i] = kvs[i];
    args.v_stride[i] = kvs[i];
  }
  args.softmax_scale = 1.0f / std::sqrt(float(d));
  args.params = params;
  args.tensors = kernel.num_tensors > 0 ? tensors : nullptr;

  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  CHECK_CUDA(kernel.forward(&args, nullptr));  // warm-up
  CHECK_CUDA(cudaEventRecord(start));
  const int iters = 10;
  for (int i = 0; i < iters; ++i) CHECK_CUDA(kernel.forward(&args, nullptr));
  CHECK_CUDA(cudaEventRecord(stop));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0.f;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  ms /= iters;

  KgAttentionArgs ref_args = args;
  ref_args.out = ref;
  ref_args.lse = ref_lse;
  CHECK_CUDA(kernel.reference(&ref_args, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<__nv_bfloat16> h_out(nq), h_ref(nq);
  CHECK_CUDA(cudaMemcpy(h_out.data(), out, nq * sizeof(__nv_bfloat16), cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(h_ref.data(), ref, nq * sizeof(__nv_bfloat16), cudaMemcpyDeviceToHost));
  double worst = 0.0;
  bool finite = true;
  for (size_t i = 0; i < nq; ++i) {
    const double a = __bfloat162float(h_out[i]), b = __bfloat162float(h_ref[i]);
    if (!std::isfinite(a)) finite = false;
    worst = std::fmax(worst, std::fabs(a - b) / (2e-2 + 2e-2 * std::fabs(b)));
  }
  const bool ok = finite && worst <= 1.0;
  std::printf("%-18s B=%d Hq=%d Hkv=%d S=%d D=%d  %8.3f ms  error/tolerance %.3f  %s\n", kernel.name, s.batch,
              s.heads_q, s.heads_kv, s.seqlen_q, d, ms, worst, ok ? "ok" : "MISMATCH");

  cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dq_doc); cudaFree(dkv_doc);
  cudaFree(out); cudaFree(ref); cudaFree(lse); cudaFree(ref_lse);
  cudaEventDestroy(start); cudaEventDestroy(stop);
  return ok;
}

}  // namespace

int main() {
  const Kernel kernels[] = {
      {"causal", kg_causal_forward, kg_causal_reference_forward, KG_CAUSAL_HEAD_DIM, 0},
      {"alibi_causal", kg_alibi_causal_forward, kg_alibi_causal_reference_forward, KG_ALIBI_CAUSAL_HEAD_DIM, 0},
      {"softcap_causal", kg_softcap_causal_forward, kg_softcap_causal_reference_forward,
       KG_SOFTCAP_CAUSAL_HEAD_DIM, 0},
      {"document_mask", kg_document_mask_forward, kg_document_mask_reference_forward, KG_DOCUMENT_MASK_HEAD_DIM,
       2},
      {"neighborhood_2d", kg_neighborhood_2d_forward, kg_neighborhood_2d_reference_forward,
       KG_NEIGHBORHOOD_2D_HEAD_DIM, 0},
  };
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("attention_demo: built %zu KernelGen kernels (causal, alibi_causal, softcap_causal, "
                "document_mask, neighborhood_2d).\n",
                sizeof(kernels) / sizeof(kernels[0]));
    std::printf("attention_demo: no CUDA device here, so nothing was run. Run this program on a machine "
                "with an sm_90 GPU (H100) to check each kernel against its reference.\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("attention_demo on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  std::mt19937 rng(2024);
  bool ok = true;
  for (const Kernel& k : kernels) ok = run(k, Shape{}, rng) && ok;
  std::printf(ok ? "all kernels match their references\n" : "some kernels do not match their references\n");
  return ok ? 0 : 1;
}
