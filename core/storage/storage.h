// Where kernels are kept (docs/design.md §7): one interface in front of every storage tier, so that the
// local LMDB cache (local_storage.h) and, later, prebuilt bundles and remote caches (HTTP,
// Redis) are backends of one file each, as ccache's storage/ is laid out.
//
// The model is Bazel's and ccache's: an action cache (key → AcRecord) and a content-addressed
// store (digest → blob). A backend never trusts what it holds: every blob it returns has been
// hashed again and matched its digest, and every record parsed and named its own key; damage is a
// miss (NotFound) and a warning, never bad bytes handed on.
//
// Threads: a backend's methods may be called from several threads at once.
#pragma once

#include <string>

#include <vector>

#include "cache/entry.h"
#include "cache/record.h"
#include "util/expected.h"

namespace kg::storage {

class Storage {
 public:
  virtual ~Storage() = default;

  // For messages: what and where, e.g. "local cache /home/u/.cache/kernelgen".
  virtual std::string describe() const = 0;

  // True when the put and touch methods always fail (a read-only open, a bundle).
  virtual bool read_only() const = 0;

  // The record for `key`, owned by the caller. Errors: NotFound (no record, or a damaged one
  // that was dropped with a warning); Error (the tier cannot be read; the message says why);
  // Timeout (a remote tier did not answer in time).
  virtual Expected<cache::AcRecord, Failure> get_record(const std::string& key) = 0;

  // Stores `record` under record.key; its blobs must be stored first. Errors: Error (read-only,
  // a digest names a missing blob, no space, I/O), Timeout.
  virtual Expected<void, Failure> put_record(const cache::AcRecord& record) = 0;

  // The blob stored under `digest`, checked against it, owned by the caller. Errors: as
  // get_record.
  virtual Expected<std::string, Failure> get_blob(const std::string& digest) = 0;

  // Stores `content`; returns its digest (XXH3-128, 32 hex). Idempotent. Errors: as put_record.
  virtual Expected<std::string, Failure> put_blob(const std::string& content) = 0;

  // Stores whole entries (their blobs, then their records). The local tier does it in one
  // transaction (all or nothing; no record visible before its blobs); this default, for tiers that
  // cannot, stores each entry's blobs and then its record, checking each blob's digest. Errors: as
  // put_record and put_blob, and Error when a blob's bytes do not hash to its digest.
  virtual Expected<void, Failure> put_entries(const std::vector<cache::EntryToStore>& entries);

  // Records an access to `key` for eviction by last use. Returns true when it wrote. Errors:
  // NotFound (no record), Error (read-only, I/O).
  virtual Expected<bool, Failure> touch(const std::string& key) = 0;
};

}  // namespace kg::storage
