// The closed loop as the configuration describes it (config/config.h: the llm_* settings): the
// endpoint, the key, the loop's options. Shared by `kernelgen generate` and kernelgend.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "llm/endpoint.h"
#include "loop/loop.h"

namespace kg::loop {

// The API key: llm_api_key when set, else the first line of llm_api_key_file ("" when neither).
// Errors name the file and why it cannot be read, never its content.
Expected<std::string, Failure> api_key(const config::Config& config);

// The endpoint of llm_url / llm_model with the key and the timeouts. Errors: NotFound when
// llm_url is empty (no LLM configured: the template stands); Error for a bad URL or key file.
Expected<std::shared_ptr<llm::Endpoint>, Failure> endpoint_from_config(const config::Config& config);

// llm_samples, llm_budget, llm_rounds, llm_patience, llm_temperature, llm_max_tokens and
// compile_jobs (0: the CPUs) as LoopOptions.
LoopOptions loop_options(const config::Config& config);

}  // namespace kg::loop
