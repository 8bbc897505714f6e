// kernelgen explain SPEC: every input of the spec's key, and why each storage tier misses it.
#include <iostream>

#include "cache/local_cache.h"
#include "commands.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "storage/local_storage.h"
#include "storage/tiers.h"
#include "util/log.h"
#include "util/text.h"

namespace kg::cli {

int run_explain(const GlobalOptions& global, const ExplainOptions& opts) {
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  auto spec = spec::load_spec_file(opts.spec_file);
  if (!spec) {
    for (const spec::Diagnostic& d : spec.error()) {
      std::cerr << d.str() << "\n";
    }
    return kExitFailure;
  }
  const std::string key = spec::spec_key(*spec, *arch);
  std::cout << opts.spec_file << ": " << spec->name << "\n  key " << key << " = XXH3-128 of:\n";
  for (const auto& [name, value] : spec::key_inputs(*spec, *arch)) {
    std::cout << "    " << name << ":";
    if (value.find('\n') == std::string::npos) {
      std::cout << " " << value << "\n";
    } else {
      std::cout << "\n";
      size_t start = 0;
      while (start < value.size()) {
        const size_t nl = value.find('\n', start);
        std::cout << "      " << printable(value.substr(start, nl == std::string::npos ? std::string::npos : nl - start))
                  << "\n";
        if (nl == std::string::npos) {
          break;
        }
        start = nl + 1;
      }
    }
  }
  // The lookup a build makes, tier by tier (read-only: explaining changes nothing).
  std::optional<cache::LocalCache> cache;
  std::optional<storage::LocalStorage> local;
  if (auto opened = cache::LocalCache::open(global.cache_dir, /*read_only=*/true)) {
    cache.emplace(std::move(*opened));
    local.emplace(*cache);
  } else {
    std::cout << "  local cache " << global.cache_dir << ": " << opened.error().message << "\n";
  }
  auto setup = storage::tier_setup(*global.config);
  if (!setup) {
    KG_LOG_ERROR(setup.error().message);
    return kExitFailure;
  }
  storage::TieredStorage::Options options;
  options.copy_hits_local = false;
  options.write_remote = false;
  auto tiers = storage::open_tiers(*setup, local ? &*local : nullptr, /*offline=*/false, options);
  if (!tiers) {
    KG_LOG_ERROR(tiers.error().message);
    return kExitFailure;
  }
  auto record = (*tiers)->get_record(key);
  const auto reasons = (*tiers)->last_miss_reasons();
  for (const std::string& r : reasons) {
    std::cout << "  miss in " << printable(r) << "\n";
  }
  if (record) {
    const auto stats = (*tiers)->stats();
    std::string where;
    for (const storage::TierStats& s : stats) {
      if (s.hits > 0) {
        where = s.tier;
      }
    }
    std::cout << "  hit in " << where << ": " << record->generator << ", "
              << cache::verification_name(record->verification) << "\n";
    return kExitOk;
  }
  std::cout << "  not cached anywhere: the next build generates it (kernelgen emit --spec " << opts.spec_file << ")\n";
  return kExitOk;
}

}  // namespace kg::cli
