// Code generation from a checked spec (docs/design.md §3): the template kernel, the fp32 reference
// kernel and the public header, all against kernelgen/attention_abi.h.
//
// Every function here is a pure function of its arguments: no timestamps, no absolute paths,
// byte-identical output on every machine. Each throws std::invalid_argument for a spec that a
// checked spec cannot be (or that no template supports, e.g. head_dim 96), naming the problem.
//
// Emitted .cu files are self-contained: CUDA headers plus kernelgen/attention_abi.h, everything
// else internal to the file (anonymous namespace) except the extern "C" entry point. The kernel
// bodies are real CUDA sources in core/codegen/templates/, embedded at build time.
#pragma once

#include <string>

#include "spec/ast.h"

namespace kg::codegen {

// Kernel designs, one per GPU generation, chosen from the target arch:
//   Sm80MmaSync  mma.sync + ldmatrix + cp.async (FlashAttention-2 class; flash_fwd_sm80.cuh). Runs
//                on sm_80 and newer; the family of every arch but sm_90a.
//   Sm90aWgmma   Hopper warpgroup MMA (wgmma) fed from 128-byte-swizzled shared memory, P kept in
//                registers (FlashAttention-3 class; flash_fwd_sm90.cuh). sm_90a only: wgmma needs
//                the arch-specific target. Covers head_dim 64 and 128; emit_template_kernel uses
//                Sm80MmaSync for head_dim 256 even there.
// Throws std::invalid_argument for an arch below sm_80 or not spelled sm_XY[a|f].
enum class TemplateFamily { Sm80MmaSync, Sm90aWgmma };
TemplateFamily template_family(const std::string& arch);

// What goes into the first line of every generated file.
struct Provenance {
  std::string spec_file;  // file name as the user knows it (basename, no directories)
  std::string key;        // 32 hex digits
};

// `<name>.cu`: the template forward kernel, defining extern "C" kg_<name>_forward.
// `arch` (e.g. "sm_90a") selects the family (template_family); the file must be compiled for that
// arch (an sm_90a kernel traps anywhere else).
std::string emit_template_kernel(const spec::Spec& spec, const Provenance& prov, const std::string& arch);

// `<name>_reference.cu`: the plain fp32 GPU reference, defining extern "C"
// kg_<name>_reference_forward with the same ABI. Slow and obviously correct.
std::string emit_reference_kernel(const spec::Spec& spec, const Provenance& prov);

// `<name>.h`: declares kg_<name>_forward (and kg_<name>_reference_forward) and documents the
// spec's params and tensors; includes <kernelgen/attention_abi.h>.
std::string emit_header(const spec::Spec& spec, const Provenance& prov);

}  // namespace kg::codegen
