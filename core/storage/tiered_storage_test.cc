#include "storage/tiered_storage.h"

#include <gtest/gtest.h>


#include "memory_storage.h"
#include "util/hash.h"

namespace kg::storage {
namespace {

using MemoryTier = kg::testing::MemoryStorage;

// Stores a record with a source and a header in `tier`; returns it.
cache::AcRecord seed(MemoryTier& tier, const std::string& key) {
  cache::AcRecord r;
  r.key = key;
  r.name = "causal";
  r.source_digest = *tier.put_blob("source of " + key);
  r.header_digest = *tier.put_blob("header of " + key);
  EXPECT_TRUE(tier.put_record(r));
  return r;
}

struct Tiers {
  MemoryTier* local;
  MemoryTier* bundle;
  MemoryTier* remote;
  std::unique_ptr<TieredStorage> storage;
};

Tiers make(TieredStorage::Options options = {}, bool remote_read_only = false) {
  auto local = std::make_unique<MemoryTier>("local");
  auto bundle = std::make_unique<MemoryTier>("bundle", true);
  auto remote = std::make_unique<MemoryTier>("remote", remote_read_only);
  Tiers t{local.get(), bundle.get(), remote.get(), nullptr};
  std::vector<std::unique_ptr<Storage>> prebuilt;
  prebuilt.push_back(std::move(bundle));
  t.storage = std::make_unique<TieredStorage>(std::move(local), std::move(prebuilt), std::move(remote), options);
  return t;
}

const std::string kKey(32, 'a');

TEST(TieredStorage, LooksUpLocalThenBundlesThenRemoteAndCopiesHitsDown) {
  Tiers t = make();
  const cache::AcRecord r = seed(*t.remote, kKey);
  auto got = t.storage->get_record(kKey);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);
  // Copied into the local tier with its blobs: the next lookup does not reach the remote.
  EXPECT_EQ(t.local->records.count(kKey), 1u);
  EXPECT_EQ(t.local->blobs.count(r.source_digest), 1u);
  const int remote_gets = t.remote->gets;
  ASSERT_TRUE(t.storage->get_record(kKey));
  ASSERT_TRUE(t.storage->get_blob(r.source_digest));
  EXPECT_EQ(t.remote->gets, remote_gets);
  const uint64_t blob_bytes = t.remote->blobs[r.source_digest].size() + t.remote->blobs[r.header_digest].size();
  const auto stats = t.storage->stats();
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[0].tier, "local");
  EXPECT_EQ(stats[0].hits, 1u);  // the record, the second time (blob reads are bytes, not hits)
  EXPECT_EQ(stats[0].misses, 1u);
  EXPECT_EQ(stats[0].bytes_written, blob_bytes);  // the copy
  EXPECT_EQ(stats[0].bytes_read, t.local->blobs[r.source_digest].size());
  EXPECT_EQ(stats[1].tier, "bundle");
  EXPECT_EQ(stats[1].misses, 1u);
  EXPECT_EQ(stats[2].tier, "remote");
  EXPECT_EQ(stats[2].hits, 1u);
  EXPECT_EQ(stats[2].misses, 0u);
  EXPECT_EQ(stats[2].errors, 0u);
  EXPECT_EQ(stats[2].bytes_read, blob_bytes);
}

TEST(TieredStorage, TheCopyDownIsOneBatch) {
  Tiers t = make();
  seed(*t.remote, kKey);
  ASSERT_TRUE(t.storage->get_record(kKey));
  EXPECT_EQ(t.local->batches, 1);
  EXPECT_EQ(t.local->records.count(kKey), 1u);
  EXPECT_EQ(t.local->blobs.size(), 2u);
}

TEST(TieredStorage, AFailedCopyDownIsCountedAndStillAHit) {
  Tiers t = make();
  seed(*t.remote, kKey);
  t.local->broken = true;  // refuses the copy
  ASSERT_TRUE(t.storage->get_record(kKey));
  const auto stats = t.storage->stats();
  EXPECT_EQ(stats[2].hits, 1u);
  EXPECT_EQ(stats[0].errors, 2u);  // the lookup (it times out) and the copy
  EXPECT_EQ(stats[0].bytes_written, 0u);
}

TEST(TieredStorage, ALocalMissTheCallerSawIsNotAskedAgain) {
  TieredStorage::Options options;
  options.local_already_missed = true;
  Tiers t = make(options);
  const cache::AcRecord r = seed(*t.remote, kKey);
  ASSERT_TRUE(t.storage->get_record(kKey));
  EXPECT_EQ(t.local->gets, 0);
  EXPECT_EQ(t.local->records.count(kKey), 1u);  // still copied down
  EXPECT_EQ(t.storage->stats()[0].misses, 0u);
  // Blobs are then served by the local tier.
  ASSERT_TRUE(t.storage->get_blob(r.source_digest));
  EXPECT_EQ(t.local->gets, 1);
}

TEST(TieredStorage, TakeStatsReturnsTheCountsSinceTheLastCall) {
  Tiers t = make();
  seed(*t.remote, kKey);
  ASSERT_TRUE(t.storage->get_record(kKey));
  auto first = t.storage->take_stats();
  EXPECT_EQ(first[2].hits, 1u);
  auto second = t.storage->take_stats();
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second[2].tier, "remote");
  EXPECT_TRUE(second[0].empty());
  EXPECT_TRUE(second[2].empty());
}

TEST(TieredStorage, ABundleHitComesBeforeTheRemote) {
  Tiers t = make();
  seed(*t.remote, kKey);
  // The bundle is read-only for the storage, but the test fills it directly.
  cache::AcRecord r;
  r.key = kKey;
  r.name = "from-bundle";
  const std::string src = "bundle source";
  t.bundle->blobs[xxh3_128_hex(src)] = src;
  r.source_digest = xxh3_128_hex(src);
  t.bundle->records[kKey] = r;
  auto got = t.storage->get_record(kKey);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, "from-bundle");
  EXPECT_EQ(t.remote->gets, 0);
}

TEST(TieredStorage, ARecordWhoseBlobsATierLacksIsAMissThere) {
  Tiers t = make();
  cache::AcRecord r = seed(*t.remote, kKey);
  t.remote->blobs.erase(r.header_digest);
  auto got = t.storage->get_record(kKey);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(got.error().message.find("cannot give"), std::string::npos) << got.error().message;
  EXPECT_EQ(t.local->records.count(kKey), 0u);
}

TEST(TieredStorage, WritesGoThroughToTheRemoteUnlessReadOnly) {
  Tiers t = make();
  auto d = t.storage->put_blob("kernel");
  ASSERT_TRUE(d);
  EXPECT_EQ(t.local->blobs.count(*d), 1u);
  EXPECT_EQ(t.remote->blobs.count(*d), 1u);
  EXPECT_TRUE(t.bundle->blobs.empty());

  Tiers ro = make({}, /*remote_read_only=*/true);
  ASSERT_TRUE(ro.storage->put_blob("kernel"));
  EXPECT_TRUE(ro.remote->blobs.empty());

  TieredStorage::Options no_remote_writes;
  no_remote_writes.write_remote = false;
  Tiers off = make(no_remote_writes);
  cache::AcRecord r;
  r.key = kKey;
  ASSERT_TRUE(off.storage->put_record(r));
  EXPECT_TRUE(off.remote->records.empty());
  EXPECT_EQ(off.local->records.count(kKey), 1u);
}

TEST(TieredStorage, AFailingRemoteIsReportedOnceThenLeftAlone) {
  Tiers t = make();
  t.remote->broken = true;
  auto miss = t.storage->get_record(kKey);
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound) << "a remote failure must look like a miss to the build";
  const int gets = t.remote->gets;
  // Writes still land locally; the remote is not asked again.
  ASSERT_TRUE(t.storage->put_blob("kernel"));
  EXPECT_FALSE(t.storage->get_record(kKey));
  EXPECT_EQ(t.remote->gets, gets);
  EXPECT_EQ(t.storage->stats()[2].errors, 1u);
  const auto reasons = t.storage->last_miss_reasons();
  ASSERT_EQ(reasons.size(), 3u);
  EXPECT_NE(reasons[2].find("failed earlier"), std::string::npos) << reasons[2];
}

TEST(TieredStorage, ALocalWriteFailureIsAnError) {
  Tiers t = make();
  t.local->broken = true;
  EXPECT_FALSE(t.storage->put_blob("kernel"));
  cache::AcRecord r;
  r.key = kKey;
  EXPECT_FALSE(t.storage->put_record(r));
}

}  // namespace
}  // namespace kg::storage
