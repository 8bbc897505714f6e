// Adversarial candidate for specs/causal.yaml (tests/verify): aborts the process from its host code.
// expect: crash
// stage: run
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include "kernelgen/attention_abi.h"
#include <stdlib.h>

extern "C" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t stream) {
  (void)a;
  (void)stream;
  abort();
}
