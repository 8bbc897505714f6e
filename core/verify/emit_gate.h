// Verification of freshly generated template kernels before they are cached (docs/design.md §1: "template
// kernels record whether a GPU has verified them yet"). Used by `kernelgen emit --no-daemon` and
// by kernelgend's miss path through emit::EmitRequest::verify.
#pragma once

#include <string>

#include "emit/emit.h"
#include "verify/verify.h"

namespace kg::verify {

// A VerifyFn for emit::EmitRequest::verify. For each generated kernel it:
//   - finds kg_verify_runner (runner.h: locate_runner); none there (a CPU-only build): "unverified";
//   - probes for a CUDA device (`kg_verify_runner --probe`, ~0.2 s); none: "unverified";
//   - finds nvcc; none: "unverified" with a warning;
//   - runs the verifier with default settings: pass -> "verified", rejected -> "failed" (emit then
//     fails and caches nothing), no device after all -> "unverified".
// The report JSON comes back with "verified" and "failed". Failure: the verifier could not work on
// a machine that has a GPU (unwritable work directory, reference kernel not compiling).
//   spec_yaml  the text the spec was parsed from (the runner parses it again)
//   spec_file  for the report only
//   arch       resolved target, e.g. "sm_90a"
//   setup      nvcc, runner, work directory and environment (verifier_setup of the configuration)
emit::VerifyFn emit_verifier(VerifierSetup setup, std::string spec_yaml, std::string spec_file, std::string arch);

}  // namespace kg::verify
