// The tiers in front of every lookup (docs/design.md §7), as ccache and sccache chain theirs:
//
//   get:  local LMDB ─► prebuilt bundles (read-only, in order) ─► remote (HTTP or Redis)
//         a hit below the local tier is copied into it (record and blobs, one transaction), so
//         the next is local
//   put:  local, then the remote unless it is read-only
//
// A remote that fails or times out is reported once (a warning naming it and why) and then left
// alone for the rest of the process: the build goes on with the local tier, never broken by it.
// Every tier counts hits, misses, errors, bytes and time (stats()).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/tier_stats.h"
#include "storage/storage.h"

namespace kg::storage {

// What a tier did (cache/tier_stats.h): `tier` is "local" for the local cache, describe() for the
// others ("bundle <file>", "remote <url without credentials> (...)"), the name the statistics
// file keeps across processes. Hits and misses count record lookups (a kernel served or not);
// blob reads add to bytes_read and seconds, and count only as errors when they fail.
using TierStats = cache::TierCounters;

// Whether `record` may be uploaded or exported: a kernel the loop wrote ("llm:…") only once a GPU
// verified it; template kernels travel with whatever status they have (design §7, item 5).
bool may_leave_this_machine(const cache::AcRecord& record);

class TieredStorage final : public Storage {
 public:
  struct Options {
    bool copy_hits_local = true;  // copy a hit of a lower tier into the local one
    bool write_remote = true;     // false: never write the remote (READ_ONLY mode, a read-only remote)
    // How long a failed remote is left alone before it is tried again (a long-lived daemon);
    // 0: for the rest of the process (a build step).
    double retry_remote_after_s = 0;
    // The caller has just looked the key up in the local tier itself and missed (the wrapper's
    // hit path does, before it opens the other tiers): get_record starts below the local tier,
    // which then only takes the copy and serves blobs.
    bool local_already_missed = false;
  };
  // `local` may be null (a client without a cache directory); `prebuilt` and `remote` may be empty.
  TieredStorage(std::unique_ptr<Storage> local, std::vector<std::unique_ptr<Storage>> prebuilt,
                std::unique_ptr<Storage> remote, Options options);
  ~TieredStorage() override;

  std::string describe() const override;  // "local cache …, bundle a.kgb, remote http://…"
  bool read_only() const override;        // no tier takes writes
  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override;
  Expected<void, Failure> put_record(const cache::AcRecord& record) override;
  Expected<std::string, Failure> get_blob(const std::string& digest) override;
  Expected<std::string, Failure> put_blob(const std::string& content) override;
  Expected<bool, Failure> touch(const std::string& key) override;  // the local tier only

  // One entry per tier, in lookup order.
  std::vector<TierStats> stats() const;
  // stats(), and every counter back to zero: what was counted since the last call (a long-lived
  // process adds it into the statistics file now and then: cache/tier_stats.h).
  std::vector<TierStats> take_stats();
  // Why the last get_record of `key` missed in each tier, for `kernelgen explain`.
  std::vector<std::string> last_miss_reasons() const;

 private:
  struct Tier;
  std::vector<std::unique_ptr<Tier>> m_tiers;  // local (if any), prebuilt..., remote (if any)
  Options m_options;
  mutable std::mutex m_mutex;
  std::vector<std::string> m_last_miss;
};

}  // namespace kg::storage
