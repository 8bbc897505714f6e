// The Endpoint over libcurl. One easy handle per call (so calls share nothing and run on any
// thread), driven through a private multi handle so that the calling thread wakes every
// k_poll_ms to honour the CancelFlag and the stall timeout: libcurl's own progress callback runs
// only about once a second while a connection is idle, which is too coarse for both.
#include "llm/curl_endpoint.h"

#include "util/curl_library.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "llm/chat_json.h"
#include "llm/redact.h"
#include "llm/retry.h"
#include "llm/sse.h"
#include "util/log.h"
#include "util/text.h"

namespace kg::llm {

namespace {

using Clock = std::chrono::steady_clock;

constexpr long k_poll_ms = 20;                 // how often a transfer looks at the flag and the clock
constexpr size_t k_error_body_bytes = 64 << 10;  // what is kept of an HTTP error's body

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) {
    return false;
  }
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// The URL without any user:password@ (describe() and messages never show credentials).
std::string shown_url(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return std::string(url);
  }
  const size_t host = scheme + 3;
  const size_t end = url.find_first_of("/?#", host);
  const std::string_view authority = url.substr(host, end == std::string_view::npos ? url.npos : end - host);
  const size_t at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return std::string(url);
  }
  return std::string(url.substr(0, host)) + "…@" + std::string(url.substr(host + at + 1));
}

// What one attempt came to.
struct Attempt {
  std::optional<ChatAnswer> answer;
  Failure failure;
  bool retryable = false;
  std::string retry_after;  // the Retry-After header, when the server sent one
};

// The state a transfer's callbacks share with the thread that drives it.
struct Transfer {
  Transfer(bool stream_requested, size_t max_answer_bytes)
      : stream(stream_requested), parser(max_answer_bytes + (64 << 10)), builder(max_answer_bytes) {}

  CURL* easy = nullptr;
  bool stream;
  size_t max_body_bytes = 0;   // a non-streamed body (JSON escapes make it larger than its answer)
  size_t max_total_bytes = 0;  // everything received, event stream overhead included
  Clock::time_point start;
  Clock::time_point last_byte;
  std::optional<double> first_byte_s;

  enum class Mode { Unknown, Sse, Body, ErrorBody } mode = Mode::Unknown;
  long status = 0;
  std::string retry_after;
  std::string body;  // Body and ErrorBody modes
  size_t received = 0;

  SseParser parser;
  AnswerBuilder builder;
  bool done = false;  // [DONE] seen
  std::vector<SseEvent> events;

  std::optional<Failure> failure;  // set by a callback that ended the transfer

  void decide_mode() {
    if (mode != Mode::Unknown) {
      return;
    }
    kg::curl::lib().easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char* type = nullptr;
    kg::curl::lib().easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
    if (status < 200 || status > 299) {
      mode = Mode::ErrorBody;
    } else if (stream && !(type != nullptr && starts_with_nocase(type, "application/json"))) {
      mode = Mode::Sse;  // a server that ignores stream:true answers application/json: read as a body
    } else {
      mode = Mode::Body;
    }
  }

  // Returns false to end the transfer (failure says why).
  bool take(std::string_view bytes) {
    received += bytes.size();
    if (received > max_total_bytes) {
      failure = Failure{Failure::Kind::Error,
                        "the server sent more than " + std::to_string(max_total_bytes) + " bytes for one answer"};
      return false;
    }
    decide_mode();
    switch (mode) {
      case Mode::ErrorBody:
        body.append(bytes.substr(0, std::min(bytes.size(), k_error_body_bytes - std::min(body.size(), k_error_body_bytes))));
        return true;
      case Mode::Body:
        if (body.size() + bytes.size() > max_body_bytes) {
          failure = Failure{Failure::Kind::Error,
                            "the answer is longer than " + std::to_string(max_body_bytes) + " bytes (llm_max_answer_bytes)"};
          return false;
        }
        body.append(bytes);
        return true;
      case Mode::Sse:
        if (!parser.feed(bytes, events)) {
          failure = Failure{Failure::Kind::Error, parser.error()};
          return false;
        }
        return take_events();
      case Mode::Unknown:
        break;
    }
    return true;
  }

  bool take_events() {
    for (const SseEvent& e : events) {
      if (done) {
        break;  // nothing after [DONE] counts
      }
      if (e.data == "[DONE]") {
        done = true;
        continue;
      }
      if (auto r = builder.add_chunk(e.data, e.offset); !r) {
        failure = r.error();
        events.clear();
        return false;
      }
    }
    events.clear();
    return true;
  }
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  t->last_byte = Clock::now();
  if (!t->first_byte_s && n > 0) {
    t->first_byte_s = seconds_since(t->start);
  }
  return t->take(std::string_view(data, n)) ? n : 0;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  t->last_byte = Clock::now();
  std::string_view line(data, n);
  if (starts_with_nocase(line, "HTTP/")) {
    t->retry_after.clear();  // a new response (after a 100 Continue or a redirect)
  } else if (starts_with_nocase(line, "retry-after:")) {
    line.remove_prefix(12);
    t->retry_after = std::string(line.substr(0, std::min<size_t>(line.size(), 128)));
  }
  return n;
}

class CurlEndpoint final : public Endpoint {
 public:
  explicit CurlEndpoint(EndpointSettings settings)
      : m_settings(std::move(settings)), m_rng(std::random_device{}()) {
    std::string base = m_settings.url;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    m_chat_url = base + "/chat/completions";
    m_shown_chat_url = redact_secret(shown_url(m_chat_url), m_settings.api_key);
    m_description =
        redact_secret(shown_url(base) + " (model " + printable(m_settings.model, 200) + ")", m_settings.api_key);
    if (!m_settings.api_key.empty()) {
      m_auth_header = "Authorization: Bearer " + m_settings.api_key;
    }
  }

  std::string describe() const override { return m_description; }
  std::string model() const override { return m_settings.model; }

  Expected<ChatAnswer, Failure> chat(const ChatRequest& request, const CancelFlag* cancel) override {
    const Clock::time_point start = Clock::now();
    const std::string body = chat_request_body(m_settings.model, request);
    const int attempts = 1 + std::max(0, m_settings.retries);
    for (int attempt = 1;; ++attempt) {
      Attempt a = attempt_once(body, request.stream, cancel);
      if (a.answer) {
        a.answer->attempts = attempt;
        a.answer->seconds = seconds_since(start);
        return std::move(*a.answer);
      }
      std::string message = std::move(a.failure.message);
      if (!a.retryable || attempt >= attempts) {
        if (attempt > 1) {
          message += " (attempt " + std::to_string(attempt) + " of " + std::to_string(attempts) + ")";
        }
        return fail(redact_secret(message, m_settings.api_key), a.failure.kind);
      }
      double wait = 0;
      {
        std::lock_guard lock(m_rng_mutex);
        wait = retry_wait(attempt - 1, a.retry_after, BackoffSettings{m_settings.backoff_s, m_settings.max_backoff_s},
                          m_rng, std::chrono::system_clock::now());
      }
      KG_LOG_INFO(redact_secret(message, m_settings.api_key) << "; retrying in " << format_seconds(wait) << " (attempt "
                                                            << attempt + 1 << " of " << attempts << ")");
      if (!sleep_unless_cancelled(wait, cancel)) {
        return fail("cancelled (waiting to retry after: " + redact_secret(message, m_settings.api_key) + ")");
      }
    }
  }

 private:
  // Sleeps `seconds` in short steps; false when `cancel` was set first.
  static bool sleep_unless_cancelled(double seconds, const CancelFlag* cancel) {
    const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
      if (cancel != nullptr && cancel->load()) {
        return false;
      }
      const auto left = end - Clock::now();
      std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(k_poll_ms)));
    }
    return !(cancel != nullptr && cancel->load());
  }

  Attempt attempt_once(const std::string& body, bool stream, const CancelFlag* cancel) const {
    Attempt result;
    if (cancel != nullptr && cancel->load()) {
      result.failure = Failure{Failure::Kind::Error, "cancelled"};
      return result;
    }
    Transfer t(stream, m_settings.max_answer_bytes);
    t.max_body_bytes = m_settings.max_answer_bytes * 6 + (1 << 20);
    t.max_total_bytes = std::max<size_t>(m_settings.max_answer_bytes * 64, size_t{64} << 20);

    std::unique_ptr<CURL, decltype(kg::curl::Api::easy_cleanup)> easy(kg::curl::lib().easy_init(), kg::curl::lib().easy_cleanup);
    std::unique_ptr<CURLM, decltype(kg::curl::Api::multi_cleanup)> multi(kg::curl::lib().multi_init(), kg::curl::lib().multi_cleanup);
    if (!easy || !multi) {
      result.failure = Failure{Failure::Kind::Error, "cannot start a libcurl transfer"};
      return result;
    }
    t.easy = easy.get();
    curl_slist* headers = nullptr;
    headers = kg::curl::lib().slist_append(headers, "Content-Type: application/json");
    headers = kg::curl::lib().slist_append(headers, stream ? "Accept: text/event-stream" : "Accept: application/json");
    headers = kg::curl::lib().slist_append(headers, "Expect:");  // no 100-continue round trip
    if (!m_auth_header.empty()) {
      headers = kg::curl::lib().slist_append(headers, m_auth_header.c_str());
    }
    std::unique_ptr<curl_slist, decltype(kg::curl::Api::slist_free_all)> header_list(headers, kg::curl::lib().slist_free_all);
    char errbuf[CURL_ERROR_SIZE] = {0};

    CURL* h = easy.get();
    kg::curl::lib().easy_setopt(h, CURLOPT_URL, m_chat_url.c_str());
    kg::curl::lib().easy_setopt(h, CURLOPT_POST, 1L);
    kg::curl::lib().easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    kg::curl::lib().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    kg::curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    kg::curl::lib().easy_setopt(h, CURLOPT_USERAGENT, "kernelgen");
    kg::curl::lib().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    kg::curl::lib().easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    kg::curl::lib().easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(std::ceil(m_settings.timeout_s * 1000)));
    kg::curl::lib().easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::ceil(m_settings.connect_timeout_s * 1000)));
    kg::curl::lib().easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    kg::curl::lib().easy_setopt(h, CURLOPT_WRITEDATA, &t);
    kg::curl::lib().easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    kg::curl::lib().easy_setopt(h, CURLOPT_HEADERDATA, &t);
    kg::curl::lib().easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // whatever this libcurl decodes
    kg::curl::lib().easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    // Redirects are not followed: a POST with a bearer token goes only where it was configured to.
    kg::curl::lib().easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);

    t.start = Clock::now();
    t.last_byte = t.start;
    kg::curl::lib().multi_add_handle(multi.get(), h);
    enum class Stop { Finished, Cancelled, Stalled, MultiError } stop = Stop::Finished;
    CURLcode code = CURLE_OK;
    for (;;) {
      int running = 0;
      if (kg::curl::lib().multi_perform(multi.get(), &running) != CURLM_OK) {
        stop = Stop::MultiError;
        break;
      }
      if (running == 0) {
        int left = 0;
        while (CURLMsg* m = kg::curl::lib().multi_info_read(multi.get(), &left)) {
          if (m->msg == CURLMSG_DONE) {
            code = m->data.result;
          }
        }
        break;
      }
      if (cancel != nullptr && cancel->load()) {
        stop = Stop::Cancelled;
        break;
      }
      // The stall limit applies to streams only: a non-streamed answer is silent until it is whole.
      if (stream && seconds_since(t.last_byte) > m_settings.stall_timeout_s) {
        stop = Stop::Stalled;
        break;
      }
      kg::curl::lib().multi_poll(multi.get(), nullptr, 0, k_poll_ms, nullptr);
    }
    kg::curl::lib().multi_remove_handle(multi.get(), h);
    const double elapsed = seconds_since(t.start);

    switch (stop) {
      case Stop::Cancelled:
        result.failure = Failure{Failure::Kind::Error, "cancelled"};
        return result;
      case Stop::Stalled:
        result.failure = Failure{Failure::Kind::Timeout, "the server sent nothing for " +
                                                             format_seconds(m_settings.stall_timeout_s) +
                                                             " (llm_stall_timeout) from " + m_shown_chat_url};
        result.retryable = true;
        return result;
      case Stop::MultiError:
        result.failure = Failure{Failure::Kind::Error, "libcurl failed driving the transfer to " + m_shown_chat_url};
        return result;
      case Stop::Finished:
        break;
    }
    if (t.failure) {  // a callback ended it: a malformed or oversized answer
      result.failure = *t.failure;
      return result;
    }
    // A connection that breaks after [DONE] has delivered its whole answer.
    const bool complete_stream = t.mode == Transfer::Mode::Sse && t.done;
    if (code != CURLE_OK && !complete_stream) {
      const std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : kg::curl::lib().easy_strerror(code);
      switch (code) {
        case CURLE_OPERATION_TIMEDOUT:
          result.failure.kind = Failure::Kind::Timeout;
          result.failure.message =
              t.received == 0 && elapsed < m_settings.timeout_s * 0.99
                  ? "could not connect to " + m_shown_chat_url + " within " +
                        format_seconds(m_settings.connect_timeout_s) + " (llm_connect_timeout)"
                  : "no complete answer from " + m_shown_chat_url + " within " + format_seconds(m_settings.timeout_s) +
                        " (llm_timeout)";
          result.retryable = true;
          return result;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
          result.failure.message = "cannot reach " + m_shown_chat_url + ": " + printable(detail, 300);
          result.retryable = true;
          return result;
        default:
          result.failure.message = "request to " + m_shown_chat_url + " failed: " + printable(detail, 300);
          return result;
      }
    }
    t.decide_mode();
    result.retry_after = t.retry_after;
    if (t.mode == Transfer::Mode::ErrorBody) {
      std::string message = "HTTP " + std::to_string(t.status) + " from " + m_shown_chat_url;
      if (const std::string server = server_error_message(t.body); !server.empty()) {
        message += ": " + server;
      }
      if (t.status == 401 || t.status == 403) {
        message += " (check llm_api_key)";
      }
      result.failure.message = std::move(message);
      result.retryable = retryable_status(t.status);
      return result;
    }
    if (t.mode == Transfer::Mode::Sse) {
      if (!t.parser.finish(t.events) || !t.take_events()) {
        result.failure = t.failure.value_or(Failure{Failure::Kind::Error, t.parser.error()});
        return result;
      }
      if (!t.done && !t.builder.saw_finish_reason()) {
        result.failure.message = "the event stream from " + m_shown_chat_url +
                                 " ended without [DONE] or a finish_reason after " + std::to_string(t.received) +
                                 " bytes (truncated)";
        result.retryable = true;
        return result;
      }
    } else if (auto r = t.builder.add_response(t.body); !r) {
      result.failure = r.error();
      return result;
    }
    ChatAnswer answer = t.builder.finish();
    if (std::all_of(answer.content.begin(), answer.content.end(),
                    [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; })) {
      result.failure.message = "empty answer from " + m_shown_chat_url + " (finish_reason '" +
                               printable(answer.finish_reason, 40) + "', " + std::to_string(answer.reasoning.size()) +
                               " bytes of reasoning)";
      return result;
    }
    answer.first_token_seconds = t.first_byte_s.value_or(elapsed);
    result.answer = std::move(answer);
    return result;
  }

  EndpointSettings m_settings;
  std::string m_chat_url;
  std::string m_shown_chat_url;
  std::string m_description;
  std::string m_auth_header;
  std::mutex m_rng_mutex;
  std::mt19937_64 m_rng;
};

bool positive_seconds(double s) { return std::isfinite(s) && s > 0 && s < 1e7; }

std::string number_text(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

}  // namespace

Expected<std::unique_ptr<Endpoint>, Failure> make_curl_endpoint(const EndpointSettings& settings) {
  KG_TRY(kg::curl::load());
  const std::string& url = settings.url;
  const bool http = starts_with_nocase(url, "http://") && url.size() > 7;
  const bool https = starts_with_nocase(url, "https://") && url.size() > 8;
  const bool clean = std::none_of(url.begin(), url.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
  });
  if (!(http || https) || !clean) {
    return fail("llm_url: expected a URL starting with http:// or https://, found '" + printable(shown_url(url), 200) +
                "'");
  }
  if (settings.model.empty() || settings.model.size() > 256) {
    return fail("llm_model: expected a model name (1 to 256 bytes), found '" + printable(settings.model, 80) + "'");
  }
  if (std::any_of(settings.api_key.begin(), settings.api_key.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return fail("llm_api_key: the key contains a line break or another control character");
  }
  const std::pair<const char*, double> timeouts[] = {{"llm_timeout", settings.timeout_s},
                                                     {"llm_stall_timeout", settings.stall_timeout_s},
                                                     {"llm_connect_timeout", settings.connect_timeout_s}};
  for (const auto& [name, value] : timeouts) {
    if (!positive_seconds(value)) {
      return fail(std::string(name) + ": expected a positive number of seconds, found " + number_text(value));
    }
  }
  if (settings.retries < 0 || settings.retries > 100) {
    return fail("llm_retries: expected 0 to 100, found " + std::to_string(settings.retries));
  }
  if (!std::isfinite(settings.backoff_s) || settings.backoff_s < 0 || !std::isfinite(settings.max_backoff_s) ||
      settings.max_backoff_s < 0) {
    return fail("llm_backoff / llm_max_backoff: expected numbers of seconds >= 0, found " +
                number_text(settings.backoff_s) + " / " + number_text(settings.max_backoff_s));
  }
  if (settings.max_answer_bytes == 0 || settings.max_answer_bytes > (size_t{1} << 32)) {
    return fail("llm_max_answer_bytes: expected 1 to 4294967296, found " + std::to_string(settings.max_answer_bytes));
  }
  return std::unique_ptr<Endpoint>(std::make_unique<CurlEndpoint>(settings));
}

}  // namespace kg::llm
