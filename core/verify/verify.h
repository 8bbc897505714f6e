// The verifier (docs/design.md §4): judges a candidate kernel for a spec — static checks, nvcc, then the
// sandboxed runner (correctness against the fp32 reference kernel, timing) — and writes a report.
// docs/verifier.md describes every check, the tolerances, the report schema and the runner
// protocol.
//
//   verify::VerifyOptions opt;                  // defaults: sm_90a, default settings
//   auto report = verify::verify_kernel(spec, spec_yaml, source, opt);
//   if (!report) { /* the verifier could not work: no nvcc, no runner, unwritable work dir */ }
//   else if (report->passed()) { /* store it */ }
//   else { /* report->findings say why; feed them to the next prompt */ }
//
// A candidate can make the verifier reject it, never fail: crashes, hangs, garbage and CUDA errors
// are findings in the report. Failure is reserved for the verifier's own environment.
#pragma once

#include <cstdint>
#include <string>

#include "spec/ast.h"
#include "config/config.h"
#include "util/expected.h"
#include "verify/compiler.h"
#include "verify/report.h"
#include "verify/runner.h"

namespace kg::verify {

struct VerifyOptions {
  std::string arch = "sm_90a";  // resolved target (spec::resolve_arch)
  std::string spec_file;        // for the report only
  // Compiled objects (so/, keyed by digest: compiling the same text again is free), the ABI
  // include directory and run directories. Required (VerifierSetup::work_dir).
  std::string work_dir;
  RunnerSettings settings;
  RunLimits limits;
  uint64_t seed = 0;  // 0: a fresh random seed per verification (recorded in the report)
  bool run = true;    // false: static checks and compilation only (verdict "incomplete" if they pass)
  // Tests of the run-time defences only (kg_verify_expect --skip-source-checks): no static check
  // of the source or the compiled object, so that a candidate the static check would stop reaches
  // the sandbox. Never set by kernelgen itself.
  bool skip_source_checks = false;
};

// The verifier's tools and surroundings, taken from the configuration: no part of the verifier
// reads the environment itself.
struct VerifierSetup {
  std::string nvcc;              // the nvcc setting, else find_nvcc(env); "" when there is none
  std::string runner;            // the runner setting, else locate_runner()
  std::string work_dir;          // the verify_dir setting, else <cache_dir>/verify
  bool private_network = true;   // false with verify_no_netns
  config::Environment env;       // what child processes draw on (PATH, CUDA_VISIBLE_DEVICES, ...)
};
VerifierSetup verifier_setup(const config::Config& config);

class Verifier {
 public:
  // Borrows `compiler` and `runner` for its lifetime.
  Verifier(Compiler& compiler, Runner& runner, VerifyOptions options);

  // Verifies `source` (a complete .cu) for `spec`, which was parsed from `spec_yaml` (the runner
  // parses the text again in its own process). Returns the report, whatever the candidate does.
  // Errors: the work directory cannot be written; the compiler cannot be run; the reference kernel
  // does not compile (a kernelgen bug); the runner cannot be started.
  Expected<VerifyReport, Failure> verify(const spec::Spec& spec, const std::string& spec_yaml,
                                         const std::string& source);

  // Compiles `source` (or finds it compiled) into <work_dir>/so/<digest>.so, with the host checks
  // (host_check.h) between the object and the link. Sets `result` to the compiler's result
  // (output is the log of the compile that made the file; findings, the host checks' refusals;
  // object_digest, the XXH3-128 of the .so's bytes; note, "cached" or why a cached object was
  // recompiled) and `cached`. A cached object is used only when its bytes match the digest
  // written beside it (<digest>.so.xxh3); otherwise it is removed and compiled again.
  // Errors: as for verify(); the so/ directory is not ours or is writable by group or others.
  Expected<std::string, Failure> compile_cached(const std::string& source, CompileResult& result, bool& cached);

  const VerifyOptions& options() const { return m_options; }

 private:
  Compiler& m_compiler;
  Runner& m_runner;
  VerifyOptions m_options;
};

// verify with NvccCompiler and SandboxRunner as `setup` says; options.work_dir "" means
// setup.work_dir, and options.limits.private_network is cleared when setup says so.
Expected<VerifyReport, Failure> verify_kernel(const spec::Spec& spec, const std::string& spec_yaml,
                                              const std::string& source, const VerifyOptions& options,
                                              const VerifierSetup& setup);

}  // namespace kg::verify
