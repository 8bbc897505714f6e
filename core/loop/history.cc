#include "loop/history.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace kg::loop {

namespace {

using nlohmann::json;

constexpr std::pair<Outcome, const char*> kOutcomeNames[] = {
    {Outcome::Pass, "pass"},         {Outcome::Rejected, "rejected"}, {Outcome::CompileError, "compile_error"},
    {Outcome::NoCode, "no_code"},    {Outcome::LlmError, "llm_error"}, {Outcome::Compiled, "compiled"},
    {Outcome::Cancelled, "cancelled"},
};

// JSON has no NaN or infinity: such values are written as 0.
double finite(double x) { return std::isfinite(x) ? x : 0.0; }

// Reads j[name] into out when present; throws json::type_error on a wrong type (caught below).
template <typename T>
void get(const json& j, const char* name, T& out) {
  auto it = j.find(name);
  if (it != j.end() && !it->is_null()) {
    out = it->get<T>();
  }
}

json candidate_json(const Candidate& c) {
  return json{{"round", c.round},
              {"sample", c.sample},
              {"outcome", outcome_name(c.outcome)},
              {"detail", c.detail},
              {"start_s", finite(c.start_s)},
              {"answered_s", finite(c.answered_s)},
              {"end_s", finite(c.end_s)},
              {"model_s", finite(c.model_s)},
              {"compile_s", finite(c.compile_s)},
              {"compile_wait_s", finite(c.compile_wait_s)},
              {"verify_s", finite(c.verify_s)},
              {"verify_wait_s", finite(c.verify_wait_s)},
              {"attempts", c.attempts},
              {"prompt_tokens", c.prompt_tokens},
              {"completion_tokens", c.completion_tokens},
              {"reasoning_tokens", c.reasoning_tokens},
              {"answer", c.answer},
              {"reasoning", c.reasoning},
              {"source", c.source},
              {"report_json", c.report_json},
              {"time_ms", finite(c.time_ms)},
              {"tflops", finite(c.tflops)},
              {"fraction_of_peak", finite(c.fraction_of_peak)}};
}

Candidate candidate_from(const json& j) {
  Candidate c;
  get(j, "round", c.round);
  get(j, "sample", c.sample);
  std::string outcome;
  get(j, "outcome", outcome);
  if (!parse_outcome(outcome, c.outcome)) {
    throw std::invalid_argument("unknown candidate outcome '" + outcome + "'");
  }
  get(j, "detail", c.detail);
  get(j, "start_s", c.start_s);
  get(j, "answered_s", c.answered_s);
  get(j, "end_s", c.end_s);
  get(j, "model_s", c.model_s);
  get(j, "compile_s", c.compile_s);
  get(j, "compile_wait_s", c.compile_wait_s);
  get(j, "verify_s", c.verify_s);
  get(j, "verify_wait_s", c.verify_wait_s);
  get(j, "attempts", c.attempts);
  get(j, "prompt_tokens", c.prompt_tokens);
  get(j, "completion_tokens", c.completion_tokens);
  get(j, "reasoning_tokens", c.reasoning_tokens);
  get(j, "answer", c.answer);
  get(j, "reasoning", c.reasoning);
  get(j, "source", c.source);
  get(j, "report_json", c.report_json);
  get(j, "time_ms", c.time_ms);
  get(j, "tflops", c.tflops);
  get(j, "fraction_of_peak", c.fraction_of_peak);
  return c;
}

json round_json(const Round& r) {
  return json{{"index", r.index},
              {"prompt_system", r.prompt_system},
              {"prompt_user", r.prompt_user},
              {"start_s", finite(r.start_s)},
              {"end_s", finite(r.end_s)},
              {"model_s", finite(r.model_s)},
              {"compile_s", finite(r.compile_s)},
              {"verify_s", finite(r.verify_s)},
              {"candidates", r.candidates},
              {"passed", r.passed},
              {"best_ms_after", finite(r.best_ms_after)}};
}

Round round_from(const json& j) {
  Round r;
  get(j, "index", r.index);
  get(j, "prompt_system", r.prompt_system);
  get(j, "prompt_user", r.prompt_user);
  get(j, "start_s", r.start_s);
  get(j, "end_s", r.end_s);
  get(j, "model_s", r.model_s);
  get(j, "compile_s", r.compile_s);
  get(j, "verify_s", r.verify_s);
  get(j, "candidates", r.candidates);
  get(j, "passed", r.passed);
  get(j, "best_ms_after", r.best_ms_after);
  return r;
}

}  // namespace

const char* outcome_name(Outcome outcome) {
  for (const auto& [o, name] : kOutcomeNames) {
    if (o == outcome) {
      return name;
    }
  }
  return "unknown";
}

bool parse_outcome(std::string_view name, Outcome& out) {
  for (const auto& [o, n] : kOutcomeNames) {
    if (name == n) {
      out = o;
      return true;
    }
  }
  return false;
}

std::string history_json(const History& h) {
  json rounds = json::array();
  for (const Round& r : h.rounds) {
    rounds.push_back(round_json(r));
  }
  json candidates = json::array();
  for (const Candidate& c : h.candidates) {
    candidates.push_back(candidate_json(c));
  }
  const json j{{"schema", h.schema},
               {"spec_name", h.spec_name},
               {"key", h.key},
               {"arch", h.arch},
               {"endpoint", h.endpoint},
               {"model", h.model},
               {"prompt_version", h.prompt_version},
               {"temperature", finite(h.temperature)},
               {"samples", h.samples},
               {"budget_s", finite(h.budget_s)},
               {"max_rounds", h.max_rounds},
               {"patience", h.patience},
               {"run", h.run},
               {"gpu", h.gpu},
               {"peak_tflops", finite(h.peak_tflops)},
               {"peak_tbps", finite(h.peak_tbps)},
               {"floor_ms", finite(h.floor_ms)},
               {"template_ms", finite(h.template_ms)},
               {"template_report_json", h.template_report_json},
               {"rounds", rounds},
               {"candidates", candidates},
               {"best", h.best},
               {"best_ms", finite(h.best_ms)},
               {"speedup", finite(h.speedup)},
               {"stop_reason", h.stop_reason},
               {"total_s", finite(h.total_s)}};
  // Invalid UTF-8 in an answer is replaced rather than refused: the history is an audit record.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Expected<History, Failure> parse_history(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail("loop history: expected a JSON object");
  }
  History h;
  try {
    get(j, "schema", h.schema);
    if (h.schema != kHistorySchema) {
      return fail("loop history: schema " + std::to_string(h.schema) + " is not the supported " +
                  std::to_string(kHistorySchema));
    }
    get(j, "spec_name", h.spec_name);
    get(j, "key", h.key);
    get(j, "arch", h.arch);
    get(j, "endpoint", h.endpoint);
    get(j, "model", h.model);
    get(j, "prompt_version", h.prompt_version);
    get(j, "temperature", h.temperature);
    get(j, "samples", h.samples);
    get(j, "budget_s", h.budget_s);
    get(j, "max_rounds", h.max_rounds);
    get(j, "patience", h.patience);
    get(j, "run", h.run);
    get(j, "gpu", h.gpu);
    get(j, "peak_tflops", h.peak_tflops);
    get(j, "peak_tbps", h.peak_tbps);
    get(j, "floor_ms", h.floor_ms);
    get(j, "template_ms", h.template_ms);
    get(j, "template_report_json", h.template_report_json);
    if (auto it = j.find("rounds"); it != j.end()) {
      if (!it->is_array()) {
        return fail("loop history: expected an array for rounds");
      }
      for (const json& r : *it) {
        h.rounds.push_back(round_from(r));
      }
    }
    if (auto it = j.find("candidates"); it != j.end()) {
      if (!it->is_array()) {
        return fail("loop history: expected an array for candidates");
      }
      for (const json& c : *it) {
        h.candidates.push_back(candidate_from(c));
      }
    }
    get(j, "best", h.best);
    get(j, "best_ms", h.best_ms);
    get(j, "speedup", h.speedup);
    get(j, "stop_reason", h.stop_reason);
    get(j, "total_s", h.total_s);
  } catch (const std::exception& e) {
    return fail(std::string("loop history: ") + e.what());
  }
  if (h.best < -1 || h.best >= static_cast<int>(h.candidates.size())) {
    return fail("loop history: best " + std::to_string(h.best) + " names no candidate");
  }
  return h;
}

}  // namespace kg::loop
