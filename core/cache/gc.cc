#include "cache/gc.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace kg::cache {

Expected<GcResult, Failure> collect_garbage(LocalCache& cache, uint64_t max_bytes) {
  GcResult result;
  auto records = cache.list_records();
  if (!records) {
    return unexpected(records.error());
  }
  auto blobs = cache.list_blob_sizes();
  if (!blobs) {
    return unexpected(blobs.error());
  }
  std::map<std::string, uint64_t> size;
  for (const auto& [d, n] : *blobs) {
    size[d] = n;
    result.bytes_before += n;
  }
  result.records_before = records->size();
  // How many kept records name each blob; the referenced total.
  std::map<std::string, int> refs;
  for (const AcRecord& r : *records) {
    for (const std::string* d : blob_digests(r)) {
      ++refs[*d];
    }
  }
  uint64_t referenced = 0;
  for (const auto& [d, n] : refs) {
    if (auto it = size.find(d); it != size.end()) {
      referenced += it->second;
    }
  }
  std::vector<const AcRecord*> order;
  for (const AcRecord& r : *records) {
    order.push_back(&r);
  }
  std::sort(order.begin(), order.end(), [](const AcRecord* a, const AcRecord* b) {
    return std::tie(a->last_access_unix, a->key) < std::tie(b->last_access_unix, b->key);
  });
  for (const AcRecord* r : order) {
    if (referenced <= max_bytes && max_bytes > 0) {
      break;
    }
    KG_TRY(cache.remove_record(r->key));
    ++result.records_removed;
    for (const std::string* d : blob_digests(*r)) {
      if (--refs[*d] == 0) {
        if (auto it = size.find(*d); it != size.end()) {
          referenced -= it->second;
        }
      }
    }
  }
  // Every blob no kept record names: the evicted records' and orphans left by crashes.
  uint64_t after = 0;
  for (const auto& [d, n] : size) {
    auto it = refs.find(d);
    if (it == refs.end() || it->second <= 0) {
      KG_TRY(cache.remove_blob(d));
      ++result.blobs_removed;
    } else {
      after += n;
    }
  }
  result.bytes_after = after;
  return result;
}

}  // namespace kg::cache
