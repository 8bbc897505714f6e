// CurlEndpoint against kg_fake_llm (tests/llm/fake_openai_server.cc) over loopback: real HTTP,
// real libcurl, small timeouts.
#include "llm/curl_endpoint.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "fake_llm_process.h"
#include "temp_dir.h"

namespace kg::llm {
namespace {

using nlohmann::json;
using testing::FakeLlm;

// A distinctive key: no message, describe() or log may contain it or a long piece of it.
const std::string k_key = "sk-kgtest-SECRET-7f3a9c1e5b";

const std::string k_kernel = "```cuda\n__global__ void kernel() {}\n```";
const std::string k_reasoning = "First tile by 64. Then pipeline the loads.";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// No 8-byte piece of the key in `text`.
bool leaks_key(const std::string& text) {
  for (size_t i = 0; i + 8 <= k_key.size(); ++i) {
    if (contains(text, k_key.substr(i, 8))) {
      return true;
    }
  }
  return false;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

class CurlEndpointTest : public ::testing::Test {
 protected:
  // The fake is on loopback: a proxy from the environment must not take these requests.
  void SetUp() override {
    ::setenv("no_proxy", "127.0.0.1", 1);
    ::setenv("NO_PROXY", "127.0.0.1", 1);
  }

  // A server with `responses` (cycle as given).
  FakeLlm& serve(json responses, bool cycle = true) {
    const std::string name = "fake" + std::to_string(m_servers.size());
    m_servers.push_back(std::make_unique<FakeLlm>(m_dir.path(), name, json{{"responses", responses}, {"cycle", cycle}}));
    EXPECT_TRUE(m_servers.back()->ok()) << "kg_fake_llm did not start: " << testing::fake_llm_path();
    return *m_servers.back();
  }

  // Settings for tests: short timeouts, fast retries.
  static EndpointSettings settings_for(const FakeLlm& server) {
    EndpointSettings s;
    s.url = server.url();
    s.model = "fake-reasoner";
    s.api_key = k_key;
    s.timeout_s = 5;
    s.stall_timeout_s = 0.3;
    s.connect_timeout_s = 1;
    s.retries = 2;
    s.backoff_s = 0.01;
    s.max_backoff_s = 0.05;
    return s;
  }

  static std::unique_ptr<Endpoint> endpoint(const EndpointSettings& s) {
    auto e = make_curl_endpoint(s);
    EXPECT_TRUE(e.has_value()) << e.error().message;
    return std::move(*e);
  }

  static ChatRequest request(bool stream = true) {
    ChatRequest r;
    r.messages = {{"system", "You write CUDA."}, {"user", "Write the kernel."}};
    r.stream = stream;
    return r;
  }

  // Chat; a failed call's message is checked for the key.
  static Expected<ChatAnswer, Failure> chat(Endpoint& e, const ChatRequest& r, const CancelFlag* cancel = nullptr) {
    auto a = e.chat(r, cancel);
    if (!a) {
      EXPECT_FALSE(leaks_key(a.error().message)) << a.error().message;
    }
    return a;
  }

  kg::testing::TempDir m_dir{"kg-llm"};
  std::vector<std::unique_ptr<FakeLlm>> m_servers;
};

TEST_F(CurlEndpointTest, EachReasoningDeliveryStreamedAndWhole) {
  for (const char* mode : {"reasoning_content", "reasoning", "think"}) {
    FakeLlm& server = serve({{{"mode", mode},
                              {"content", k_kernel},
                              {"reasoning", k_reasoning},
                              {"chunk_bytes", 5},
                              {"usage", {{"prompt_tokens", 120}, {"completion_tokens", 80}, {"reasoning_tokens", 30}}}}});
    auto e = endpoint(settings_for(server));
    for (bool stream : {true, false}) {
      SCOPED_TRACE(std::string(mode) + (stream ? " streamed" : " whole"));
      auto a = chat(*e, request(stream));
      ASSERT_TRUE(a.has_value()) << a.error().message;
      EXPECT_EQ(a->content, k_kernel);
      EXPECT_EQ(a->reasoning, k_reasoning);
      EXPECT_EQ(a->finish_reason, "stop");
      EXPECT_EQ(a->model, "fake-reasoner");
      EXPECT_EQ(a->usage.prompt_tokens, 120);
      EXPECT_EQ(a->usage.completion_tokens, 80);
      EXPECT_EQ(a->usage.reasoning_tokens, 30);
      EXPECT_EQ(a->attempts, 1);
      EXPECT_GT(a->seconds, 0);
      EXPECT_LE(a->first_token_seconds, a->seconds);
    }
    const std::vector<json> log = server.log();
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[0]["path"], "/v1/chat/completions");
    EXPECT_EQ(log[0]["authorization"], "Bearer " + k_key);
    EXPECT_EQ(log[0]["model"], "fake-reasoner");
    EXPECT_EQ(log[0]["stream"], true);
    EXPECT_EQ(log[0]["include_usage"], true);
    EXPECT_EQ(log[0]["messages"], 2);
    EXPECT_EQ(log[0]["last_user_bytes"], 17);
    EXPECT_EQ(log[0]["max_tokens"], nullptr);
    EXPECT_EQ(log[1]["stream"], false);
    EXPECT_EQ(log[1]["include_usage"], false);
  }
}

TEST_F(CurlEndpointTest, ThinkSplitAtEveryByteAndCrlf) {
  FakeLlm& server = serve({{{"mode", "think"}, {"content", k_kernel}, {"reasoning", k_reasoning}, {"chunk_bytes", 1}},
                           {{"mode", "think"}, {"content", k_kernel}, {"reasoning", k_reasoning}, {"crlf", true}}});
  auto e = endpoint(settings_for(server));
  for (int i = 0; i < 2; ++i) {
    auto a = chat(*e, request());
    ASSERT_TRUE(a.has_value()) << a.error().message;
    EXPECT_EQ(a->content, k_kernel);
    EXPECT_EQ(a->reasoning, k_reasoning);
  }
}

TEST_F(CurlEndpointTest, RequestFieldsTrailingSlashAndNoKey) {
  FakeLlm& server = serve({{{"content", "ok"}}});
  EndpointSettings s = settings_for(server);
  s.url += "/";
  s.api_key = "";
  auto e = endpoint(s);
  ChatRequest r = request();
  r.max_tokens = 2048;
  r.temperature = 0.25;
  ASSERT_TRUE(chat(*e, r).has_value());
  const std::vector<json> log = server.log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["path"], "/v1/chat/completions");
  EXPECT_EQ(log[0]["authorization"], nullptr);
  EXPECT_EQ(log[0]["max_tokens"], 2048);
  EXPECT_DOUBLE_EQ(log[0]["temperature"].get<double>(), 0.25);
}

TEST_F(CurlEndpointTest, ServerIgnoringStreamAnswersWhole) {
  FakeLlm& server = serve({{{"mode", "plain"}, {"content", k_kernel}, {"reasoning", k_reasoning}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request(true));
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->content, k_kernel);
  EXPECT_EQ(a->reasoning, k_reasoning);
}

TEST_F(CurlEndpointTest, RetryAfterIsHonoured) {
  FakeLlm& server = serve({{{"status", 429}, {"retry_after", 1}, {"error_message", "slow down"}}, {{"content", "ok"}}});
  EndpointSettings s = settings_for(server);
  s.max_backoff_s = 5;  // the header's 1 s is under the cap; the backoff alone would be 0.01 s
  auto e = endpoint(s);
  auto a = chat(*e, request());
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->attempts, 2);
  EXPECT_GE(a->seconds, 1.0);
  EXPECT_EQ(server.log().size(), 2u);
}

TEST_F(CurlEndpointTest, ServerErrorThenSuccess) {
  FakeLlm& server = serve({{{"status", 500}}, {{"content", "ok"}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->attempts, 2);
  EXPECT_EQ(a->content, "ok");
}

TEST_F(CurlEndpointTest, ServerErrorEveryTimeExhaustsRetries) {
  FakeLlm& server = serve({{{"status", 503}, {"error_message", "the model is overloaded"}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().kind, Failure::Kind::Error);
  EXPECT_TRUE(contains(a.error().message, "HTTP 503 from " + server.url() + "/chat/completions")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "the model is overloaded")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "attempt 3 of 3")) << a.error().message;
  EXPECT_EQ(server.log().size(), 3u);
}

TEST_F(CurlEndpointTest, UnauthorizedIsNotRetriedAndNeverShowsTheKey) {
  // The server quotes the key back, as some providers do.
  FakeLlm& server = serve({{{"status", 401}, {"error_message", "Incorrect API key provided: @AUTH@"}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_FALSE(a.has_value());
  EXPECT_TRUE(contains(a.error().message, "HTTP 401")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "Incorrect API key provided")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "check llm_api_key")) << a.error().message;
  EXPECT_FALSE(leaks_key(a.error().message)) << a.error().message;
  EXPECT_EQ(server.log().size(), 1u);
  EXPECT_EQ(server.log()[0]["authorization"], "Bearer " + k_key);  // the key was sent
}

TEST_F(CurlEndpointTest, BadRequestIsNotRetried) {
  FakeLlm& server = serve({{{"status", 400}, {"error_message", "max_tokens too large"}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_FALSE(a.has_value());
  EXPECT_TRUE(contains(a.error().message, "HTTP 400")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "max_tokens too large")) << a.error().message;
  EXPECT_FALSE(contains(a.error().message, "llm_api_key"));
  EXPECT_EQ(server.log().size(), 1u);
}

TEST_F(CurlEndpointTest, StallIsATimeoutAndRetried) {
  const json stall = {{"content", k_kernel}, {"stall_after_chunks", 2}, {"stall_s", 3}};
  FakeLlm& server = serve({stall, {{"content", "ok"}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->attempts, 2);
  EXPECT_EQ(a->content, "ok");

  FakeLlm& always = serve({stall});
  EndpointSettings s = settings_for(always);
  s.retries = 0;
  auto b = chat(*endpoint(s), request());
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().kind, Failure::Kind::Timeout);
  EXPECT_TRUE(contains(b.error().message, "the server sent nothing for 0.3 s (llm_stall_timeout)")) << b.error().message;
}

TEST_F(CurlEndpointTest, TotalTimeout) {
  FakeLlm& server = serve({{{"content", "late"}, {"delay_s", 3}}});
  EndpointSettings s = settings_for(server);
  s.timeout_s = 0.3;
  s.retries = 0;
  auto a = chat(*endpoint(s), request(false));
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().kind, Failure::Kind::Timeout);
  EXPECT_TRUE(contains(a.error().message, "within 0.3 s (llm_timeout)")) << a.error().message;
}

TEST_F(CurlEndpointTest, TruncatedStreamIsRetried) {
  const json cut = {{"content", k_kernel}, {"truncate_after_chunks", 3}};
  FakeLlm& server = serve({cut, {{"content", "ok"}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->attempts, 2);

  FakeLlm& always = serve({cut});
  auto b = chat(*endpoint(settings_for(always)), request());
  ASSERT_FALSE(b.has_value());
  EXPECT_TRUE(contains(b.error().message, "ended without [DONE] or a finish_reason")) << b.error().message;
  EXPECT_TRUE(contains(b.error().message, "truncated")) << b.error().message;
  EXPECT_EQ(always.log().size(), 3u);

  // A whole answer cut short of its Content-Length.
  FakeLlm& whole = serve({cut, {{"content", "ok"}}});
  auto c = chat(*endpoint(settings_for(whole)), request(false));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->attempts, 2);
}

TEST_F(CurlEndpointTest, InvalidJsonFailsNamingTheOffset) {
  FakeLlm& server = serve({{{"content", k_kernel}, {"invalid_json", true}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  ASSERT_FALSE(a.has_value());
  EXPECT_TRUE(contains(a.error().message, "not a JSON object at byte ")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "'{not json'")) << a.error().message;
  auto b = chat(*e, request(false));
  ASSERT_FALSE(b.has_value());
  EXPECT_TRUE(contains(b.error().message, "not a JSON object")) << b.error().message;
  EXPECT_EQ(server.log().size(), 2u);  // a garbage answer is a failed sample, not retried
}

TEST_F(CurlEndpointTest, ErrorInsideTheStream) {
  FakeLlm& server = serve({{{"stream_error", "upstream overloaded\x01"}}});
  auto a = chat(*endpoint(settings_for(server)), request());
  ASSERT_FALSE(a.has_value());
  EXPECT_TRUE(contains(a.error().message, "error in the stream: upstream overloaded\\x01")) << a.error().message;
}

TEST_F(CurlEndpointTest, EmptyAnswers) {
  FakeLlm& server = serve({{{"empty", true}, {"reasoning", k_reasoning}},
                           {{"content", "<think>thinking and never stopping"}, {"finish_reason", "length"}},
                           {{"content", " \n\n "}}});
  auto e = endpoint(settings_for(server));
  for (int i = 0; i < 3; ++i) {
    auto a = chat(*e, request());
    ASSERT_FALSE(a.has_value());
    EXPECT_TRUE(contains(a.error().message, "empty answer")) << a.error().message;
  }
  auto b = chat(*e, request(false));  // the first again, whole
  ASSERT_FALSE(b.has_value());
  EXPECT_TRUE(contains(b.error().message, "empty answer")) << b.error().message;
  EXPECT_TRUE(contains(b.error().message, std::to_string(k_reasoning.size()) + " bytes of reasoning")) << b.error().message;
}

TEST_F(CurlEndpointTest, AnswerSizeLimit) {
  FakeLlm& server = serve({{{"content", std::string(3000, 'x')}, {"chunk_bytes", 500}}});
  EndpointSettings s = settings_for(server);
  s.max_answer_bytes = 1000;
  auto e = endpoint(s);
  for (bool stream : {true, false}) {
    auto a = chat(*e, request(stream));
    ASSERT_FALSE(a.has_value());
    EXPECT_TRUE(contains(a.error().message, "longer than")) << a.error().message;
    EXPECT_TRUE(contains(a.error().message, "llm_max_answer_bytes")) << a.error().message;
  }
}

TEST_F(CurlEndpointTest, CancelDuringASlowStream) {
  // 200 chunks 0.1 s apart: 20 s if it ran to the end.
  FakeLlm& server = serve({{{"content", std::string(200, 'x')}, {"chunk_bytes", 1}, {"chunk_delay_s", 0.1}}});
  auto e = endpoint(settings_for(server));
  CancelFlag cancel{false};
  std::thread canceller([&] {
    server.wait_for_requests(1, 5);
    cancel = true;
  });
  const auto start = std::chrono::steady_clock::now();
  auto a = chat(*e, request(), &cancel);
  const double took = seconds_since(start);
  canceller.join();
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().message, "cancelled");
  EXPECT_LT(took, 2.0);
}

TEST_F(CurlEndpointTest, CancelDuringARetryWait) {
  FakeLlm& server = serve({{{"status", 429}, {"retry_after", 30}}, {{"content", "ok"}}});
  EndpointSettings s = settings_for(server);
  s.max_backoff_s = 60;
  auto e = endpoint(s);
  CancelFlag cancel{false};
  std::thread canceller([&] {
    server.wait_for_requests(1, 5);
    cancel = true;
  });
  const auto start = std::chrono::steady_clock::now();
  auto a = chat(*e, request(), &cancel);
  const double took = seconds_since(start);
  canceller.join();
  ASSERT_FALSE(a.has_value());
  EXPECT_TRUE(contains(a.error().message, "cancelled")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "HTTP 429")) << a.error().message;
  EXPECT_LT(took, 5.0);
  EXPECT_EQ(server.log().size(), 1u);
}

TEST_F(CurlEndpointTest, AlreadyCancelledSendsNothing) {
  FakeLlm& server = serve({{{"content", "ok"}}});
  CancelFlag cancel{true};
  auto a = chat(*endpoint(settings_for(server)), request(), &cancel);
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().message, "cancelled");
  EXPECT_EQ(server.log().size(), 0u);
}

TEST_F(CurlEndpointTest, ConnectionRefused) {
  // A port that was free a moment ago and has nobody listening.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  EndpointSettings s;
  s.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/v1";
  s.model = "m";
  s.api_key = k_key;
  s.retries = 1;
  s.backoff_s = 0.01;
  s.max_backoff_s = 0.01;
  auto a = chat(*endpoint(s), request());
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().kind, Failure::Kind::Error);
  EXPECT_TRUE(contains(a.error().message, "cannot reach " + s.url + "/chat/completions")) << a.error().message;
  EXPECT_TRUE(contains(a.error().message, "attempt 2 of 2")) << a.error().message;
}

TEST_F(CurlEndpointTest, NonceMakesAnswersDiffer) {
  FakeLlm& server = serve({{{"content", "// sample @NONCE@\nk();"}, {"nonce", true}}});
  auto e = endpoint(settings_for(server));
  auto a = chat(*e, request());
  auto b = chat(*e, request());
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->content, b->content);
  EXPECT_FALSE(contains(a->content, "@NONCE@"));
}

TEST_F(CurlEndpointTest, ConcurrentCalls) {
  FakeLlm& server = serve({{{"content", k_kernel}, {"reasoning", k_reasoning}, {"chunk_delay_s", 0.01}}});
  auto e = endpoint(settings_for(server));
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      auto a = e->chat(request(), nullptr);
      results[i] = !a ? a.error().message : a->content + "|" + a->reasoning;
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (const std::string& r : results) {
    EXPECT_EQ(r, k_kernel + "|" + k_reasoning);
  }
  EXPECT_EQ(server.log().size(), 8u);
}

TEST_F(CurlEndpointTest, FirstTokenTimeCountsTheServersDelay) {
  FakeLlm& server = serve({{{"content", "ok"}, {"delay_s", 0.2}}});
  auto a = chat(*endpoint(settings_for(server)), request());
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_GE(a->first_token_seconds, 0.2);
  EXPECT_GE(a->seconds, a->first_token_seconds);
}

TEST_F(CurlEndpointTest, DescribeNamesUrlAndModelOnly) {
  FakeLlm& server = serve({{{"content", "ok"}}});
  auto e = endpoint(settings_for(server));
  EXPECT_EQ(e->describe(), server.url() + " (model fake-reasoner)");
  EXPECT_EQ(e->model(), "fake-reasoner");
  EndpointSettings s = settings_for(server);
  s.url = "https://user:" + k_key + "@llm.example/v1/";
  auto f = endpoint(s);
  EXPECT_FALSE(leaks_key(f->describe())) << f->describe();
  EXPECT_TRUE(contains(f->describe(), "llm.example/v1")) << f->describe();
}

TEST(LlmEndpointSettings, InvalidSettingsAreNamed) {
  const auto error = [](auto change) {
    EndpointSettings s;
    s.url = "http://127.0.0.1:1/v1";
    s.model = "m";
    s.api_key = k_key;
    change(s);
    auto e = make_curl_endpoint(s);
    return e ? std::string() : e.error().message;
  };
  EXPECT_EQ(error([](EndpointSettings&) {}), "");
  EXPECT_EQ(error([](EndpointSettings& s) { s.url = "ftp://x"; }),
            "llm_url: expected a URL starting with http:// or https://, found 'ftp://x'");
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.url = "http://"; }), "llm_url"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.url = "http://a b/v1"; }), "llm_url"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.model = ""; }), "llm_model"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.timeout_s = 0; }), "llm_timeout: expected a positive"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.stall_timeout_s = -1; }), "llm_stall_timeout"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.connect_timeout_s = NAN; }), "llm_connect_timeout"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.retries = -1; }), "llm_retries"));
  EXPECT_TRUE(contains(error([](EndpointSettings& s) { s.max_answer_bytes = 0; }), "llm_max_answer_bytes"));
  const std::string key_error = error([](EndpointSettings& s) { s.api_key = k_key + "\r\nX-Evil: 1"; });
  EXPECT_TRUE(contains(key_error, "llm_api_key")) << key_error;
  EXPECT_FALSE(leaks_key(key_error));
}

}  // namespace
}  // namespace kg::llm
