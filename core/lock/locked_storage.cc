#include "lock/locked_storage.h"

namespace kg::lock {

LockedStorage::LockedStorage(storage::Storage& inner, const Lockfile* lock, std::string lockfile_path,
                             std::string spec_file, std::string name, std::string arch)
    : m_inner(inner), m_lock(lock), m_lockfile_path(std::move(lockfile_path)) {
  m_spec.spec_file = std::move(spec_file);
  m_spec.name = std::move(name);
  m_spec.arch = std::move(arch);
}

Expected<cache::AcRecord, Failure> LockedStorage::get_record(const std::string& key) {
  auto record = m_inner.get_record(key);
  if (!record || m_lock == nullptr) {
    return record;
  }
  Resolved r = m_spec;
  r.key = record->key;
  r.kernel = record->source_digest;
  KG_TRY(check_locked(*m_lock, m_lockfile_path, r));
  return record;
}

}  // namespace kg::lock
