// Prebuilt bundles (docs/design.md §7): one portable file holding cache entries (records and the
// blobs they name), for machines without a GPU or a network. `kernelgen cache export` writes one,
// `kernelgen cache import` copies one into the local cache, and KERNELGEN_PREBUILT=FILE[:FILE...]
// reads bundles as a read-only tier. Every digest is checked on open; a tampered bundle is
// refused with a message naming the entry.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/storage.h"
#include "util/expected.h"

namespace kg::storage {

struct BundleStats {
  size_t records = 0;
  size_t blobs = 0;
  uint64_t bytes = 0;
};

// Writes the records for `keys` (and every blob they name) from `from` into `path`, atomically
// (temporary file + rename). Errors: a key that `from` does not hold (named), a blob missing or
// damaged there, I/O.
Expected<BundleStats, Failure> write_bundle(Storage& from, const std::vector<std::string>& keys,
                                            const std::string& path);

// Opens `path` as a read-only Storage after checking all of it: format, every blob's digest,
// every record's key and that the blobs it names are present. Errors name the file and the entry
// ("bundle b.kgb: entry cas/3f2a…: content does not match its digest").
Expected<std::unique_ptr<Storage>, Failure> open_bundle(const std::string& path);

// open_bundle for a bundle's bytes already in memory (`name` stands for the file in messages):
// the same checks and errors, without the file's. For tests and the fuzz target.
Expected<std::unique_ptr<Storage>, Failure> open_bundle_bytes(std::string bytes, const std::string& name);

// Copies every entry of the bundle at `path` into `to` (checked as open_bundle does; nothing is
// copied from a damaged bundle). Entries `to` already holds are left as they are. Entries are
// stored in batches of 256 through Storage::put_entries (into the local cache: one transaction
// each, so a failure or a crash leaves whole entries only).
Expected<BundleStats, Failure> import_bundle(const std::string& path, Storage& to);

}  // namespace kg::storage
