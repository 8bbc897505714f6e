#include "verify/ptxas.h"

#include <gtest/gtest.h>

namespace kg::verify {
namespace {

// As nvcc 13 prints it for -Xptxas -v (one kernel with spills, one device function, one clean kernel).
const char* kReport = R"(ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN12_GLOBAL__N_19kg_kernelEv' for 'sm_90a'
ptxas info    : Function properties for _ZN12_GLOBAL__N_19kg_kernelEv
    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 16 bytes cumulative stack size, 49152 bytes smem, 456 bytes cmem[0]
ptxas info    : Function properties for _Z6helperv
    32 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_Z5smallPf' for 'sm_90a'
ptxas info    : Function properties for _Z5smallPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, 360 bytes cmem[0]
some other line
)";

TEST(Ptxas, ParsesEntriesAndFunctions) {
  const PtxasReport r = parse_ptxas_report(kReport);
  ASSERT_EQ(r.functions.size(), 3u);
  const PtxasFunction& k = r.functions[0];
  EXPECT_EQ(k.name, "_ZN12_GLOBAL__N_19kg_kernelEv");
  EXPECT_TRUE(k.entry);
  EXPECT_EQ(k.registers, 255);
  EXPECT_EQ(k.barriers, 1);
  EXPECT_EQ(k.smem_bytes, 49152);
  EXPECT_EQ(k.stack_bytes, 16);
  EXPECT_EQ(k.spill_store_bytes, 8);
  EXPECT_EQ(k.spill_load_bytes, 12);
  EXPECT_FALSE(r.functions[1].entry);
  EXPECT_EQ(r.functions[1].stack_bytes, 32);
  EXPECT_EQ(r.functions[2].registers, 8);
  EXPECT_EQ(r.functions[2].smem_bytes, 0);
  EXPECT_EQ(r.max_registers, 255);
  EXPECT_EQ(r.max_smem_bytes, 49152);
  EXPECT_EQ(r.max_stack_bytes, 16);  // entries only
  EXPECT_EQ(r.total_spill_bytes, 20);
  const nlohmann::json j = r;
  EXPECT_EQ(j["functions"].size(), 3u);
  EXPECT_EQ(j["max_registers"], 255);
}

TEST(Ptxas, NoReportIsEmpty) {
  const PtxasReport r = parse_ptxas_report("error: something\n");
  EXPECT_TRUE(r.functions.empty());
  EXPECT_EQ(r.max_registers, 0);
}

}  // namespace
}  // namespace kg::verify
