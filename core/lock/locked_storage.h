// The lockfile's check where kernels are read (docs/design.md §7: "with a lockfile, a build that
// would emit anything else fails"): a Storage in front of another that refuses every record the
// lockfile does not allow for one spec.
//
// `kernelgen emit --lockfile F` serves its outputs through it, on every path (a hit in the
// kernelgen process, a kernel the daemon just stored, one generated in process): emit_kernel
// reads the record through get_record() and writes the outputs only from what that returned, so
// the kernel checked is the kernel written, even if another process replaces the record at the
// same time.
#pragma once

#include <string>

#include "lock/lockfile.h"
#include "storage/storage.h"

namespace kg::lock {

class LockedStorage final : public storage::Storage {
 public:
  // `inner` and `lock` must outlive this object (used, not owned). `lock` null: no checks (every
  // call passes through). `lockfile_path` names the lockfile in messages and anchors relative spec
  // paths (lock_spec_path); `spec_file`, `name` and `arch` are the spec being served (Resolved's
  // fields; key and kernel come from each record read).
  LockedStorage(storage::Storage& inner, const Lockfile* lock, std::string lockfile_path, std::string spec_file,
                std::string name, std::string arch);

  std::string describe() const override { return m_inner.describe(); }
  bool read_only() const override { return m_inner.read_only(); }
  // The inner record, when check_locked() accepts its key and source digest for the spec.
  // Errors: the inner errors; Error with check_locked()'s message when it refuses.
  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override;
  Expected<void, Failure> put_record(const cache::AcRecord& record) override { return m_inner.put_record(record); }
  Expected<std::string, Failure> get_blob(const std::string& digest) override { return m_inner.get_blob(digest); }
  Expected<std::string, Failure> put_blob(const std::string& content) override { return m_inner.put_blob(content); }
  Expected<bool, Failure> touch(const std::string& key) override { return m_inner.touch(key); }

 private:
  storage::Storage& m_inner;
  const Lockfile* m_lock;
  std::string m_lockfile_path;
  Resolved m_spec;  // key and kernel unset
};

}  // namespace kg::lock
