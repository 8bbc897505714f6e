#include "util/hash.h"

#include <gtest/gtest.h>

namespace kg {

TEST(Hash, KnownVectorAndFormat) {
  // XXH3-128 of the empty input, from the xxHash reference implementation.
  EXPECT_EQ(xxh3_128_hex(""), "99aa06d3014798d86001c324468d497f");
  EXPECT_TRUE(is_digest(xxh3_128_hex("abc")));
  EXPECT_FALSE(is_digest("ABC"));
  EXPECT_NE(xxh3_128_hex("a"), xxh3_128_hex("b"));
}

TEST(Hash, FieldsAreFramed) {
  EXPECT_NE(xxh3_128_hex_fields({"ab", "c"}), xxh3_128_hex_fields({"a", "bc"}));
  EXPECT_EQ(xxh3_128_hex_fields({"ab", "c"}), xxh3_128_hex_fields({"ab", "c"}));
}

}  // namespace kg
