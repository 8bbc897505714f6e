// A whole cache entry to store at once: a record and the blobs it names. A tier that can (the local
// LMDB cache) writes it in one transaction, so that a crash leaves all of it or none, and the
// record is never visible before its blobs (LocalCache::put_entries, Storage::put_entries).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cache/record.h"

namespace kg::cache {

// A blob with the digest its writer expects; the store hashes `content` again and refuses the
// whole batch when it does not match.
struct BlobToStore {
  std::string digest;
  std::string_view content;  // not owned: valid for the duration of the call that takes it
};

struct EntryToStore {
  const AcRecord* record = nullptr;  // not owned, never null
  // Blobs of the record not known to be stored already; a digest the record names must be here
  // or in the store.
  std::vector<BlobToStore> blobs;
};

}  // namespace kg::cache
