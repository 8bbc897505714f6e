#include "llm/chat_json.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace kg::llm {
namespace {

using nlohmann::json;

struct Split {
  std::string content;
  std::string reasoning;
};

// `text` fed to a ThinkSplitter in pieces of `piece` bytes.
Split split(const std::string& text, size_t piece) {
  ThinkSplitter t;
  Split s;
  for (size_t i = 0; i < text.size(); i += piece) {
    t.add(std::string_view(text).substr(i, piece), s.content, s.reasoning);
  }
  t.finish(s.content, s.reasoning);
  return s;
}

TEST(LlmThink, SplitsAtAnyCut) {
  const std::string text = "\n <think>I should tile by 64.\n</think>\n\n```cuda\nk();\n```";
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    const Split s = split(text, piece);
    EXPECT_EQ(s.reasoning, "I should tile by 64.\n") << "piece " << piece;
    EXPECT_EQ(s.content, "```cuda\nk();\n```") << "piece " << piece;
  }
}

TEST(LlmThink, UnterminatedThinkIsAllReasoning) {
  for (size_t piece : {1, 3, 100}) {
    const Split s = split("<think>still thinking </thi", piece);
    EXPECT_EQ(s.content, "");
    EXPECT_EQ(s.reasoning, "still thinking </thi");
  }
}

TEST(LlmThink, ContentWithoutThinkIsUntouched) {
  for (size_t piece : {1, 2, 5, 100}) {
    EXPECT_EQ(split("<thin air>", piece).content, "<thin air>");
    EXPECT_EQ(split("  answer <think>x</think>", piece).content, "  answer <think>x</think>");
    EXPECT_EQ(split(" <th", piece).content, " <th");  // ended while it could still have been a tag
    EXPECT_EQ(split("", piece).content, "");
    EXPECT_EQ(split("answer", piece).reasoning, "");
  }
}

TEST(LlmChatJson, RequestBody) {
  ChatRequest r;
  r.messages = {{"system", "rules"}, {"user", "write \"k\""}};
  r.temperature = 0.6;
  const json streamed = json::parse(chat_request_body("deepseek-reasoner", r));
  EXPECT_EQ(streamed["model"], "deepseek-reasoner");
  EXPECT_EQ(streamed["messages"].size(), 2u);
  EXPECT_EQ(streamed["messages"][1]["content"], "write \"k\"");
  EXPECT_DOUBLE_EQ(streamed["temperature"].get<double>(), 0.6);
  EXPECT_EQ(streamed["stream"], true);
  EXPECT_EQ(streamed["stream_options"]["include_usage"], true);
  EXPECT_FALSE(streamed.contains("max_tokens"));
  r.stream = false;
  r.max_tokens = 4096;
  r.messages[1].content = "bad utf-8 \xff";
  const json whole = json::parse(chat_request_body("m", r));
  EXPECT_EQ(whole["stream"], false);
  EXPECT_FALSE(whole.contains("stream_options"));
  EXPECT_EQ(whole["max_tokens"], 4096);
}

TEST(LlmChatJson, WholeResponseEachReasoningDelivery) {
  const char* bodies[] = {
      R"({"model":"m1","choices":[{"index":0,"message":{"content":"A","reasoning_content":"R"},"finish_reason":"stop"}],
          "usage":{"prompt_tokens":3,"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":2}}})",
      R"({"model":"m1","choices":[{"index":0,"message":{"content":"A","reasoning":"R"},"finish_reason":"stop"}],
          "usage":{"prompt_tokens":3,"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":2}}})",
      R"({"model":"m1","choices":[{"index":0,"message":{"content":"<think>R</think>\n\nA"},"finish_reason":"stop"}],
          "usage":{"prompt_tokens":3,"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":2}}})"};
  for (const char* body : bodies) {
    AnswerBuilder b(1000);
    ASSERT_TRUE(b.add_response(body).has_value()) << body;
    const ChatAnswer a = b.finish();
    EXPECT_EQ(a.content, "A");
    EXPECT_EQ(a.reasoning, "R");
    EXPECT_EQ(a.model, "m1");
    EXPECT_EQ(a.finish_reason, "stop");
    EXPECT_EQ(a.usage.prompt_tokens, 3);
    EXPECT_EQ(a.usage.completion_tokens, 4);
    EXPECT_EQ(a.usage.reasoning_tokens, 2);
  }
}

TEST(LlmChatJson, MalformedResponsesFail) {
  const std::pair<std::string, std::string> cases[] = {
      {"{not json", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {R"({"choices":[]})", "no choices[0].message"},
      {R"({"choices":[{"index":"zero","message":7}]})", "no choices[0].message"},
      {R"({"error":{"message":"model overloaded","type":"server_error"}})", "model overloaded"},
      {R"({"choices":[{"index":0,"message":{"content":)" "\"" + std::string(2000, 'x') + "\"" R"(}}]})", "longer than 1000"},
  };
  for (const auto& [body, expected] : cases) {
    AnswerBuilder b(1000);
    const auto r = b.add_response(body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_NE(r.error().message.find(expected), std::string::npos) << r.error().message;
  }
}

TEST(LlmChatJson, ChunkErrorsNameTheirOffsetOrMessage) {
  AnswerBuilder b(1000);
  auto r = b.add_chunk("{not json", 1234);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("at byte 1234"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("{not json"), std::string::npos) << r.error().message;
  r = b.add_chunk(R"({"error":{"message":"rate limited\u0007 in stream"}})", 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("rate limited\\x07 in stream"), std::string::npos) << r.error().message;
  // Wrong types are ignored, not thrown on.
  AnswerBuilder c(1000);
  EXPECT_TRUE(c.add_chunk(R"({"model":5,"usage":{"prompt_tokens":"x"},"choices":[{"delta":{"content":7},"finish_reason":1}]})", 0));
  EXPECT_TRUE(c.add_chunk(R"({"choices":"none","usage":null})", 0));
  EXPECT_FALSE(c.saw_finish_reason());
}

TEST(LlmChatJson, ServerErrorMessage) {
  EXPECT_EQ(server_error_message(R"({"error":{"message":"Authentication Fails","type":"auth"}})"), "Authentication Fails");
  EXPECT_EQ(server_error_message(R"({"error":"bad model"})"), "bad model");
  EXPECT_EQ(server_error_message(R"({"detail":"Not Found"})"), "Not Found");
  EXPECT_EQ(server_error_message("  <html>502 Bad Gateway</html>\n"), "<html>502 Bad Gateway</html>\\x0a");
  EXPECT_EQ(server_error_message(""), "");
  EXPECT_EQ(server_error_message("{}"), "");
  const std::string long_message = server_error_message(R"({"error":{"message":")" + std::string(5000, 'y') + "\"}}");
  EXPECT_LT(long_message.size(), 400u);
  EXPECT_NE(long_message.find("more bytes"), std::string::npos);
}

}  // namespace
}  // namespace kg::llm
