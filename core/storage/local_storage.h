// The local LMDB cache (cache/local_cache.h) as a Storage backend.
#pragma once

#include "cache/local_cache.h"
#include "storage/storage.h"

namespace kg::storage {

class LocalStorage final : public Storage {
 public:
  // `cache` must outlive this object; it is used, not owned.
  explicit LocalStorage(cache::LocalCache& cache) : m_cache(cache) {}

  std::string describe() const override;
  bool read_only() const override;
  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override;
  Expected<void, Failure> put_record(const cache::AcRecord& record) override;
  Expected<std::string, Failure> get_blob(const std::string& digest) override;
  Expected<std::string, Failure> put_blob(const std::string& content) override;
  // One LMDB write transaction (LocalCache::put_entries).
  Expected<void, Failure> put_entries(const std::vector<cache::EntryToStore>& entries) override;
  Expected<bool, Failure> touch(const std::string& key) override;

  cache::LocalCache& cache() { return m_cache; }

 private:
  cache::LocalCache& m_cache;
};

}  // namespace kg::storage
