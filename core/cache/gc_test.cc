#include "cache/gc.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include "util/hash.h"

namespace kg::cache {
namespace {

// Stores a record for `key` with a source of `bytes` bytes (distinct per key) and a header shared
// by every record; last access `when`.
AcRecord put(LocalCache& cache, char key, size_t bytes, int64_t when, const std::string& shared) {
  AcRecord r;
  r.key = std::string(32, key);
  r.name = std::string("k") + key;
  r.source_digest = *cache.put_blob(std::string(bytes, key));
  r.header_digest = *cache.put_blob(shared);
  r.created_unix = when;
  r.last_access_unix = when;
  EXPECT_TRUE(cache.put_record(r));
  return r;
}

TEST(CacheGc, EvictsTheLeastRecentlyUsedUntilTheRestFits) {
  testing::TempDir tmp;
  auto cache = LocalCache::open(tmp.sub("c"));
  ASSERT_TRUE(cache) << cache.error().message;
  const std::string shared(100, 'h');
  put(*cache, 'a', 1000, 300, shared);  // the newest
  put(*cache, 'b', 1000, 100, shared);  // the oldest
  put(*cache, 'c', 1000, 200, shared);
  const std::string orphan = *cache->put_blob("left behind by a crash");
  // 3100 bytes named; a limit of 2200 keeps two records (2100 bytes with the shared header).
  auto r = collect_garbage(*cache, 2200);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->records_before, 3u);
  EXPECT_EQ(r->records_removed, 1u);
  EXPECT_EQ(r->blobs_removed, 2u);  // b's source and the orphan; the shared header stays
  EXPECT_EQ(r->bytes_after, 2100u);
  EXPECT_FALSE(cache->get_record(std::string(32, 'b')));
  EXPECT_TRUE(cache->get_record(std::string(32, 'a')));
  EXPECT_TRUE(cache->get_record(std::string(32, 'c')));
  EXPECT_FALSE(cache->get_blob(orphan));
  EXPECT_TRUE(cache->get_blob(xxh3_128_hex(shared)));
  // Within the limit nothing but orphans goes.
  auto again = collect_garbage(*cache, 1 << 20);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->records_removed, 0u);
  EXPECT_EQ(again->blobs_removed, 0u);
}

TEST(CacheGc, ZeroEmptiesTheCache) {
  testing::TempDir tmp;
  auto cache = LocalCache::open(tmp.sub("c"));
  ASSERT_TRUE(cache);
  put(*cache, 'a', 10, 1, "h");
  auto r = collect_garbage(*cache, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->records_removed, 1u);
  EXPECT_EQ(r->bytes_after, 0u);
  auto s = cache->stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ac_entries, 0u);
  EXPECT_EQ(s->cas_entries, 0u);
}

TEST(CacheGc, ARecentAccessKeepsAnOldRecord) {
  testing::TempDir tmp;
  auto cache = LocalCache::open(tmp.sub("c"));
  ASSERT_TRUE(cache);
  put(*cache, 'a', 1000, 100, "h");
  put(*cache, 'b', 1000, 200, "h");
  ASSERT_TRUE(cache->touch(std::string(32, 'a'), 100 + kTouchIntervalSeconds + 10));
  auto r = collect_garbage(*cache, 1500);
  ASSERT_TRUE(r);
  EXPECT_TRUE(cache->get_record(std::string(32, 'a'))) << "the record touched last was evicted";
  EXPECT_FALSE(cache->get_record(std::string(32, 'b')));
}

}  // namespace
}  // namespace kg::cache
