// Running kg_verify_runner: the Runner interface (tests substitute stand-ins) and SandboxRunner,
// which starts the real runner under process.h's sandbox with the protocol of runner_protocol.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/expected.h"
#include "verify/process.h"
#include "verify/runner_protocol.h"

namespace kg::verify {

struct RunLimits {
  double wall_limit_s = 60;
  uint64_t memory_limit_bytes = uint64_t{16} << 30;
  bool private_network = true;
  bool keep_dir = false;  // keep the run directory (request.json, result.json) for inspection
};

// What one runner process did.
struct RunOutcome {
  ProcessResult process;
  std::optional<RunnerResult> result;  // set when the runner exited 0 with a valid result
  std::string result_error;            // why `result` is unset although the runner exited 0
  std::string dir;                     // the run directory ("" once removed)
  bool no_device() const { return process.exit_code == kRunnerExitNoDevice && process.signal == 0; }
};

class Runner {
 public:
  virtual ~Runner() = default;
  // Runs `request` in a fresh directory. Failure only when the runner cannot be started at all
  // (missing executable, work directory unwritable); anything the process does is an outcome.
  virtual Expected<RunOutcome, Failure> run(const RunnerRequest& request, const RunLimits& limits) = 0;
  // True when a CUDA device is usable (`kg_verify_runner --probe` exits 0); false on exit 77.
  // Failure: the runner cannot be started, or the probe crashed / printed garbage.
  virtual Expected<bool, Failure> probe(const RunLimits& limits) = 0;
};

class SandboxRunner : public Runner {
 public:
  // `runner`: the executable (locate_runner() when ""); `work_dir`: run directories go in
  // <work_dir>/run/ (created); `env`: what the runner's environment draws on
  // (runner_environment).
  SandboxRunner(std::string runner, std::string work_dir, config::Environment env);
  Expected<RunOutcome, Failure> run(const RunnerRequest& request, const RunLimits& limits) override;
  Expected<bool, Failure> probe(const RunLimits& limits) override;
  const std::string& path() const { return m_runner; }

 private:
  std::string m_runner;
  std::string m_work_dir;
  config::Environment m_env;
};

// kg_verify_runner in the directory of the running executable (/proc/self/exe), which is where
// the build and the install put it. (The `runner` setting, KERNELGEN_RUNNER, overrides it.)
std::string locate_runner();

// The runner's environment, built from scratch: PATH, LD_LIBRARY_PATH, CUDA_VISIBLE_DEVICES,
// CUDA_DEVICE_ORDER and NVIDIA_* from `env` when set there; HOME, TMPDIR = `dir`. Nothing else
// (in particular not CUDA_LAUNCH_BLOCKING, which would hide stream misuse, nor LD_PRELOAD).
std::vector<std::string> runner_environment(const std::string& dir, const config::Environment& env);

// Findings for a process that did not produce a usable result (signal, timeout, memory, exit
// status, missing or bad result), stage "run"; empty when `o.result` is set or on no_device().
// The message names the trial the runner last announced on stderr and quotes its last lines.
std::vector<Finding> outcome_findings(const RunOutcome& o, const RunLimits& limits);

// A random 128-bit nonce as 32 hex digits (from /dev/urandom).
std::string random_nonce();

}  // namespace kg::verify
