#include "spec/key.h"

#include <algorithm>
#include <regex>
#include <tuple>

#include "util/hash.h"
#include "version.h"

namespace kg::spec {

namespace {

struct ArchName {
  int cc = 0;          // compute capability without the dot: 80, 90, 100
  std::string suffix;  // "", "a" or "f"
  std::string text() const { return "sm_" + std::to_string(cc) + suffix; }
};

Expected<ArchName, Failure> resolve_one(std::string_view arch) {
  std::string s(arch);
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::regex kArch("(?:sm_?|compute_?)?([1-9][0-9]{1,2})([af]?)");
  std::smatch m;
  if (!std::regex_match(lower, m, kArch)) {
    return fail("unknown target architecture '" + s +
                "' (expected a compute capability such as 90a, sm_90a, sm_80 or compute_90a)");
  }
  return ArchName{std::stoi(m[1].str()), m[2].str()};
}

}  // namespace

Expected<std::string, Failure> resolve_arch(std::string_view arch) {
  std::string s(arch);
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  if (s.empty()) {
    return std::string(kDefaultArch);
  }
  std::vector<ArchName> set;
  size_t start = 0;
  while (true) {
    const size_t end = s.find_first_of(",;", start);
    const std::string_view part = std::string_view(s).substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part.find_first_not_of(" \t") == std::string_view::npos) {
      return fail("target architecture list '" + s + "' has an empty element (expected architectures such as "
                  "80,86,89,90a separated by ',' or ';')");
    }
    auto one = resolve_one(part);
    if (!one) {
      return unexpected(one.error());
    }
    set.push_back(std::move(*one));
    if (set.size() > kMaxArchSetSize) {
      return fail("target architecture list '" + s.substr(0, 200) + "' has more than " +
                  std::to_string(kMaxArchSetSize) + " elements");
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  // Canonical order: compute capability, then no suffix before "a" before "f".
  const auto order = [](const ArchName& x, const ArchName& y) { return std::tie(x.cc, x.suffix) < std::tie(y.cc, y.suffix); };
  std::sort(set.begin(), set.end(), order);
  std::string out;
  for (size_t i = 0; i < set.size(); ++i) {
    if (i > 0 && set[i].cc == set[i - 1].cc && set[i].suffix == set[i - 1].suffix) {
      continue;
    }
    if (!out.empty()) {
      out += ',';
    }
    out += set[i].text();
  }
  return out;
}

std::vector<std::string> arch_set(std::string_view resolved) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < resolved.size()) {
    const size_t end = resolved.find(',', start);
    out.emplace_back(resolved.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return out;
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
