// kg_fake_llm itself: its script features and its robustness against junk on the socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "fake_llm_process.h"
#include "llm/curl_endpoint.h"
#include "temp_dir.h"

namespace kg::testing {
namespace {

using nlohmann::json;

// Sends `bytes` to the server on a fresh connection and returns what came back before it closed.
std::string round_trip(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "(connect failed)";
  }
  size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    if (n <= 0) {
      break;
    }
    at += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string status_line(const std::string& response) { return response.substr(0, response.find("\r\n")); }

Expected<llm::ChatAnswer, Failure> ask(const FakeLlm& server, const std::string& user, bool stream = true) {
  ::setenv("no_proxy", "127.0.0.1", 1);  // the fake is on loopback, never behind a proxy
  ::setenv("NO_PROXY", "127.0.0.1", 1);
  llm::EndpointSettings s;
  s.url = server.url();
  s.model = "m";
  s.retries = 0;
  s.timeout_s = 5;
  auto e = llm::make_curl_endpoint(s);
  llm::ChatRequest r;
  r.messages = {{"user", user}};
  r.stream = stream;
  return (*e)->chat(r, nullptr);
}

TEST(FakeLlm, JunkOnTheSocketIsAnsweredOrDropped) {
  TempDir dir("kg-fake-llm");
  FakeLlm server(dir.path(), "s", json{{"responses", {{{"content", "ok"}}}}});
  ASSERT_TRUE(server.ok());
  const int port = server.port();
  EXPECT_EQ(round_trip(port, "garbage without an end"), "");
  EXPECT_EQ(status_line(round_trip(port, "GET /v1/chat/completions HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status_line(round_trip(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n")),
            "HTTP/1.1 413 Payload Too Large");
  EXPECT_EQ(status_line(round_trip(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")),
            "HTTP/1.1 413 Payload Too Large");
  EXPECT_EQ(status_line(round_trip(port, "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")),
            "HTTP/1.1 411 Length Required");
  EXPECT_EQ(status_line(round_trip(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops")),
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(status_line(round_trip(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 14\r\n\r\n{\"stream\":\"x\"}")),
            "");  // a body of the wrong shape: the connection is dropped
  EXPECT_EQ(status_line(round_trip(port, "POST / HTTP/1.1\r\nX: " + std::string(70000, 'a') + "\r\n\r\n")),
            "HTTP/1.1 431 Status");
  std::string binary;
  for (int i = 0; i < 5000; ++i) {
    binary += static_cast<char>((i * 7919) % 256);
  }
  round_trip(port, binary);
  // Still serving.
  auto a = ask(server, "hello");
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->content, "ok");
}

TEST(FakeLlm, MatchCycleAndContentFile) {
  TempDir dir("kg-fake-llm");
  std::ofstream(dir.sub("answer.cu")) << "__global__ void from_file() {}";
  FakeLlm server(dir.path(), "s",
                 json{{"cycle", false},
                      {"responses",
                       {{{"content", "first"}},
                        {{"content_file", "answer.cu"}},
                        {{"match", "kernel B"}, {"content", "matched B"}}}}});
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(ask(server, "please write kernel B")->content, "matched B");
  EXPECT_EQ(ask(server, "anything")->content, "first");
  EXPECT_EQ(ask(server, "anything")->content, "__global__ void from_file() {}");
  EXPECT_EQ(ask(server, "anything", false)->content, "__global__ void from_file() {}");  // the last repeats
  EXPECT_EQ(ask(server, "kernel B again")->content, "matched B");
  const std::vector<json> log = server.log();
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log[0]["behaviour"], 2);
  EXPECT_EQ(log[1]["behaviour"], 0);
  EXPECT_EQ(log[2]["behaviour"], 1);
  EXPECT_EQ(log[4]["n"], 4);
}

TEST(FakeLlm, ExitAfterRequests) {
  TempDir dir("kg-fake-llm");
  FakeLlm server(dir.path(), "s", json{{"responses", {{{"content", "ok"}}}}}, {"--exit-after", "2"});
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(ask(server, "one").has_value());
  EXPECT_TRUE(ask(server, "two").has_value());
  const int status = server.wait_exit(5);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(FakeLlm, BadScriptExitsWithStatus2) {
  TempDir dir("kg-fake-llm");
  for (const json& script : {json{{"responses", json::array()}}, json{{"responses", {{{"mode", "psychic"}}}}},
                             json{{"responses", {{{"chunk_bytes", "many"}}}}},
                             json{{"responses", {{{"content_file", "missing.txt"}}}}}}) {
    FakeLlm server(dir.path(), "bad", script);
    EXPECT_FALSE(server.ok()) << script.dump();
  }
}

}  // namespace
}  // namespace kg::testing
