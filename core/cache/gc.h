// Eviction by size on last access (docs/design.md §7), as ccache's cleanup: when the blobs of the
// local cache outgrow the limit (max_size, default 5 GiB), the records used longest ago go first,
// then every blob no record names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/local_cache.h"

namespace kg::cache {

inline constexpr uint64_t kDefaultMaxSize = 5ull << 30;

struct GcResult {
  uint64_t records_before = 0, records_removed = 0;
  uint64_t blobs_removed = 0;
  uint64_t bytes_before = 0, bytes_after = 0;
};

// Removes records in order of last access (oldest first; ties by key) until the blobs the rest
// name fit in `max_bytes`, then removes unreferenced blobs. `max_bytes` 0 removes everything.
// A record that names a blob it shares with a kept record frees only what no kept record needs.
// Errors: the cache is read-only or cannot be written (nothing half-done is left: each removal is
// its own transaction, and a record goes before its blobs).
Expected<GcResult, Failure> collect_garbage(LocalCache& cache, uint64_t max_bytes);

}  // namespace kg::cache
