// kernelgen cache stats|ls|show
#include <nlohmann/json.hpp>

#include <iostream>

#include "cache/local_cache.h"
#include "commands.h"
#include "util/log.h"

namespace kg::cli {

namespace {

// Resolves a key or a unique key prefix.
Expected<cache::AcRecord, Failure> find_record(cache::LocalCache& cache, const std::string& key_or_prefix) {
  auto exact = cache.get_record(key_or_prefix);
  if (exact || exact.error().kind != Failure::Kind::NotFound) {
    return exact;
  }
  auto all = cache.list_records();
  if (!all) {
    return unexpected(all.error());
  }
  const cache::AcRecord* found = nullptr;
  for (const cache::AcRecord& r : *all) {
    if (r.key.rfind(key_or_prefix, 0) == 0) {
      if (found != nullptr) {
        return fail("key prefix '" + key_or_prefix + "' is ambiguous: " + found->key + ", " + r.key + ", …");
      }
      found = &r;
    }
  }
  if (found == nullptr) {
    return fail("no cache entry with key '" + key_or_prefix + "' (see `kernelgen cache ls`)",
                Failure::Kind::NotFound);
  }
  return *found;
}

}  // namespace

int run_cache(const GlobalOptions& global, const CacheOptions& opts) {
  const std::string& dir = global.cache_dir;  // from the configuration (main.cc)
  auto cache = cache::LocalCache::open(dir, /*read_only=*/true);
  if (!cache) {
    if (cache.error().kind == Failure::Kind::NotFound && opts.action != "show") {
      // An absent cache is an empty one.
      std::cout << (opts.json ? "{}\n" : "no cache at " + dir + "\n");
      return kExitOk;
    }
    KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message);
    return kExitFailure;
  }

  if (opts.action == "stats") {
    auto s = cache->stats();
    if (!s) {
      KG_LOG_ERROR(s.error().message);
      return kExitFailure;
    }
    if (opts.json) {
      std::cout << nlohmann::json{{"dir", dir},
                                  {"ac_entries", s->ac_entries},
                                  {"cas_entries", s->cas_entries},
                                  {"cas_bytes", s->cas_bytes},
                                  {"map_size", s->map_size},
                                  {"used_bytes", s->used_bytes}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "cache directory   " << dir << "\n"
                << "kernels           " << s->ac_entries << "\n"
                << "blobs             " << s->cas_entries << " (" << s->cas_bytes << " bytes)\n"
                << "space used        " << s->used_bytes << " of " << s->map_size << " bytes reserved\n";
    }
    return kExitOk;
  }

  if (opts.action == "ls") {
    auto all = cache->list_records();
    if (!all) {
      KG_LOG_ERROR(all.error().message);
      return kExitFailure;
    }
    if (opts.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const cache::AcRecord& r : *all) {
        arr.push_back(cache::record_json(r));
      }
      std::cout << arr.dump(2) << "\n";
    } else {
      for (const cache::AcRecord& r : *all) {
        std::cout << r.key << "  " << r.name << "  " << r.arch << "  " << r.generator << "  " << cache::verification_name(r.verification)
                  << "\n";
      }
    }
    return kExitOk;
  }

  auto record = find_record(*cache, opts.key);
  if (!record) {
    KG_LOG_ERROR(record.error().message);
    return kExitFailure;
  }
  if (opts.part.empty()) {
    std::cout << cache::record_json(*record).dump(2) << "\n";
    return kExitOk;
  }
  const std::string& digest = opts.part == "source"      ? record->source_digest
                              : opts.part == "header"    ? record->header_digest
                              : opts.part == "canonical" ? record->canonical_digest
                              : opts.part == "history"   ? record->history_digest
                                                         : record->report_digest;
  if (digest.empty()) {
    KG_LOG_ERROR("cache entry " << record->key << " has no " << opts.part
                                << (opts.part == "report"    ? " (the kernel is unverified)"
                                    : opts.part == "history" ? " (no closed loop ran for it: kernelgen generate)"
                                                             : ""));
    return kExitFailure;
  }
  auto blob = cache->get_blob(digest);
  if (!blob) {
    KG_LOG_ERROR("cannot read the " << opts.part << " of " << record->key << ": " << blob.error().message);
    return kExitFailure;
  }
  std::cout << *blob;
  return kExitOk;
}

}  // namespace kg::cli
