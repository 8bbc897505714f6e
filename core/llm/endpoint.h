// The LLM endpoint (docs/design.md §5): one chat completion against an OpenAI-compatible
// `/v1/chat/completions`, behind an interface so that the loop (loop/loop.h) is tested against
// a fake and run against libcurl (curl_endpoint.h).
//
// Providers deliver a reasoning model's thinking in one of three ways, and every endpoint hands
// it back split from the answer:
//   - `reasoning_content` beside `content` (DeepSeek's API);
//   - `reasoning` beside `content` (current vLLM, Ollama's /v1);
//   - `<think>…</think>` at the start of `content` (R1 served by NVIDIA NIM, SGLang, older vLLM).
//
// The API key is a secret: no endpoint puts it (or any part of it) into a message, a log line, a
// record or an error. describe() names the URL and the model only.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "util/expected.h"

namespace kg::llm {

struct Message {
  std::string role;     // "system" | "user" | "assistant"
  std::string content;
};

struct ChatRequest {
  std::vector<Message> messages;
  double temperature = 0.6;  // DeepSeek-R1's recommended value
  int64_t max_tokens = 0;    // 0: the server's default (not sent)
  bool stream = true;        // SSE; false: one JSON answer
};

// Token counts as the server reported them (0 when it did not).
struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t reasoning_tokens = 0;  // completion_tokens_details.reasoning_tokens, when sent
};

struct ChatAnswer {
  std::string content;        // the answer with any <think>…</think> removed
  std::string reasoning;      // the thinking, however it was delivered ("" when none)
  std::string finish_reason;  // "stop", "length", ... ("" when the server sent none)
  std::string model;          // as the server named it
  Usage usage;
  int attempts = 1;       // requests made, retries included
  double seconds = 0;     // wall time of the call, retries and waits included
  double first_token_seconds = 0;  // request start to the first streamed byte of the last attempt
};

// Set to true by another thread to end a call early: the call returns a Failure whose message
// says it was cancelled, promptly (within about 100 ms of the flag).
using CancelFlag = std::atomic<bool>;

class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // For messages: "https://api.deepseek.com/v1 (model deepseek-reasoner)". Never the key.
  virtual std::string describe() const = 0;

  // The model name requests carry.
  virtual std::string model() const = 0;

  // One chat completion, retried on 429, 5xx, timeouts and broken streams as the endpoint's
  // settings allow. Thread-safe: the loop calls it from several threads at once. `cancel` may be
  // null. Errors: Timeout (the request or a stall between streamed chunks outlasted its limit on
  // the last attempt), Error (HTTP errors that are not retried, retries exhausted, a malformed
  // or truncated answer, an empty answer, cancellation); the message says which, with the HTTP
  // status and the server's error message (trimmed, printable) when there was one.
  virtual Expected<ChatAnswer, Failure> chat(const ChatRequest& request, const CancelFlag* cancel) = 0;
};

}  // namespace kg::llm
