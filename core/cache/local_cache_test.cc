#include "cache/local_cache.h"

#include <gtest/gtest.h>

#include "raw_lmdb.h"
#include "temp_dir.h"
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/hash.h"
#include "version.h"

namespace kg::cache {
namespace {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
using TempDir = ::kg::testing::TempDir;

// Options that collect warnings instead of printing them.
LocalCache::Options quiet(std::vector<std::string>* warnings, bool read_only = false) {
  LocalCache::Options o;
  o.read_only = read_only;
  o.on_warning = [warnings](const std::string& line) { warnings->push_back(line); };
  return o;
}

// Writes `value` under `key` in the named database `db`, bypassing LocalCache, the way a disk
// error or another program might. The cache must not be open in this process.
void raw_put(const std::string& dir, const char* db, const std::string& key, const std::string& value) {
  ::kg::testing::raw_lmdb_write(dir, db, /*create=*/true, [&](MDB_txn* txn, MDB_dbi dbi) {
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<char*>(value.data())};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  });
}

// Deterministic test content for item `i`: some blobs span many pages.
std::string source_of(int i) {
  std::string s = "// kernel " + std::to_string(i) + "\n";
  const size_t size = (i % 7 == 0) ? 20000 : 100 + (i * 37) % 300;
  while (s.size() < size) {
    s += "__global__ void k" + std::to_string(i) + "() {}\n";
  }
  return s;
}
std::string header_of(int i) { return "#pragma once // " + std::to_string(i) + "\n"; }
std::string key_of(int i) { return xxh3_128_hex("key-" + std::to_string(i)); }

// Stores the blobs and the record for item `i`; returns the record.
AcRecord put_item(LocalCache& cache, int i, Verification verification = Verification::Verified) {
  AcRecord r;
  r.key = key_of(i);
  r.name = "kernel_" + std::to_string(i);
  r.arch = "sm_90a";
  r.generator = kGeneratorVersion;
  auto src = cache.put_blob(source_of(i));
  auto hdr = cache.put_blob(header_of(i));
  if (!src || !hdr) {
    ADD_FAILURE() << (src ? hdr.error().message : src.error().message);
    return r;
  }
  r.source_digest = *src;
  r.header_digest = *hdr;
  r.verification = verification;
  r.created_unix = 1700000000 + i;
  auto put = cache.put_record(r);
  if (!put) {
    ADD_FAILURE() << put.error().message;
  }
  return r;
}

// Checks one item as a reader would; returns an empty string or what is wrong.
std::string check_item(LocalCache& cache, const AcRecord& r) {
  const std::string prefix = "kernel_";
  if (r.name.rfind(prefix, 0) != 0) {
    return "bad name " + r.name;
  }
  const int i = std::stoi(r.name.substr(prefix.size()));
  if (r.key != key_of(i)) {
    return "record " + r.name + " has key " + r.key;
  }
  auto src = cache.get_blob(r.source_digest);
  if (!src || *src != source_of(i)) {
    return "source of " + r.name + ": " + (src ? "wrong bytes" : src.error().message);
  }
  auto hdr = cache.get_blob(r.header_digest);
  if (!hdr || *hdr != header_of(i)) {
    return "header of " + r.name + ": " + (hdr ? "wrong bytes" : hdr.error().message);
  }
  return "";
}

TEST(Cache, RecordAndBlobRoundTrip) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.sub("a/b/cache"), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  EXPECT_FALSE(cache->read_only());
  struct stat st;
  ASSERT_EQ(::stat(tmp.sub("a/b/cache").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(tmp.sub("a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const std::string blob = source_of(7);
  auto digest = cache->put_blob(blob);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(*digest, xxh3_128_hex(blob));
  auto again = cache->put_blob(blob);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *digest);
  auto got = cache->get_blob(*digest);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, blob);
  auto empty = cache->put_blob("");
  ASSERT_TRUE(empty);
  auto got_empty = cache->get_blob(*empty);
  ASSERT_TRUE(got_empty) << got_empty.error().message;
  EXPECT_EQ(*got_empty, "");

  AcRecord r = put_item(*cache, 1);
  r.last_access_unix = 42;
  ASSERT_TRUE(cache->put_record(r));
  auto rec = cache->get_record(r.key);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_EQ(*rec, r);

  // Overwrite.
  r.verification = Verification::Failed;
  r.report_digest = *digest;
  ASSERT_TRUE(cache->put_record(r));
  rec = cache->get_record(r.key);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->verification, Verification::Failed);
  EXPECT_EQ(rec->report_digest, *digest);

  // Misses.
  auto miss = cache->get_record(key_of(999));
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound);
  auto blob_miss = cache->get_blob(xxh3_128_hex("nothing"));
  ASSERT_FALSE(blob_miss);
  EXPECT_EQ(blob_miss.error().kind, Failure::Kind::NotFound);
  EXPECT_FALSE(cache->get_blob("not-a-digest"));

  // A record must not point at blobs that are not stored, nor be stored under a non-key.
  AcRecord dangling = r;
  dangling.key = key_of(2);
  dangling.source_digest = xxh3_128_hex("never stored");
  auto put = cache->put_record(dangling);
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, Failure::Kind::Error);
  EXPECT_NE(put.error().message.find(dangling.source_digest), std::string::npos) << put.error().message;
  EXPECT_FALSE(cache->get_record(dangling.key));
  dangling.key = "XYZ";
  EXPECT_FALSE(cache->put_record(dangling));
  EXPECT_TRUE(warnings.empty());
}

TEST(Cache, ListStatsAndRemove) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;

  auto empty = cache->stats();
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->ac_entries, 0u);
  EXPECT_EQ(empty->cas_entries, 0u);
  EXPECT_EQ(empty->cas_bytes, 0u);
  EXPECT_EQ(empty->map_size, uint64_t{1} << 30);

  std::vector<AcRecord> put;
  uint64_t bytes = 0;
  for (int i : {5, 3, 14, 1}) {
    put.push_back(put_item(*cache, i));
    bytes += source_of(i).size() + header_of(i).size();
  }
  // Two records of one name: sorted by key among themselves.
  AcRecord twin = put[0];
  twin.key = key_of(100);
  ASSERT_TRUE(cache->put_record(twin));

  auto list = cache->list_records();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 5u);
  for (size_t i = 1; i < list->size(); ++i) {
    const AcRecord& a = (*list)[i - 1];
    const AcRecord& b = (*list)[i];
    EXPECT_TRUE(a.name < b.name || (a.name == b.name && a.key < b.key)) << a.name << " " << b.name;
  }
  EXPECT_EQ((*list)[0].name, "kernel_1");
  EXPECT_EQ((*list)[1].name, "kernel_14");

  auto s = cache->stats();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->ac_entries, 5u);
  EXPECT_EQ(s->cas_entries, 8u);
  EXPECT_EQ(s->cas_bytes, bytes);
  EXPECT_GT(s->used_bytes, bytes);
  EXPECT_LE(s->used_bytes, s->map_size);

  ASSERT_TRUE(cache->remove_record(twin.key));
  auto gone = cache->remove_record(twin.key);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, Failure::Kind::NotFound);
  EXPECT_FALSE(cache->get_record(twin.key));
  ASSERT_TRUE(cache->remove_blob(put[0].header_digest));
  EXPECT_EQ(cache->remove_blob(put[0].header_digest).error().kind, Failure::Kind::NotFound);
  s = cache->stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ac_entries, 4u);
  EXPECT_EQ(s->cas_entries, 7u);
  EXPECT_EQ(s->cas_bytes, bytes - header_of(5).size());
  EXPECT_TRUE(warnings.empty());
}

TEST(Cache, ReopenKeepsData) {
  TempDir tmp;
  AcRecord r;
  {
    auto cache = LocalCache::open(tmp.path());
    ASSERT_TRUE(cache) << cache.error().message;
    r = put_item(*cache, 21);
  }
  auto cache = LocalCache::open(tmp.path());
  ASSERT_TRUE(cache) << cache.error().message;
  auto rec = cache->get_record(r.key);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_EQ(*rec, r);
  EXPECT_EQ(check_item(*cache, *rec), "");

  // Read-only, also while the writable handle is open (they share one environment).
  auto ro = LocalCache::open(tmp.path(), /*read_only=*/true);
  ASSERT_TRUE(ro) << ro.error().message;
  EXPECT_TRUE(ro->read_only());
  EXPECT_EQ(check_item(*ro, *rec), "");
  auto denied = ro->put_blob("x");
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().message.find("read-only"), std::string::npos);
  EXPECT_FALSE(ro->put_record(r));
  EXPECT_FALSE(ro->remove_record(r.key));
  EXPECT_FALSE(ro->touch(r.key));
}

TEST(Cache, ReadOnlyThenWritableInOneProcessIsRefused) {
  TempDir tmp;
  ASSERT_TRUE(LocalCache::open(tmp.path()));
  auto ro = LocalCache::open(tmp.path(), true);
  ASSERT_TRUE(ro);
  auto rw = LocalCache::open(tmp.path());
  ASSERT_FALSE(rw);
  EXPECT_NE(rw.error().message.find("read-only"), std::string::npos) << rw.error().message;
}

TEST(Cache, CorruptBlobIsEvictedNotServed) {
  TempDir tmp;
  const std::string content = source_of(14);  // spans overflow pages
  const std::string digest = xxh3_128_hex(content);
  {
    auto cache = LocalCache::open(tmp.path());
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put_blob(content));
  }
  std::string bad = content;
  bad[bad.size() / 2] ^= 1;
  raw_put(tmp.path(), "cas", digest, bad);

  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache);
  auto got = cache->get_blob(digest);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "cache: blob " + digest + " failed its digest check; evicted");
  auto again = cache->get_blob(digest);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, Failure::Kind::NotFound);
  EXPECT_EQ(warnings.size(), 1u);  // a plain miss now: the entry is gone
  EXPECT_EQ(cache->stats()->cas_entries, 0u);

  // Storing the right content again repairs it.
  ASSERT_TRUE(cache->put_blob(content));
  auto fixed = cache->get_blob(digest);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(*fixed, content);
}

TEST(Cache, PutBlobReplacesCorruptEntry) {
  TempDir tmp;
  const std::string content = header_of(3);
  const std::string digest = xxh3_128_hex(content);
  ASSERT_TRUE(LocalCache::open(tmp.path()));
  raw_put(tmp.path(), "cas", digest, "garbage");
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->put_blob(content));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("replaced"), std::string::npos);
  auto got = cache->get_blob(digest);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, content);
}

TEST(Cache, CorruptRecordIsEvicted) {
  TempDir tmp;
  AcRecord good;
  {
    auto cache = LocalCache::open(tmp.path());
    ASSERT_TRUE(cache);
    good = put_item(*cache, 1);
  }
  const std::string bad_key = key_of(2);
  const std::string wrong_key = key_of(3);
  raw_put(tmp.path(), "ac", bad_key, "{\"format\": 1, \"key\": ");
  // Valid JSON, but it names another key than the one it is stored under.
  raw_put(tmp.path(), "ac", wrong_key,
          R"({"format":1,"key":")" + good.key +
              R"(","name":"x","arch":"","generator":"","source_digest":"",)"
              R"("header_digest":"","report_digest":"","canonical_digest":"","verification":"unverified",)"
              R"("created_unix":0,"last_access_unix":0})");

  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache);
  auto got = cache->get_record(bad_key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("record " + bad_key + " is corrupt"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("evicted"), std::string::npos);
  EXPECT_FALSE(cache->get_record(bad_key));
  EXPECT_EQ(warnings.size(), 1u);

  // list_records skips (and evicts) the other one.
  auto list = cache->list_records();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0], good);
  EXPECT_EQ(warnings.size(), 2u);
  EXPECT_EQ(cache->stats()->ac_entries, 1u);
}

TEST(Cache, FormatMismatchFailsToOpen) {
  TempDir tmp;
  ASSERT_TRUE(LocalCache::open(tmp.path()));
  raw_put(tmp.path(), "meta", "format", "999");
  auto cache = LocalCache::open(tmp.path());
  ASSERT_FALSE(cache);
  EXPECT_EQ(cache.error().kind, Failure::Kind::Error);
  const std::string& msg = cache.error().message;
  EXPECT_NE(msg.find(tmp.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("format 999"), std::string::npos) << msg;
  EXPECT_NE(msg.find("format " + std::to_string(kCacheFormatVersion)), std::string::npos) << msg;
  auto ro = LocalCache::open(tmp.path(), true);
  ASSERT_FALSE(ro);
  EXPECT_NE(ro.error().message.find("format 999"), std::string::npos);
}

TEST(Cache, ForeignLmdbEnvironmentIsRefused) {
  TempDir tmp;
  ::kg::testing::raw_lmdb_write(tmp.path(), nullptr, /*create=*/false, [](MDB_txn* txn, MDB_dbi dbi) {
    MDB_val k{5, const_cast<char*>("hello")};
    MDB_val v{5, const_cast<char*>("world")};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  });
  auto cache = LocalCache::open(tmp.path());
  ASSERT_FALSE(cache);
  EXPECT_NE(cache.error().message.find("not a kernelgen cache"), std::string::npos) << cache.error().message;
}

// A record for item `i` naming its source and header (not stored).
AcRecord record_of(int i) {
  AcRecord r;
  r.key = key_of(i);
  r.name = "kernel_" + std::to_string(i);
  r.arch = "sm_90a";
  r.generator = kGeneratorVersion;
  r.source_digest = xxh3_128_hex(source_of(i));
  r.header_digest = xxh3_128_hex(header_of(i));
  r.created_unix = 1700000000 + i;
  return r;
}

// The batch that stores item `i` whole; `sources` keeps the bytes the views point at.
EntryToStore entry_of(const AcRecord& r, int i, std::vector<std::string>& sources) {
  sources.push_back(source_of(i));
  sources.push_back(header_of(i));
  return EntryToStore{&r, {{r.source_digest, sources[sources.size() - 2]}, {r.header_digest, sources.back()}}};
}

TEST(Cache, PutEntriesStoresRecordsAndBlobsTogether) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  std::vector<std::string> bytes;
  bytes.reserve(8);
  const AcRecord a = record_of(1), b = record_of(2);
  std::vector<EntryToStore> batch = {entry_of(a, 1, bytes), entry_of(b, 2, bytes)};
  ASSERT_TRUE(cache->put_entries(batch));
  EXPECT_EQ(check_item(*cache, *cache->get_record(a.key)), "");
  EXPECT_EQ(check_item(*cache, *cache->get_record(b.key)), "");
  // Again: the blobs are there with the same bytes; a record may name stored blobs it does not give.
  AcRecord c = record_of(1);
  c.key = key_of(3);
  ASSERT_TRUE(cache->put_entries({EntryToStore{&c, {}}}));
  EXPECT_EQ(*cache->get_record(c.key), c);
  EXPECT_TRUE(cache->put_entries({}));
  EXPECT_TRUE(warnings.empty());
}

TEST(Cache, PutEntriesWithABadBlobWritesNothing) {
  TempDir tmp;
  auto cache = LocalCache::open(tmp.path());
  ASSERT_TRUE(cache) << cache.error().message;
  std::vector<std::string> bytes;
  bytes.reserve(8);
  const AcRecord a = record_of(1), b = record_of(2);
  std::vector<EntryToStore> batch = {entry_of(a, 1, bytes), entry_of(b, 2, bytes)};
  const std::string forged = "not the header of item 2";
  batch[1].blobs[1].content = forged;  // bytes that do not hash to the digest given
  auto put = cache->put_entries(batch);
  ASSERT_FALSE(put);
  EXPECT_NE(put.error().message.find(b.header_digest), std::string::npos) << put.error().message;
  EXPECT_EQ(cache->stats()->ac_entries, 0u);
  EXPECT_EQ(cache->stats()->cas_entries, 0u);
}

TEST(Cache, PutEntriesNamingAMissingBlobWritesNothing) {
  TempDir tmp;
  auto cache = LocalCache::open(tmp.path());
  ASSERT_TRUE(cache) << cache.error().message;
  std::vector<std::string> bytes;
  bytes.reserve(8);
  const AcRecord a = record_of(1), b = record_of(2);
  std::vector<EntryToStore> batch = {entry_of(a, 1, bytes), entry_of(b, 2, bytes)};
  batch[1].blobs.pop_back();  // the header of b is neither given nor stored
  auto put = cache->put_entries(batch);
  ASSERT_FALSE(put);
  EXPECT_NE(put.error().message.find(b.header_digest), std::string::npos) << put.error().message;
  // The failure came inside the transaction, after a's record and blobs were put: all undone.
  EXPECT_FALSE(cache->get_record(a.key));
  EXPECT_FALSE(cache->get_blob(a.source_digest));
  EXPECT_EQ(cache->stats()->cas_entries, 0u);
}

TEST(Cache, PutEntriesGrowsTheMapAndRetriesTheWholeBatch) {
  TempDir tmp;
  LocalCache::Options options;
  options.initial_map_size = 64 << 10;
  auto cache = LocalCache::open(tmp.path(), options);
  ASSERT_TRUE(cache) << cache.error().message;
  std::vector<AcRecord> records;
  for (int i = 0; i < 60; ++i) {
    records.push_back(record_of(i));
  }
  std::vector<std::string> bytes;
  bytes.reserve(2 * records.size());
  std::vector<EntryToStore> batch;
  for (int i = 0; i < 60; ++i) {
    batch.push_back(entry_of(records[i], i, bytes));
  }
  ASSERT_TRUE(cache->put_entries(batch));
  EXPECT_GT(cache->stats()->map_size, uint64_t{64} << 10);
  for (const AcRecord& r : records) {
    EXPECT_EQ(check_item(*cache, r), "");
  }
}

TEST(Cache, TheCheckStampIsRewrittenWholeInPlace) {
  TempDir tmp;
  { ASSERT_TRUE(LocalCache::open(tmp.path())); }
  { ASSERT_TRUE(LocalCache::open(tmp.path())); }  // the second open checks the file the first made
  const std::string stamp = tmp.sub("checked");
  auto read = [&] {
    std::ifstream in(stamp);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string good = read();
  ASSERT_EQ(good.rfind("kernelgen cache check 1 ", 0), 0u) << good;
  // A stale stamp, longer than a real one: the next open does the full check and leaves exactly
  // the new stamp, no tail of the old one.
  std::ofstream(stamp) << std::string(500, 'x');
  { ASSERT_TRUE(LocalCache::open(tmp.path())); }
  EXPECT_EQ(read(), good);
}

TEST(Cache, MapGrowsWhenFull) {
  TempDir tmp;
  LocalCache::Options options;
  options.initial_map_size = 64 << 10;
  std::vector<AcRecord> records;
  {
    auto cache = LocalCache::open(tmp.path(), options);
    ASSERT_TRUE(cache) << cache.error().message;
    EXPECT_EQ(cache->stats()->map_size, uint64_t{64} << 10);
    for (int i = 0; i < 150; ++i) {  // ~450 KB of sources, 7x the initial map
      records.push_back(put_item(*cache, i));
    }
    auto s = cache->stats();
    ASSERT_TRUE(s);
    EXPECT_GT(s->map_size, uint64_t{64} << 10);
    EXPECT_GT(s->used_bytes, uint64_t{64} << 10);
    for (const AcRecord& r : records) {
      ASSERT_EQ(check_item(*cache, r), "");
    }
  }
  // Reopening with a map smaller than the data in use still works.
  auto cache = LocalCache::open(tmp.path(), options);
  ASSERT_TRUE(cache) << cache.error().message;
  auto list = cache->list_records();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), records.size());
  for (const AcRecord& r : *list) {
    ASSERT_EQ(check_item(*cache, r), "");
  }
  records.push_back(put_item(*cache, 1000));
  EXPECT_EQ(check_item(*cache, records.back()), "");
}

TEST(Cache, MapGrowthStopsAtTheCap) {
  TempDir tmp;
  LocalCache::Options options;
  options.initial_map_size = 64 << 10;
  options.max_map_size = 256 << 10;
  auto cache = LocalCache::open(tmp.path(), options);
  ASSERT_TRUE(cache);
  Expected<std::string, Failure> last = std::string();
  for (int i = 0; i < 40 && last; ++i) {
    last = cache->put_blob(std::string(20000, static_cast<char>('a' + i % 26)) + std::to_string(i));
  }
  ASSERT_FALSE(last);
  EXPECT_NE(last.error().message.find("is full"), std::string::npos) << last.error().message;
  EXPECT_NE(last.error().message.find(tmp.path()), std::string::npos);
  EXPECT_EQ(cache->stats()->map_size, uint64_t{256} << 10);
}

TEST(Cache, TouchWritesAtMostHourly) {
  TempDir tmp;
  int64_t fake_now = 1800000000;
  LocalCache::Options options;
  options.now = [&fake_now] { return fake_now; };
  auto cache = LocalCache::open(tmp.path(), options);
  ASSERT_TRUE(cache);
  AcRecord r = put_item(*cache, 4);
  r.last_access_unix = 1000;
  ASSERT_TRUE(cache->put_record(r));
  auto t = cache->touch(r.key, 1000 + 60);
  ASSERT_TRUE(t);
  EXPECT_FALSE(*t);
  EXPECT_EQ(cache->get_record(r.key)->last_access_unix, 1000);
  t = cache->touch(r.key, 1000 + kTouchIntervalSeconds);
  ASSERT_TRUE(t);
  EXPECT_TRUE(*t);
  EXPECT_EQ(cache->get_record(r.key)->last_access_unix, 1000 + kTouchIntervalSeconds);
  t = cache->touch(r.key);  // now, from the clock in Options
  ASSERT_TRUE(t);
  EXPECT_TRUE(*t);
  EXPECT_EQ(cache->get_record(r.key)->last_access_unix, fake_now);
  fake_now += kTouchIntervalSeconds - 1;
  EXPECT_FALSE(*cache->touch(r.key));
  EXPECT_EQ(cache->get_record(r.key)->last_access_unix, fake_now - (kTouchIntervalSeconds - 1));
  fake_now += 1;
  EXPECT_TRUE(*cache->touch(r.key));
  EXPECT_EQ(cache->get_record(r.key)->last_access_unix, fake_now);
  auto missing = cache->touch(key_of(77));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, Failure::Kind::NotFound);
}

TEST(Cache, ReadOnlyOpenOfMissingCacheFails) {
  TempDir tmp;
  auto cache = LocalCache::open(tmp.sub("nothing-here"), true);
  ASSERT_FALSE(cache);
  EXPECT_EQ(cache.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(cache.error().message.find(tmp.sub("nothing-here")), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("nothing-here")));  // and nothing was created
  auto existing_dir = LocalCache::open(tmp.path(), true);
  ASSERT_FALSE(existing_dir);
  EXPECT_EQ(existing_dir.error().kind, Failure::Kind::NotFound);
}

TEST(Cache, UnwritableDirectoryFailsClearly) {
  TempDir tmp;
  if (::geteuid() != 0) {
    const std::string dir = tmp.sub("locked");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(dir.c_str(), 0500), 0);
    auto cache = LocalCache::open(dir);
    ASSERT_FALSE(cache);
    EXPECT_NE(cache.error().message.find(dir), std::string::npos) << cache.error().message;
    EXPECT_NE(cache.error().message.find("Permission denied"), std::string::npos) << cache.error().message;
    auto below = LocalCache::open(dir + "/sub");
    ASSERT_FALSE(below);
    EXPECT_NE(below.error().message.find("Permission denied"), std::string::npos) << below.error().message;
  }
  // Root bypasses permissions; a path below a regular file fails for everyone.
  const std::string file = tmp.sub("file");
  std::ofstream(file) << "x";
  const std::string dir = file + "/cache";
  auto cache = LocalCache::open(dir);
  ASSERT_FALSE(cache);
  EXPECT_EQ(cache.error().kind, Failure::Kind::Error);
  EXPECT_NE(cache.error().message.find(dir), std::string::npos) << cache.error().message;
  EXPECT_NE(cache.error().message.find("Not a directory"), std::string::npos) << cache.error().message;
}


// ---- concurrency ------------------------------------------------------------------------------

// Runs `child` in a forked process; returns its pid. The child never returns into gtest.
template <typename Fn>
pid_t spawn(Fn&& child) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = child();
    } catch (...) {
      code = 98;
    }
    ::_exit(code);
  }
  return pid;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) {
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

constexpr int kItems = 500;

// Reads and validates everything it can see for at least `min_time`, and until it has seen all
// kItems (at most 60 s). Exit codes: 0 fine, 1 open failed, 2 corrupt or inconsistent data,
// 3 a warning was logged, 4 never saw all items.
int reader_process(const std::string& dir, std::chrono::milliseconds min_time) {
  std::vector<std::string> warnings;
  LocalCache::Options options = quiet(&warnings, /*read_only=*/true);
  options.initial_map_size = 128 << 10;  // so that the writer's growth reaches this reader
  auto cache = LocalCache::open(dir, options);
  if (!cache) {
    std::fprintf(stderr, "reader: %s\n", cache.error().message.c_str());
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  size_t seen = 0;
  for (;;) {
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if ((elapsed >= min_time && seen == kItems) || elapsed > std::chrono::seconds(60)) {
      break;
    }
    auto list = cache->list_records();
    if (!list) {
      std::fprintf(stderr, "reader: %s\n", list.error().message.c_str());
      return 2;
    }
    if (list->size() < seen) {
      std::fprintf(stderr, "reader: records went from %zu to %zu\n", seen, list->size());
      return 2;
    }
    seen = list->size();
    for (const AcRecord& r : *list) {
      std::string problem = check_item(*cache, r);
      if (!problem.empty()) {
        std::fprintf(stderr, "reader: %s\n", problem.c_str());
        return 2;
      }
    }
    // Blobs may be visible before their record: whatever is there must be right.
    for (int i = 0; i < kItems; i += 3) {
      auto blob = cache->get_blob(xxh3_128_hex(source_of(i)));
      if (blob ? *blob != source_of(i) : blob.error().kind != Failure::Kind::NotFound) {
        std::fprintf(stderr, "reader: blob %d wrong\n", i);
        return 2;
      }
    }
    if (!warnings.empty()) {
      std::fprintf(stderr, "reader: warning: %s\n", warnings[0].c_str());
      return 3;
    }
  }
  return seen == kItems ? 0 : 4;
}

TEST(Cache, ManyReadersWhileOneWrites) {
  TempDir tmp;
  ASSERT_TRUE(LocalCache::open(tmp.path()));  // exists before readers open it read-only
  std::vector<pid_t> readers;
  for (int r = 0; r < 4; ++r) {
    readers.push_back(spawn([&] { return reader_process(tmp.path(), std::chrono::milliseconds(1000)); }));
    ASSERT_GT(readers.back(), 0);
  }
  {
    LocalCache::Options options;
    options.initial_map_size = 128 << 10;  // grows several times while the readers read
    auto cache = LocalCache::open(tmp.path(), options);
    ASSERT_TRUE(cache) << cache.error().message;
    for (int i = 0; i < kItems; ++i) {
      put_item(*cache, i);
    }
  }
  for (pid_t pid : readers) {
    EXPECT_EQ(wait_exit_code(pid), 0) << "reader " << pid;
  }
  auto cache = LocalCache::open(tmp.path());
  ASSERT_TRUE(cache);
  auto s = cache->stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ac_entries, uint64_t{kItems});
  EXPECT_EQ(s->cas_entries, uint64_t{2 * kItems});
}

TEST(Cache, TwoWriterProcesses) {
  TempDir tmp;
  constexpr int kPerWriter = 100;
  std::vector<pid_t> writers;
  for (int w = 0; w < 2; ++w) {
    writers.push_back(spawn([&, w] {
      LocalCache::Options options;
      options.initial_map_size = 64 << 10;
      auto cache = LocalCache::open(tmp.path(), options);
      if (!cache) {
        std::fprintf(stderr, "writer: %s\n", cache.error().message.c_str());
        return 1;
      }
      for (int i = w * kPerWriter; i < (w + 1) * kPerWriter; ++i) {
        if (!cache->put_blob(source_of(i)) || !cache->put_blob(header_of(i))) {
          return 2;
        }
        AcRecord r;
        r.key = key_of(i);
        r.name = "kernel_" + std::to_string(i);
        r.source_digest = xxh3_128_hex(source_of(i));
        r.header_digest = xxh3_128_hex(header_of(i));
        if (auto put = cache->put_record(r); !put) {
          std::fprintf(stderr, "writer: %s\n", put.error().message.c_str());
          return 3;
        }
      }
      return 0;
    }));
    ASSERT_GT(writers.back(), 0);
  }
  for (pid_t pid : writers) {
    EXPECT_EQ(wait_exit_code(pid), 0) << "writer " << pid;
  }
  auto cache = LocalCache::open(tmp.path());
  ASSERT_TRUE(cache);
  auto list = cache->list_records();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), size_t{2 * kPerWriter});
  for (const AcRecord& r : *list) {
    ASSERT_EQ(check_item(*cache, r), "");
  }
}

TEST(Cache, ThreadsShareOneCacheWhileTheMapGrows) {
  TempDir tmp;
  std::vector<std::string> warnings;
  LocalCache::Options options = quiet(&warnings);
  options.initial_map_size = 64 << 10;
  auto cache = LocalCache::open(tmp.path(), options);
  ASSERT_TRUE(cache);
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 120; i += 3) {
        auto d = cache->put_blob(source_of(i));
        if (!d) {
          ++errors;
        }
      }
    });
  }
  std::thread reader([&] {
    while (!done) {
      for (int i = 0; i < 120; ++i) {
        auto blob = cache->get_blob(xxh3_128_hex(source_of(i)));
        if (blob ? *blob != source_of(i) : blob.error().kind != Failure::Kind::NotFound) {
          ++errors;
        }
      }
    }
  });
  for (auto& t : threads) {
    t.join();
  }
  done = true;
  reader.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(cache->stats()->cas_entries, 120u);
  EXPECT_TRUE(warnings.empty());
}

}  // namespace
}  // namespace kg::cache
