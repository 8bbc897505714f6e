// Code generation from a checked spec (DESIGN §3): the template kernel, the fp32 reference
// kernel and the public header, all against kernelgen/attention_abi.h.
//
// Every function here is a pure function of its arguments: no timestamps, no absolute paths,
// byte-identical output on every machine.
#pragma once

#include <string>

#include "spec/ast.h"

namespace kg::codegen {

// What goes into the first line of every generated file.
struct Provenance {
  std::string spec_file;  // file name as the user knows it (basename, no directories)
  std::string key;        // 32 hex digits
};

// `<name>.cu`: the template forward kernel, defining extern "C" kg_<name>_forward.
// Targets sm_80+ (mma.sync); `arch` (e.g. "sm_90a") may select specialisations.
std::string emit_template_kernel(const spec::Spec& spec, const Provenance& prov, const std::string& arch);

// `<name>_reference.cu`: the plain fp32 GPU reference, defining extern "C"
// kg_<name>_reference_forward with the same ABI. Slow and obviously correct.
std::string emit_reference_kernel(const spec::Spec& spec, const Provenance& prov);

// `<name>.h`: declares kg_<name>_forward (and kg_<name>_reference_forward) and documents the
// spec's params and tensors; includes <kernelgen/attention_abi.h>.
std::string emit_header(const spec::Spec& spec, const Provenance& prov);

}  // namespace kg::codegen
