// Parsing the resource report of `ptxas -v` (nvcc -Xptxas -v): registers, spills, shared memory,
// stack, per kernel.
//
//   ptxas info    : Compiling entry function '_Z6kernelv' for 'sm_90a'
//   ptxas info    : Function properties for _Z6kernelv
//       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
//   ptxas info    : Used 168 registers, used 1 barriers, 49152 bytes smem, 456 bytes cmem[0]
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace kg::verify {

struct PtxasFunction {
  std::string name;  // mangled, as ptxas prints it
  bool entry = false;  // a __global__ kernel ("Compiling entry function")
  int registers = 0;
  int barriers = 0;
  int smem_bytes = 0;  // static shared memory (dynamic shared memory is not in the report)
  int stack_bytes = 0;
  int spill_store_bytes = 0;
  int spill_load_bytes = 0;
};

struct PtxasReport {
  std::vector<PtxasFunction> functions;  // in report order
  // Over entry functions (over all functions when no entry was seen):
  int max_registers = 0;
  int max_smem_bytes = 0;
  int max_stack_bytes = 0;
  int total_spill_bytes = 0;  // stores + loads, every function
};

// Parses compiler output that contains ptxas -v lines; other lines are ignored. Never fails:
// text without ptxas lines gives an empty report.
PtxasReport parse_ptxas_report(const std::string& compiler_output);

void to_json(nlohmann::json& j, const PtxasFunction& f);
void to_json(nlohmann::json& j, const PtxasReport& r);

}  // namespace kg::verify
