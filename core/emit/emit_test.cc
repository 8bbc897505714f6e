#include "emit/emit.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "cache/local_cache.h"
#include "generate/template_generator.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "storage/local_storage.h"
#include "util/file.h"
#include "version.h"

namespace kg::emit {
namespace {

using TempDir = ::kg::testing::TempDir;

// A generator whose answers the test scripts: counts calls, fails or verifies on request.
class FakeGenerator final : public generate::Generator {
 public:
  const char* name() const override { return "fake"; }
  Expected<void, Failure> check(const spec::Spec&, const std::string& arch) const override {
    if (arch == "sm_75") {
      return fail("fake refuses sm_75");
    }
    return {};
  }
  Expected<generate::Kernel, Failure> generate(const generate::Request& request) override {
    ++calls;
    if (!failure.empty()) {
      return fail(failure);
    }
    generate::Kernel k;
    k.source = "// fake kernel for " + request.spec->name + " " + request.key + "\n";
    k.header = "#pragma once\n";
    k.generator = "fake-1";
    k.verification = verification;
    return k;
  }

  int calls = 0;
  std::string failure;
  std::optional<generate::Verification> verification;
};

spec::Spec causal() {
  auto s = spec::parse_spec("name: causal\ndtype: bf16\nhead_dim: 128\nmask_mod: q_idx >= kv_idx\n", "causal.yaml");
  EXPECT_TRUE(s);
  return *s;
}

struct Fixture {
  TempDir dir;
  cache::LocalCache cache = std::move(*cache::LocalCache::open(dir.path() + "/cache"));
  storage::LocalStorage storage{cache};
  spec::Spec spec = causal();
  EmitRequest request(const std::string& out) {
    EmitRequest r;
    r.spec = &spec;
    r.arch = "sm_90a";
    r.out_dir = out.empty() ? "" : dir.path() + "/" + out;
    return r;
  }
};

TEST(Emit, AMissAsksTheGeneratorOnceAndAHitNever) {
  Fixture f;
  FakeGenerator gen;
  auto first = emit_kernel(f.storage, gen, f.request("out"));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->cache_hit);
  EXPECT_EQ(gen.calls, 1);
  EXPECT_EQ(first->verification, cache::Verification::Unverified);
  EXPECT_EQ(first->key, spec::spec_key(f.spec, "sm_90a"));
  auto written = read_file(f.dir.path() + "/out/causal.cu");
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, "// fake kernel for causal " + first->key + "\n");
  auto record = f.cache.get_record(first->key);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->generator, "fake-1");  // the record names what made the kernel

  auto second = emit_kernel(f.storage, gen, f.request("out2"));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(gen.calls, 1);
}

TEST(Emit, HitOnlyRequestsNeverGenerate) {
  Fixture f;
  FakeGenerator gen;
  EmitRequest r = f.request("");
  r.generate = false;
  auto miss = emit_kernel(f.storage, gen, r);
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound);
  EXPECT_EQ(gen.calls, 0);
}

TEST(Emit, AGeneratorFailureStoresAndWritesNothing) {
  Fixture f;
  FakeGenerator gen;
  gen.failure = "the model answered prose";
  auto r = emit_kernel(f.storage, gen, f.request("out"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("the model answered prose"), std::string::npos);
  EXPECT_FALSE(f.cache.get_record(spec::spec_key(f.spec, "sm_90a")));
  EXPECT_FALSE(std::filesystem::exists(f.dir.path() + "/out/causal.cu"));
}

TEST(Emit, VerifiesWhatTheGeneratorDidNotAndRefusesFailedKernels) {
  Fixture f;
  FakeGenerator gen;
  int verified = 0;
  EmitRequest r = f.request("");
  r.verify = [&](const spec::Spec&, const std::string& source) -> Expected<Verification, Failure> {
    ++verified;
    EXPECT_NE(source.find("fake kernel"), std::string::npos);
    return Verification{cache::Verification::Failed, "{}", "wrong_output"};
  };
  auto failed = emit_kernel(f.storage, gen, r);
  ASSERT_FALSE(failed);
  EXPECT_EQ(verified, 1);
  EXPECT_NE(failed.error().message.find("failed verification (not cached)"), std::string::npos);
  EXPECT_FALSE(f.cache.get_record(spec::spec_key(f.spec, "sm_90a")));

  // A generator that verified its kernel itself (the loop) is not verified again.
  gen.verification = Verification{cache::Verification::Verified, "{\"verdict\": \"pass\"}", ""};
  auto ok = emit_kernel(f.storage, gen, r);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(verified, 1);
  EXPECT_EQ(ok->verification, cache::Verification::Verified);
  auto record = f.cache.get_record(ok->key);
  ASSERT_TRUE(record);
  EXPECT_FALSE(record->report_digest.empty());
}

TEST(TemplateGenerator, RefusesArchitecturesItCannotTargetWithoutThrowing) {
  generate::TemplateGenerator gen;
  const spec::Spec spec = causal();
  EXPECT_TRUE(gen.check(spec, "sm_90a"));
  EXPECT_TRUE(gen.check(spec, "sm_80"));
  auto old = gen.check(spec, "sm_75");
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().message.find("sm_80 or newer"), std::string::npos) << old.error().message;
  auto made = gen.generate(generate::Request{&spec, std::string(32, '0'), "sm_75", {}});
  ASSERT_FALSE(made);
  auto good = gen.generate(generate::Request{&spec, std::string(32, '0'), "sm_90a", {}});
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_NE(good->source.find("kg_causal_forward"), std::string::npos);
  EXPECT_EQ(good->generator, kGeneratorVersion);
  EXPECT_FALSE(good->verification);
}

TEST(Emit, AnArchitectureSetIsOneRecordWithBothFamilies) {
  Fixture f;
  generate::TemplateGenerator gen;
  EmitRequest r = f.request("out");
  r.arch = *spec::resolve_arch("90a;80;86;89");
  auto made = emit_kernel(f.storage, gen, r);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->key, spec::spec_key(f.spec, "sm_80,sm_86,sm_89,sm_90a"));
  auto record = f.cache.get_record(made->key);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->arch, "sm_80,sm_86,sm_89,sm_90a");  // the canonical spelling
  auto cu = read_file(f.dir.path() + "/out/causal.cu");
  ASSERT_TRUE(cu);
  EXPECT_NE(cu->find("_sm80 {"), std::string::npos);
  EXPECT_NE(cu->find("_sm90a {"), std::string::npos);
  // The same set in another order and with duplicates is a hit.
  r.arch = *spec::resolve_arch("sm_89,sm_90a,sm_80,sm_86,sm_80");
  auto again = emit_kernel(f.storage, gen, r);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->cache_hit);
  // The template generator refuses a set it cannot serve, without throwing.
  auto both90 = gen.check(f.spec, "sm_90,sm_90a");
  ASSERT_FALSE(both90);
  EXPECT_NE(both90.error().message.find("sm_90 and sm_90a"), std::string::npos) << both90.error().message;
}

}  // namespace
}  // namespace kg::emit
