#include "record_lookup.h"

#include "util/text.h"

namespace kg::cli {

Expected<cache::AcRecord, Failure> find_record(cache::LocalCache& cache, const std::string& key_or_prefix) {
  auto exact = cache.get_record(key_or_prefix);
  if (exact || exact.error().kind != Failure::Kind::NotFound) {
    return exact;
  }
  auto all = cache.list_records();
  if (!all) {
    return unexpected(all.error());
  }
  const cache::AcRecord* found = nullptr;
  for (const cache::AcRecord& r : *all) {
    if (!key_or_prefix.empty() && r.key.rfind(key_or_prefix, 0) == 0) {
      if (found != nullptr) {
        return fail("key prefix '" + printable(key_or_prefix) + "' is ambiguous: " + found->key + ", " +
                    r.key + ", …");
      }
      found = &r;
    }
  }
  if (found == nullptr) {
    return fail("no cache entry with key '" + printable(key_or_prefix) + "' in " + cache.dir() +
                    "; `kernelgen cache ls` lists the keys",
                Failure::Kind::NotFound);
  }
  return *found;
}

}  // namespace kg::cli
