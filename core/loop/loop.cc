#include "loop/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "codegen/codegen.h"
#include "loop/answer.h"
#include "loop/prompt.h"
#include "util/log.h"
#include "version.h"

namespace kg::loop {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Most candidates per round: a sample is a thread and a model call.
constexpr int kMaxSamples = 64;
// Rounds in a row in which every model call failed before the loop gives up on the endpoint.
constexpr int kDeadEndpointRounds = 2;
// How many of the last round's failures and slower kernels the next prompt reports.
constexpr size_t kPromptFailures = 4;
constexpr size_t kPromptSlower = 2;

std::string trim_text(const std::string& text) {
  return verify::trim_output(text, kMaxStoredText);
}

std::string first_line(const std::string& text, size_t limit = 300) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > limit) {
    line = line.substr(0, limit) + "...";
  }
  return line;
}

// The first rejecting finding as one line: "wrong_output: out differs at b=0 h=1 i=7 ...".
std::string rejection_line(const verify::VerifyReport& r) {
  if (const verify::Finding* f = r.first_rejection()) {
    return std::string(verify::finding_kind_name(f->kind)) + ": " + first_line(f->message);
  }
  return verify::verdict_name(r.verdict);
}

std::string ms_text(double ms) {
  std::ostringstream os;
  os.precision(3);
  os << std::fixed << ms << " ms";
  return os.str();
}

// What the GPU allows at the timing shape, as a fraction: the larger of compute and bandwidth use.
double fraction_of_peak(const verify::TimingResult& t) {
  if (!t.measured || t.median_ms <= 0) {
    return 0;
  }
  double f = 0;
  if (t.peak_tflops > 0) {
    f = std::max(f, t.flops / (t.median_ms * 1e-3) / 1e12 / t.peak_tflops);
  }
  if (t.peak_tbps > 0) {
    f = std::max(f, t.bytes / (t.median_ms * 1e-3) / 1e12 / t.peak_tbps);
  }
  return f;
}

// One sample's work and what it found; the round's threads fill one each.
struct Sample {
  Candidate record;
  std::optional<verify::VerifyReport> report;
};

}  // namespace

Clock steady_clock() {
  const auto t0 = std::chrono::steady_clock::now();
  return [t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
}

bool CallLimiter::acquire(const std::atomic<bool>* cancel) {
  std::unique_lock lock(m_mutex);
  while (m_free <= 0) {
    if (cancel != nullptr && cancel->load()) {
      return false;
    }
    m_changed.wait_for(lock, std::chrono::milliseconds(50));
  }
  if (cancel != nullptr && cancel->load()) {
    return false;
  }
  --m_free;
  ++m_used;
  return true;
}

void CallLimiter::release() {
  {
    std::lock_guard lock(m_mutex);
    ++m_free;
    --m_used;
  }
  m_changed.notify_one();
}

int CallLimiter::in_use() const {
  std::lock_guard lock(m_mutex);
  return m_used;
}

LoopGenerator::LoopGenerator(std::shared_ptr<llm::Endpoint> endpoint, JudgeFactory judges,
                             std::shared_ptr<generate::Generator> fallback, LoopOptions options, Clock clock)
    : m_endpoint(std::move(endpoint)),
      m_judges(std::move(judges)),
      m_fallback(std::move(fallback)),
      m_options(std::move(options)),
      m_clock(std::move(clock)) {
  m_options.samples = std::clamp(m_options.samples, 1, kMaxSamples);
  m_options.compile_jobs = std::max(1, m_options.compile_jobs);
}

Expected<void, Failure> LoopGenerator::check(const spec::Spec& spec, const std::string& arch) const {
  return m_fallback->check(spec, arch);
}

std::string LoopGenerator::version() const {
  return "llm:" + m_endpoint->model() + ":" + kPromptVersion;
}

Expected<generate::Kernel, Failure> LoopGenerator::generate(const generate::Request& request) {
  const generate::Context& ctx = request.context;
  const spec::Spec& spec = *request.spec;
  auto progress = [&](const std::string& stage, const std::string& message) {
    KG_LOG_INFO(spec.name << ": " << message);
    if (ctx.progress) {
      ctx.progress(stage, message);
    }
  };
  auto base = m_fallback->generate(request);
  if (!base) {
    return base;
  }
  const double budget = ctx.budget_s < 0 ? m_options.budget_s : ctx.budget_s;
  if (budget <= 0) {
    return base;  // BUDGET 0: the template only, verified by emit as always
  }
  // A candidate is verified on one GPU, so on one family only: for a set spanning both families a
  // candidate could trap on the other one's architectures. The template (one kernel per family)
  // stands.
  if (codegen::template_families(request.arch).size() > 1) {
    progress("loop", "the architecture set " + request.arch +
                         " spans both kernel families and a candidate would be verified on one of them only; "
                         "the template kernel stands");
    return base;
  }

  const double t0 = m_clock();
  auto now = [&] { return m_clock() - t0; };
  History h;
  h.spec_name = spec.name;
  h.key = request.key;
  h.arch = request.arch;
  h.endpoint = m_endpoint->describe();
  h.model = m_endpoint->model();
  h.prompt_version = kPromptVersion;
  h.temperature = m_options.temperature;
  h.samples = m_options.samples;
  h.budget_s = budget;
  h.max_rounds = m_options.max_rounds;
  h.patience = m_options.patience;
  h.run = m_options.run;

  // Whatever goes wrong in the loop's own machinery, the template stands (emit verifies it).
  auto template_stands = [&](const std::string& why) -> Expected<generate::Kernel, Failure> {
    h.stop_reason = "error: " + why;
    h.total_s = now();
    progress("loop", "the loop stopped (" + why + "); the template kernel stands");
    generate::Kernel k = *base;
    k.history_json = history_json(h);
    return k;
  };

  auto judge_made = m_judges(request);
  if (!judge_made) {
    return template_stands("cannot set up the verifier: " + judge_made.error().message);
  }
  Judge& judge = **judge_made;
  std::mutex local_gpu;
  std::mutex& gpu = ctx.gpu_lock != nullptr ? *ctx.gpu_lock : local_gpu;

  // ---- the baseline: the template kernel ----
  std::string best_source = base->source;
  std::optional<verify::VerifyReport> best_report;
  double best_ms = kInf;
  int best_index = -1;
  std::optional<generate::Verification> template_verification;
  // Without a GPU run (--no-run) there is no baseline to measure: the template is the best kernel,
  // untimed, and the candidates are only compiled.
  if (m_options.run) {
    progress("baseline", "verifying the template kernel (the loop's baseline)");
    Expected<verify::VerifyReport, Failure> r = [&] {
      std::lock_guard lock(gpu);
      return judge.verify(base->source);
    }();
    if (!r) {
      return template_stands("the verifier could not work on the template kernel: " + r.error().message);
    }
    h.template_report_json = verify::report_json_text(*r);
    {
      generate::Verification v;
      v.report_json = h.template_report_json;
      v.summary = verify::report_summary(*r);
      v.status = r->passed() ? cache::Verification::Verified
                 : r->verdict == verify::Verdict::Incomplete ? cache::Verification::Unverified
                                                             : cache::Verification::Failed;
      template_verification = v;
      if (r->passed() && r->timing.measured) {
        best_ms = r->timing.median_ms;
        h.template_ms = best_ms;
      }
      h.gpu = r->device.name;
      h.peak_tflops = r->timing.peak_tflops;
      h.peak_tbps = r->timing.peak_tbps;
      h.floor_ms = r->timing.floor_ms;
      if (r->verdict == verify::Verdict::Incomplete) {
        return template_stands("no CUDA device to verify on (kernelgen generate --no-run checks prompts and "
                               "compiles without one)");
      }
      if (r->passed()) {
        best_report = *r;
      }
    }
    progress("baseline", h.template_ms > 0 ? "template kernel: " + ms_text(h.template_ms)
                                           : "template kernel: " + rejection_line(*r));
  }

  // ---- rounds ----
  std::vector<Attempt> last_failures, last_slower;
  int rounds_without_gain = 0, dead_rounds = 0;
  CallLimiter compile_slots(m_options.compile_jobs);
  for (int round = 1;; ++round) {
    if (ctx.cancel != nullptr && ctx.cancel->load()) {
      h.stop_reason = "cancelled";
      break;
    }
    if (now() >= budget) {
      h.stop_reason = "budget";
      break;
    }
    if (m_options.max_rounds > 0 && round > m_options.max_rounds) {
      h.stop_reason = "rounds";
      break;
    }
    if (m_options.patience > 0 && rounds_without_gain >= m_options.patience) {
      h.stop_reason = "patience";
      break;
    }
    if (dead_rounds >= kDeadEndpointRounds) {
      const std::string why = h.candidates.empty() ? std::string("?") : h.candidates.back().detail;
      h.stop_reason = "error: every model call of " + std::to_string(kDeadEndpointRounds) +
                      " rounds failed (last: " + why + ")";
      break;
    }

    PromptInput in;
    in.spec = &spec;
    in.arch = request.arch;
    in.gpu_name = h.gpu;
    in.peak_tflops = h.peak_tflops;
    in.peak_tbps = h.peak_tbps;
    in.best_source = best_source;
    in.best_report = best_report;
    in.best_is_template = best_index < 0;
    in.template_ms = h.template_ms;
    in.round = round;
    in.failures = last_failures;
    in.slower = last_slower;
    const std::vector<llm::Message> messages = build_prompt(in);
    llm::ChatRequest chat;
    chat.messages = messages;
    chat.temperature = m_options.temperature;
    chat.max_tokens = m_options.max_tokens;
    Round rec;
    rec.index = round;
    for (const llm::Message& m : messages) {
      (m.role == "system" ? rec.prompt_system : rec.prompt_user) += m.content;
    }
    rec.start_s = now();
    progress("round", "round " + std::to_string(round) + ": asking " + m_endpoint->describe() + " for " +
                          std::to_string(m_options.samples) + " candidates");

    // Stops this round's calls and compiles when the budget ends or the job is cancelled.
    std::atomic<bool> stop{false};
    const std::string entry = entry_name(spec);
    std::vector<Sample> samples(m_options.samples);
    std::atomic<int> running{m_options.samples};
    std::mutex done_mutex;
    std::condition_variable done_cv;
    auto run_sample = [&](int index) {
      Sample& s = samples[index];
      Candidate& c = s.record;
      c.round = round;
      c.sample = index;
      c.start_s = now();
      auto finish = [&](Outcome outcome, std::string detail) {
        c.outcome = outcome;
        c.detail = std::move(detail);
        c.end_s = now();
      };
      bool held = false;
      if (m_options.limiter && !(held = m_options.limiter->acquire(&stop))) {
        c.answered_s = now();
        finish(Outcome::Cancelled, "the budget ended before a model call was free");
        return;
      }
      auto answer = m_endpoint->chat(chat, &stop);
      if (held) {
        m_options.limiter->release();
      }
      c.answered_s = now();
      c.model_s = c.answered_s - c.start_s;
      if (!answer) {
        finish(stop.load() ? Outcome::Cancelled : Outcome::LlmError, first_line(answer.error().message, 500));
        return;
      }
      c.attempts = answer->attempts;
      c.prompt_tokens = answer->usage.prompt_tokens;
      c.completion_tokens = answer->usage.completion_tokens;
      c.reasoning_tokens = answer->usage.reasoning_tokens;
      c.answer = trim_text(answer->content);
      c.reasoning = trim_text(answer->reasoning);
      auto parsed = parse_answer(answer->content, entry);
      if (!parsed) {
        finish(Outcome::NoCode, first_line(parsed.error().message, 500));
        return;
      }
      c.source = parsed->source;
      const double wait0 = now();
      if (!compile_slots.acquire(&stop)) {
        finish(Outcome::Cancelled, "the budget ended before the candidate was compiled");
        return;
      }
      const double c0 = now();
      c.compile_wait_s = c0 - wait0;
      auto compiled = judge.compile(c.source);
      compile_slots.release();
      c.compile_s = now() - c0;
      if (!compiled) {
        finish(Outcome::LlmError, "the verifier could not compile: " + first_line(compiled.error().message));
        return;
      }
      if (compiled->verdict == verify::Verdict::Rejected) {
        c.report_json = verify::report_json_text(*compiled);
        s.report = *compiled;
        finish(Outcome::CompileError, rejection_line(*compiled));
        return;
      }
      if (!m_options.run) {
        c.report_json = verify::report_json_text(*compiled);
        s.report = *compiled;
        finish(Outcome::Compiled, "static checks and nvcc passed (not run: --no-run)");
        return;
      }
      if (stop.load()) {
        finish(Outcome::Cancelled, "the budget ended before the candidate reached the GPU");
        return;
      }
      const double v0 = now();
      Expected<verify::VerifyReport, Failure> verified = [&] {
        std::lock_guard lock(gpu);
        c.verify_wait_s = now() - v0;
        const double v1 = now();
        auto r = judge.verify(c.source);
        c.verify_s = now() - v1;
        return r;
      }();
      if (!verified) {
        finish(Outcome::LlmError, "the verifier could not work: " + first_line(verified.error().message));
        return;
      }
      c.report_json = verify::report_json_text(*verified);
      s.report = *verified;
      if (!verified->passed()) {
        finish(Outcome::Rejected, rejection_line(*verified));
        return;
      }
      c.time_ms = verified->timing.median_ms;
      c.tflops = verified->timing.tflops;
      c.fraction_of_peak = fraction_of_peak(verified->timing);
      finish(Outcome::Pass, "correct, " + ms_text(c.time_ms));
    };

    std::vector<std::thread> threads;
    threads.reserve(samples.size());
    for (int i = 0; i < m_options.samples; ++i) {
      threads.emplace_back([&, i] {
        try {
          run_sample(i);
        } catch (const std::exception& e) {
          samples[i].record.outcome = Outcome::LlmError;
          samples[i].record.detail = std::string("internal error: ") + e.what();
        }
        {
          std::lock_guard lock(done_mutex);
          --running;
        }
        done_cv.notify_all();
      });
    }
    // Watch the budget and the job's cancellation while the samples run.
    {
      std::unique_lock lock(done_mutex);
      while (running.load() > 0) {
        done_cv.wait_for(lock, std::chrono::milliseconds(50));
        if (!stop.load() && (now() >= budget || (ctx.cancel != nullptr && ctx.cancel->load()))) {
          stop = true;
        }
      }
    }
    for (std::thread& t : threads) {
      t.join();
    }

    // ---- the round's verdicts ----
    rec.end_s = now();
    last_failures.clear();
    last_slower.clear();
    bool gained = false;
    int llm_failures = 0;
    const int first_index = static_cast<int>(h.candidates.size());
    // The fastest passing candidate of the round, if it beats the best by the margin.
    int round_best = -1;
    for (int i = 0; i < m_options.samples; ++i) {
      const Candidate& c = samples[i].record;
      rec.model_s += c.model_s;
      rec.compile_s += c.compile_s;
      rec.verify_s += c.verify_s;
      ++rec.candidates;
      if (c.outcome == Outcome::Pass) {
        ++rec.passed;
        if (c.time_ms > 0 && c.time_ms < best_ms * (1 - m_options.min_improvement) &&
            (round_best < 0 || c.time_ms < samples[round_best].record.time_ms)) {
          round_best = i;
        }
      }
      if (c.outcome == Outcome::LlmError) {
        ++llm_failures;
      }
    }
    for (int i = 0; i < m_options.samples; ++i) {
      Sample& s = samples[i];
      Attempt a{s.record.outcome, s.record.detail, s.record.source, s.report};
      if (s.record.outcome == Outcome::Pass) {
        if (i != round_best && last_slower.size() < kPromptSlower) {
          last_slower.push_back(std::move(a));
        }
      } else if (s.record.outcome != Outcome::Cancelled && last_failures.size() < kPromptFailures) {
        last_failures.push_back(std::move(a));
      }
    }
    if (round_best >= 0) {
      Sample& s = samples[round_best];
      if (best_index < 0 && best_report) {
        // The template, beaten, becomes a slower kernel the next prompt may compare with.
        last_slower.insert(last_slower.begin(), Attempt{Outcome::Pass, "the template kernel", best_source, best_report});
        if (last_slower.size() > kPromptSlower) {
          last_slower.pop_back();
        }
      }
      best_ms = s.record.time_ms;
      best_source = s.record.source;
      best_report = s.report;
      best_index = first_index + round_best;
      gained = true;
      progress("round", "round " + std::to_string(round) + ": new best " + ms_text(best_ms) +
                            (h.template_ms > 0 ? " (" + std::to_string(h.template_ms / best_ms).substr(0, 4) +
                                                     "x the template)"
                                               : ""));
    }
    rounds_without_gain = gained ? 0 : rounds_without_gain + 1;
    dead_rounds = llm_failures == m_options.samples ? dead_rounds + 1 : 0;
    rec.best_ms_after = std::isfinite(best_ms) ? best_ms : 0;
    for (Sample& s : samples) {
      h.candidates.push_back(std::move(s.record));
    }
    h.rounds.push_back(std::move(rec));
    const Round& done = h.rounds.back();
    progress("round", "round " + std::to_string(round) + " done: " + std::to_string(done.passed) + " of " +
                          std::to_string(done.candidates) + " passed, " + std::to_string(llm_failures) +
                          " model failures; best " + (std::isfinite(best_ms) ? ms_text(best_ms) : "none"));
  }

  h.best = best_index;
  h.best_ms = std::isfinite(best_ms) ? best_ms : 0;
  h.speedup = best_index >= 0 && h.template_ms > 0 ? h.template_ms / best_ms : 1;
  h.total_s = now();
  progress("loop", "loop ended (" + h.stop_reason + ") after " + std::to_string(h.rounds.size()) + " rounds, " +
                       std::to_string(h.candidates.size()) + " candidates: " +
                       (best_index >= 0 ? "an LLM kernel, " + ms_text(h.best_ms) : std::string("the template stands")));

  generate::Kernel k;
  if (best_index < 0) {
    k = *base;
    k.verification = template_verification;  // unset with --no-run: nothing is cached then
  } else {
    const Candidate& c = h.candidates[best_index];
    k.source = c.source;
    k.header = base->header;  // the ABI's header for the spec: a candidate implements it
    k.generator = version();
    generate::Verification v;
    v.status = cache::Verification::Verified;
    v.report_json = c.report_json;
    v.summary = best_report ? verify::report_summary(*best_report) : "";
    k.verification = v;
  }
  k.history_json = history_json(h);
  return k;
}

}  // namespace kg::loop
