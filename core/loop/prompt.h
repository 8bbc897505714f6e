// The loop's prompts (docs/design.md §5): versioned templates in core/loop/prompts/, filled with
// the spec's math as the Python function it corresponds to, the ABI, the target GPU, the best
// kernel so far with its report, and the last failures' findings.
//
// A pure function of its input: no clock, no paths, no environment, so that a prompt is
// reproducible from the history that stored it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "llm/endpoint.h"
#include "loop/history.h"
#include "spec/ast.h"
#include "verify/report.h"
#include "version.h"

namespace kg::loop {

// Bumped whenever a template under core/loop/prompts/ or what build_prompt puts in changes; part
// of every cache key (spec/key.cc), as the generator version is. Defined in version.h.
using ::kg::kPromptVersion;

// One earlier candidate the next prompt reports on.
struct Attempt {
  Outcome outcome = Outcome::Rejected;
  std::string detail;                    // the parse or model error when there is no report
  std::string source;                    // its .cu ("" when none)
  std::optional<verify::VerifyReport> report;  // set when it reached the verifier
};

struct PromptInput {
  const spec::Spec* spec = nullptr;  // checked; not null
  std::string arch;                  // "sm_90a"
  std::string gpu_name;              // "NVIDIA H100 80GB HBM3"; "" when unknown (--no-run)
  double peak_tflops = 0, peak_tbps = 0;  // the GPU's rates (0 when unknown)
  // The best verified kernel so far: the template kernel until a candidate beats it.
  std::string best_source;
  std::optional<verify::VerifyReport> best_report;  // unset when it was not run (--no-run)
  bool best_is_template = true;
  double template_ms = 0;  // 0 when not measured
  int round = 1;           // the round this prompt opens (1-based)
  std::vector<Attempt> failures;  // the last round's candidates that did not pass (at most a few)
  std::vector<Attempt> slower;    // the last round's correct candidates that did not beat the best
};

// Bounds on what one prompt quotes, so that a hostile report or answer cannot blow it up: at most
// kPromptMaxFailures failures and kPromptMaxSlower slower candidates are described (the rest are
// counted), each in at most kPromptMaxAttemptBytes; compiler errors are cut to their error lines
// (kPromptMaxCompileErrorBytes); the best kernel's source to kMaxSourceBytes (loop/answer.h).
inline constexpr size_t kPromptMaxFailures = 4;
inline constexpr size_t kPromptMaxSlower = 2;
inline constexpr size_t kPromptMaxAttemptBytes = 3000;
inline constexpr size_t kPromptMaxCompileErrorBytes = 1500;

// The system and user messages for a round, in that order (roles "system" and "user"), both valid
// UTF-8 (text quoted from reports and sources has its non-printable bytes escaped). Throws
// nothing; an input it cannot describe fully (no report, unknown GPU, a null spec) is said so in
// words in the prompt.
std::vector<llm::Message> build_prompt(const PromptInput& input);

// The entry point a candidate must export: kg_<spec name>_forward.
std::string entry_name(const spec::Spec& spec);

}  // namespace kg::loop
