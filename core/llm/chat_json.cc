#include "llm/chat_json.h"

#include <nlohmann/json.hpp>

#include "util/text.h"

namespace kg::llm {

namespace {

using nlohmann::json;

constexpr std::string_view k_open = "<think>";
constexpr std::string_view k_close = "</think>";
constexpr size_t k_message_limit = 300;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// obj[key] when it is a string, else nullptr.
const std::string* string_at(const json& obj, const char* key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  const auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

int64_t count_at(const json& obj, const char* key) {
  if (!obj.is_object()) {
    return 0;
  }
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) {
    return 0;
  }
  if (it->is_number_integer()) {
    return it->get<int64_t>();
  }
  const double d = it->get<double>();
  return d >= 0 && d < 9e18 ? static_cast<int64_t>(d) : 0;
}

void read_usage(const json& root, Usage& usage) {
  const auto it = root.find("usage");
  if (it == root.end() || !it->is_object()) {
    return;
  }
  usage.prompt_tokens = count_at(*it, "prompt_tokens");
  usage.completion_tokens = count_at(*it, "completion_tokens");
  const auto details = it->find("completion_tokens_details");
  if (details != it->end()) {
    usage.reasoning_tokens = count_at(*details, "reasoning_tokens");
  }
}

// The message of an error object at root["error"], or "" when there is none.
std::string error_object_message(const json& root) {
  const auto it = root.find("error");
  if (it == root.end() || it->is_null()) {
    return "";
  }
  if (const std::string* s = string_at(*it, "message")) {
    return printable(*s, k_message_limit);
  }
  if (it->is_string()) {
    return printable(it->get_ref<const std::string&>(), k_message_limit);
  }
  return printable(it->dump(-1, ' ', false, json::error_handler_t::replace), k_message_limit);
}

// choices[0] (the entry with index 0 when the server numbers them), or nullptr.
const json* first_choice(const json& root) {
  const auto it = root.find("choices");
  if (it == root.end() || !it->is_array() || it->empty()) {
    return nullptr;
  }
  for (const json& c : *it) {
    if (!c.is_object()) {
      continue;
    }
    const auto index = c.find("index");
    if (index != c.end() && index->is_number_integer() && index->get<int64_t>() == 0) {
      return &c;
    }
  }
  return (*it)[0].is_object() ? &(*it)[0] : nullptr;
}

}  // namespace

std::string chat_request_body(const std::string& model, const ChatRequest& request) {
  json messages = json::array();
  for (const Message& m : request.messages) {
    messages.push_back({{"role", m.role}, {"content", m.content}});
  }
  json body = {{"model", model}, {"messages", std::move(messages)}, {"temperature", request.temperature},
               {"stream", request.stream}};
  if (request.max_tokens > 0) {
    body["max_tokens"] = request.max_tokens;
  }
  if (request.stream) {
    body["stream_options"] = {{"include_usage", true}};
  }
  // Invalid UTF-8 in a message is replaced rather than thrown on.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void ThinkSplitter::add(std::string_view piece, std::string& content, std::string& reasoning) {
  switch (m_state) {
    case State::Start: {
      m_held.append(piece);
      size_t ws = 0;
      while (ws < m_held.size() && is_space(m_held[ws])) {
        ++ws;
      }
      const std::string_view rest = std::string_view(m_held).substr(ws);
      if (rest.size() >= k_open.size() && rest.substr(0, k_open.size()) == k_open) {
        std::string after(rest.substr(k_open.size()));
        m_held.clear();
        m_state = State::Think;
        add(after, content, reasoning);
      } else if (rest.size() < k_open.size() && k_open.substr(0, rest.size()) == rest) {
        // Still possibly the start of "<think>": hold on.
      } else {
        m_state = State::Answer;
        content += m_held;
        m_held.clear();
      }
      return;
    }
    case State::Think: {
      const size_t from = m_held.size();
      m_held.append(piece);
      const size_t search = from >= k_close.size() ? from - (k_close.size() - 1) : 0;
      const size_t at = m_held.find(k_close, search);
      if (at != std::string::npos) {
        reasoning.append(m_held, 0, at);
        std::string after = m_held.substr(at + k_close.size());
        m_held.clear();
        m_state = State::Answer;
        m_strip_space = true;
        add_answer(after, content);
        return;
      }
      // Keep only the bytes that may begin a "</think>" cut by the next piece.
      const size_t keep = std::min(m_held.size(), k_close.size() - 1);
      reasoning.append(m_held, 0, m_held.size() - keep);
      m_held.erase(0, m_held.size() - keep);
      return;
    }
    case State::Answer:
      add_answer(piece, content);
      return;
  }
}

void ThinkSplitter::add_answer(std::string_view piece, std::string& content) {
  if (m_strip_space) {
    while (!piece.empty() && is_space(piece.front())) {
      piece.remove_prefix(1);
    }
    if (piece.empty()) {
      return;
    }
    m_strip_space = false;
  }
  content.append(piece);
}

void ThinkSplitter::finish(std::string& content, std::string& reasoning) {
  if (m_state == State::Start) {
    content += m_held;  // whitespace, or a "<thi" that never became a tag
  } else if (m_state == State::Think) {
    reasoning += m_held;  // an unterminated think: all of it was reasoning
  }
  m_held.clear();
  m_state = State::Answer;
}

Expected<void, Failure> AnswerBuilder::check_size() const {
  const size_t bytes = m_answer.content.size() + m_answer.reasoning.size() + m_think.held();
  if (bytes > m_max_answer_bytes) {
    return fail("the answer is longer than " + std::to_string(m_max_answer_bytes) +
                " bytes, reasoning included (llm_max_answer_bytes)");
  }
  return {};
}

Expected<void, Failure> AnswerBuilder::add_chunk(std::string_view json_text, size_t offset) {
  const json root = json::parse(json_text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return fail("the event stream has a data line that is not a JSON object at byte " + std::to_string(offset) +
                ": '" + printable(json_text, 80) + "'");
  }
  if (std::string message = error_object_message(root); !message.empty()) {
    return fail("the server reported an error in the stream: " + message);
  }
  if (const std::string* model = string_at(root, "model")) {
    m_answer.model = *model;
  }
  read_usage(root, m_answer.usage);
  if (const json* choice = first_choice(root)) {
    const auto delta = choice->find("delta");
    if (delta != choice->end() && delta->is_object()) {
      if (const std::string* r = string_at(*delta, "reasoning_content")) {
        m_answer.reasoning += *r;
      }
      if (const std::string* r = string_at(*delta, "reasoning")) {
        m_answer.reasoning += *r;
      }
      if (const std::string* c = string_at(*delta, "content")) {
        m_think.add(*c, m_answer.content, m_answer.reasoning);
      }
    }
    if (const std::string* reason = string_at(*choice, "finish_reason")) {
      m_answer.finish_reason = *reason;
    }
  }
  return check_size();
}

Expected<void, Failure> AnswerBuilder::add_response(std::string_view body) {
  const json root = json::parse(body, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return fail("the answer is not a JSON object: '" + printable(body, 80) + "'");
  }
  if (std::string message = error_object_message(root); !message.empty()) {
    return fail("the server reported an error: " + message);
  }
  const json* choice = first_choice(root);
  const auto message = choice != nullptr ? choice->find("message") : root.end();
  if (choice == nullptr || message == choice->end() || !message->is_object()) {
    return fail("the answer has no choices[0].message: '" + printable(body, 80) + "'");
  }
  if (const std::string* model = string_at(root, "model")) {
    m_answer.model = *model;
  }
  read_usage(root, m_answer.usage);
  if (const std::string* r = string_at(*message, "reasoning_content")) {
    m_answer.reasoning += *r;
  }
  if (const std::string* r = string_at(*message, "reasoning")) {
    m_answer.reasoning += *r;
  }
  if (const std::string* c = string_at(*message, "content")) {
    m_think.add(*c, m_answer.content, m_answer.reasoning);
  }
  if (const std::string* reason = string_at(*choice, "finish_reason")) {
    m_answer.finish_reason = *reason;
  }
  return check_size();
}

ChatAnswer AnswerBuilder::finish() {
  m_think.finish(m_answer.content, m_answer.reasoning);
  return std::move(m_answer);
}

std::string server_error_message(std::string_view body) {
  const json root = json::parse(body, nullptr, false);
  if (root.is_discarded()) {
    size_t start = 0;
    while (start < body.size() && is_space(body[start])) {
      ++start;
    }
    return printable(body.substr(start), k_message_limit);
  }
  if (!root.is_object()) {
    return printable(root.dump(-1, ' ', false, json::error_handler_t::replace), k_message_limit);
  }
  if (std::string message = error_object_message(root); !message.empty()) {
    return message;
  }
  for (const char* key : {"message", "detail"}) {
    if (const std::string* s = string_at(root, key)) {
      return printable(*s, k_message_limit);
    }
  }
  return "";
}

}  // namespace kg::llm
