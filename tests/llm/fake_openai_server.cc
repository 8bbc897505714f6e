// kg_fake_llm: a scripted OpenAI-compatible chat completion server for tests (core/llm/
// curl_endpoint_test.cc and the closed loop's tests). It speaks just enough HTTP/1.1 over
// loopback for libcurl: one request per connection, answered with `Connection: close`.
//
//   kg_fake_llm --script FILE [--port N] [--port-file FILE] [--exit-after N]
//
//   --script FILE     what to answer (below); required
//   --port N          the port on 127.0.0.1 (default 0: any free one)
//   --port-file FILE  once listening, the port in decimal is written here (a temporary file, then
//                     a rename, so a reader never sees half of it)
//   --exit-after N    exit once N connections (one request each, junk included) have been served
//                     (default: run until SIGTERM or SIGINT)
// Exit status 0 on a signal or --exit-after, 2 on a bad command line or script.
//
// Script (JSON):
//   { "responses": [BEHAVIOUR, ...],
//     "cycle": true,        // request k gets responses[k % n]; false: the last one repeats
//     "log": "path" }       // optional; relative to the script's directory
// Request k (0-based, counting the requests answered from the sequence) is answered by the k-th
// behaviour without "match"; a behaviour with "match": "text" answers, instead, every request whose
// last user message contains that text (the first such behaviour wins).
//
// BEHAVIOUR (every field optional):
//   "mode": "reasoning_content" | "reasoning" | "think" | "plain"   (default "reasoning_content")
//       how the reasoning is delivered: delta/message.reasoning_content (DeepSeek),
//       .reasoning (vLLM, Ollama), or "<think>REASONING</think>\n\n" before the content (R1 on
//       NIM/SGLang). The first three stream server-sent events when the request has stream:true;
//       "plain" (or stream:false) answers one JSON object (application/json), reasoning in
//       message.reasoning_content.
//   "content": text | "content_file": path (read at startup; relative to the script's directory)
//   "reasoning": text
//   "model": the model named in answers (default: the request's)
//   "finish_reason": default "stop"
//   "status": an HTTP status to answer instead (429, 500, 401, ...), with the body
//       {"error": {"message": "error_message", "type": "error_type"}}; "@AUTH@" in error_message
//       becomes the request's bearer token (a server quoting the key back)
//   "error_message", "error_type": for "status" (defaults "fake error <status>", "server_error")
//   "retry_after": a Retry-After header value (number of seconds, or a string such as an HTTP date)
//   "delay_s": wait this long before answering
//   "chunk_bytes": content/reasoning bytes per streamed event (default 16; never splits a UTF-8
//       character); "chunk_delay_s": wait between events
//   "stall_after_chunks": N, "stall_s": S — after N events, wait S seconds
//   "truncate_after_chunks": N — close the connection after N events, with no finish_reason and
//       no [DONE] (non-streamed: after half the body, short of its Content-Length)
//   "invalid_json": true — the second event is `data: {not json` (non-streamed: the body is)
//   "stream_error": text — the second event is {"error": {"message": text}} and the stream ends
//   "empty": true — no content at all (the finish_reason still comes)
//   "nonce": true — the first "@NONCE@" in the content becomes the request's number n
//   "usage": {"prompt_tokens": P, "completion_tokens": C, "reasoning_tokens": R} — sent as usage
//       (streams: a last chunk with empty choices, when the request asked include_usage)
//   "crlf": true — event lines end in CRLF instead of LF
// Streamed events, each counted as one chunk: a ": keep-alive" comment (not counted), the role
// chunk, the reasoning pieces, the content pieces, the finish_reason chunk, the usage chunk, then
// `data: [DONE]`.
//
// Log (JSON lines, one per request, flushed per line):
//   {"n": k, "path": ..., "authorization": "<raw header value or null>", "model": ...,
//    "stream": bool, "include_usage": bool, "temperature": x, "max_tokens": n|null,
//    "messages": count, "last_user_bytes": N, "behaviour": index into responses (-1: none)}
//
// Input bounds: request headers at most 64 KiB, a body at most 16 MiB (Content-Length only; a
// chunked body is refused with 411); a client silent for 10 s is dropped.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

constexpr size_t k_max_header_bytes = 64 << 10;
constexpr size_t k_max_body_bytes = 16 << 20;

struct Behaviour {
  int index = 0;
  std::string mode = "reasoning_content";
  std::string content;
  std::string reasoning;
  std::string model;
  std::string finish_reason = "stop";
  int status = 0;
  std::string error_message;
  std::string error_type = "server_error";
  std::string retry_after;
  double delay_s = 0;
  size_t chunk_bytes = 16;
  double chunk_delay_s = 0;
  int stall_after_chunks = -1;
  double stall_s = 0;
  int truncate_after_chunks = -1;
  bool invalid_json = false;
  std::string stream_error;
  bool empty = false;
  bool nonce = false;
  bool crlf = false;
  std::optional<json> usage;
  std::optional<std::string> match;
};

struct Script {
  std::vector<Behaviour> all;
  std::vector<const Behaviour*> sequence;  // those without "match"
  bool cycle = true;
  std::string log_path;
};

Script g_script;
std::atomic<bool> g_stop{false};
std::atomic<long> g_requests{0};  // requests numbered so far (n)
std::atomic<long> g_sequence{0};  // requests answered from the sequence
std::atomic<long> g_answered{0};
long g_exit_after = 0;
std::mutex g_log_mutex;
FILE* g_log = nullptr;

[[noreturn]] void die(const std::string& message) {
  std::cerr << "kg_fake_llm: " << message << "\n";
  std::exit(2);
}

void on_signal(int) { g_stop = true; }

void sleep_s(double s) {
  if (s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    die("cannot read " + path.string());
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename T>
T field(const json& obj, const char* key, T fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return fallback;
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    die(std::string("script: field '") + key + "' has the wrong type");
  }
}

Script load_script(const std::string& path) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const json root = json::parse(read_file(path), nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    die("script " + path + " is not a JSON object");
  }
  Script s;
  s.cycle = field<bool>(root, "cycle", true);
  if (const std::string log = field<std::string>(root, "log", ""); !log.empty()) {
    s.log_path = std::filesystem::path(log).is_absolute() ? log : (dir / log).string();
  }
  const auto responses = root.find("responses");
  if (responses == root.end() || !responses->is_array() || responses->empty()) {
    die("script " + path + ": expected a non-empty array 'responses'");
  }
  for (const json& r : *responses) {
    if (!r.is_object()) {
      die("script: every response must be an object");
    }
    Behaviour b;
    b.index = static_cast<int>(s.all.size());
    b.mode = field<std::string>(r, "mode", b.mode);
    if (b.mode != "reasoning_content" && b.mode != "reasoning" && b.mode != "think" && b.mode != "plain") {
      die("script: unknown mode '" + b.mode + "'");
    }
    b.content = field<std::string>(r, "content", "");
    if (const std::string file = field<std::string>(r, "content_file", ""); !file.empty()) {
      b.content = read_file(std::filesystem::path(file).is_absolute() ? std::filesystem::path(file) : dir / file);
    }
    b.reasoning = field<std::string>(r, "reasoning", "");
    b.model = field<std::string>(r, "model", "");
    b.finish_reason = field<std::string>(r, "finish_reason", b.finish_reason);
    b.status = field<int>(r, "status", 0);
    b.error_message = field<std::string>(r, "error_message", "fake error " + std::to_string(b.status));
    b.error_type = field<std::string>(r, "error_type", b.error_type);
    if (const auto it = r.find("retry_after"); it != r.end()) {
      b.retry_after = it->is_string() ? it->get<std::string>() : it->dump();
    }
    b.delay_s = field<double>(r, "delay_s", 0);
    b.chunk_bytes = std::max<size_t>(1, field<size_t>(r, "chunk_bytes", 16));
    b.chunk_delay_s = field<double>(r, "chunk_delay_s", 0);
    b.stall_after_chunks = field<int>(r, "stall_after_chunks", -1);
    b.stall_s = field<double>(r, "stall_s", 0);
    b.truncate_after_chunks = field<int>(r, "truncate_after_chunks", -1);
    b.invalid_json = field<bool>(r, "invalid_json", false);
    b.stream_error = field<std::string>(r, "stream_error", "");
    b.empty = field<bool>(r, "empty", false);
    b.nonce = field<bool>(r, "nonce", false);
    b.crlf = field<bool>(r, "crlf", false);
    if (const auto it = r.find("usage"); it != r.end() && it->is_object()) {
      b.usage = *it;
    }
    if (const auto it = r.find("match"); it != r.end() && it->is_string()) {
      b.match = it->get<std::string>();
    }
    s.all.push_back(std::move(b));
  }
  for (const Behaviour& b : s.all) {
    if (!b.match) {
      s.sequence.push_back(&b);
    }
  }
  return s;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

void send_response(int fd, int status, const std::string& content_type, const std::string& body,
                   const std::string& retry_after = "", size_t send_bytes = std::string::npos) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  head += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (!retry_after.empty()) {
    head += "Retry-After: " + retry_after + "\r\n";
  }
  head += "Connection: close\r\n\r\n";
  if (send_all(fd, head)) {
    send_all(fd, std::string_view(body).substr(0, std::min(send_bytes, body.size())));
  }
}

void send_error(int fd, int status, const std::string& message, const std::string& type = "invalid_request_error",
                const std::string& retry_after = "") {
  const json body = {{"error", {{"message", message}, {"type", type}}}};
  send_response(fd, status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), retry_after);
}

// `text` in pieces of about `bytes` bytes, never cutting a UTF-8 sequence.
std::vector<std::string> pieces(const std::string& text, size_t bytes) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = std::min(text.size(), i + bytes);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) {
      ++end;
    }
    out.push_back(text.substr(i, end - i));
    i = end;
  }
  return out;
}

json usage_json(const json& u) {
  const int64_t p = u.value("prompt_tokens", int64_t{0});
  const int64_t c = u.value("completion_tokens", int64_t{0});
  json out = {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
  if (u.contains("reasoning_tokens")) {
    out["completion_tokens_details"] = {{"reasoning_tokens", u.value("reasoning_tokens", int64_t{0})}};
  }
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void answer(int fd, const Behaviour& b, const json& request, long n, const std::string& bearer) {
  sleep_s(b.delay_s);
  if (b.status != 0) {
    std::string message = b.error_message;
    if (const size_t at = message.find("@AUTH@"); at != std::string::npos) {
      message.replace(at, 6, bearer);
    }
    send_error(fd, b.status, message, b.error_type, b.retry_after);
    return;
  }
  const std::string model = !b.model.empty() ? b.model : (request.contains("model") && request["model"].is_string()
                                                               ? request["model"].get<std::string>()
                                                               : std::string("fake"));
  std::string content = b.empty ? "" : b.content;
  if (b.nonce) {
    if (const size_t at = content.find("@NONCE@"); at != std::string::npos) {
      content.replace(at, 7, std::to_string(n));
    }
  }
  const bool stream = request.value("stream", false) && b.mode != "plain";
  const std::string id = "chatcmpl-fake-" + std::to_string(n);

  if (!stream) {
    json message = {{"role", "assistant"}};
    if (b.mode == "think") {
      message["content"] = (b.reasoning.empty() ? "" : "<think>" + b.reasoning + "</think>\n\n") + content;
    } else {
      message["content"] = content;
      if (!b.reasoning.empty()) {
        message[b.mode == "reasoning" ? "reasoning" : "reasoning_content"] = b.reasoning;
      }
    }
    json body = {{"id", id}, {"object", "chat.completion"}, {"created", 1700000000}, {"model", model},
                 {"choices", json::array({{{"index", 0}, {"message", message}, {"finish_reason", b.finish_reason}}})}};
    if (b.usage) {
      body["usage"] = usage_json(*b.usage);
    }
    const std::string text = b.invalid_json ? std::string("{not json") : dump(body);
    send_response(fd, 200, "application/json", text, "",
                  b.truncate_after_chunks >= 0 ? text.size() / 2 : std::string::npos);
    return;
  }

  const std::string eol = b.crlf ? "\r\n" : "\n";
  if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    "Connection: close\r\n\r\n: keep-alive" + eol + eol)) {
    return;
  }
  auto chunk = [&](const json& delta, const json& finish) {
    return json{{"id", id},
                {"object", "chat.completion.chunk"},
                {"created", 1700000000},
                {"model", model},
                {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}})}};
  };
  std::vector<std::string> events;
  events.push_back(dump(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)));
  if (b.invalid_json) {
    events.push_back("{not json");
  }
  if (!b.stream_error.empty()) {
    events.push_back(dump({{"error", {{"message", b.stream_error}, {"type", "server_error"}}}}));
    for (const std::string& e : events) {
      send_all(fd, "data: " + e + eol + eol);
    }
    return;
  }
  if (b.mode == "think") {
    const std::string all = (b.reasoning.empty() ? "" : "<think>" + b.reasoning + "</think>\n\n") + content;
    for (const std::string& p : pieces(all, b.chunk_bytes)) {
      events.push_back(dump(chunk({{"content", p}}, nullptr)));
    }
  } else {
    const char* key = b.mode == "reasoning" ? "reasoning" : "reasoning_content";
    for (const std::string& p : pieces(b.reasoning, b.chunk_bytes)) {
      events.push_back(dump(chunk({{key, p}}, nullptr)));
    }
    for (const std::string& p : pieces(content, b.chunk_bytes)) {
      events.push_back(dump(chunk({{"content", p}}, nullptr)));
    }
  }
  events.push_back(dump(chunk(json::object(), b.finish_reason)));
  const bool include_usage = request.contains("stream_options") && request["stream_options"].is_object() &&
                             request["stream_options"].value("include_usage", false);
  if (b.usage && include_usage) {
    events.push_back(dump({{"id", id},
                           {"object", "chat.completion.chunk"},
                           {"created", 1700000000},
                           {"model", model},
                           {"choices", json::array()},
                           {"usage", usage_json(*b.usage)}}));
  }
  events.push_back("[DONE]");
  for (size_t i = 0; i < events.size(); ++i) {
    if (b.truncate_after_chunks >= 0 && static_cast<int>(i) >= b.truncate_after_chunks) {
      return;
    }
    if (b.stall_after_chunks >= 0 && static_cast<int>(i) == b.stall_after_chunks) {
      sleep_s(b.stall_s);
    }
    if (i > 0) {
      sleep_s(b.chunk_delay_s);
    }
    if (!send_all(fd, "data: " + events[i] + eol + eol)) {
      return;
    }
  }
}

void write_log(long n, const std::string& path, const std::optional<std::string>& authorization,
               const json& request, int behaviour) {
  if (g_log == nullptr) {
    return;
  }
  json line = {{"n", n}, {"path", path}, {"behaviour", behaviour}};
  line["authorization"] = authorization ? json(*authorization) : json(nullptr);
  line["model"] = request.contains("model") ? request["model"] : json(nullptr);
  line["stream"] = request.contains("stream") ? request["stream"] : json(nullptr);
  line["temperature"] = request.contains("temperature") ? request["temperature"] : json(nullptr);
  line["max_tokens"] = request.contains("max_tokens") ? request["max_tokens"] : json(nullptr);
  line["include_usage"] = request.contains("stream_options") && request["stream_options"].is_object() &&
                          request["stream_options"].value("include_usage", false);
  size_t count = 0;
  size_t last_user = 0;
  if (request.contains("messages") && request["messages"].is_array()) {
    count = request["messages"].size();
    for (const json& m : request["messages"]) {
      if (m.is_object() && m.value("role", "") == "user" && m.contains("content") && m["content"].is_string()) {
        last_user = m["content"].get_ref<const std::string&>().size();
      }
    }
  }
  line["messages"] = count;
  line["last_user_bytes"] = last_user;
  std::lock_guard lock(g_log_mutex);
  std::fputs((dump(line) + "\n").c_str(), g_log);
  std::fflush(g_log);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) {
    return "";
  }
  const size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

std::string last_user_message(const json& request) {
  std::string out;
  if (request.contains("messages") && request["messages"].is_array()) {
    for (const json& m : request["messages"]) {
      if (m.is_object() && m.value("role", "") == "user" && m.contains("content") && m["content"].is_string()) {
        out = m["content"].get<std::string>();
      }
    }
  }
  return out;
}

void serve(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string data;
  size_t header_end = std::string::npos;
  char buf[16384];
  while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
    if (data.size() > k_max_header_bytes) {
      send_error(fd, 431, "kg_fake_llm: request headers over 64 KiB");
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  if (header_end > k_max_header_bytes) {
    send_error(fd, 431, "kg_fake_llm: request headers over 64 KiB");
    return;
  }
  std::istringstream head(data.substr(0, header_end));
  std::string request_line;
  std::getline(head, request_line);
  std::istringstream rl(request_line);
  std::string method, path, version;
  rl >> method >> path >> version;
  std::optional<std::string> authorization;
  size_t content_length = 0;
  bool chunked = false;
  bool bad_length = false;
  for (std::string line; std::getline(head, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    const std::string name = lower(line.substr(0, colon));
    const std::string value = trim(line.substr(colon + 1));
    if (name == "authorization") {
      authorization = value;
    } else if (name == "content-length") {
      if (value.empty() || value.size() > 12 || value.find_first_not_of("0123456789") != std::string::npos) {
        bad_length = true;
      } else {
        content_length = std::stoull(value);
      }
    } else if (name == "transfer-encoding" && lower(value).find("chunked") != std::string::npos) {
      chunked = true;
    }
  }
  if (chunked) {
    send_error(fd, 411, "kg_fake_llm: send a Content-Length");
    return;
  }
  if (bad_length || content_length > k_max_body_bytes) {
    send_error(fd, 413, "kg_fake_llm: a body of at most 16 MiB with a valid Content-Length");
    return;
  }
  std::string body = data.substr(header_end + 4);
  while (body.size() < content_length) {
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, content_length - body.size()), 0);
    if (n <= 0) {
      return;
    }
    body.append(buf, static_cast<size_t>(n));
  }
  body.resize(std::min(body.size(), content_length));
  const std::string suffix = "/chat/completions";
  if (method != "POST" || path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) {
    send_error(fd, 404, "kg_fake_llm: only POST .../chat/completions");
    return;
  }
  const json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    send_error(fd, 400, "kg_fake_llm: the request body is not a JSON object");
    return;
  }
  const long n = g_requests++;
  const Behaviour* behaviour = nullptr;
  const std::string last_user = last_user_message(request);
  for (const Behaviour& b : g_script.all) {
    if (b.match && last_user.find(*b.match) != std::string::npos) {
      behaviour = &b;
      break;
    }
  }
  if (behaviour == nullptr && !g_script.sequence.empty()) {
    const long k = g_sequence++;
    const long size = static_cast<long>(g_script.sequence.size());
    behaviour = g_script.sequence[static_cast<size_t>(g_script.cycle ? k % size : std::min(k, size - 1))];
  }
  write_log(n, path, authorization, request, behaviour != nullptr ? behaviour->index : -1);
  if (behaviour == nullptr) {
    send_error(fd, 400, "kg_fake_llm: no behaviour matches this request");
    return;
  }
  std::string bearer = authorization.value_or("");
  if (bearer.rfind("Bearer ", 0) == 0) {
    bearer.erase(0, 7);
  }
  answer(fd, *behaviour, request, n, bearer);
}

void connection(int fd) {
  try {
    serve(fd);
  } catch (const std::exception& e) {
    std::cerr << "kg_fake_llm: " << e.what() << "\n";
  }
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  if (g_exit_after > 0 && ++g_answered >= g_exit_after) {
    g_stop = true;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string script_path;
  std::string port_file;
  long port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        die(arg + " needs a value");
      }
      return argv[++i];
    };
    try {
      if (arg == "--script") {
        script_path = value();
      } else if (arg == "--port") {
        port = std::stol(value());
      } else if (arg == "--port-file") {
        port_file = value();
      } else if (arg == "--exit-after") {
        g_exit_after = std::stol(value());
      } else {
        die("unknown argument " + arg + " (usage: kg_fake_llm --script FILE [--port N] [--port-file FILE] "
            "[--exit-after N])");
      }
    } catch (const std::logic_error&) {
      die(arg + " expects a number");
    }
  }
  if (script_path.empty()) {
    die("--script FILE is required");
  }
  if (port < 0 || port > 65535) {
    die("--port expects 0 to 65535");
  }
  g_script = load_script(script_path);
  if (!g_script.log_path.empty()) {
    g_log = std::fopen(g_script.log_path.c_str(), "a");
    if (g_log == nullptr) {
      die("cannot open the log " + g_script.log_path);
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 128) != 0) {
    die(std::string("cannot listen on 127.0.0.1:") + std::to_string(port) + ": " + std::strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const int bound = ntohs(addr.sin_port);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream out(tmp);
      out << bound << "\n";
      if (!out.flush()) {
        die("cannot write " + tmp);
      }
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      die("cannot rename " + tmp + " to " + port_file);
    }
  }
  while (!g_stop) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;
    }
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::thread(connection, fd).detach();
  }
  if (g_log != nullptr) {
    std::lock_guard lock(g_log_mutex);
    std::fflush(g_log);
  }
  // Connection threads may still be sleeping in a behaviour: leave without running destructors.
  std::_Exit(0);
}
