#include "protocol/protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace kg::protocol {
namespace {

template <typename T>
T request_round_trip(const Request& r) {
  auto parsed = parse_request(encode(r));
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().message);
  EXPECT_TRUE(std::holds_alternative<T>(*parsed));
  return std::get<T>(*parsed);
}

template <typename T>
T response_round_trip(const Response& r) {
  auto parsed = parse_response(encode(r));
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().message);
  EXPECT_TRUE(std::holds_alternative<T>(*parsed));
  return std::get<T>(*parsed);
}

ErrorCode request_error(const std::string& json) {
  auto parsed = parse_request(json);
  EXPECT_FALSE(parsed) << json;
  return parsed ? ErrorCode::Busy : parsed.error().code;
}

TEST(Protocol, RequestsRoundTrip) {
  GenerateRequest g{"name: causal\ndtype: bf16\n", "specs/causal.yaml", "90a", false};
  GenerateRequest back = request_round_trip<GenerateRequest>(g);
  EXPECT_EQ(back.spec, g.spec);
  EXPECT_EQ(back.file, g.file);
  EXPECT_EQ(back.arch, g.arch);
  EXPECT_FALSE(back.verify);
  request_round_trip<StatusRequest>(StatusRequest{});
  request_round_trip<StatsRequest>(StatsRequest{});
  request_round_trip<ShutdownRequest>(ShutdownRequest{});
}

TEST(Protocol, ShutdownIsFrozen) {
  EXPECT_EQ(encode(Request{ShutdownRequest{}}), R"({"type":"shutdown"})");
  EXPECT_TRUE(std::holds_alternative<ShutdownRequest>(*parse_request(R"({"type":"shutdown"})")));
}

TEST(Protocol, GenerateDefaultsAndUnknownFields) {
  auto parsed = parse_request(R"({"type":"generate","spec":"x","future":[1,2],"options":{"later":1}})");
  ASSERT_TRUE(parsed);
  const auto& g = std::get<GenerateRequest>(*parsed);
  EXPECT_EQ(g.spec, "x");
  EXPECT_EQ(g.file, "");
  EXPECT_EQ(g.arch, "");
  EXPECT_TRUE(g.verify);
}

TEST(Protocol, MalformedRequests) {
  EXPECT_EQ(request_error("not json"), ErrorCode::BadJson);
  EXPECT_EQ(request_error(""), ErrorCode::BadJson);
  EXPECT_EQ(request_error("[1,2]"), ErrorCode::BadJson);
  EXPECT_EQ(request_error("\"generate\""), ErrorCode::BadJson);
  EXPECT_EQ(request_error(R"({"type":"generate","spec":"x"} trailing)"), ErrorCode::BadJson);
  EXPECT_EQ(request_error(std::string(100000, '[')), ErrorCode::BadJson);
  EXPECT_EQ(request_error("{}"), ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":7})"), ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":"generate"})"), ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":"generate","spec":3})"), ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":"generate","spec":"x","arch":null})"), ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":"generate","spec":"x","options":[]})"), ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":"generate","spec":"x","options":{"verify":"yes"}})"),
            ErrorCode::BadRequest);
  EXPECT_EQ(request_error(R"({"type":"frobnicate"})"), ErrorCode::UnknownRequest);
  auto e = parse_request(R"({"type":"generate","spec":3})");
  EXPECT_NE(e.error().message.find("'spec'"), std::string::npos) << e.error().message;
}

TEST(Protocol, InvalidUtf8IsEncodedNotThrown) {
  GenerateRequest g{std::string("name: \xff\xfe bad"), "f.yaml", "", true};
  std::string text = encode(Request{g});
  EXPECT_TRUE(parse_request(text));
}

TEST(Protocol, ResponsesRoundTrip) {
  Hello h;
  h.version = "0.1.0";
  h.generator = "tmpl-1";
  h.verifier = "verify-0";
  h.config = "0123456789abcdef";
  h.pid = 42;
  Hello hb = response_round_trip<Hello>(h);
  EXPECT_EQ(hb.program, "kernelgend");
  EXPECT_EQ(hb.protocol, kProtocolVersion);
  EXPECT_EQ(hb.config, h.config);
  EXPECT_EQ(hb.pid, 42);

  Progress p{"k", "generating", "generating causal", 17};
  Progress pb = response_round_trip<Progress>(p);
  EXPECT_EQ(pb.stage, "generating");
  EXPECT_EQ(pb.elapsed_ms, 17);

  for (Outcome o : {Outcome::CacheHit, Outcome::Generated, Outcome::Joined}) {
    Result r{true, std::string(32, 'a'), "causal", o, cache::Verification::Verified, ""};
    Result rb = response_round_trip<Result>(r);
    EXPECT_EQ(rb.outcome, o);
    EXPECT_EQ(rb.key, r.key);
    EXPECT_EQ(rb.verification, cache::Verification::Verified);
  }
  Result failed{false, "", "", Outcome::None, cache::Verification::Unverified,
                "spec.yaml:1:1: error: expected a mapping"};
  Result fb = response_round_trip<Result>(failed);
  EXPECT_FALSE(fb.ok);
  EXPECT_EQ(fb.error, failed.error);

  Status s;
  s.pid = 7;
  s.cache_dir = "/c";
  s.idle_timeout_s = 0;
  s.draining = true;
  s.storage = "local cache /c, remote http://h/kg (webdav)";
  Status sb = response_round_trip<Status>(s);
  EXPECT_EQ(sb.cache_dir, "/c");
  EXPECT_TRUE(sb.draining);
  EXPECT_EQ(sb.storage, s.storage);

  Stats st;
  st.generations = 1;
  st.joins = 63;
  Stats stb = response_round_trip<Stats>(st);
  EXPECT_EQ(stb.generations, 1);
  EXPECT_EQ(stb.joins, 63);

  EXPECT_EQ(response_round_trip<ShutdownAck>(ShutdownAck{3}).active_jobs, 3);
  for (ErrorCode c :
       {ErrorCode::FrameEmpty, ErrorCode::FrameTooLarge, ErrorCode::BadJson, ErrorCode::BadRequest,
        ErrorCode::UnknownRequest, ErrorCode::Draining, ErrorCode::Busy}) {
    EXPECT_EQ(response_round_trip<Error>(Error{c, "m"}).code, c);
  }
}

TEST(Protocol, MalformedResponses) {
  EXPECT_FALSE(parse_response("garbage"));
  EXPECT_FALSE(parse_response(R"({"type":"hello"})"));  // no program, no protocol
  EXPECT_FALSE(parse_response(R"({"type":"result","ok":"yes"})"));
  EXPECT_FALSE(parse_response(R"({"type":"result","ok":true})"));  // ok without a key
  EXPECT_FALSE(parse_response(R"({"type":"result","ok":false,"outcome":"maybe"})"));
  EXPECT_FALSE(parse_response(R"({"type":"error","code":"nope"})"));
  EXPECT_FALSE(parse_response(R"({"type":"teapot"})"));
}

TEST(Protocol, BusyCarriesTheConnectionCount) {
  Error busy = response_round_trip<Error>(Error{ErrorCode::Busy, "full", 1024});
  EXPECT_EQ(busy.connections, 1024);
  EXPECT_EQ(encode(Error{ErrorCode::BadJson, "x"}).find("connections"), std::string::npos);
}

// Hostile input: deep nesting and huge value counts are refused before nlohmann parses them (its
// recursion and allocations would otherwise be the attacker's to choose); brackets inside strings
// do not count.
TEST(Protocol, DeepOrWideJsonIsRefusedBeforeParsing) {
  for (size_t depth : {size_t{17}, size_t{10'000}, size_t{4'000'000}}) {
    const std::string deep = R"({"type":"status","x":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
    auto r = parse_request(deep);
    ASSERT_FALSE(r) << depth;
    EXPECT_EQ(r.error().code, ErrorCode::BadJson);
    EXPECT_NE(r.error().message.find("nests deeper than 16"), std::string::npos) << r.error().message;
    EXPECT_FALSE(parse_response(deep));
  }
  const std::string unbalanced(1'000'000, '{');
  EXPECT_EQ(parse_request(unbalanced).error().code, ErrorCode::BadJson);
  std::string wide = R"({"type":"status","x":[)";
  for (int i = 0; i < 5000; ++i) {
    wide += "1,";
  }
  wide += "1]}";
  auto w = parse_request(wide);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("more than 4096 values"), std::string::npos) << w.error().message;
  // Within the bounds, and brackets inside strings (with escaped quotes) are text.
  EXPECT_TRUE(parse_request(R"({"type":"status","x":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]})"));
  const std::string in_string = R"({"type":"generate","spec":")" + std::string(100'000, '[') + R"(\"[[[["})";
  auto g = parse_request(in_string);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(std::get<GenerateRequest>(*g).spec.size(), 100'005u);
}

TEST(Protocol, EchoedNamesAreBoundedAndEscaped) {
  auto r = parse_request(R"({"type":"\u001b[2J)" + std::string(10'000, 'x') + R"("})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::UnknownRequest);
  EXPECT_LT(r.error().message.size(), 200u);
  EXPECT_EQ(r.error().message.find('\x1b'), std::string::npos);
  EXPECT_NE(r.error().message.find("\\x1b[2J"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace kg::protocol
