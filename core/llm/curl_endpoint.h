// The Endpoint over libcurl (docs/design.md §5): POST {url}/chat/completions with a JSON body,
// streaming answers read as server-sent events.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llm/endpoint.h"

namespace kg::llm {

struct EndpointSettings {
  std::string url;      // base URL ending in /v1 ("http://127.0.0.1:8000/v1"); no trailing slash needed
  std::string model;    // "deepseek-reasoner"
  std::string api_key;  // "" : no Authorization header. Never logged.
  double timeout_s = 600;       // one request in all (connect to last byte)
  double stall_timeout_s = 60;  // longest wait between two received chunks of one request
                                // (streamed requests only: a whole answer is silent until done)
  double connect_timeout_s = 10;
  int retries = 4;              // further attempts after the first, on 429/5xx/timeouts/broken streams
  double backoff_s = 1;         // first retry's base wait; doubles each retry, with jitter
  double max_backoff_s = 60;    // cap of one wait, a Retry-After included
  size_t max_answer_bytes = 8 << 20;  // an answer (reasoning included) larger than this is an error
};

// Checks `settings` (an http:// or https:// URL; a model; positive timeouts). Errors name the
// setting and what was expected ("llm_url: expected a URL starting with http:// or https://,
// found 'ftp://x'").
Expected<std::unique_ptr<Endpoint>, Failure> make_curl_endpoint(const EndpointSettings& settings);

}  // namespace kg::llm
