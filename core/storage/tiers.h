// The storage a kernelgen process uses, as the configuration describes it: the local cache, the
// bundles of `prebuilt` (KERNELGEN_PREBUILT=FILE[:FILE...]) and the `remote` (KERNELGEN_REMOTE),
// chained by TieredStorage.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "storage/remote.h"
#include "storage/tiered_storage.h"

namespace kg::storage {

struct TierSetup {
  std::vector<std::string> prebuilt;  // bundle files, in lookup order
  std::optional<RemoteSpec> remote;

  bool any() const { return !prebuilt.empty() || remote.has_value(); }
};

// Reads the prebuilt and remote settings. Errors name the setting and what was expected.
Expected<TierSetup, Failure> tier_setup(const config::Config& config);

// One line naming the tiers in lookup order, without opening any: "local cache DIR, bundle FILE,
// remote URL (LAYOUT, read-only)"; the remote's URL with its credentials redacted.
std::string describe_setup(const std::string& cache_dir, const TierSetup& setup);

// A Storage that forwards to one it does not own (the local cache, owned by its caller).
class BorrowedStorage final : public Storage {
 public:
  explicit BorrowedStorage(Storage& s) : m_s(s) {}
  std::string describe() const override { return m_s.describe(); }
  bool read_only() const override { return m_s.read_only(); }
  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override { return m_s.get_record(key); }
  Expected<void, Failure> put_record(const cache::AcRecord& r) override { return m_s.put_record(r); }
  Expected<std::string, Failure> get_blob(const std::string& d) override { return m_s.get_blob(d); }
  Expected<std::string, Failure> put_blob(const std::string& c) override { return m_s.put_blob(c); }
  Expected<void, Failure> put_entries(const std::vector<cache::EntryToStore>& e) override {
    return m_s.put_entries(e);
  }
  Expected<bool, Failure> touch(const std::string& key) override { return m_s.touch(key); }

 private:
  Storage& m_s;
};

// Adds what `counted` holds (TieredStorage::take_stats) into the statistics of the cache
// directory `dir` (cache/tier_stats.h), once per process or batch of work. A failure (no such
// directory, not writable) is only logged at debug level: statistics never fail a build.
void save_stats(const std::string& dir, const std::vector<TierStats>& counted);

// `local` (borrowed; may be null) in front of the setup's bundles (opened and checked now: a
// damaged bundle is an error naming it and the entry) and remote (contacted on first use).
// `offline`: no remote at all (OFFLINE mode never touches the network).
Expected<std::unique_ptr<TieredStorage>, Failure> open_tiers(const TierSetup& setup, Storage* local, bool offline,
                                                             TieredStorage::Options options);

}  // namespace kg::storage
