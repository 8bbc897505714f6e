#include "verify/runner_protocol.h"

namespace kg::verify {

namespace {

nlohmann::json settings_json(const RunnerSettings& s) {
  return {{"timing", s.timing},
          {"warmup", s.warmup},
          {"runs", s.runs},
          {"input_sets", s.input_sets},
          {"timing_batch", s.timing_batch},
          {"timing_heads", s.timing_heads},
          {"timing_seqlen", s.timing_seqlen},
          {"long_seqlen", s.long_seqlen},
          {"peak_tflops", s.peak_tflops},
          {"peak_tbps", s.peak_tbps},
          {"host_reply_timeout_s", s.host_reply_timeout_s},
          {"trap_syscalls", s.trap_syscalls}};
}

template <typename T>
void get_if(const nlohmann::json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) {
    out = it->get<T>();
  }
}

}  // namespace

std::string request_to_json(const RunnerRequest& r) {
  nlohmann::json j = {{"protocol", r.protocol},
                      {"nonce", r.nonce},
                      {"spec_name", r.spec_name},
                      {"spec_yaml", r.spec_yaml},
                      {"candidate", {{"library", r.candidate_library}, {"symbol", r.candidate_symbol},
                                     {"digest", r.candidate_digest}}},
                      {"reference", {{"library", r.reference_library}, {"symbol", r.reference_symbol},
                                     {"digest", r.reference_digest}}},
                      {"seed", r.seed},
                      {"settings", settings_json(r.settings)}};
  return j.dump(2) + "\n";
}

Expected<RunnerRequest, Failure> parse_request(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    RunnerRequest r;
    r.protocol = j.at("protocol").get<int>();
    if (r.protocol != kRunnerProtocol) {
      return fail("request protocol " + std::to_string(r.protocol) + ", this runner speaks " +
                  std::to_string(kRunnerProtocol));
    }
    r.nonce = j.at("nonce").get<std::string>();
    r.spec_name = j.at("spec_name").get<std::string>();
    r.spec_yaml = j.at("spec_yaml").get<std::string>();
    r.candidate_library = j.at("candidate").at("library").get<std::string>();
    r.candidate_symbol = j.at("candidate").at("symbol").get<std::string>();
    r.reference_library = j.at("reference").at("library").get<std::string>();
    r.reference_symbol = j.at("reference").at("symbol").get<std::string>();
    get_if(j.at("candidate"), "digest", r.candidate_digest);
    get_if(j.at("reference"), "digest", r.reference_digest);
    r.seed = j.at("seed").get<uint64_t>();
    if (j.contains("settings")) {
      const auto& s = j["settings"];
      get_if(s, "timing", r.settings.timing);
      get_if(s, "warmup", r.settings.warmup);
      get_if(s, "runs", r.settings.runs);
      get_if(s, "input_sets", r.settings.input_sets);
      get_if(s, "timing_batch", r.settings.timing_batch);
      get_if(s, "timing_heads", r.settings.timing_heads);
      get_if(s, "timing_seqlen", r.settings.timing_seqlen);
      get_if(s, "long_seqlen", r.settings.long_seqlen);
      get_if(s, "peak_tflops", r.settings.peak_tflops);
      get_if(s, "peak_tbps", r.settings.peak_tbps);
      get_if(s, "host_reply_timeout_s", r.settings.host_reply_timeout_s);
      get_if(s, "trap_syscalls", r.settings.trap_syscalls);
    }
    return r;
  } catch (const std::exception& e) {
    return fail(std::string("malformed request: ") + e.what());
  }
}

std::string result_to_json(const RunnerResult& r) {
  nlohmann::json j = {{"protocol", r.protocol},
                      {"nonce", r.nonce},
                      {"device", r.device},
                      {"trials", r.trials},
                      {"findings", r.findings},
                      {"timing", r.timing},
                      {"host", r.host},
                      {"startup_seconds", r.startup_seconds},
                      {"correctness_seconds", r.correctness_seconds},
                      {"timing_seconds", r.timing_seconds}};
  return j.dump(2) + "\n";
}

Expected<RunnerResult, Failure> parse_result(const std::string& text, const std::string& expected_nonce) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_object()) {
      return fail("result is not a JSON object");
    }
    RunnerResult r;
    r.protocol = j.at("protocol").get<int>();
    if (r.protocol != kRunnerProtocol) {
      return fail("result protocol " + std::to_string(r.protocol) + ", expected " + std::to_string(kRunnerProtocol));
    }
    r.nonce = j.at("nonce").get<std::string>();
    if (r.nonce != expected_nonce) {
      return fail("result carries nonce '" + r.nonce + "', not this request's: it was not written by this run");
    }
    if (j.contains("device")) {
      r.device = j["device"].get<DeviceInfo>();
    }
    r.trials = j.at("trials").get<std::vector<TrialSummary>>();
    r.findings = j.at("findings").get<std::vector<Finding>>();
    if (j.contains("timing")) {
      r.timing = j["timing"].get<TimingResult>();
    }
    if (j.contains("host")) {
      r.host = j["host"].get<HostSandboxFacts>();
    }
    get_if(j, "startup_seconds", r.startup_seconds);
    get_if(j, "correctness_seconds", r.correctness_seconds);
    get_if(j, "timing_seconds", r.timing_seconds);
    return r;
  } catch (const std::exception& e) {
    return fail(std::string("malformed result: ") + e.what());
  }
}

}  // namespace kg::verify
