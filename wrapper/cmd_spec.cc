// kernelgen spec check
#include <nlohmann/json.hpp>

#include <iostream>

#include "commands.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/log.h"

namespace kg::cli {

int run_spec_check(const GlobalOptions& /*global*/, const SpecCheckOptions& opts) {
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  nlohmann::json out = nlohmann::json::array();
  bool ok = true;
  for (const std::string& file : opts.files) {
    auto spec = spec::load_spec_file(file);
    if (!spec) {
      ok = false;
      for (const spec::Diagnostic& d : spec.error()) {
        std::cerr << d.str() << "\n";
      }
      continue;
    }
    const std::string canonical = spec::canonical_form(*spec);
    const std::string key = spec::spec_key(*spec, *arch);
    if (opts.json) {
      out.push_back({{"file", file}, {"name", spec->name}, {"key", key}, {"canonical", canonical}});
    } else {
      std::cout << file << ": " << spec->name << " " << key << "\n" << canonical;
      if (!canonical.empty() && canonical.back() != '\n') {
        std::cout << "\n";
      }
    }
  }
  if (opts.json) {
    std::cout << out.dump(2) << "\n";
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace kg::cli
