#include "util/reproducible.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "util/file.h"

namespace kg {
namespace {

TEST(ZeroNvccTempNames, RewritesPidAndCounterOnly) {
  std::string bytes = std::string("\0\x01", 2) + "tmpxft_00005447_0000001a-6_k.compute_90a.cudafe1.cpp" +
                      std::string("\0", 1) + "x";
  const std::string before = bytes;
  EXPECT_EQ(zero_nvcc_temp_names(bytes), 1u);
  EXPECT_EQ(bytes.size(), before.size());
  EXPECT_EQ(bytes, std::string("\0\x01", 2) + "tmpxft_00000000_00000000-6_k.compute_90a.cudafe1.cpp" +
                       std::string("\0", 1) + "x");
  // Idempotent: nothing left to change.
  EXPECT_EQ(zero_nvcc_temp_names(bytes), 0u);
}

TEST(ZeroNvccTempNames, TwoCompilesOfOneFileBecomeEqual) {
  std::string a = "FILE tmpxft_000054ba_00000000-6_k.cudafe1.cpp and tmpxft_0000ABCD_00000003-6_k.ptx";
  std::string b = "FILE tmpxft_00005447_00000000-6_k.cudafe1.cpp and tmpxft_00001234_00000003-6_k.ptx";
  EXPECT_EQ(zero_nvcc_temp_names(a), 2u);
  EXPECT_EQ(zero_nvcc_temp_names(b), 2u);
  EXPECT_EQ(a, b);
}

TEST(ZeroNvccTempNames, LeavesLookalikesAlone) {
  for (std::string s : {std::string("tmpxft_"), std::string("tmpxft_0000544"), std::string("tmpxft_00005447"),
                        std::string("tmpxft_00005447_"), std::string("tmpxft_00005447_0000000"),
                        std::string("tmpxft_0000544g_00000000"), std::string("tmpxft_00005447-00000000"),
                        std::string("tmpxft_00005447_0000000z"), std::string("TMPXFT_00005447_00000001")}) {
    const std::string before = s;
    EXPECT_EQ(zero_nvcc_temp_names(s), 0u) << before;
    EXPECT_EQ(s, before);
  }
  // A truncated name at the very end of the buffer, and one overlapping a real one.
  std::string s = "tmpxft_tmpxft_00000001_00000002";
  EXPECT_EQ(zero_nvcc_temp_names(s), 1u);
  EXPECT_EQ(s, "tmpxft_tmpxft_00000000_00000000");
}

TEST(ZeroNvccTempNames, FileRewrittenOnlyWhenChanged) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "kg_reproducible_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "k.o").string();
  ASSERT_TRUE(write_file_atomic(path, "ab tmpxft_00000010_00000002-6_k.cpp cd"));
  std::filesystem::permissions(path, std::filesystem::perms(0640));
  auto n = zero_nvcc_temp_names_in_file(path);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(*read_file(path), "ab tmpxft_00000000_00000000-6_k.cpp cd");
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all, std::filesystem::perms(0640));
  const auto mtime = std::filesystem::last_write_time(path);
  n = zero_nvcc_temp_names_in_file(path);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(std::filesystem::last_write_time(path), mtime);
  EXPECT_FALSE(zero_nvcc_temp_names_in_file((dir / "missing.o").string()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kg
