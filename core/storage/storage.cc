// Storage::put_entries for tiers without transactions: entry by entry, blobs before the record.
#include "storage/storage.h"

namespace kg::storage {

Expected<void, Failure> Storage::put_entries(const std::vector<cache::EntryToStore>& entries) {
  for (const cache::EntryToStore& e : entries) {
    for (const cache::BlobToStore& b : e.blobs) {
      auto digest = put_blob(std::string(b.content));
      if (!digest) {
        return unexpected(digest.error());
      }
      if (*digest != b.digest) {
        return fail("cannot store record " + e.record->key + " in " + describe() + ": the bytes given for blob \"" +
                    b.digest + "\" do not hash to it");
      }
    }
    KG_TRY(put_record(*e.record));
  }
  return {};
}

}  // namespace kg::storage
