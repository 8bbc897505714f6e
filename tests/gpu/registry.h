// The kernels kg_gpu_tests knows: one entry per spec in specs/, generated at configure time
// (registry.cc.in).
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include <kernelgen/attention_abi.h>

#include "gpu_problem.h"

namespace kg::gpu_test {

using ForwardFn = kg::gpu::ForwardFn;

struct KernelEntry {
  const char* name;       // the spec's name
  const char* spec_path;  // relative to the source tree, e.g. "specs/causal.yaml"
  ForwardFn forward;      // template kernel, kg_<name>_forward
  ForwardFn reference;    // fp32 reference kernel, kg_<name>_reference_forward
};

// Sorted by spec file name.
const std::vector<KernelEntry>& registry();

}  // namespace kg::gpu_test
