// Counters of each storage tier, kept across processes (docs/sharing.md, "Statistics"), as ccache
// keeps its statistics: each process counts in memory (storage::TieredStorage) and adds what it
// counted into one small file of the cache directory once, when it is done.
//
//   <cache dir>/stats.json   {"format": 1, "since_unix": T, "tiers": [{"tier": "local", "hits": 3, ...}]}
//
// A process takes flock(LOCK_EX) on the file, reads it, adds its counts and writes it back in
// place; readers take LOCK_SH. Not in LMDB on purpose: a cache hit only reads data.mdb, and a
// write there would change its times, which makes the next process re-check every page of it
// before opening (cache/validate.h, about 4 ms per thousand kernels), besides costing a synced
// commit. The file is never synced and not replaced by rename (which costs ~0.5 ms on ext4): a
// crash may lose or garble the counts, never a kernel. A damaged or oversized file reads as no
// counters; something else under its name (a symbolic or hard link, another user's file) is
// never written through: it is removed and a new file made.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/expected.h"

namespace kg::cache {

// What one tier did. `tier` names it stably across processes: "local", "bundle <file>",
// "remote <url without credentials> (<layout or db>)".
struct TierCounters {
  std::string tier;
  uint64_t hits = 0;    // lookups of a kernel (a record and its blobs) that it served
  uint64_t misses = 0;  // lookups it could not serve (absent or damaged)
  uint64_t errors = 0;  // calls that failed (unreachable, timed out, refused a write, I/O)
  uint64_t bytes_read = 0;     // blob bytes it gave (kernel sources, headers, reports)
  uint64_t bytes_written = 0;  // blob bytes stored into it
  double seconds = 0;          // time spent in its calls

  // True when nothing was counted.
  bool empty() const;
  // Adds `other`'s counts (not its name) into these.
  void add(const TierCounters& other);
};

struct TierStatsFile {
  int64_t since_unix = 0;  // when counting started (first update, or the last zero_tier_stats); 0: never
  std::vector<TierCounters> tiers;  // the one counted least recently first
};

// At most this many tiers are kept (remotes come and go with configurations); beyond it, the one
// counted least recently is dropped.
inline constexpr size_t kMaxTiersInStats = 64;

// The counters in `dir`; an absent (or damaged, see above) file reads as no counters. Needs no
// write access. Errors: none today (an unreadable file reads as no counters).
Expected<TierStatsFile, Failure> read_tier_stats(const std::string& dir);

// Adds `counted` (entries with empty() are skipped; none: nothing is touched) into the file in
// `dir`, under its lock. `now_unix` starts the file's since_unix when it had none.
// Errors: the directory is missing or not writable, the file cannot be written (OS error named).
Expected<void, Failure> add_tier_stats(const std::string& dir, const std::vector<TierCounters>& counted,
                                       int64_t now_unix);

// Resets every counter in `dir` (kernelgen cache stats --zero): no tiers, since_unix = now_unix.
// Errors: as add_tier_stats.
Expected<void, Failure> zero_tier_stats(const std::string& dir, int64_t now_unix);

}  // namespace kg::cache
