#include "util/hiredis_library.h"

#include <gtest/gtest.h>

namespace kg::hiredis {
namespace {

TEST(HiredisLibrary, SonameFollowsTheHeader) {
  EXPECT_EQ(soname(), "libhiredis.so." + std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR));
}

TEST(HiredisLibrary, MissingLibraryIsAnErrorThatSaysWhatToInstall) {
  auto api = load_library("libkg-no-such-hiredis.so.0.14");
  ASSERT_FALSE(api);
  EXPECT_EQ(api.error().kind, Failure::Kind::Error);
  EXPECT_NE(api.error().message.find("the redis remote needs libhiredis (Debian: libhiredis0.14)"), std::string::npos)
      << api.error().message;
  EXPECT_NE(api.error().message.find("libkg-no-such-hiredis.so.0.14"), std::string::npos) << api.error().message;
}

TEST(HiredisLibrary, LibraryWithoutTheFunctionsIsRefused) {
  // libm is there on every machine and has none of hiredis's functions.
  auto api = load_library("libm.so.6");
  ASSERT_FALSE(api);
  EXPECT_NE(api.error().message.find("libm.so.6 lacks redisConnectWithTimeout"), std::string::npos)
      << api.error().message;
}

TEST(HiredisLibrary, LoadsTheInstalledLibrary) {
  // libhiredis0.14 is a test dependency (scripts/install-deps.sh), as redis-server is.
  ASSERT_TRUE(load()) << load().error().message;
  const Api& a = lib();
  EXPECT_NE(a.connect_with_timeout, nullptr);
  EXPECT_NE(a.command_argv, nullptr);
  EXPECT_NE(a.free_reply, nullptr);
}

}  // namespace
}  // namespace kg::hiredis
