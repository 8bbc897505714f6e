// How a kernel is made for a spec (docs/design.md §1): one interface, whose first implementation is the
// built-in template generator (template_generator.h) and whose second will be the closed LLM loop.
// emit (emit/emit.h) asks a Generator on a cache miss and stores what it returns.
//
// A generator never throws: every failure, including one of its own bugs, comes back as a
// Failure whose message names the spec and what went wrong. That is what lets the daemon end a
// failed job as an error for its waiters without taking other jobs down.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "cache/verification.h"
#include "spec/ast.h"
#include "util/expected.h"

namespace kg::generate {

// The outcome of verifying a kernel on a GPU, as stored with its record.
struct Verification {
  cache::Verification status = cache::Verification::Unverified;
  std::string report_json;  // the verifier's report; "" when none was made
  std::string summary;      // a few lines for an error message when Failed
};

// What a generator made.
struct Kernel {
  std::string source;     // <name>.cu
  std::string header;     // <name>.h
  std::string generator;  // AcRecord::generator: the version of what made it ("tmpl-3", ...)
  // Set when the generator verified the kernel itself (the LLM loop keeps only verified
  // candidates); unset: emit verifies it (or stores it as unverified).
  std::optional<Verification> verification;
  // The closed loop's history (loop/history.h JSON), stored as a blob beside the record; "" when
  // no loop ran.
  std::string history_json;
};

// What a job gives a generator beyond the spec: the surroundings of one generation. Every field
// is optional; the template generator reads none of them.
struct Context {
  std::string spec_yaml;  // the text the spec was parsed from (the verifier's runner parses it again)
  std::string spec_file;  // for reports and messages
  // Seconds the generator may spend; < 0: its default (llm_budget); 0: the template only.
  double budget_s = -1;
  // Set by another thread to stop early; the generator then returns what it has (the best so far,
  // else the template) as soon as in-flight work allows.
  const std::atomic<bool>* cancel = nullptr;
  // Held around each GPU verification (one at a time per device: timings must not share a GPU).
  std::mutex* gpu_lock = nullptr;
  // Progress for people ("round 2: 8 candidates, 3 passed, best 0.301 ms"); may be empty.
  std::function<void(const std::string& stage, const std::string& message)> progress;
};

struct Request {
  const spec::Spec* spec = nullptr;  // checked; not null
  std::string key;                   // spec_key(*spec, arch): goes into the provenance line
  std::string arch;                  // resolved (spec::resolve_arch), e.g. "sm_90a"
  Context context;
};

class Generator {
 public:
  virtual ~Generator() = default;

  // Short name for messages and progress: "template".
  virtual const char* name() const = 0;

  // Whether this generator can make a kernel for `spec` on `arch` (resolved). Cheap and without
  // effects, so that a request can be refused at the door. Errors (Error kind): the message says
  // what is not supported and what would be, e.g. "the template kernels need sm_80 or newer
  // (found sm_75)".
  virtual Expected<void, Failure> check(const spec::Spec& spec, const std::string& arch) const = 0;

  // Makes a kernel. Errors say what failed; check() failures come back the same way.
  virtual Expected<Kernel, Failure> generate(const Request& request) = 0;
};

}  // namespace kg::generate
