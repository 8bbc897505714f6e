#include "storage/local_storage.h"

namespace kg::storage {

std::string LocalStorage::describe() const { return "local cache " + m_cache.dir(); }

bool LocalStorage::read_only() const { return m_cache.read_only(); }

Expected<cache::AcRecord, Failure> LocalStorage::get_record(const std::string& key) {
  return m_cache.get_record(key);
}

Expected<void, Failure> LocalStorage::put_record(const cache::AcRecord& record) {
  return m_cache.put_record(record);
}

Expected<std::string, Failure> LocalStorage::get_blob(const std::string& digest) {
  return m_cache.get_blob(digest);
}

Expected<std::string, Failure> LocalStorage::put_blob(const std::string& content) {
  return m_cache.put_blob(content);
}

Expected<void, Failure> LocalStorage::put_entries(const std::vector<cache::EntryToStore>& entries) {
  return m_cache.put_entries(entries);
}

Expected<bool, Failure> LocalStorage::touch(const std::string& key) { return m_cache.touch(key); }

}  // namespace kg::storage
