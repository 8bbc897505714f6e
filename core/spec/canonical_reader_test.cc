#include "spec/canonical_reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <vector>

#include "spec/key.h"
#include "spec/spec.h"

namespace kg::spec {
namespace {

namespace fs = std::filesystem;

Spec parse_ok(const std::string& yaml) {
  auto r = parse_spec(yaml, "t.yaml");
  if (!r) {
    ADD_FAILURE() << r.error()[0].str() << "\nin:\n" << yaml;
    return Spec{};
  }
  return *r;
}

// The canonical text of `spec` reads back as a spec with the same canonical text and key.
void expect_round_trip(const Spec& spec, const std::string& what) {
  const std::string canonical = canonical_form(spec);
  auto back = read_canonical(canonical, what);
  ASSERT_TRUE(back) << what << ": " << back.error().message << "\n" << canonical;
  EXPECT_EQ(canonical_form(back->spec), canonical) << what;
  EXPECT_EQ(spec_key(back->spec, "sm_90a"), spec_key(spec, "sm_90a")) << what;
  EXPECT_EQ(back->spec.name, spec.name);
  // The rebuilt file is a spec file like any other: it parses on its own.
  EXPECT_TRUE(parse_spec(back->yaml, "again.yaml")) << back->yaml;
}

TEST(CanonicalReader, EverySpecOfTheLibraryAndTheTests) {
  int n = 0;
  for (const char* dir : {"specs", "tests/gpu/specs", "tests/llm/specs"}) {
    const fs::path d = fs::path(KG_SOURCE_DIR) / dir;
    if (!fs::is_directory(d)) {
      continue;
    }
    for (const auto& entry : fs::directory_iterator(d)) {
      if (entry.path().extension() != ".yaml") {
        continue;
      }
      auto spec = load_spec_file(entry.path().string());
      ASSERT_TRUE(spec) << entry.path() << ": " << spec.error()[0].str();
      expect_round_trip(*spec, entry.path().string());
      ++n;
    }
  }
  EXPECT_GE(n, 15);
}

TEST(CanonicalReader, EveryKindOfExpression) {
  const std::string head = "name: t\ndtype: fp16\nhead_dim: 64\n";
  for (const std::string body : std::vector<std::string>{
           "",
           "score_mod: score + (q_idx - kv_idx) * -0.5 / n\nparams: {n: int, s: float}\n"
           "mask_mod: q_idx >= kv_idx and not (kv_idx < 3)\n",
           "constants: {W: 64, C: 30.0}\nscore_mod: C * tanh(score / C)\nmask_mod: q_idx - kv_idx < W\n",
           "score_mod: |\n  d = abs(q_idx - kv_idx)\n  k = min(max(d // 4, 0), 7)\n  score - k ** 2 + exp2(-1) + "
           "log(2) + sqrt(4.0) + floor(1.5) + log2(8) + exp(0) + clamp(score, -1, 1)\n",
           "score_mod: score if q_idx % 2 == 0 else -score\nmask_mod: True\n",
           "score_mod: -2**2 + score - 1 - 2 + 1e-5 + 1e100\nmask_mod: q_idx != kv_idx or b == h\n",
           "tensors:\n  doc: {dtype: int32, shape: [batch, seq_kv]}\n  off: {dtype: float32, shape: [heads_q, 4]}\n"
           "  pos: {dtype: int64, shape: [seq_q]}\n"
           "score_mod: score + off[h, 1] + pos[q_idx]\nmask_mod: doc[b, kv_idx] == doc[b, q_idx]\n",
       }) {
    expect_round_trip(parse_ok(head + body), body);
  }
}

TEST(CanonicalReader, TheRebuiltSpecIsReadable) {
  auto yaml = yaml_from_canonical(canonical_form(parse_ok(
      "name: relpos\ndtype: bf16\nhead_dim: 128\nparams: {n: int}\nscore_mod: score + (q_idx - kv_idx) / n\n")));
  ASSERT_TRUE(yaml) << yaml.error().message;
  EXPECT_NE(yaml->find("name: relpos\n"), std::string::npos) << *yaml;
  EXPECT_NE(yaml->find("params:\n  n: int\n"), std::string::npos) << *yaml;
  EXPECT_NE(yaml->find("score_mod: \"(score + (((q_idx - kv_idx)) / (n)))\"\n"), std::string::npos) << *yaml;
  EXPECT_EQ(yaml->find(":i"), std::string::npos) << *yaml;
}

TEST(CanonicalReader, LayoutErrorsNameTheLine) {
  const std::string good = canonical_form(parse_ok("name: t\ndtype: bf16\nhead_dim: 128\n"));
  auto err = [](const std::string& text) {
    auto r = yaml_from_canonical(text);
    return r ? std::string("(accepted)") : r.error().message;
  };
  EXPECT_NE(err("").find("line 1: expected 'kernelgen-canonical-spec 1'"), std::string::npos) << err("");
  std::string other = good;
  other.replace(other.find(" 1\n"), 3, " 2\n");
  EXPECT_NE(err(other).find("line 1"), std::string::npos) << err(other);
  EXPECT_NE(err(good.substr(0, good.size() - 1)).find("newline"), std::string::npos);
  std::string fp32 = good;
  fp32.replace(fp32.find("bf16"), 4, "fp32");
  EXPECT_NE(err(fp32).find("line 2: expected bf16 or fp16, found 'fp32'"), std::string::npos) << err(fp32);
  std::string swapped = good;
  swapped.replace(swapped.find("dtype"), 5, "dtypo");
  EXPECT_NE(err(swapped).find("line 2: expected 'dtype: ...'"), std::string::npos) << err(swapped);
  std::string name = good;
  name.replace(name.find("name: t"), 7, "name: ../t");
  EXPECT_NE(err(name).find("line 5: expected a C identifier"), std::string::npos) << err(name);
  std::string params = good;
  params.replace(params.find("params: []"), 10, "params: [n:str]");
  EXPECT_NE(err(params).find("line 6"), std::string::npos) << err(params);
  std::string colon = good;
  colon.replace(colon.find("score:f"), 7, "score:x");
  EXPECT_NE(err(colon).find("line 7, column 6: expected a type suffix"), std::string::npos) << err(colon);
  EXPECT_NE(err(good + "extra: 1\n").find("expected 8 lines"), std::string::npos);
}

TEST(CanonicalReader, AnAlteredTextIsNeverAnotherSpec) {
  const std::string good = canonical_form(parse_ok("name: t\ndtype: bf16\nhead_dim: 128\nmask_mod: q_idx >= kv_idx\n"));
  // Meaningful but not canonical: the spec it reads as has another canonical text.
  std::string loose = good;
  loose.replace(loose.find("(q_idx:i >= kv_idx:i)"), 21, "q_idx:i >= kv_idx:i");
  auto r = read_canonical(loose, "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("reads back as a different spec"), std::string::npos) << r.error().message;
  // Not a spec at all.
  std::string broken = good;
  broken.replace(broken.find("(q_idx:i >= kv_idx:i)"), 21, "(q_idx:i >=)");
  r = read_canonical(broken, "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("does not parse: x:"), std::string::npos) << r.error().message;
}

TEST(CanonicalReader, HostileBytesNeverCrash) {
  const std::string good = canonical_form(parse_ok(
      "name: t\ndtype: bf16\nhead_dim: 128\nparams: {n: int}\ntensors: {d: {dtype: int32, shape: [batch, 4]}}\n"
      "score_mod: score * n + d[b, 0]\nmask_mod: q_idx >= kv_idx\n"));
  std::mt19937 rng(7);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string t = good;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % t.size();
      switch (rng() % 3) {
        case 0:
          t[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          t.erase(at, 1 + rng() % 4);
          break;
        default:
          t.insert(at, 1, "()[],: :i\n\"\\x"[rng() % 14]);
          break;
      }
      if (t.empty()) {
        t = "x";
      }
    }
    auto r = read_canonical(t, "fuzz");
    if (r) {
      // Whatever is accepted is exactly the text's spec.
      EXPECT_EQ(canonical_form(r->spec), t);
      ++accepted;
    }
  }
  EXPECT_LT(accepted, 3000);
}

}  // namespace
}  // namespace kg::spec
