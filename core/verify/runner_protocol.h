// The protocol between the verifier and kg_verify_runner (docs/verifier.md, "Runner protocol").
//
// The verifier makes a fresh directory, writes request.json there and starts
//   kg_verify_runner --request request.json --result result.json
// in it (sandboxed: process.h). The runner loads both shared objects, runs every trial and the
// timing, and writes result.json (atomically: temp file + rename) as its last act, then exits 0.
//   exit 0 + valid result with the request's nonce   the result counts
//   exit 77                                          no CUDA device: nothing was run
//   exit 2                                           the request is malformed (a verifier bug)
//   anything else (signal, other status, no result, unparsable result, wrong nonce)
//                                                    a finding against the candidate: its code runs
//                                                    inside the runner
// The result travels in a file rather than on stdout because the candidate shares the process and
// may print; stdout/stderr are kept only as context (the runner prints one progress line per trial
// on stderr, so a crash or hang names the trial it happened in).
//
//   kg_verify_runner --probe   prints {"device": {...}} and exits 0 with a CUDA device, 77 without.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/expected.h"
#include "verify/report.h"

namespace kg::verify {

inline constexpr int kRunnerProtocol = 2;
inline constexpr int kRunnerExitNoDevice = 77;
inline constexpr int kRunnerExitBadRequest = 2;

// What the runner does; defaults are the "default settings" the ≤ 3 s target refers to.
struct RunnerSettings {
  bool timing = true;
  int warmup = 3;
  int runs = 20;        // timed runs (events), >= 20 for a verdict; as many host-timed runs after
  int input_sets = 3;   // rotating input sets (each its own q/k/v buffers and reference output)
  // Timing shape: q, k, v [batch, heads, seqlen, head_dim], MHA, contiguous, LSE on.
  int timing_batch = 2, timing_heads = 16, timing_seqlen = 4096;
  int long_seqlen = 8192;  // the long-sequence trial (Sq = Skv; catches half-precision accumulation)
  // Peak rates for the physical floor; 0: those of the GPU that runs it (the judge's peak_rates).
  double peak_tflops = 0;
  double peak_tbps = 0;
  double host_reply_timeout_s = 20;  // the judge's limit on each answer of the candidate host
  bool trap_syscalls = false;  // diagnosis: a denied system call is printed (SandboxPolicy)
};

struct RunnerRequest {
  int protocol = kRunnerProtocol;
  std::string nonce;  // echoed in the result; a result without it is rejected
  std::string spec_name;
  std::string spec_yaml;  // the spec file's text (the runner parses and checks it)
  std::string candidate_library, candidate_symbol;  // absolute path of the .so, entry symbol
  std::string reference_library, reference_symbol;
  // XXH3-128 (32 hex) of each object's bytes as the verifier compiled them; the judge loads an
  // object only from bytes it read and checked against this ("" : unchecked, tests only).
  std::string candidate_digest, reference_digest;
  uint64_t seed = 0;  // every random choice of the runner (inputs, the random shape) follows from it
  RunnerSettings settings;
};

struct RunnerResult {
  int protocol = kRunnerProtocol;
  std::string nonce;
  DeviceInfo device;
  std::vector<TrialSummary> trials;
  std::vector<Finding> findings;
  TimingResult timing;
  HostSandboxFacts host;  // the candidate host as the judge saw it
  // Wall time of the runner's parts: start to the first trial (CUDA initialisation, loading both
  // objects), the correctness trials, the timing stage.
  double startup_seconds = 0, correctness_seconds = 0, timing_seconds = 0;
};

std::string request_to_json(const RunnerRequest& r);
// Errors: not JSON, missing fields, protocol != kRunnerProtocol.
Expected<RunnerRequest, Failure> parse_request(const std::string& text);

std::string result_to_json(const RunnerResult& r);
// Errors (each becomes a bad_result finding): not JSON, missing fields, protocol or nonce mismatch,
// a finding without a kind.
Expected<RunnerResult, Failure> parse_result(const std::string& text, const std::string& expected_nonce);

}  // namespace kg::verify
