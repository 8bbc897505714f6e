#include "verify/emit_gate.h"

#include <unistd.h>

#include <cstdlib>

#include "util/log.h"
#include "verify/verify.h"

namespace kg::verify {

emit::VerifyFn emit_verifier(VerifierSetup setup, std::string spec_yaml, std::string spec_file, std::string arch) {
  return [setup = std::move(setup), spec_yaml = std::move(spec_yaml), spec_file = std::move(spec_file),
          arch = std::move(arch)](
             const spec::Spec& spec, const std::string& source) -> Expected<emit::Verification, Failure> {
    VerifyOptions vo;
    vo.arch = arch;
    vo.spec_file = spec_file;
    vo.work_dir = setup.work_dir;
    vo.limits.private_network = setup.private_network;
    SandboxRunner runner(setup.runner, vo.work_dir, setup.env);
    if (::access(runner.path().c_str(), X_OK) != 0) {
      KG_LOG_DEBUG(spec.name << ": no verifier runner at " << runner.path() << "; cached as unverified");
      return emit::Verification{};
    }
    auto gpu = runner.probe(vo.limits);
    if (!gpu) {
      KG_LOG_WARN(spec.name << ": not verified: " << gpu.error().message);
      return emit::Verification{};
    }
    if (!*gpu) {
      KG_LOG_DEBUG(spec.name << ": no CUDA device; cached as unverified");
      return emit::Verification{};
    }
    NvccCompiler compiler(setup.nvcc, setup.env);
    if (compiler.path().empty()) {
      KG_LOG_WARN(spec.name << ": not verified: nvcc not found (set KERNELGEN_NVCC or put nvcc on PATH)");
      return emit::Verification{};
    }
    Verifier verifier(compiler, runner, vo);
    auto report = verifier.verify(spec, spec_yaml, source);
    if (!report) {
      return unexpected(report.error());
    }
    report->sandbox.runner = runner.path();
    using cache::Verification;
    const Verification status = report->passed()                  ? Verification::Verified
                                : report->verdict == Verdict::Incomplete ? Verification::Unverified
                                                                  : Verification::Failed;
    KG_LOG_INFO(spec.name << ": verification " << verdict_name(report->verdict) << " in " << report->total_seconds << " s");
    return emit::Verification{status, status == Verification::Unverified ? "" : report_json_text(*report),
                              report_summary(*report)};
  };
}

}  // namespace kg::verify
