#include "util/text.h"

#include <gtest/gtest.h>

namespace kg {
namespace {

TEST(Printable, EscapesWhatCouldActOnATerminal) {
  EXPECT_EQ(printable("plain text 1+2 \\ ok"), "plain text 1+2 \\ ok");
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(printable("tab\tnl\ncr\r"), "tab\\x09nl\\x0acr\\x0d");
  EXPECT_EQ(printable("del\x7f"), "del\\x7f");
  // Valid UTF-8 passes; invalid bytes, C1 controls (U+009B is CSI) and bidi overrides are escaped.
  EXPECT_EQ(printable("q·kᵀ → ✓"), "q·kᵀ → ✓");
  EXPECT_EQ(printable("\xc2\x9b"), "\\xc2\\x9b");
  EXPECT_EQ(printable("\xe2\x80\xae"), "\\xe2\\x80\\xae");
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");          // truncated sequence
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");          // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(printable(printable("\x01\x80")), "\\x01\\x80");  // idempotent
}

TEST(Printable, LinesKeepTheirBreaks) {
  EXPECT_EQ(printable_lines("a.yaml:1:1: error: x\nb.yaml:2:3: error: \x1b[2J"),
            "a.yaml:1:1: error: x\nb.yaml:2:3: error: \\x1b[2J");
}

TEST(Printable, BoundsTheOutput) {
  const std::string big(10000, 'a');
  EXPECT_EQ(printable(big, 16), std::string(16, 'a') + "…(9984 more bytes)");
}

}  // namespace
}  // namespace kg
