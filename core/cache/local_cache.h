// The local cache (DESIGN §7): an LMDB environment with two named databases.
//
//   ac   key (32 hex) → AcRecord, JSON        "action cache": what a spec resolved to
//   cas  digest (32 hex) → blob bytes          content-addressed: sources, headers, reports
//   meta "format" → kCacheFormatVersion        refuse to open a cache of another format
//
// Digest = XXH3-128 of the blob, re-checked on every read: a mismatch is reported as corrupt,
// the entry is evicted, and the read is a miss. Writers are serialised by LMDB; readers never
// block. Safe for many processes at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/expected.h"

namespace kg::cache {

// What a key resolved to. Serialised as JSON in `ac`.
struct AcRecord {
  std::string key;             // 32 hex
  std::string name;            // spec name
  std::string arch;            // e.g. sm_90a
  std::string generator;      // kGeneratorVersion, or "llm:<model>" later
  std::string source_digest;   // <name>.cu
  std::string header_digest;   // <name>.h
  std::string report_digest;   // verifier report JSON; empty when unverified
  std::string canonical_digest;// canonical spec text (also stored in cas)
  std::string verification;    // "unverified" | "verified" | "failed"
  int64_t created_unix = 0;    // informational; never emitted into build outputs
  int64_t last_access_unix = 0;
};

struct Stats {
  uint64_t ac_entries = 0;
  uint64_t cas_entries = 0;
  uint64_t cas_bytes = 0;
  uint64_t map_size = 0;    // bytes reserved for the environment
  uint64_t used_bytes = 0;  // pages in use * page size
};

class LocalCache {
 public:
  // Opens (creating if needed, mode 0700) the cache directory `dir`. `read_only` opens without
  // write access and fails if the cache does not exist. Fails with a message naming `dir` when the
  // directory cannot be created or holds a cache of another format.
  static Expected<LocalCache, Failure> open(const std::string& dir, bool read_only = false);

  LocalCache(LocalCache&&) noexcept;
  LocalCache& operator=(LocalCache&&) noexcept;
  ~LocalCache();

  // NotFound failure on a miss.
  Expected<AcRecord, Failure> get_record(const std::string& key);
  // Stores blobs first, then call this. Overwrites an existing record for the key.
  Expected<void, Failure> put_record(const AcRecord& record);

  // Returns the blob; NotFound on a miss or when the stored bytes fail the digest check (the bad
  // entry is evicted and a warning logged).
  Expected<std::string, Failure> get_blob(const std::string& digest);
  // Stores and returns the digest. Idempotent.
  Expected<std::string, Failure> put_blob(const std::string& content);

  Expected<std::vector<AcRecord>, Failure> list_records();
  Expected<Stats, Failure> stats();
  const std::string& dir() const { return m_dir; }

 private:
  struct Impl;
  explicit LocalCache(Impl* impl, std::string dir);
  Impl* m_impl = nullptr;
  std::string m_dir;
};

// $KERNELGEN_CACHE_DIR, else $XDG_CACHE_HOME/kernelgen, else $HOME/.cache/kernelgen.
std::string default_cache_dir();

}  // namespace kg::cache
