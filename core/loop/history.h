// What one run of the closed loop did (docs/design.md §5): every round's prompt, every
// candidate's answer, verdict and timings, the template baseline and the best kernel. Stored as a
// CAS blob with the result (AcRecord::history_digest) for audit and for `kernelgen report`.
//
// Times are seconds since the loop started. The JSON schema (kHistorySchema) only gains fields
// within one number.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.h"

namespace kg::loop {

inline constexpr int kHistorySchema = 1;

// How a candidate ended. Spelled outcome_name(): "pass", "rejected", ...
enum class Outcome {
  Pass,          // verified on the GPU
  Rejected,      // the verifier rejected it (static, compile, run, correctness or timing finding)
  CompileError,  // static checks or nvcc refused it (a Rejected found before the GPU)
  NoCode,        // the answer had no usable .cu (no block, mixed languages, no entry)
  LlmError,      // the model call failed (HTTP error, timeout, stall, truncated or garbage answer)
  Compiled,      // --no-run: static checks and nvcc passed; nothing ran
  Cancelled,     // the budget ended or the job was cancelled before it finished
};
const char* outcome_name(Outcome outcome);
// Inverse of outcome_name: false for any other text (out unchanged).
bool parse_outcome(std::string_view name, Outcome& out);

struct Candidate {
  int round = 0;   // 1-based
  int sample = 0;  // 0-based within the round
  Outcome outcome = Outcome::Cancelled;
  std::string detail;       // one line: the first finding, the parse error, the HTTP error
  double start_s = 0;       // the model call began
  double answered_s = 0;    // the model's answer arrived (or its call failed)
  double end_s = 0;         // the verdict was known
  double model_s = 0;       // time in the model call, retries included
  double compile_s = 0;     // static checks and nvcc (0 when it never got there)
  double compile_wait_s = 0;  // waiting for a compile slot
  double verify_s = 0;      // on the GPU
  double verify_wait_s = 0;   // waiting for the GPU
  int attempts = 0;         // HTTP requests made for it
  int64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  std::string answer;       // the answer's content (reasoning removed), trimmed to kMaxStoredText
  std::string reasoning;    // the reasoning, trimmed to kMaxStoredText
  std::string source;       // the .cu taken from the answer ("" when none)
  std::string report_json;  // the verifier's report ("" when it never reached the verifier)
  double time_ms = 0;       // median time when it passed, else 0
  double tflops = 0;        // achieved, when it passed
  double fraction_of_peak = 0;  // max(tflops/peak_tflops, bandwidth/peak_tbps), when it passed
};

struct Round {
  int index = 0;              // 1-based
  std::string prompt_system;  // the messages sent (every sample of a round gets the same)
  std::string prompt_user;
  double start_s = 0, end_s = 0;
  // Wall time split (sums over the round's samples of each part; they overlap in wall time).
  double model_s = 0, compile_s = 0, verify_s = 0;
  int candidates = 0, passed = 0;
  double best_ms_after = 0;  // the best kernel's time when the round ended (the template's when none)
};

struct History {
  int schema = kHistorySchema;
  std::string spec_name, key, arch;
  std::string endpoint;        // Endpoint::describe(): URL and model, never the key
  std::string model;
  std::string prompt_version;  // loop/prompt.h kPromptVersion
  double temperature = 0;
  int samples = 0;             // per round
  double budget_s = 0;
  int max_rounds = 0, patience = 0;
  bool run = true;             // false: --no-run (static and compile checks only)
  std::string gpu;             // the device the verifier ran on ("" without one)
  double peak_tflops = 0, peak_tbps = 0;  // that device's rates
  double floor_ms = 0;         // the physical floor at the timing shape
  double template_ms = 0;      // the template kernel at the timing shape (0 when not measured)
  std::string template_report_json;
  std::vector<Round> rounds;
  std::vector<Candidate> candidates;
  int best = -1;               // index into candidates of the kernel kept; -1: the template
  double best_ms = 0;
  double speedup = 1;          // template_ms / best_ms (1 when the template stands)
  std::string stop_reason;     // "budget", "rounds", "patience", "cancelled", "error: ..."
  double total_s = 0;
};

// Longest answer or reasoning text kept per candidate (head and tail, the middle elided).
inline constexpr size_t kMaxStoredText = 256 * 1024;

// JSON text (2-space indent, sorted keys, trailing newline).
std::string history_json(const History& history);
// Parses history_json's output. Errors say which field is missing or has the wrong type; a
// schema other than kHistorySchema is refused.
Expected<History, Failure> parse_history(std::string_view text);

}  // namespace kg::loop
