#include "protocol/request_check.h"

#include <gtest/gtest.h>

namespace kg::protocol {
namespace {

TEST(RequestCheck, ArchNeedsSm80OrNewer) {
  EXPECT_TRUE(check_arch("sm_80"));
  EXPECT_TRUE(check_arch("sm_90a"));
  EXPECT_TRUE(check_arch("sm_100f"));
  EXPECT_TRUE(check_arch("sm_120"));
  for (const char* old : {"sm_75", "sm_70", "sm_61", "sm_10"}) {
    auto r = check_arch(old);
    ASSERT_FALSE(r) << old;
    EXPECT_NE(r.error().find("the template kernels need sm_80 or newer"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find(old), std::string::npos) << r.error();
  }
  for (const char* junk : {"", "sm_", "90a", "sm_90x", "sm_9999999999999", "compute_90"}) {
    EXPECT_FALSE(check_arch(junk)) << junk;
  }
}

TEST(RequestCheck, FieldSizesAreBounded) {
  GenerateRequest g;
  g.spec = "name: x\n";
  EXPECT_TRUE(check_generate(g));
  g.spec.assign(kMaxSpecBytes, 'a');
  EXPECT_TRUE(check_generate(g));
  g.spec.push_back('a');
  auto r = check_generate(g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "the spec is 1048577 bytes; the limit is 1048576");
  g.spec = "x";
  g.file.assign(kMaxFileBytes + 1, 'f');
  ASSERT_FALSE(check_generate(g));
  EXPECT_NE(check_generate(g).error().find("the file name"), std::string::npos);
  g.file = "f";
  g.arch.assign(kMaxArchBytes + 1, '9');
  ASSERT_FALSE(check_generate(g));
  EXPECT_NE(check_generate(g).error().find("the architecture"), std::string::npos);
  EXPECT_TRUE(check_name(std::string(kMaxNameBytes, 'n')));
  EXPECT_FALSE(check_name(std::string(kMaxNameBytes + 1, 'n')));
}

TEST(RequestCheck, PrintableEscapesControlBytes) {
  EXPECT_EQ(printable("plain text/ü"), "plain text/ü");
  EXPECT_EQ(printable("a\nb\rc\x1b[31md\x7f"), "a\\x0ab\\x0dc\\x1b[31md\\x7f");
  EXPECT_EQ(printable("a\nb\tc", /*keep_newlines=*/true), "a\nb\\x09c");
  EXPECT_EQ(printable(std::string("n\0ul", 4)), "n\\x00ul");
}

}  // namespace
}  // namespace kg::protocol
