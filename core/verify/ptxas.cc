#include "verify/ptxas.h"

#include <algorithm>
#include <regex>
#include <sstream>

namespace kg::verify {

namespace {

// The function a "Function properties" / "Used" line belongs to; created on first mention.
PtxasFunction& function_named(PtxasReport& r, const std::string& name) {
  for (auto it = r.functions.rbegin(); it != r.functions.rend(); ++it) {
    if (it->name == name) {
      return *it;
    }
  }
  r.functions.push_back(PtxasFunction{name});
  return r.functions.back();
}

int number_before(const std::string& line, const std::string& unit) {
  const std::regex re("([0-9]+) " + unit);
  std::smatch m;
  return std::regex_search(line, m, re) ? std::stoi(m[1].str()) : 0;
}

}  // namespace

PtxasReport parse_ptxas_report(const std::string& compiler_output) {
  static const std::regex kCompiling(R"(ptxas info\s*: Compiling (entry )?function '([^']+)')");
  static const std::regex kProperties(R"(ptxas info\s*: Function properties for (\S+))");
  static const std::regex kUsed(R"(ptxas info\s*: Used [0-9]+ registers)");
  static const std::regex kFrame(R"(bytes stack frame)");
  PtxasReport r;
  std::istringstream in(compiler_output);
  std::string line;
  PtxasFunction* current = nullptr;  // the function the next "Used"/frame line is about
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, kCompiling)) {
      current = &function_named(r, m[2].str());
      current->entry = current->entry || m[1].matched;
    } else if (std::regex_search(line, m, kProperties)) {
      current = &function_named(r, m[1].str());
    } else if (current != nullptr && std::regex_search(line, kFrame)) {
      current->stack_bytes = number_before(line, "bytes stack frame");
      current->spill_store_bytes = number_before(line, "bytes spill stores");
      current->spill_load_bytes = number_before(line, "bytes spill loads");
    } else if (current != nullptr && std::regex_search(line, kUsed)) {
      current->registers = number_before(line, "registers");
      current->barriers = number_before(line, "barriers");
      current->smem_bytes = number_before(line, "bytes smem");
    }
  }
  const bool any_entry = std::any_of(r.functions.begin(), r.functions.end(), [](const auto& f) { return f.entry; });
  for (const PtxasFunction& f : r.functions) {
    r.total_spill_bytes += f.spill_store_bytes + f.spill_load_bytes;
    if (f.entry || !any_entry) {
      r.max_registers = std::max(r.max_registers, f.registers);
      r.max_smem_bytes = std::max(r.max_smem_bytes, f.smem_bytes);
      r.max_stack_bytes = std::max(r.max_stack_bytes, f.stack_bytes);
    }
  }
  return r;
}

void to_json(nlohmann::json& j, const PtxasFunction& f) {
  j = {{"name", f.name},
       {"entry", f.entry},
       {"registers", f.registers},
       {"barriers", f.barriers},
       {"smem_bytes", f.smem_bytes},
       {"stack_bytes", f.stack_bytes},
       {"spill_store_bytes", f.spill_store_bytes},
       {"spill_load_bytes", f.spill_load_bytes}};
}

void to_json(nlohmann::json& j, const PtxasReport& r) {
  j = {{"max_registers", r.max_registers},
       {"max_smem_bytes", r.max_smem_bytes},
       {"max_stack_bytes", r.max_stack_bytes},
       {"total_spill_bytes", r.total_spill_bytes},
       {"functions", r.functions}};
}

}  // namespace kg::verify
