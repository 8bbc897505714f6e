// The JSON of /v1/chat/completions (docs/design.md §5): the request body, and the answer read
// from streamed chunks or from one whole response, with the reasoning split from the content
// however the provider delivers it (endpoint.h lists the three ways).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "llm/endpoint.h"
#include "util/expected.h"

namespace kg::llm {

// The request body: {model, messages, temperature, max_tokens (only when > 0), stream, and
// stream_options.include_usage when streaming}.
std::string chat_request_body(const std::string& model, const ChatRequest& request);

// Splits `<think>…</think>` at the start of the content (after any whitespace) from the answer,
// fed the content in pieces cut at any byte. Text before the tag is held back only while it could
// still become the tag. The whitespace after `</think>` is dropped. A think that never ends makes
// everything after `<think>` reasoning.
class ThinkSplitter {
 public:
  // Appends the next piece of content to `content` or `reasoning`.
  void add(std::string_view piece, std::string& content, std::string& reasoning);
  // The end of the content: what was held back goes where it belongs.
  void finish(std::string& content, std::string& reasoning);
  // Bytes held back (counted against the answer's size limit).
  size_t held() const { return m_held.size(); }

 private:
  enum class State { Start, Think, Answer };
  void add_answer(std::string_view piece, std::string& content);

  State m_state = State::Start;
  std::string m_held;          // Start: the content so far; Think: the last bytes, maybe a partial "</think>"
  bool m_strip_space = false;  // Answer: whitespace right after </think> is still being dropped
};

// One answer, built from stream chunks (add_chunk) or a whole response (add_response). Every error
// a server reports in the body ({"error": {"message": …}}) becomes a Failure quoting the message.
class AnswerBuilder {
 public:
  // `max_answer_bytes`: the largest content + reasoning accepted.
  explicit AnswerBuilder(size_t max_answer_bytes) : m_max_answer_bytes(max_answer_bytes) {}

  // One `data:` payload of a stream other than `[DONE]`; `offset` is its byte offset in the
  // stream. Errors: not JSON (naming the offset), an error object, the answer over its limit.
  Expected<void, Failure> add_chunk(std::string_view json_text, size_t offset);

  // A whole (non-streamed) response body. Errors: not JSON, an error object, no
  // choices[0].message, the answer over its limit.
  Expected<void, Failure> add_response(std::string_view body);

  // The answer: held-back content placed, the model, usage and finish_reason as the server sent
  // them. Call once, at the end.
  ChatAnswer finish();

  // A chunk carried a finish_reason.
  bool saw_finish_reason() const { return !m_answer.finish_reason.empty(); }

 private:
  Expected<void, Failure> check_size() const;

  size_t m_max_answer_bytes;
  ChatAnswer m_answer;
  ThinkSplitter m_think;
};

// The server's error message in an error body ({"error": {"message": …}}, {"error": "…"},
// {"message": …} or {"detail": …}), printable and at most about 300 bytes; "" when the body
// carries none. Non-JSON bodies give their start, printable (an HTML error page from a proxy).
std::string server_error_message(std::string_view body);

}  // namespace kg::llm
