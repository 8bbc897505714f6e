#include "llm/sse.h"

#include <random>

#include <gtest/gtest.h>

#include "llm/chat_json.h"

namespace kg::llm {
namespace {

std::vector<SseEvent> parse_all(std::string_view stream, const std::vector<size_t>& cuts) {
  SseParser p;
  std::vector<SseEvent> events;
  size_t at = 0;
  for (size_t cut : cuts) {
    EXPECT_TRUE(p.feed(stream.substr(at, cut - at), events));
    at = cut;
  }
  EXPECT_TRUE(p.feed(stream.substr(at), events));
  EXPECT_TRUE(p.finish(events));
  return events;
}

// A stream as DeepSeek's API sends one: a keep-alive comment, role, reasoning, content with a
// <think> in it that is not at the start, finish, usage, [DONE].
const std::string k_recorded =
    ": keep-alive\n\n"
    "data: {\"id\":\"1\",\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Let me think \\u00e9\"}}]}\n\n"
    "event: message\nid: 7\n"
    "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"__global__ void k()\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" {} // <think>\"}}]}\r\r"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":22,"
    "\"completion_tokens_details\":{\"reasoning_tokens\":5}}}\n\n"
    "data: [DONE]\n\n";

TEST(Sse, RecordedStreamGivesItsEvents) {
  const std::vector<SseEvent> events = parse_all(k_recorded, {});
  ASSERT_EQ(events.size(), 7u);
  EXPECT_EQ(events[0].offset, 14u);
  EXPECT_EQ(events[0].data.substr(0, 8), "{\"id\":\"1");
  EXPECT_EQ(events[2].data.substr(0, 12), "{\"choices\":[");  // "data:" without the space
  EXPECT_EQ(events[6].data, "[DONE]");
}

ChatAnswer answer_of(const std::vector<SseEvent>& events) {
  AnswerBuilder b(1 << 20);
  for (const SseEvent& e : events) {
    if (e.data != "[DONE]") {
      EXPECT_TRUE(b.add_chunk(e.data, e.offset).has_value());
    }
  }
  return b.finish();
}

TEST(Sse, RandomSplitsGiveTheSameAnswer) {
  const ChatAnswer whole = answer_of(parse_all(k_recorded, {}));
  EXPECT_EQ(whole.content, "__global__ void k() {} // <think>");
  EXPECT_EQ(whole.reasoning, "Let me think \xc3\xa9");
  EXPECT_EQ(whole.finish_reason, "stop");
  EXPECT_EQ(whole.model, "deepseek-reasoner");
  EXPECT_EQ(whole.usage.prompt_tokens, 11);
  EXPECT_EQ(whole.usage.completion_tokens, 22);
  EXPECT_EQ(whole.usage.reasoning_tokens, 5);
  const std::vector<SseEvent> reference = parse_all(k_recorded, {});
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::vector<size_t> cuts;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      cuts.push_back(rng() % (k_recorded.size() + 1));
    }
    if (round % 100 == 0) {  // every byte on its own
      cuts.clear();
      for (size_t i = 1; i < k_recorded.size(); ++i) {
        cuts.push_back(i);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    const std::vector<SseEvent> events = parse_all(k_recorded, cuts);
    ASSERT_EQ(events.size(), reference.size()) << "round " << round;
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].data, reference[i].data);
      ASSERT_EQ(events[i].offset, reference[i].offset);
    }
  }
}

TEST(Sse, LastLineWithoutBreakIsDeliveredAtFinish) {
  SseParser p;
  std::vector<SseEvent> events;
  ASSERT_TRUE(p.feed("data: a\ndata: b", events));
  EXPECT_EQ(events.size(), 1u);
  ASSERT_TRUE(p.finish(events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].data, "b");
  EXPECT_EQ(events[1].offset, 8u);
}

TEST(Sse, OverlongLineFails) {
  SseParser p(100);
  std::vector<SseEvent> events;
  EXPECT_TRUE(p.feed("data: " + std::string(90, 'x'), events));
  EXPECT_FALSE(p.feed(std::string(20, 'x'), events));
  EXPECT_NE(p.error().find("longer than 100 bytes"), std::string::npos) << p.error();
  EXPECT_FALSE(p.feed("\n", events));  // stays failed
  EXPECT_TRUE(events.empty());
}

TEST(Sse, RandomGarbageNeverCrashes) {
  std::mt19937 rng(7);
  const std::string alphabet = "data: {}[]\"\\:,\r\n<think>/choices delta content reasoning_content error 0x";
  for (int round = 0; round < 3000; ++round) {
    std::string input;
    const size_t n = rng() % 400;
    for (size_t i = 0; i < n; ++i) {
      input += (rng() % 4 == 0) ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
    }
    SseParser p(256);
    AnswerBuilder b(128);
    std::vector<SseEvent> events;
    size_t at = 0;
    while (at < input.size()) {
      const size_t len = 1 + rng() % 50;
      p.feed(std::string_view(input).substr(at, len), events);
      at += len;
    }
    p.finish(events);
    for (const SseEvent& e : events) {
      if (!b.add_chunk(e.data, e.offset)) {
        break;  // as the endpoint does: the first failure ends the answer
      }
    }
    const ChatAnswer a = b.finish();
    EXPECT_LE(a.content.size() + a.reasoning.size(), 128u + 256u);
  }
}

}  // namespace
}  // namespace kg::llm
