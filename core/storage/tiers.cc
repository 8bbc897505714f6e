#include "storage/tiers.h"

#include <ctime>

#include "cache/tier_stats.h"
#include "storage/bundle.h"
#include "util/log.h"

namespace kg::storage {

Expected<TierSetup, Failure> tier_setup(const config::Config& config) {
  TierSetup s;
  const std::string& prebuilt = config.text("prebuilt");
  size_t start = 0;
  while (start <= prebuilt.size() && !prebuilt.empty()) {
    const size_t colon = prebuilt.find(':', start);
    const std::string file = prebuilt.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!file.empty()) {
      s.prebuilt.push_back(file);
    }
    if (colon == std::string::npos) {
      break;
    }
    start = colon + 1;
  }
  const std::string& remote = config.text("remote");
  if (!remote.empty()) {
    auto spec = parse_remote(remote);
    if (!spec) {
      const config::Value& v = config.value("remote");
      return fail((v.source.empty() ? std::string("remote") : v.source) + ": " + spec.error().message);
    }
    s.remote = std::move(*spec);
  }
  return s;
}

std::string describe_setup(const std::string& cache_dir, const TierSetup& setup) {
  std::string out = "local cache " + cache_dir;
  for (const std::string& file : setup.prebuilt) {
    out += ", bundle " + file;
  }
  if (setup.remote) {
    const RemoteSpec& r = *setup.remote;
    out += ", remote " + redacted_url(r.url);
    std::string attrs = r.scheme == "redis" ? "" : r.layout;
    if (r.read_only) {
      attrs += attrs.empty() ? "read-only" : ", read-only";
    }
    if (!attrs.empty()) {
      out += " (" + attrs + ")";
    }
  }
  return out;
}

void save_stats(const std::string& dir, const std::vector<TierStats>& counted) {
  if (auto saved = cache::add_tier_stats(dir, counted, static_cast<int64_t>(std::time(nullptr))); !saved) {
    KG_LOG_DEBUG("cannot update the cache statistics: " << saved.error().message);
  }
}

Expected<std::unique_ptr<TieredStorage>, Failure> open_tiers(const TierSetup& setup, Storage* local, bool offline,
                                                             TieredStorage::Options options) {
  std::vector<std::unique_ptr<Storage>> bundles;
  for (const std::string& file : setup.prebuilt) {
    auto b = open_bundle(file);
    if (!b) {
      return fail("prebuilt bundle refused: " + b.error().message);
    }
    bundles.push_back(std::move(*b));
  }
  std::unique_ptr<Storage> remote;
  if (setup.remote && !offline) {
    auto r = make_remote_storage(*setup.remote);
    if (!r) {
      return unexpected(r.error());
    }
    remote = std::move(*r);
    if (remote->read_only()) {
      options.write_remote = false;
    }
  }
  std::unique_ptr<Storage> front;
  if (local != nullptr) {
    front = std::make_unique<BorrowedStorage>(*local);
  }
  return std::make_unique<TieredStorage>(std::move(front), std::move(bundles), std::move(remote), options);
}

}  // namespace kg::storage
