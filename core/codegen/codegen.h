// Code generation from a checked spec (docs/design.md §3): the template kernel, the fp32 reference
// kernel and the public header, all against kernelgen/attention_abi.h.
//
// Every function here is a pure function of its arguments: no timestamps, no absolute paths,
// byte-identical output on every machine. Each throws std::invalid_argument for a spec that a
// checked spec cannot be (or that no template supports, e.g. head_dim 96), naming the problem.
//
// Emitted .cu files are self-contained: CUDA headers plus kernelgen/attention_abi.h, everything
// else in a namespace named after the key (kg_<key>_kernel, kg_<key>_reference; not an anonymous
// one, whose mangled name nvcc derives from the source path) except the extern "C" entry points. The kernel
// bodies are real CUDA sources in core/codegen/templates/, embedded at build time.
#pragma once

#include <string>
#include <vector>

#include "codegen/lower.h"
#include "spec/ast.h"

namespace kg::codegen {

// Kernel designs, one per GPU generation, chosen from the target arch:
//   Sm80MmaSync  mma.sync + ldmatrix + cp.async (FlashAttention-2 class; flash_fwd_sm80.cuh). Runs
//                on sm_80 and newer; the family of every arch but sm_90a.
//   Sm90aWgmma   Hopper warpgroup MMA (wgmma) fed from 128-byte-swizzled shared memory, P kept in
//                registers (FlashAttention-3 class; flash_fwd_sm90.cuh). sm_90a only: wgmma needs
//                the arch-specific target. Covers head_dim 64, 128 and 256.
// Throws std::invalid_argument for an arch below sm_80 or not spelled sm_XY[a|f].
enum class TemplateFamily { Sm80MmaSync, Sm90aWgmma };
TemplateFamily template_family(const std::string& arch);

// The families an architecture set (spec::resolve_arch's canonical spelling, "sm_80,sm_86,sm_90a";
// one architecture is a set of one) needs, sorted, without duplicates. Throws
// std::invalid_argument for an empty set, an element template_family refuses, or a set holding
// both sm_90 and sm_90a (two cubins for one GPU: the driver, not the entry point, would choose).
std::vector<TemplateFamily> template_families(const std::string& arch);

// What goes into the first line of every generated file.
struct Provenance {
  std::string spec_file;  // file name as the user knows it (basename, no directories)
  std::string key;        // 32 hex digits
};

// `<name>.cu`: the template forward kernel, defining extern "C" kg_<name>_forward.
// `arch` is an architecture set (spec::resolve_arch: "sm_90a", "sm_80,sm_86,sm_89,sm_90a"); the
// file must be compiled for every architecture of it.
//   - The set needs one family (every set without sm_90a, {sm_90a} alone, any set for head_dim
//     256): the file holds that family's kernel in namespace kg_<key>_kernel and the entry point
//     calls it (an sm_90a kernel traps anywhere but sm_90a).
//   - Both families: the file holds the mma.sync kernel in kg_<key>_sm80 and the wgmma kernel in
//     kg_<key>_sm90a (its body compiled only for sm_90a, under __CUDA_ARCH_FEAT_SM90_ALL), and
//     the entry point checks the arguments, then dispatches by the running device's compute
//     capability (cudaGetDevice, cudaDeviceGetAttribute; cached per device, thread-safe): 9.0 →
//     wgmma, a capability an sm_XY of the set runs on (same major, minor >= Y) → mma.sync,
//     anything else → cudaErrorNoKernelImageForDevice, nothing launched. Same ABI.
std::string emit_template_kernel(const spec::Spec& spec, const Provenance& prov, const std::string& arch);

// `<name>_reference.cu`: the plain GPU reference (fp32 scores and softmax; score_mod / mask_mod
// lowered by codegen/reference_lower.h in double, exactly as the CPU interpreter evaluates them),
// defining with C linkage
//   cudaError_t kg_<name>_reference_forward(const KgAttentionArgs* args, cudaStream_t stream);
//     same ABI and semantics as kg_<name>_forward. Slow and obviously correct.
//   cudaError_t kg_<name>_reference_count_kept(const KgAttentionArgs* args, unsigned long long* kept_dev,
//                                              cudaStream_t stream);
//     atomically ADDS to *kept_dev (device memory; the caller zeroes it) the number of (b, hq, i, j)
//     with i < seqlen_q, j < seqlen_kv that mask_mod keeps (every pair without a mask_mod), with
//     the reference's own mask evaluation; enqueued on `stream`. cudaErrorInvalidValue, nothing
//     enqueued, for args the forward entry would reject or kept_dev == NULL.
std::string emit_reference_kernel(const spec::Spec& spec, const Provenance& prov);

// `<name>.h`: declares kg_<name>_forward (and both reference entries) and documents the spec's
// params and tensors; includes <kernelgen/attention_abi.h>.
std::string emit_header(const spec::Spec& spec, const Provenance& prov);

// Pieces of the emitted files, for tests that compile them for the host (the lowering's
// differential fuzzer): the KgModArgs struct (float params as doubles), and the template kernel's
// tensor readers, kg_score_mod and kg_mask_mod (need common.cuh and KgModArgs before them).
// hulls[i]: KgModArgs gets tensor i's hull table field (the template kernel; classify_tile_scans).
std::string emit_mod_args(const spec::Spec& spec, const std::vector<bool>& hulls = {});
std::string emit_template_mods(const spec::Spec& spec, MathMode math);

}  // namespace kg::codegen
