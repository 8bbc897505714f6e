#include "spec/key.h"

#include <algorithm>
#include <regex>

#include "util/hash.h"
#include "version.h"

namespace kg::spec {

Expected<std::string, Failure> resolve_arch(std::string_view arch) {
  std::string s(arch);
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  if (s.empty()) {
    return std::string(kDefaultArch);
  }
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::regex kArch("(?:sm_?|compute_?)?([1-9][0-9]{1,2})([af]?)");
  std::smatch m;
  if (!std::regex_match(lower, m, kArch)) {
    return fail("unknown target architecture '" + s +
                "' (expected a compute capability such as 90a, sm_90a, sm_80 or compute_90a)");
  }
  return "sm_" + m[1].str() + m[2].str();
}

std::vector<std::pair<std::string, std::string>> key_inputs(const Spec& spec, const std::string& resolved_arch) {
  return {{"format", std::to_string(kCacheFormatVersion)},
          {"canonical spec", canonical_form(spec)},
          {"arch", resolved_arch},
          {"generator", kGeneratorVersion},
          {"prompts", kPromptVersion},
          {"verifier", kVerifierVersion}};
}

std::string spec_key(const Spec& spec, const std::string& resolved_arch) {
  const auto inputs = key_inputs(spec, resolved_arch);
  std::vector<std::string_view> fields{"kernelgen-key"};
  for (const auto& [name, value] : inputs) {
    fields.push_back(value);
  }
  return xxh3_128_hex_fields(fields);
}

}  // namespace kg::spec
