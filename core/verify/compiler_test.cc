#include "verify/compiler.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace kg::verify {
namespace {

size_t count_flag(const std::vector<std::string>& args, const std::string& flag) {
  return static_cast<size_t>(std::count(args.begin(), args.end(), flag));
}

TEST(CompilerCommand, OneGenerateCodePerArchitecture) {
  CompileJob job{"k.cu", "k.so", "sm_90a", "inc", nullptr};
  const auto one = nvcc_object_command("nvcc", job, "k.o", "keep");
  EXPECT_EQ(count_flag(one, "--generate-code=arch=compute_90a,code=sm_90a"), 1u);
  job.arch = "sm_80,sm_86,sm_90a";
  for (const auto& args : {nvcc_object_command("nvcc", job, "k.o", "keep"), nvcc_link_command("nvcc", job, "k.o")}) {
    EXPECT_EQ(count_flag(args, "--generate-code=arch=compute_80,code=sm_80"), 1u);
    EXPECT_EQ(count_flag(args, "--generate-code=arch=compute_86,code=sm_86"), 1u);
    EXPECT_EQ(count_flag(args, "--generate-code=arch=compute_90a,code=sm_90a"), 1u);
    EXPECT_EQ(std::count_if(args.begin(), args.end(), [](const std::string& a) { return a.rfind("--generate-code", 0) == 0; }),
              3);
  }
}

}  // namespace
}  // namespace kg::verify
