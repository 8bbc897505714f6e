// Adversarial candidate for specs/causal.yaml (tests/verify): spins forever on a flag nobody sets.
// expect: timeout
// stage: run
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include "kernelgen/attention_abi.h"

__device__ volatile int g_flag = 0;
__global__ void spin() {
  while (g_flag == 0) {
  }
}

extern "C" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t stream) {
  if (a == nullptr || a->abi_version != KG_ABI_VERSION) return cudaErrorInvalidValue;
  spin<<<1, 1, 0, stream>>>();
  return cudaGetLastError();
}
