// kernelgen cache stats|ls|show
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cache/gc.h"
#include "cache/local_cache.h"
#include "cache/tier_stats.h"
#include "commands.h"
#include "record_lookup.h"
#include "config/config.h"
#include "util/text.h"
#include "storage/bundle.h"
#include "storage/local_storage.h"
#include "storage/tiered_storage.h"
#include "util/log.h"

namespace kg::cli {

namespace {

// kernelgen cache import FILE...: every entry of each bundle into the local cache.
int run_import(const std::string& dir, const CacheOptions& opts) {
  auto cache = cache::LocalCache::open(dir);
  if (!cache) {
    KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message);
    return kExitFailure;
  }
  storage::LocalStorage local(*cache);
  for (const std::string& file : opts.files) {
    auto s = storage::import_bundle(file, local);
    if (!s) {
      KG_LOG_ERROR("cannot import " << file << ": " << s.error().message);
      return kExitFailure;
    }
    std::cout << file << ": " << s->records << " kernels, " << s->blobs << " blobs (" << s->bytes << " bytes) into "
              << dir << "\n";
  }
  return kExitOk;
}

// kernelgen cache export --out FILE [KEY...]: the named kernels (every one when none is named).
// A kernel the loop wrote leaves only once a GPU verified it.
int run_export(cache::LocalCache& cache, const CacheOptions& opts) {
  std::vector<std::string> keys;
  if (opts.keys.empty()) {
    auto all = cache.list_records();
    if (!all) {
      KG_LOG_ERROR(all.error().message);
      return kExitFailure;
    }
    for (const cache::AcRecord& r : *all) {
      if (storage::may_leave_this_machine(r)) {
        keys.push_back(r.key);
      } else {
        KG_LOG_WARN("not exporting " << r.key << " (" << r.name << ", " << r.generator
                                     << "): a kernel the loop wrote leaves only once a GPU verified it");
      }
    }
  } else {
    for (const std::string& k : opts.keys) {
      auto r = find_record(cache, k);
      if (!r) {
        KG_LOG_ERROR(r.error().message);
        return kExitFailure;
      }
      if (!storage::may_leave_this_machine(*r)) {
        KG_LOG_ERROR("cannot export " << r->key << " (" << r->name << ", " << r->generator
                                      << "): a kernel the loop wrote leaves only once a GPU verified it; "
                                         "`kernelgen cache verify " << r->key << "` on a machine with a GPU");
        return kExitFailure;
      }
      keys.push_back(r->key);
    }
  }
  storage::LocalStorage local(cache);
  auto s = storage::write_bundle(local, keys, opts.out);
  if (!s) {
    KG_LOG_ERROR("cannot export to " << opts.out << ": " << s.error().message);
    return kExitFailure;
  }
  std::cout << opts.out << ": " << s->records << " kernels, " << s->blobs << " blobs (" << s->bytes << " bytes)\n";
  return kExitOk;
}

// kernelgen cache gc [--max-size SIZE]: evicts by last access down to the limit.
int run_gc(const GlobalOptions& global, const CacheOptions& opts) {
  const std::string& text = opts.max_size.empty() ? global.config->text("max_size") : opts.max_size;
  auto max = config::parse_size(text);
  if (!max) {
    KG_LOG_ERROR("--max-size: expected a size (bytes, or a number with K, M, G or T: 5G, 512M), found '"
                 << printable(text) << "'");
    return kExitUsage;
  }
  auto cache = cache::LocalCache::open(global.cache_dir);
  if (!cache) {
    KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message);
    return kExitFailure;
  }
  auto r = cache::collect_garbage(*cache, *max);
  if (!r) {
    KG_LOG_ERROR("cannot clean up the cache: " << r.error().message);
    return kExitFailure;
  }
  std::cout << "removed " << r->records_removed << " of " << r->records_before << " kernels and " << r->blobs_removed
            << " blobs: " << r->bytes_before << " -> " << r->bytes_after << " bytes (limit " << *max << ")\n";
  return kExitOk;
}

// "local", "bundle" or "remote": the kind of tier a statistics name (cache/tier_stats.h) is.
std::string tier_kind(const std::string& tier) {
  const size_t space = tier.find(' ');
  return space == std::string::npos ? tier : tier.substr(0, space);
}

// The counters in lookup order: the local tier, the bundles, the remotes.
std::vector<cache::TierCounters> ordered(std::vector<cache::TierCounters> tiers) {
  auto rank = [](const cache::TierCounters& c) {
    const std::string kind = tier_kind(c.tier);
    return kind == "local" ? 0 : kind == "bundle" ? 1 : 2;
  };
  std::stable_sort(tiers.begin(), tiers.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return tiers;
}

std::string utc_time(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

// The per-tier table of `kernelgen cache stats`.
void print_tiers(const cache::TierStatsFile& stats) {
  if (stats.tiers.empty()) {
    std::cout << "tiers             nothing counted"
              << (stats.since_unix > 0 ? " since " + utc_time(stats.since_unix) : std::string()) << "\n";
    return;
  }
  std::cout << "tiers             counted since " << utc_time(stats.since_unix) << "\n";
  const std::vector<cache::TierCounters> tiers = ordered(stats.tiers);
  size_t width = 4;
  for (const cache::TierCounters& c : tiers) {
    width = std::max(width, printable(c.tier).size());
  }
  auto row = [&](const std::string& tier, const std::string& hits, const std::string& misses,
                 const std::string& errors, const std::string& read, const std::string& written,
                 const std::string& time) {
    std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << tier << std::right << std::setw(8) << hits
              << std::setw(8) << misses << std::setw(8) << errors << std::setw(14) << read << std::setw(15) << written
              << std::setw(12) << time << "\n";
  };
  row("tier", "hits", "misses", "errors", "bytes read", "bytes written", "time");
  for (const cache::TierCounters& c : tiers) {
    std::ostringstream time;
    if (c.seconds < 100) {
      time << std::fixed << std::setprecision(1) << c.seconds * 1000 << " ms";
    } else {
      time << std::fixed << std::setprecision(1) << c.seconds << " s";
    }
    row(printable(c.tier), std::to_string(c.hits), std::to_string(c.misses), std::to_string(c.errors),
        std::to_string(c.bytes_read), std::to_string(c.bytes_written), time.str());
  }
}

nlohmann::json tiers_json(const cache::TierStatsFile& stats) {
  nlohmann::json arr = nlohmann::json::array();
  for (const cache::TierCounters& c : ordered(stats.tiers)) {
    arr.push_back({{"tier", c.tier},
                   {"kind", tier_kind(c.tier)},
                   {"hits", c.hits},
                   {"misses", c.misses},
                   {"errors", c.errors},
                   {"bytes_read", c.bytes_read},
                   {"bytes_written", c.bytes_written},
                   {"seconds", c.seconds}});
  }
  return arr;
}

}  // namespace

int run_cache(const GlobalOptions& global, const CacheOptions& opts) {
  const std::string& dir = global.cache_dir;  // from the configuration (main.cc)
  if (opts.action == "import") {
    return run_import(dir, opts);
  }
  if (opts.action == "gc") {
    return run_gc(global, opts);
  }
  if (opts.action == "verify") {
    return run_cache_verify(global, opts);
  }
  if (opts.action == "stats" && opts.zero) {
    if (auto z = cache::zero_tier_stats(dir, static_cast<int64_t>(std::time(nullptr))); !z) {
      KG_LOG_ERROR("cannot reset the statistics of " << dir << ": " << z.error().message);
      return kExitFailure;
    }
    std::cout << "statistics zeroed\n";
    return kExitOk;
  }
  auto cache = cache::LocalCache::open(dir, /*read_only=*/true);
  if (!cache) {
    if (cache.error().kind == Failure::Kind::NotFound && opts.action != "show" && opts.action != "export") {
      // An absent cache is an empty one.
      std::cout << (opts.json ? "{}\n" : "no cache at " + dir + "\n");
      return kExitOk;
    }
    KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message);
    return kExitFailure;
  }

  if (opts.action == "export") {
    return run_export(*cache, opts);
  }

  if (opts.action == "stats") {
    auto s = cache->stats();
    if (!s) {
      KG_LOG_ERROR(s.error().message);
      return kExitFailure;
    }
    const cache::TierStatsFile tiers = cache::read_tier_stats(dir).value_or(cache::TierStatsFile{});
    if (opts.json) {
      std::cout << nlohmann::json{{"dir", dir},
                                  {"ac_entries", s->ac_entries},
                                  {"cas_entries", s->cas_entries},
                                  {"cas_bytes", s->cas_bytes},
                                  {"map_size", s->map_size},
                                  {"used_bytes", s->used_bytes},
                                  {"stats_since_unix", tiers.since_unix},
                                  {"tiers", tiers_json(tiers)}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "cache directory   " << dir << "\n"
                << "kernels           " << s->ac_entries << "\n"
                << "blobs             " << s->cas_entries << " (" << s->cas_bytes << " bytes)\n"
                << "space used        " << s->used_bytes << " of " << s->map_size << " bytes reserved\n";
      print_tiers(tiers);
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
