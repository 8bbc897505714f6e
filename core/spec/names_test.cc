#include "spec/names.h"

#include <gtest/gtest.h>

namespace kg::spec {
namespace {

TEST(Names, Identifiers) {
  EXPECT_TRUE(is_identifier("_a1"));
  EXPECT_FALSE(is_identifier("1a"));
  EXPECT_FALSE(is_identifier(""));
  EXPECT_FALSE(is_identifier("a-b"));
  EXPECT_TRUE(is_reserved_word("class"));
  EXPECT_TRUE(is_reserved_word("lambda"));
  EXPECT_FALSE(is_reserved_word("window"));
  EXPECT_EQ(builtin_kind("kv_idx"), "built-in variable");
  EXPECT_EQ(builtin_kind("clamp"), "built-in function");
  EXPECT_EQ(builtin_kind("else"), "keyword");
}

TEST(Names, Suggestions) {
  EXPECT_EQ(closest_name("q_id", {"score", "q_idx", "kv_idx"}), "q_idx");
  EXPECT_EQ(closest_name("kvidx", {"q_idx", "kv_idx"}), "kv_idx");
  EXPECT_EQ(closest_name("zzz", {"q_idx", "kv_idx"}), std::nullopt);
  EXPECT_EQ(did_you_mean("expp", {"exp", "exp2"}), " (did you mean 'exp'?)");
  EXPECT_EQ(did_you_mean("x", {"y"}), " (did you mean 'y'?)");
}

}  // namespace
}  // namespace kg::spec
