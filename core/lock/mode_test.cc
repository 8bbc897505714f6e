#include "lock/mode.h"

#include <gtest/gtest.h>

namespace kg::lock {
namespace {

TEST(Mode, ParsesEveryNameInAnyCase) {
  EXPECT_EQ(parse_mode("online").value(), Mode::Online);
  EXPECT_EQ(parse_mode("OFFLINE").value(), Mode::Offline);
  EXPECT_EQ(parse_mode("read_only").value(), Mode::ReadOnly);
  EXPECT_EQ(parse_mode("Read-Only").value(), Mode::ReadOnly);
  EXPECT_EQ(parse_mode("READ_ONLY").value(), Mode::ReadOnly);
  EXPECT_EQ(parse_mode("ReCache").value(), Mode::Recache);
  EXPECT_EQ(parse_mode("  offline\t").value(), Mode::Offline);
}

TEST(Mode, NamesRoundTrip) {
  for (Mode m : {Mode::Online, Mode::Offline, Mode::ReadOnly, Mode::Recache}) {
    auto parsed = parse_mode(mode_name(m));
    ASSERT_TRUE(parsed) << mode_name(m);
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_STREQ(mode_name(Mode::ReadOnly), "read_only");
}

TEST(Mode, RefusesAnythingElseSayingWhatIsExpected) {
  for (const char* bad : {"", " ", "on", "offline2", "read only", "readonly", "re-cache", "online\nx"}) {
    auto m = parse_mode(bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_NE(m.error().message.find("expected online, offline, read_only or recache, found '"), std::string::npos)
        << m.error().message;
  }
  // Control bytes are escaped and long text cut.
  auto m = parse_mode("\x1b[31m" + std::string(1000, 'x'));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message.find('\x1b'), std::string::npos);
  EXPECT_LT(m.error().message.size(), 200u);
}

TEST(Mode, WhatEachModeAllows) {
  EXPECT_TRUE(may_generate(Mode::Online));
  EXPECT_FALSE(may_generate(Mode::Offline));
  EXPECT_TRUE(may_generate(Mode::ReadOnly));
  EXPECT_TRUE(may_generate(Mode::Recache));

  EXPECT_TRUE(may_store(Mode::Online));
  EXPECT_FALSE(may_store(Mode::Offline));
  EXPECT_FALSE(may_store(Mode::ReadOnly));
  EXPECT_TRUE(may_store(Mode::Recache));

  EXPECT_TRUE(may_use_daemon(Mode::Online));
  EXPECT_FALSE(may_use_daemon(Mode::Offline));
  EXPECT_FALSE(may_use_daemon(Mode::ReadOnly));
  EXPECT_FALSE(may_use_daemon(Mode::Recache));

  EXPECT_FALSE(may_use_network(Mode::Offline));
  EXPECT_TRUE(may_use_network(Mode::Online));
}

}  // namespace
}  // namespace kg::lock
