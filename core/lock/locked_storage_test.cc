#include "lock/locked_storage.h"

#include <gtest/gtest.h>


#include "memory_storage.h"
#include "util/hash.h"

namespace kg::lock {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";
const std::string kOtherKey = "fedcba9876543210fedcba9876543210";

cache::AcRecord record(const std::string& key, const std::string& source_digest) {
  cache::AcRecord r;
  r.key = key;
  r.name = "causal";
  r.arch = "sm_90a";
  r.source_digest = source_digest;
  return r;
}

TEST(LockedStorage, PassesWhatTheLockfileAllowsAndRefusesTheRest) {
  kg::testing::MemoryStorage inner;
  const std::string digest = xxh3_128_hex("kernel");
  const std::string other = xxh3_128_hex("another kernel");
  inner.put_record(record(kKey, digest));
  inner.put_record(record(kOtherKey, digest));
  Lockfile lock({LockEntry{"causal.yaml", "causal", "sm_90a", kKey, digest, "tmpl-16", "unverified"}});
  LockedStorage locked(inner, &lock, "/p/kernelgen.lock", "/p/causal.yaml", "causal", "sm_90a");

  auto ok = locked.get_record(kKey);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->source_digest, digest);

  auto key = locked.get_record(kOtherKey);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().kind, Failure::Kind::Error);
  EXPECT_NE(key.error().message.find("causal resolves to key " + kOtherKey + ", but /p/kernelgen.lock locks it at key " + kKey),
            std::string::npos)
      << key.error().message;

  inner.put_record(record(kKey, other));  // the same key, another kernel
  auto kernel = locked.get_record(kKey);
  ASSERT_FALSE(kernel);
  EXPECT_NE(kernel.error().message.find("the cache holds kernel " + other + " for that key"), std::string::npos);

  // A miss stays a miss (NotFound): the caller may generate, and the result is checked when read.
  auto miss = locked.get_record("00000000000000000000000000000000");
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound);

  // Writes pass through.
  ASSERT_TRUE(locked.put_blob("x"));
  EXPECT_EQ(inner.blobs.count(xxh3_128_hex("x")), 1u);
}

TEST(LockedStorage, WithoutALockfileEverythingPasses) {
  kg::testing::MemoryStorage inner;
  inner.put_record(record(kKey, xxh3_128_hex("k")));
  LockedStorage open(inner, nullptr, "", "causal.yaml", "causal", "sm_90a");
  EXPECT_TRUE(open.get_record(kKey));
  EXPECT_EQ(open.describe(), "memory");
}

}  // namespace
}  // namespace kg::lock
