// The verifier's report (docs/design.md §4, docs/verifier.md): what was checked, what was found, how fast.
//
// One VerifyReport per verification. It is stored with the kernel (cache blob, AcRecord::report_digest)
// and will feed the next LLM prompt, so every finding says what went wrong in words a kernel author
// can act on, and where (trial, shape, worst element). The JSON schema (kReportSchema) is documented
// in docs/verifier.md; fields are only ever added within one schema number.
//
// The runner (kg_verify_runner) produces Findings, TrialSummaries, TimingResult and DeviceInfo and
// sends them back in the same JSON form (runner_protocol.h), so both sides share these types.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "verify/ptxas.h"

namespace kg::verify {

// Bumped when a field changes meaning or goes away (adding fields does not bump it).
inline constexpr int kReportSchema = 2;

// Stage names, in the order they run.
inline constexpr const char* kStageStatic = "static";
inline constexpr const char* kStageCompile = "compile";
inline constexpr const char* kStageRun = "run";  // the sandboxed runner process as a whole
inline constexpr const char* kStageCorrectness = "correctness";
inline constexpr const char* kStageTiming = "timing";

// Finding kinds (docs/verifier.md explains each; the adversarial tests assert them). Their wire and
// report spelling is finding_kind_name(): "missing_entry", ...
enum class FindingKind {
  // static
  MissingEntry,      // no extern "C" kg_<name>_forward (source or .so)
  ForbiddenCall,    // stream/thread/process/file/socket creation, ...
  ForbiddenHeader,  // a header outside the allowlist
  // compile
  CompileError,        // nvcc failed
  UndefinedSymbol,  // links against more than the CUDA runtime
  ForbiddenSymbol,  // the compiled host object refers to a denied function (after all spelling tricks)
  HostInlineAsm,    // inline assembly in host code (raw system calls)
  // run (the process)
  Timeout,            // wall-clock limit: killed
  Crash,                // killed by a signal (abort, segfault, ...)
  MemoryLimit,   // resident memory over the limit: killed
  NoResult,         // exited without writing its result
  BadResult,       // result unreadable, or for another request
  LoadError,       // dlopen of the candidate failed
  CudaError,       // a CUDA error while the candidate ran
  IllegalAddress,  // cudaErrorIllegalAddress (and kin)
  ForbiddenSyscall,  // the candidate host was killed by its seccomp filter (SIGSYS)
  CandidateExited,   // the candidate host ended on its own once the candidate was loaded
  BadReply,          // the candidate host sent a malformed or out-of-order message
  // correctness
  RejectedValidArgs,  // entry returned an error
  UnwrittenOutput,  // output elements still hold the poison
  NonfiniteOutput,  // NaN/Inf where the reference is finite
  WrongOutput,          // values outside tolerance
  WrongLse,                // LSE outside tolerance / -inf mismatch
  OutOfBoundsWrite,  // guard zone or padding written
  InputModified,      // q, k, v or a tensor changed
  WrongStream,  // output complete only after a device-wide sync
  LateWrite,    // an output changed after its run was checked (after a device-wide sync or the host's exit)
  RowError,     // a row's error norm exceeds the per-row bound (quantisation on long rows)
  Nondeterministic,  // warning: two runs differ bitwise
  // timing
  BelowPhysicalFloor,  // faster than the hardware can be
  TimingMismatch,  // events and host clock disagree
};

// "missing_entry", "forbidden_call", ...
const char* finding_kind_name(FindingKind kind);
// The inverse of finding_kind_name; nullopt for any other text.
std::optional<FindingKind> parse_finding_kind(std::string_view name);


// The element with the largest error relative to its tolerance.
struct WorstElement {
  std::string tensor;  // "out" or "lse"
  int b = 0, h = 0, i = 0, d = -1;  // d = -1 for lse
  double got = 0, want = 0, abs_err = 0, allowed = 0;
};

struct Finding {
  FindingKind kind = FindingKind::Crash;
  std::string stage;    // a kStage* name
  std::string message;  // what was seen, in words (may span lines)
  std::string trial;    // trial name (runner), "" when not tied to one
  std::string shape;    // the trial's shape, "B=2 Hq=8 Hkv=2 Sq=65 Skv=63 layout=bshd lse=on ..."
  bool warning = false;  // true: reported, but does not reject the kernel
  std::optional<WorstElement> worst;
};

// One correctness trial that ran (passed or not).
struct TrialSummary {
  std::string name;
  std::string shape;
  bool ok = false;
  double max_abs_err = 0;  // out, over every element
  double worst_ratio = 0;  // max over elements of error / allowed (< 1 passes)
  double lse_max_abs_err = 0;
  double seconds = 0;  // wall time: inputs, reference, candidate, comparisons
  double row_worst_ratio = 0;  // max over rows of rms error / allowed (< 1 passes)
};

struct TimingResult {
  bool measured = false;
  std::string shape;        // timing shape
  int warmup = 0, runs = 0, input_sets = 0;
  // The judge's clock around each run it ordered (send Run to receive Done: the call and a stream
  // synchronization) less the median of null runs prepared the same way: the verdict's time.
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double event_median_ms = 0;  // the host's CUDA events around the call on its stream
  double host_median_ms = 0;   // the judge's clock, null runs not subtracted
  double roundtrip_ms = 0;     // null runs: the judge's clock around a run without the call
  double flush_bytes = 0;     // L2 flush buffer written before every run
  double flops = 0;           // 4·B·Hq·Sq·Skv·D · kept_fraction
  double kept_fraction = 0;   // unmasked (q, kv) pairs / all
  bool kept_exact = false;    // counted on the GPU over every pair (else sampled rows)
  double bytes = 0;           // q + k + v + out bytes
  double peak_tflops = 0, peak_tbps = 0;  // the rates of the GPU that ran it (peak_rates)
  double floor_ms = 0;        // max(bytes / peak_tbps, flops / peak_tflops)
  double tflops = 0;          // flops / median
};

struct DeviceInfo {
  std::string name;
  std::string arch;  // "sm_90"
  int sms = 0;
  int driver = 0, runtime = 0;
  int64_t l2_bytes = 0;
};

// The candidate host's sandbox as the judge saw it from outside (/proc/<pid>: sandbox.h).
struct HostSandboxFacts {
  bool ran = false;
  bool seccomp = false, no_new_privs = false;
  bool pid_namespace = false, network_namespace = false, mount_namespace = false;
  bool user_namespace = false;   // the namespaces were made inside a new user namespace
  bool read_only_root = false;   // the host's mount tree is read-only (but /proc)
  bool no_capabilities = false;  // CapEff and CapPrm 0
  std::string notes;           // why a namespace is not in force
  double startup_seconds = 0;  // spawn to Ready: CUDA initialisation, mapping, loading the candidate
  std::string ended;           // how the host ended ("killed by the judge", "exited with 0", ...)
  std::string output_tail;     // last lines the host (the candidate) printed
};

// What the sandbox applied to the runner process (process.h says how each works).
struct SandboxFacts {
  bool ran = false;
  std::string runner;           // executable path
  bool clean_environment = false;
  bool private_network = false;  // unshare(CLONE_NEWNET) succeeded
  std::string network_note;      // why not, when it did not apply
  double wall_limit_s = 0;
  uint64_t memory_limit_bytes = 0;
  std::string memory_limit_method;  // "rss-watchdog"
  uint64_t peak_rss_bytes = 0;
  int exit_code = -1;  // -1: killed by a signal
  int signal = 0;
  bool timed_out = false;
  double seconds = 0;
  double startup_seconds = 0;  // runner start to its first trial: CUDA initialisation, loading both objects
  std::string stderr_tail;  // last lines of the runner's stderr (its progress)
  HostSandboxFacts candidate_host;
};

// How a stage ended: "pass", "fail", "skipped" in reports.
enum class StageStatus { Pass, Fail, Skipped };
const char* stage_status_name(StageStatus status);

struct StageResult {
  std::string name;  // kStage*
  StageStatus status = StageStatus::Skipped;
  double seconds = 0;
  std::string note;    // e.g. "no CUDA device", "cached"
};

// The verifier's answer. Reports spell it verdict_name(): "pass", "rejected", "incomplete".
enum class Verdict {
  Pass,        // every stage ran and nothing rejecting was found
  Rejected,    // a rejecting finding
  Incomplete,  // static and compile passed but the kernel could not be run (no GPU)
};
const char* verdict_name(std::optional<Verdict> verdict);  // "" when unset

struct VerifyReport {
  int schema = kReportSchema;
  // Unset until the verification ends (finish() in verify.cc decides Pass or Rejected unless a
  // stage already said Incomplete).
  std::optional<Verdict> verdict;
  std::string spec_name;
  std::string spec_file;
  std::string arch;
  std::string kernel_digest;  // xxh3_128 of the source
  uint64_t seed = 0;          // repeats the runner's random choices
  std::vector<StageResult> stages;
  std::vector<Finding> findings;
  std::vector<TrialSummary> trials;
  std::optional<PtxasReport> ptxas;
  std::string compiler_output;  // trimmed (kCompilerOutputLimit)
  double compile_seconds = 0;
  bool compile_cached = false;
  TimingResult timing;
  DeviceInfo device;
  SandboxFacts sandbox;
  // Versions: kernelgen, verifier (kVerifierVersion), ABI, nvcc (`nvcc --version` last line).
  std::string kernelgen_version, verifier_version, nvcc_version;
  int abi_version = 0;
  double total_seconds = 0;

  bool passed() const { return verdict == Verdict::Pass; }
  // First rejecting finding, or nullptr.
  const Finding* first_rejection() const;
};

// At most this many bytes of compiler output are kept (head and tail, middle elided).
inline constexpr size_t kCompilerOutputLimit = 8000;
// Keeps the first and last parts of `text` within `limit` bytes, saying how much was elided.
std::string trim_output(const std::string& text, size_t limit);

void to_json(nlohmann::json& j, const WorstElement& w);
void from_json(const nlohmann::json& j, WorstElement& w);
void to_json(nlohmann::json& j, const Finding& f);
void from_json(const nlohmann::json& j, Finding& f);
void to_json(nlohmann::json& j, const TrialSummary& t);
void from_json(const nlohmann::json& j, TrialSummary& t);
void to_json(nlohmann::json& j, const TimingResult& t);
void from_json(const nlohmann::json& j, TimingResult& t);
void to_json(nlohmann::json& j, const DeviceInfo& d);
void from_json(const nlohmann::json& j, DeviceInfo& d);
void to_json(nlohmann::json& j, const SandboxFacts& s);
void to_json(nlohmann::json& j, const HostSandboxFacts& s);
void from_json(const nlohmann::json& j, HostSandboxFacts& s);
void to_json(nlohmann::json& j, const StageResult& s);
void to_json(nlohmann::json& j, const VerifyReport& r);

// The report as JSON text (2-space indent, keys sorted, trailing newline).
std::string report_json_text(const VerifyReport& r);

// A few lines for people: verdict, each rejecting finding (first lines), timing.
std::string report_summary(const VerifyReport& r);

}  // namespace kg::verify
