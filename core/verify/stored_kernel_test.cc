#include "verify/stored_kernel.h"

#include <gtest/gtest.h>

#include <memory>

#include "cache/local_cache.h"
#include "emit/emit.h"
#include "generate/template_generator.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "storage/local_storage.h"
#include "storage/tiered_storage.h"
#include "storage/tiers.h"
#include "memory_storage.h"
#include "temp_dir.h"
#include "util/hash.h"

namespace kg::verify {
namespace {

class StoredKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = cache::LocalCache::open(m_dir.sub("cache"));
    ASSERT_TRUE(c) << c.error().message;
    m_cache.emplace(std::move(*c));
    m_local.emplace(*m_cache);
    // What `kernelgen emit` stores where there is no GPU: the template kernel, unverified.
    auto spec = spec::parse_spec(
        "name: relpos\ndtype: bf16\nhead_dim: 128\nparams: {n: int}\nscore_mod: score + (q_idx - kv_idx) / n\n"
        "mask_mod: q_idx >= kv_idx\n",
        "relpos.yaml");
    ASSERT_TRUE(spec) << spec.error()[0].str();
    m_spec = *spec;
    generate::TemplateGenerator generator;
    emit::EmitRequest req;
    req.spec = &m_spec;
    req.arch = "sm_90a";
    auto made = emit::emit_kernel(*m_local, generator, req);
    ASSERT_TRUE(made) << made.error().message;
    auto r = m_cache->get_record(made->key);
    ASSERT_TRUE(r) << r.error().message;
    m_record = *r;
    ASSERT_EQ(m_record.verification, cache::Verification::Unverified);
  }

  // `r` stored with `canonical` as its canonical spec text.
  cache::AcRecord with_canonical(cache::AcRecord r, const std::string& canonical) {
    auto d = m_cache->put_blob(canonical);
    EXPECT_TRUE(d);
    r.canonical_digest = *d;
    EXPECT_TRUE(m_cache->put_record(r));
    return r;
  }

  std::string canonical() {
    auto c = m_cache->get_blob(m_record.canonical_digest);
    EXPECT_TRUE(c);
    return c ? *c : "";
  }

  std::string error_of(const cache::AcRecord& r) {
    auto k = load_stored_kernel(*m_local, r);
    return k ? "(accepted)" : k.error().message;
  }

  testing::TempDir m_dir{"kg-stored-kernel"};
  std::optional<cache::LocalCache> m_cache;
  std::optional<storage::LocalStorage> m_local;
  spec::Spec m_spec;
  cache::AcRecord m_record;
};

TEST_F(StoredKernelTest, AnUnverifiedRecordReadsBackWithItsSpec) {
  auto k = load_stored_kernel(*m_local, m_record);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(spec::canonical_form(k->spec), spec::canonical_form(m_spec));
  EXPECT_EQ(spec::spec_key(k->spec, "sm_90a"), m_record.key);
  EXPECT_EQ(xxh3_128_hex(k->source), m_record.source_digest);
  EXPECT_EQ(k->canonical, canonical());
  // The runner parses the rebuilt spec file again: it must be a spec of the same meaning.
  auto again = spec::parse_spec(k->spec_yaml, "again.yaml");
  ASSERT_TRUE(again);
  EXPECT_EQ(spec::canonical_form(*again), k->canonical);
}

TEST_F(StoredKernelTest, AMissingBlobNamesTheKeyAndTheBlob) {
  ASSERT_TRUE(m_cache->remove_blob(m_record.canonical_digest));
  const std::string e = error_of(m_record);
  EXPECT_NE(e.find(m_record.key + " (relpos): the canonical spec blob " + m_record.canonical_digest +
                   " is missing or damaged"),
            std::string::npos)
      << e;
}

TEST_F(StoredKernelTest, AMissingSourceNamesIt) {
  ASSERT_TRUE(m_cache->remove_blob(m_record.source_digest));
  EXPECT_NE(error_of(m_record).find("the source blob " + m_record.source_digest), std::string::npos)
      << error_of(m_record);
}

TEST_F(StoredKernelTest, AnAlteredSpecTextIsAKeyMismatch) {
  // Re-digested consistently: the blob matches its digest, but means another spec.
  std::string c = canonical();
  c.replace(c.find("(q_idx:i >= kv_idx:i)"), 21, "(q_idx:i > kv_idx:i)");
  const cache::AcRecord r = with_canonical(m_record, c);
  const std::string e = error_of(r);
  EXPECT_NE(e.find(r.key + " (relpos): key mismatch: its canonical spec for sm_90a has the key "), std::string::npos)
      << e;
  EXPECT_NE(e.find("altered"), std::string::npos) << e;
}

TEST_F(StoredKernelTest, ARecordOfAnotherNameOrArchIsAKeyMismatch) {
  cache::AcRecord r = m_record;
  r.name = "other";
  ASSERT_TRUE(m_cache->put_record(r));
  EXPECT_NE(error_of(r).find("key mismatch: the record names spec 'other'"), std::string::npos) << error_of(r);
  r = m_record;
  r.arch = "sm_80";
  ASSERT_TRUE(m_cache->put_record(r));
  EXPECT_NE(error_of(r).find("key mismatch: its canonical spec for sm_80 has the key"), std::string::npos)
      << error_of(r);
  r.arch = "90a";
  ASSERT_TRUE(m_cache->put_record(r));
  EXPECT_NE(error_of(r).find("not a resolved architecture"), std::string::npos) << error_of(r);
}

TEST_F(StoredKernelTest, AnOlderGeneratorsRecordSaysSo) {
  cache::AcRecord r = m_record;
  r.key = std::string(32, 'a');
  r.generator = "tmpl-1";
  ASSERT_TRUE(m_cache->put_record(r));
  const std::string e = error_of(r);
  EXPECT_NE(e.find("key mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find("made by generator tmpl-1"), std::string::npos) << e;
}

TEST_F(StoredKernelTest, ACanonicalTextThatDoesNotReadBackIsRefused) {
  const cache::AcRecord r = with_canonical(m_record, "not a canonical spec\n");
  const std::string e = error_of(r);
  EXPECT_NE(e.find(r.key + " (relpos): its canonical spec (blob "), std::string::npos) << e;
  EXPECT_NE(e.find("line 1: expected 'kernelgen-canonical-spec 1'"), std::string::npos) << e;
}

TEST_F(StoredKernelTest, StoreVerifiedWritesTheReportAndTheStateInOneRecord) {
  auto k = load_stored_kernel(*m_local, m_record);
  ASSERT_TRUE(k);
  const std::string report = "{\"verdict\": \"pass\"}\n";
  auto stored = store_verified(*m_local, *k, report);
  ASSERT_TRUE(stored) << stored.error().message;
  auto back = m_cache->get_record(m_record.key);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->verification, cache::Verification::Verified);
  EXPECT_EQ(back->report_digest, xxh3_128_hex(report));
  EXPECT_EQ(*m_cache->get_blob(back->report_digest), report);
  // Nothing else of the record changes.
  cache::AcRecord expect = m_record;
  expect.verification = cache::Verification::Verified;
  expect.report_digest = back->report_digest;
  EXPECT_EQ(*back, expect);
}

TEST_F(StoredKernelTest, StoreVerifiedWritesThroughToAWritableRemote) {
  auto k = load_stored_kernel(*m_local, m_record);
  ASSERT_TRUE(k);
  auto remote = std::make_unique<kg::testing::MemoryStorage>();
  kg::testing::MemoryStorage* seen = remote.get();
  storage::TieredStorage tiers(std::make_unique<storage::BorrowedStorage>(*m_local), {}, std::move(remote), {});
  auto stored = store_verified(tiers, *k, "{}");
  ASSERT_TRUE(stored) << stored.error().message;
  ASSERT_EQ(seen->records.count(m_record.key), 1u);
  EXPECT_EQ(seen->records[m_record.key].verification, cache::Verification::Verified);
  // The remote can serve it: every blob the record names went with it.
  for (const std::string* d : cache::blob_digests(seen->records[m_record.key])) {
    EXPECT_EQ(seen->blobs.count(*d), 1u) << *d;
  }
}

TEST(DeviceCanRun, MachineCodeCompatibility) {
  EXPECT_TRUE(device_can_run("sm_90", "sm_90a"));
  EXPECT_FALSE(device_can_run("sm_80", "sm_90a"));
  EXPECT_FALSE(device_can_run("sm_100", "sm_90a"));
  EXPECT_TRUE(device_can_run("sm_86", "sm_80"));
  EXPECT_TRUE(device_can_run("sm_89", "sm_86"));
  EXPECT_FALSE(device_can_run("sm_80", "sm_86"));
  EXPECT_FALSE(device_can_run("sm_90", "sm_80"));
  EXPECT_TRUE(device_can_run("sm_103", "sm_100f"));
  EXPECT_FALSE(device_can_run("sm_120", "sm_100f"));
  EXPECT_TRUE(device_can_run("", "sm_90a"));
  EXPECT_TRUE(device_can_run("gpu?", "sm_90a"));
}

TEST(DeviceCanRun, ArchitectureSets) {
  // A set runs where one of its architectures runs (the kernel dispatches by the device).
  EXPECT_TRUE(device_can_run("sm_90", "sm_80,sm_86,sm_89,sm_90a"));
  EXPECT_TRUE(device_can_run("sm_80", "sm_80,sm_86,sm_89,sm_90a"));
  EXPECT_TRUE(device_can_run("sm_87", "sm_80,sm_86,sm_89,sm_90a"));
  EXPECT_FALSE(device_can_run("sm_100", "sm_80,sm_86,sm_89,sm_90a"));
  EXPECT_FALSE(device_can_run("sm_75", "sm_80,sm_90a"));
  EXPECT_TRUE(device_can_run("sm_120", "sm_80,sm_90a,sm_120"));
}

}  // namespace
}  // namespace kg::verify
