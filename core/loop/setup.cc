#include "loop/setup.h"

#include <algorithm>
#include <thread>

#include "llm/curl_endpoint.h"
#include "util/file.h"

namespace kg::loop {

Expected<std::string, Failure> api_key(const config::Config& config) {
  if (!config.text("llm_api_key").empty()) {
    return config.text("llm_api_key");
  }
  const std::string& file = config.text("llm_api_key_file");
  if (file.empty()) {
    return std::string();
  }
  auto text = read_file(file);
  if (!text) {
    return fail("cannot read the API key file (llm_api_key_file) " + file + ": " + text.error().message);
  }
  std::string key = text->substr(0, text->find_first_of("\r\n"));
  const auto b = key.find_first_not_of(" \t");
  key = b == std::string::npos ? "" : key.substr(b, key.find_last_not_of(" \t") - b + 1);
  if (key.empty()) {
    return fail("the API key file (llm_api_key_file) " + file + " has no key on its first line");
  }
  return key;
}

Expected<std::shared_ptr<llm::Endpoint>, Failure> endpoint_from_config(const config::Config& config) {
  const std::string& url = config.text("llm_url");
  if (url.empty()) {
    return fail("no LLM endpoint is configured (set KERNELGEN_LLM_URL or llm_url, a base URL ending in /v1)",
                Failure::Kind::NotFound);
  }
  auto key = api_key(config);
  if (!key) {
    return unexpected(key.error());
  }
  llm::EndpointSettings s;
  s.url = url;
  s.model = config.text("llm_model");
  s.api_key = std::move(*key);
  s.timeout_s = config.real("llm_timeout");
  s.stall_timeout_s = config.real("llm_stall_timeout");
  s.retries = static_cast<int>(std::min<int64_t>(config.number("llm_retries"), 100));
  auto made = llm::make_curl_endpoint(s);
  if (!made) {
    return unexpected(made.error());
  }
  return std::shared_ptr<llm::Endpoint>(std::move(*made));
}

LoopOptions loop_options(const config::Config& config) {
  LoopOptions o;
  o.samples = static_cast<int>(std::clamp<int64_t>(config.number("llm_samples"), 1, 64));
  o.budget_s = config.real("llm_budget");
  o.max_rounds = static_cast<int>(std::min<int64_t>(config.number("llm_rounds"), 1 << 20));
  o.patience = static_cast<int>(std::min<int64_t>(config.number("llm_patience"), 1 << 20));
  o.temperature = config.real("llm_temperature");
  o.max_tokens = config.number("llm_max_tokens");
  const int64_t jobs = config.number("compile_jobs");
  o.compile_jobs = jobs > 0 ? static_cast<int>(std::min<int64_t>(jobs, 256))
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return o;
}

}  // namespace kg::loop
