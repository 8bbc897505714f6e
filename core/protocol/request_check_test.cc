#include "protocol/request_check.h"

#include <gtest/gtest.h>

namespace kg::protocol {
namespace {

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


}  // namespace
}  // namespace kg::protocol
