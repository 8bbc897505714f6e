// The closed loop (docs/design.md §5): the second implementation of generate::Generator.
//
//   template kernel ─► verify (baseline) ─► round 1: prompt ─► N samples in parallel
//        each sample: model call ─► parse ─► compile (bounded by cores) ─► verify (one GPU at a time)
//   best so far ─► round 2 prompt (best kernel + its report + the failures' findings) ─► ...
//   stop on budget, round cap, patience or cancellation; the best verified kernel wins, the
//   template when nothing beat it.
//
// Everything the loop depends on sits behind a seam: the model (llm::Endpoint), the compile and
// verification (Judge), the clock (Clock). Tests drive the loop with fakes of all three
// (loop_test.cc); kernelgen runs it with CurlEndpoint and VerifierJudge (judge.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "generate/generator.h"
#include "llm/endpoint.h"
#include "loop/history.h"
#include "verify/report.h"

namespace kg::loop {

// Compiles and verifies candidates of one spec.
class Judge {
 public:
  virtual ~Judge() = default;
  // Static checks and nvcc only: verdict Incomplete when they pass, Rejected otherwise.
  // Thread-safe (the loop compiles several candidates at once). Errors: the verifier could not
  // work (no nvcc, unwritable work directory); the candidate is then not judged.
  virtual Expected<verify::VerifyReport, Failure> compile(const std::string& source) = 0;
  // The full verification on the GPU (the loop calls it one at a time, holding the GPU lock).
  // Errors as compile().
  virtual Expected<verify::VerifyReport, Failure> verify(const std::string& source) = 0;
};

// Makes the judge for one generation (the spec, its YAML and the arch are in the request).
using JudgeFactory = std::function<Expected<std::unique_ptr<Judge>, Failure>(const generate::Request&)>;

// Seconds on a monotonic clock; sleeps are never needed by the loop itself.
using Clock = std::function<double()>;
Clock steady_clock();

struct LoopOptions {
  int samples = 8;             // candidates per round
  double budget_s = 900;       // default budget (Context::budget_s < 0)
  int max_rounds = 0;          // 0: no cap
  int patience = 4;            // rounds without a faster kernel before stopping (0: no limit)
  int compile_jobs = 2;        // compiles at once (per job)
  double temperature = 0.6;
  int64_t max_tokens = 0;
  bool run = true;             // false: static and compile checks only (--no-run)
  // A candidate must be this much faster than the best to replace it (timing noise is ~1-2 %).
  double min_improvement = 0.03;
  // Bounds model calls across every loop sharing it (the daemon's llm_jobs); null: no bound.
  std::shared_ptr<class CallLimiter> limiter;
};

// A counting bound on concurrent model calls, shared by the jobs of one daemon.
class CallLimiter {
 public:
  explicit CallLimiter(int limit) : m_free(limit) {}
  // Waits for a free call; false when `cancel` was set first (checked every 50 ms).
  bool acquire(const std::atomic<bool>* cancel);
  void release();
  int in_use() const;

 private:
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  int m_free;
  int m_used = 0;
};

class LoopGenerator final : public generate::Generator {
 public:
  // `fallback` (usually the TemplateGenerator) makes the starting kernel and stands when no
  // candidate beats it. `endpoint` is shared by the loop's threads.
  LoopGenerator(std::shared_ptr<llm::Endpoint> endpoint, JudgeFactory judges,
                std::shared_ptr<generate::Generator> fallback, LoopOptions options, Clock clock = steady_clock());

  const char* name() const override { return "llm"; }
  // The fallback's check: the loop starts from its kernel.
  Expected<void, Failure> check(const spec::Spec& spec, const std::string& arch) const override;
  // Runs the loop. Returns the best verified kernel with its verification and history; the
  // template (with the history saying why) when no candidate beat it, when the model or the
  // loop failed, or when the budget is 0. Errors: only the fallback's own failure.
  Expected<generate::Kernel, Failure> generate(const generate::Request& request) override;

  // The record's generator name for a kernel the loop wrote: "llm:<model>:<prompt version>".
  std::string version() const;

 private:
  std::shared_ptr<llm::Endpoint> m_endpoint;
  JudgeFactory m_judges;
  std::shared_ptr<generate::Generator> m_fallback;
  LoopOptions m_options;
  Clock m_clock;
};

}  // namespace kg::loop
