#include "storage/bundle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cache/local_cache.h"
#include "storage/local_storage.h"
#include "temp_dir.h"
#include "util/file.h"
#include "util/hash.h"
#include "version.h"

namespace kg::storage {
namespace {

using kg::testing::TempDir;

struct Fixture {
  TempDir dir{"kg-bundle"};
  cache::LocalCache cache;
  LocalStorage storage;

  explicit Fixture(const std::string& sub = "cache")
      : cache(open_cache(dir.sub(sub))), storage(cache) {}

  static cache::LocalCache open_cache(const std::string& path) {
    auto c = cache::LocalCache::open(path);
    if (!c) {
      ADD_FAILURE() << c.error().message;
      std::abort();
    }
    return std::move(*c);
  }
};

// Stores a kernel's blobs and record in `s`; returns the record.
cache::AcRecord store_kernel(Storage& s, const std::string& name, bool with_history = false) {
  cache::AcRecord r;
  r.key = xxh3_128_hex("key:" + name);
  r.name = name;
  r.arch = "sm_90a";
  r.generator = with_history ? "llm:model" : "tmpl-3";
  r.source_digest = s.put_blob("// " + name + ".cu\n__global__ void k() {}\n").value();
  r.header_digest = s.put_blob("// " + name + ".h\n").value();
  r.report_digest = s.put_blob("{\"report\":\"" + name + "\"}").value();
  r.canonical_digest = s.put_blob("canonical spec shared by all").value();
  if (with_history) {
    r.history_digest = s.put_blob("history of " + name).value();
  }
  r.verification = cache::Verification::Verified;
  r.created_unix = 1700000000;
  r.last_access_unix = 1700000100;
  EXPECT_TRUE(s.put_record(r));
  return r;
}

std::vector<std::string> digests_of(const cache::AcRecord& r) {
  std::vector<std::string> out;
  for (const auto& d : {r.source_digest, r.header_digest, r.report_digest, r.canonical_digest, r.history_digest}) {
    if (!d.empty()) {
      out.push_back(d);
    }
  }
  return out;
}

std::string read(const std::string& path) { return read_file(path).value_or(""); }

void write(const std::string& path, const std::string& bytes) { ASSERT_TRUE(write_file_atomic(path, bytes)); }

// The documented format, written independently of bundle.cc: entries in the order given.
struct RawEntry {
  std::string kind;  // "cas" or "ac"
  std::string name;
  std::string bytes;
};

std::string record_text(const cache::AcRecord& r) {
  nlohmann::json j = cache::record_json(r);
  j["format"] = kCacheFormatVersion;
  return j.dump();
}

std::string build(const std::vector<RawEntry>& entries) {
  std::string out = "kernelgen-bundle 1\n";
  for (const auto& e : entries) {
    out += e.kind + " " + e.name + " " + std::to_string(e.bytes.size());
    if (e.kind == "ac") {
      out += " " + xxh3_128_hex(e.bytes);
    }
    out += "\n" + e.bytes + "\n";
  }
  out += "end " + std::to_string(entries.size()) + " " + xxh3_128_hex(out) + "\n";
  return out;
}

std::string open_error(const std::string& bytes, const std::string& name = "b.kgb") {
  auto b = open_bundle_bytes(bytes, name);
  if (b) {
    return "(opened)";
  }
  EXPECT_EQ(b.error().kind, Failure::Kind::Error);
  return b.error().message;
}

TEST(Bundle, ExportThenOpenGivesTheSameEntries) {
  Fixture f;
  std::vector<cache::AcRecord> records = {store_kernel(f.storage, "causal"), store_kernel(f.storage, "alibi"),
                                          store_kernel(f.storage, "loop", /*with_history=*/true)};
  const std::string path = f.dir.sub("b.kgb");
  auto stats = write_bundle(f.storage, {records[0].key, records[1].key, records[2].key}, path);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->records, 3u);
  EXPECT_EQ(stats->blobs, 3u * 3 + 1 + 1);  // source, header, report each; one canonical; one history
  EXPECT_EQ(stats->bytes, read(path).size());

  auto bundle = open_bundle(path);
  ASSERT_TRUE(bundle) << bundle.error().message;
  Storage& b = **bundle;
  EXPECT_EQ(b.describe(), "bundle " + path);
  EXPECT_TRUE(b.read_only());
  for (const auto& r : records) {
    auto got = b.get_record(r.key);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(*got, r);
    for (const auto& d : digests_of(r)) {
      auto blob = b.get_blob(d);
      ASSERT_TRUE(blob) << blob.error().message;
      EXPECT_EQ(*blob, f.storage.get_blob(d).value());
    }
  }
  auto miss = b.get_record(xxh3_128_hex("absent"));
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound);
  auto blob_miss = b.get_blob(xxh3_128_hex("absent"));
  ASSERT_FALSE(blob_miss);
  EXPECT_EQ(blob_miss.error().kind, Failure::Kind::NotFound);
  EXPECT_FALSE(b.put_blob("x"));
  EXPECT_NE(b.put_record(records[0]).error().message.find("read-only"), std::string::npos);
  EXPECT_FALSE(b.touch(records[0].key).value_or(true));
  // The file is the documented format: the magic line first.
  EXPECT_EQ(read(path).rfind("kernelgen-bundle 1\n", 0), 0u);
}

TEST(Bundle, EmptyBundle) {
  Fixture f;
  const std::string path = f.dir.sub("empty.kgb");
  auto stats = write_bundle(f.storage, {}, path);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(read(path), build({}));
  EXPECT_TRUE(open_bundle(path));
}

TEST(Bundle, SameContentGivesTheSameBytes) {
  Fixture a("a");
  Fixture b("b");
  const auto a1 = store_kernel(a.storage, "one");
  const auto a2 = store_kernel(a.storage, "two", true);
  // The same kernels stored in the other order.
  store_kernel(b.storage, "two", true);
  store_kernel(b.storage, "one");
  ASSERT_TRUE(write_bundle(a.storage, {a1.key, a2.key}, a.dir.sub("1.kgb")));
  ASSERT_TRUE(write_bundle(a.storage, {a2.key, a1.key, a2.key}, a.dir.sub("2.kgb")));
  ASSERT_TRUE(write_bundle(b.storage, {a2.key, a1.key}, a.dir.sub("3.kgb")));
  const std::string first = read(a.dir.sub("1.kgb"));
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(first, read(a.dir.sub("2.kgb")));
  EXPECT_EQ(first, read(a.dir.sub("3.kgb")));
}

TEST(Bundle, ExportOfAMissingKeyFailsNamingIt) {
  Fixture f;
  const auto r = store_kernel(f.storage, "present");
  const std::string absent = xxh3_128_hex("absent");
  const std::string path = f.dir.sub("b.kgb");
  auto stats = write_bundle(f.storage, {r.key, absent}, path);
  ASSERT_FALSE(stats);
  EXPECT_NE(stats.error().message.find(absent), std::string::npos) << stats.error().message;
  EXPECT_FALSE(read_file(path));  // nothing written
  // A blob missing from the source is named too.
  ASSERT_TRUE(f.cache.remove_blob(r.report_digest));
  auto missing_blob = write_bundle(f.storage, {r.key}, path);
  ASSERT_FALSE(missing_blob);
  EXPECT_NE(missing_blob.error().message.find(r.report_digest), std::string::npos) << missing_blob.error().message;
}

class BundleTamper : public ::testing::Test {
 protected:
  void SetUp() override {
    record = store_kernel(f.storage, "tampered");
    path = f.dir.sub("b.kgb");
    ASSERT_TRUE(write_bundle(f.storage, {record.key}, path));
    bytes = read(path);
  }
  // The offset of the first content byte of the entry whose header starts with `prefix`.
  size_t content_of(const std::string& prefix) const {
    const size_t at = bytes.find("\n" + prefix);
    EXPECT_NE(at, std::string::npos) << prefix;
    return bytes.find('\n', at + 1) + 1;
  }
  std::string flipped(size_t at) const {
    std::string b = bytes;
    b[at] = static_cast<char>(b[at] ^ 0x01);
    return b;
  }
  std::string open_flipped(size_t at) {
    write(path, flipped(at));
    auto b = open_bundle(path);
    EXPECT_FALSE(b);
    return b ? "(opened)" : b.error().message;
  }

  Fixture f;
  cache::AcRecord record;
  std::string path;
  std::string bytes;
};

TEST_F(BundleTamper, Blob) {
  const std::string message = open_flipped(content_of("cas " + record.source_digest) + 3);
  EXPECT_EQ(message, "bundle " + path + ": entry cas/" + record.source_digest + ": content does not match its digest");
}

TEST_F(BundleTamper, Record) {
  // A digit of created_unix: still a valid record, caught by the entry's checksum.
  const size_t json = content_of("ac " + record.key);
  const size_t digit = bytes.find("1700000000", json);
  ASSERT_NE(digit, std::string::npos);
  const std::string message = open_flipped(digit + 5);
  EXPECT_EQ(message, "bundle " + path + ": entry ac/" + record.key + ": content does not match its checksum");
}

TEST_F(BundleTamper, Trailer) {
  const size_t trailer = bytes.rfind("end ");
  ASSERT_NE(trailer, std::string::npos);
  // Its checksum (a hex digit flipped to another hex digit or not: both caught).
  const std::string message = open_flipped(bytes.size() - 5);
  EXPECT_NE(message.find("bundle " + path + ": trailer"), std::string::npos) << message;
  // Its count.
  std::string count = bytes;
  count[trailer + 4] = static_cast<char>(count[trailer + 4] + 1);
  EXPECT_NE(open_error(count).find("trailer: says"), std::string::npos) << open_error(count);
}

TEST_F(BundleTamper, Header) {
  const std::string message = open_flipped(3);
  EXPECT_NE(message.find("bundle " + path + ": header: expected \"kernelgen-bundle 1\""), std::string::npos)
      << message;
  // Another version.
  std::string v2 = bytes;
  v2[17] = '2';
  EXPECT_NE(open_error(v2).find("header"), std::string::npos);
}

TEST_F(BundleTamper, EveryByteIsChecked) {
  // Whatever byte is flipped, the bundle is refused with a message naming it.
  for (size_t at = 0; at < bytes.size(); at += std::max<size_t>(1, bytes.size() / 400)) {
    const std::string message = open_error(flipped(at), "b.kgb");
    EXPECT_EQ(message.rfind("bundle b.kgb: ", 0), 0u) << "byte " << at << ": " << message;
  }
}

TEST_F(BundleTamper, Truncated) {
  for (size_t size = 0; size < bytes.size(); size += std::max<size_t>(1, bytes.size() / 200)) {
    const std::string message = open_error(bytes.substr(0, size));
    EXPECT_EQ(message.rfind("bundle b.kgb: ", 0), 0u) << size << ": " << message;
  }
  // Inside a blob's bytes, and just before the trailer.
  const size_t blob = content_of("cas " + record.source_digest) + 2;
  EXPECT_EQ(open_error(bytes.substr(0, blob)), "bundle b.kgb: truncated at byte " + std::to_string(blob));
  const size_t trailer = bytes.rfind("end ");
  EXPECT_EQ(open_error(bytes.substr(0, trailer)), "bundle b.kgb: truncated at byte " + std::to_string(trailer));
  // Bytes after the trailer.
  EXPECT_NE(open_error(bytes + "x").find("after the trailer"), std::string::npos);
  // On disk.
  write(path, bytes.substr(0, blob));
  auto b = open_bundle(path);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message, "bundle " + path + ": truncated at byte " + std::to_string(blob));
}

TEST(Bundle, RecordNamingABlobTheBundleLacks) {
  Fixture f;
  const auto r = store_kernel(f.storage, "incomplete");
  std::vector<RawEntry> entries;
  std::vector<std::string> ds = digests_of(r);
  std::sort(ds.begin(), ds.end());
  for (const auto& d : ds) {
    if (d != r.header_digest) {
      entries.push_back({"cas", d, f.storage.get_blob(d).value()});
    }
  }
  entries.push_back({"ac", r.key, record_text(r)});
  EXPECT_EQ(open_error(build(entries)),
            "bundle b.kgb: entry ac/" + r.key + ": names blob " + r.header_digest + " which the bundle lacks");
  // With the blob, the same hand-made bundle opens: the format is as documented.
  entries.clear();
  for (const auto& d : ds) {
    entries.push_back({"cas", d, f.storage.get_blob(d).value()});
  }
  entries.push_back({"ac", r.key, record_text(r)});
  const std::string good = build(entries);
  EXPECT_EQ(open_error(good), "(opened)");
  ASSERT_TRUE(write_bundle(f.storage, {r.key}, f.dir.sub("w.kgb")));
  EXPECT_EQ(read(f.dir.sub("w.kgb")), good);
}

TEST(Bundle, MalformedEntries) {
  const std::string a = "alpha", b = "beta";
  const std::string da = xxh3_128_hex(a), db = xxh3_128_hex(b);
  const auto [lo, hi] = da < db ? std::pair{a, b} : std::pair{b, a};
  const std::string dlo = xxh3_128_hex(lo), dhi = xxh3_128_hex(hi);
  EXPECT_EQ(open_error(build({{"cas", dlo, lo}, {"cas", dhi, hi}})), "(opened)");
  EXPECT_NE(open_error(build({{"cas", dhi, hi}, {"cas", dlo, lo}})).find("out of order"), std::string::npos);
  EXPECT_NE(open_error(build({{"cas", dlo, lo}, {"cas", dlo, lo}})).find("out of order"), std::string::npos);
  EXPECT_NE(open_error(build({{"cas", "ABC", lo}})).find("not 32 lowercase hex"), std::string::npos);
  EXPECT_NE(open_error(build({{"blob", dlo, lo}})).find("expected an entry"), std::string::npos);
  // A record that does not parse, one that names another key, a blob after the records.
  cache::AcRecord r;
  r.key = xxh3_128_hex("k");
  r.name = "n";
  EXPECT_NE(open_error(build({{"ac", r.key, "{not json"}})).find("entry ac/" + r.key + ": not a valid record"),
            std::string::npos);
  const std::string other = xxh3_128_hex("other");
  EXPECT_NE(open_error(build({{"ac", other, record_text(r)}})).find("entry ac/" + other + ": not a valid record"),
            std::string::npos);
  EXPECT_NE(open_error(build({{"ac", r.key, record_text(r)}, {"cas", dlo, lo}})).find("blob after the records"),
            std::string::npos);
  // Lengths: leading zeros, too large, beyond the file.
  std::string lead = build({{"cas", dlo, lo}});
  lead.replace(lead.find(" " + std::to_string(lo.size()) + "\n"), 2, " 0" + std::to_string(lo.size()));
  EXPECT_NE(open_error(lead).find("is not a number"), std::string::npos) << open_error(lead);
  const std::string huge = "kernelgen-bundle 1\ncas " + dlo + " 99999999999\n";
  EXPECT_NE(open_error(huge).find("more than the 64 MiB"), std::string::npos) << open_error(huge);
  const std::string long_line = "kernelgen-bundle 1\n" + std::string(1000, 'c');
  EXPECT_NE(open_error(long_line).find("longer than"), std::string::npos) << open_error(long_line);
  EXPECT_NE(open_error("").find("truncated at byte 0"), std::string::npos);
  EXPECT_NE(open_error("kernelgen-bun").find("truncated at byte 13"), std::string::npos);
}

TEST(Bundle, OpenFailsForAMissingFile) {
  TempDir dir("kg-bundle");
  auto b = open_bundle(dir.sub("none.kgb"));
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find(dir.sub("none.kgb")), std::string::npos);
  auto d = open_bundle(dir.path());
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("not a regular file"), std::string::npos);
}

TEST(Bundle, ImportIntoAFreshCache) {
  Fixture from("from");
  const auto r1 = store_kernel(from.storage, "one");
  const auto r2 = store_kernel(from.storage, "two", true);
  const std::string path = from.dir.sub("b.kgb");
  ASSERT_TRUE(write_bundle(from.storage, {r1.key, r2.key}, path));

  Fixture to("to");
  auto stats = import_bundle(path, to.storage);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->records, 2u);
  EXPECT_EQ(stats->blobs, 3u * 2 + 1 + 1);
  for (const auto& r : {r1, r2}) {
    EXPECT_EQ(to.storage.get_record(r.key).value(), r);
    for (const auto& d : digests_of(r)) {
      EXPECT_EQ(to.storage.get_blob(d).value(), from.storage.get_blob(d).value());
    }
  }
  // Again: nothing to do.
  auto again = import_bundle(path, to.storage);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->records, 0u);
  EXPECT_EQ(again->blobs, 0u);
  EXPECT_EQ(to.cache.stats().value().ac_entries, 2u);
}

TEST(Bundle, ImportLeavesRecordsTheCacheHas) {
  Fixture from("from");
  const auto r = store_kernel(from.storage, "kept");
  const std::string path = from.dir.sub("b.kgb");
  ASSERT_TRUE(write_bundle(from.storage, {r.key}, path));
  Fixture to("to");
  cache::AcRecord mine = store_kernel(to.storage, "kept");
  mine.last_access_unix = 1800000000;
  mine.generator = "mine";
  ASSERT_TRUE(to.storage.put_record(mine));
  auto stats = import_bundle(path, to.storage);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records, 0u);
  EXPECT_EQ(to.storage.get_record(r.key).value(), mine);
}

TEST(Bundle, ImportOfADamagedBundleCopiesNothing) {
  Fixture from("from");
  const auto r1 = store_kernel(from.storage, "one");
  const auto r2 = store_kernel(from.storage, "two");
  const std::string path = from.dir.sub("b.kgb");
  ASSERT_TRUE(write_bundle(from.storage, {r1.key, r2.key}, path));
  std::string bytes = read(path);
  const size_t last_record = bytes.rfind("\"name\":");
  bytes[last_record + 9] ^= 0x01;
  write(path, bytes);
  Fixture to("to");
  auto stats = import_bundle(path, to.storage);
  ASSERT_FALSE(stats);
  EXPECT_NE(stats.error().message.find("bundle " + path + ": entry ac/"), std::string::npos)
      << stats.error().message;
  const auto s = to.cache.stats().value();
  EXPECT_EQ(s.ac_entries, 0u);
  EXPECT_EQ(s.cas_entries, 0u);
}

TEST(Bundle, ImportIntoAReadOnlyStorageFails) {
  Fixture from("from");
  const auto r = store_kernel(from.storage, "one");
  const std::string path = from.dir.sub("b.kgb");
  ASSERT_TRUE(write_bundle(from.storage, {r.key}, path));
  auto target = open_bundle(path);  // read-only, and it holds the record already
  ASSERT_TRUE(target);
  EXPECT_EQ(import_bundle(path, **target).value().records, 0u);
  Fixture empty("empty");
  ASSERT_TRUE(write_bundle(empty.storage, {}, empty.dir.sub("e.kgb")));
  auto empty_target = open_bundle(empty.dir.sub("e.kgb"));
  ASSERT_TRUE(empty_target);
  auto stats = import_bundle(path, **empty_target);
  ASSERT_FALSE(stats);
  EXPECT_NE(stats.error().message.find("read-only"), std::string::npos) << stats.error().message;
}

// A figure, not a check: export and import of 1000 kernels (60 KB source, 4 KB header, 10 KB
// report each) between local caches.
TEST(Bundle, ThousandKernelsFigure) {
  Fixture from("from");
  std::vector<std::string> keys;
  std::string source(60 * 1024, 's'), header(4 * 1024, 'h'), report(10 * 1024, 'r');
  const auto fill_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    const std::string tag = std::to_string(i);
    source.replace(0, tag.size(), tag);
    header.replace(0, tag.size(), tag);
    report.replace(0, tag.size(), tag);
    cache::AcRecord r;
    r.key = xxh3_128_hex("kernel " + tag);
    r.name = "kernel" + tag;
    r.arch = "sm_90a";
    r.generator = "tmpl-3";
    r.source_digest = from.storage.put_blob(source).value();
    r.header_digest = from.storage.put_blob(header).value();
    r.report_digest = from.storage.put_blob(report).value();
    r.canonical_digest = r.header_digest;
    r.verification = cache::Verification::Verified;
    ASSERT_TRUE(from.storage.put_record(r));
    keys.push_back(r.key);
  }
  const auto export_start = std::chrono::steady_clock::now();
  const std::string path = from.dir.sub("big.kgb");
  auto written = write_bundle(from.storage, keys, path);
  ASSERT_TRUE(written) << written.error().message;
  const auto import_start = std::chrono::steady_clock::now();
  Fixture to("to");
  auto imported = import_bundle(path, to.storage);
  const auto end = std::chrono::steady_clock::now();
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_EQ(imported->records, 1000u);
  EXPECT_EQ(imported->blobs, 3000u);
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::printf("1000 kernels (%.1f MB bundle): filling the source cache %.2f s, export %.2f s, import %.2f s\n",
              static_cast<double>(written->bytes) / 1e6, secs(fill_start, export_start),
              secs(export_start, import_start), secs(import_start, end));
}

}  // namespace
}  // namespace kg::storage
