#include <gtest/gtest.h>

#include <set>

#include "spec/key.h"
#include "spec/spec.h"

namespace kg::spec {
namespace {

Spec parse_ok(const std::string& yaml) {
  auto r = parse_spec(yaml, "c.yaml");
  if (!r) {
    ADD_FAILURE() << r.error()[0].str() << "\nin:\n" << yaml;
    return Spec{};
  }
  return *r;
}

std::string canon(const std::string& yaml) { return canonical_form(parse_ok(yaml)); }

TEST(Canonical, NotationExample) {
  const std::string yaml =
      "name: relpos\n"
      "dtype: bf16\n"
      "head_dim: 128\n"
      "params: {n: int}\n"
      "tensors:\n"
      "  doc: {dtype: int32, shape: [batch, seq_kv, 4]}\n"
      "score_mod: score + (q_idx - kv_idx) * -0.5 / n\n"
      "mask_mod: q_idx >= kv_idx and doc[b, kv_idx, 0] != 3\n";
  EXPECT_EQ(canon(yaml),
            "kernelgen-canonical-spec 1\n"
            "dtype: bf16\n"
            "head_dim: 128\n"
            "mask_mod: ((q_idx:i >= kv_idx:i) and (doc[b:i, kv_idx:i, 0]:i != 3))\n"
            "name: relpos\n"
            "params: [n:int]\n"
            "score_mod: (score:f + ((float((q_idx:i - kv_idx:i)) * (-0.5)) / float(n:i)))\n"
            "tensors: [doc:int32[batch, seq_kv, 4]]\n");
}

TEST(Canonical, AbsentModsAreIdentities) {
  const std::string head = "name: t\ndtype: bf16\nhead_dim: 128\n";
  EXPECT_EQ(canon(head), canon(head + "score_mod: score\nmask_mod: True\n"));
  EXPECT_NE(canon(head).find("score_mod: score:f\n"), std::string::npos);
  EXPECT_NE(canon(head).find("mask_mod: True\n"), std::string::npos);
}

TEST(Canonical, PrecedenceAndAssociativity) {
  auto score = [](const std::string& expr) {
    const std::string c = canon("name: t\ndtype: bf16\nhead_dim: 128\nscore_mod: " + expr + "\n");
    const size_t at = c.find("score_mod: ") + 11;
    return c.substr(at, c.find('\n', at) - at);
  };
  EXPECT_EQ(score("-2**2 + score"), "(float((-(2 ** 2))) + score:f)");  // ** binds tighter than unary minus
  EXPECT_EQ(score("2**3**2 * score"), "(float((2 ** (3 ** 2))) * score:f)");  // ** is right-assoc
  EXPECT_EQ(score("2.0**-1 * score"), "((2.0 ** (-1.0)) * score:f)");
  EXPECT_EQ(score("score - 1 - 2"), "((score:f - 1.0) - 2.0)");
  EXPECT_EQ(score("score * 2 + q_idx % 3 // 2"), "((score:f * 2.0) + float(((q_idx:i % 3) // 2)))");
  EXPECT_EQ(score("score if q_idx < kv_idx < 9 or not b == 0 else 0"),
            "(score:f if (((q_idx:i < kv_idx:i) and (kv_idx:i < 9)) or (not (b:i == 0))) else 0.0)");
  EXPECT_EQ(score("1 if True else 2 if False else 3"), "float((1 if True else (2 if False else 3)))");
  EXPECT_EQ(score("clamp(score, -1, 1.5) + floor(score)"),
            "(clamp(score:f, (-1.0), 1.5) + float(floor(score:f)))");
}

// Formatting that must never change the canonical text (and so the key).
TEST(Canonical, InvariantUnderFormatting) {
  const std::vector<std::vector<std::string>> groups = {
      {// comments, spacing, key order, quoting, block vs inline
       "name: a\ndtype: bf16\nhead_dim: 128\nscore_mod: score + (q_idx - kv_idx)\nmask_mod: q_idx >= "
       "kv_idx\n",
       "# a comment\nmask_mod: 'q_idx>=kv_idx'   # trailing comment\nhead_dim: 128\n\n"
       "score_mod: \"score+(q_idx-kv_idx)\"\ndtype: bf16\nname: \"a\"\n",
       "name: a\ndtype: bf16\nhead_dim: 128\nscore_mod: |\n  # bias by distance\n  score + ((q_idx - "
       "kv_idx))\n"
       "mask_mod: >-\n  q_idx >=\n  kv_idx\n",
       "{name: a, dtype: bf16, head_dim: 128, score_mod: (score) + (q_idx - kv_idx), mask_mod: q_idx >= "
       "kv_idx}\n",
       "name: a\ndtype: bf16\nhead_dim: 128\nscore_mod: |\n  d = q_idx - kv_idx\n  score + d\n"
       "mask_mod: |\n  ok = q_idx >= kv_idx\n  ok\n",
       "name: a\ndtype: bf16\nhead_dim: 128\nscore_mod: |\n  dist = q_idx - \\\n         kv_idx\n  score + "
       "dist\n"
       "mask_mod: (((q_idx >= kv_idx)))\n"},
      {// renamed constants and bindings; equal literals spelled differently
       "name: s\ndtype: bf16\nhead_dim: 64\nconstants: {CAP: 0.5}\nscore_mod: CAP * tanh(score / CAP)\n",
       "name: s\ndtype: bf16\nhead_dim: 64\nconstants: {LIMIT: 5e-1}\nscore_mod: LIMIT * tanh(score / "
       "LIMIT)\n",
       "name: s\ndtype: bf16\nhead_dim: 64\nscore_mod: 0.50 * tanh(score / .5)\n",
       "name: s\ndtype: bf16\nhead_dim: 64\nconstants: {UNUSED: 7}\nscore_mod: |\n  c = 0.5\n"
       "  capped = c * tanh(score / c)\n  capped\n"},
      {// int written as a constant, as a float where promoted, and with unary plus
       "name: w\ndtype: fp16\nhead_dim: 128\nconstants: {W: 64}\nscore_mod: score * W\n",
       "name: w\ndtype: fp16\nhead_dim: 128\nscore_mod: score * 64.0\n",
       "name: w\ndtype: fp16\nhead_dim: 128\nscore_mod: score * +64\n",
       "name: w\ndtype: fp16\nhead_dim: 128\nconstants: {W: -64}\nscore_mod: score * -W\n"},
  };
  for (const auto& group : groups) {
    const std::string first = canon(group[0]);
    for (size_t i = 1; i < group.size(); ++i) {
      EXPECT_EQ(canon(group[i]), first) << "variant " << i << ":\n" << group[i];
    }
  }
}

// Each change of meaning must change the key.
TEST(Canonical, EveryChangeOfMeaningChangesTheKey) {
  const std::string base =
      "name: k\ndtype: bf16\nhead_dim: 128\nconstants: {W: 16}\nparams: {n: int, x: float}\n"
      "tensors: {doc: {dtype: int32, shape: [batch, seq_kv]}}\n"
      "score_mod: score * x + n\nmask_mod: q_idx - kv_idx < W and doc[b, kv_idx] >= 0\n";
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const std::vector<std::string> variants = {
      base,
      edit("score * x", "score / x"),                         // operator
      edit("score * x + n", "score * (x + n)"),               // grouping
      edit("W: 16", "W: 17"),                                 // constant value
      edit("W: 16", "W: 16.0"),                               // constant type
      edit("dtype: bf16", "dtype: fp16"),                     // dtype
      edit("head_dim: 128", "head_dim: 64"),                  // head_dim
      edit("name: k", "name: k2"),                            // name (names the emitted symbols)
      edit("{n: int, x: float}", "{x: float, n: int}"),       // params order (ABI order)
      edit("{n: int, x: float}", "{n: float, x: float}"),     // param type
      edit("{n: int, x: float}", "{m: int, x: float}") + "",  // param name: must also rename the use
      edit("dtype: int32, shape", "dtype: int64, shape"),     // tensor dtype
      edit("[batch, seq_kv]", "[batch, seq_q]"),              // tensor shape
      edit("< W", "<= W"),                                    // comparison
      edit("kv_idx] >= 0", "q_idx] >= 0"),                    // variable
      edit("score_mod: score * x + n\n", ""),                 // absent score_mod
  };
  std::set<std::string> keys;
  for (size_t i = 0; i < variants.size(); ++i) {
    std::string yaml = variants[i];
    if (i == 10) {
      yaml.replace(yaml.find("+ n"), 3, "+ m");
    }
    const Spec spec = parse_ok(yaml);
    EXPECT_TRUE(keys.insert(spec_key(spec, "sm_90a")).second) << "variant " << i << " collides:\n" << yaml;
  }
  const Spec spec = parse_ok(base);
  EXPECT_NE(spec_key(spec, "sm_90a"), spec_key(spec, "sm_80"));  // arch
  EXPECT_NE(spec_key(spec, "sm_90a"), spec_key(spec, "sm_90"));
}

TEST(Canonical, FloatLiteralsAreExact) {
  auto score = [](const std::string& lit) {
    return canon("name: t\ndtype: bf16\nhead_dim: 128\nscore_mod: score * " + lit + "\n");
  };
  EXPECT_EQ(score("0.1"), score("1e-1"));
  EXPECT_NE(score("0.1"), score("0.10000000000000002"));
  EXPECT_NE(score("1.0"), score("1.0000000000000002"));
  EXPECT_NE(score("3.0").find("(score:f * 3.0)"), std::string::npos);
  EXPECT_NE(score("1e300").find("1e+300"), std::string::npos);
}

TEST(Key, ResolveArch) {
  for (const char* s : {"sm_90a", "90a", "sm90a", "compute_90a", "SM_90A", " 90a "}) {
    auto r = resolve_arch(s);
    ASSERT_TRUE(r) << s;
    EXPECT_EQ(*r, "sm_90a") << s;
  }
  EXPECT_EQ(*resolve_arch("80"), "sm_80");
  EXPECT_EQ(*resolve_arch("sm_100a"), "sm_100a");
  EXPECT_EQ(*resolve_arch("120f"), "sm_120f");
  EXPECT_EQ(*resolve_arch(""), "sm_90a");
  for (const char* s : {"sm_9", "hopper", "90b", "sm_90a_", "sm__90", "compute", "1234"}) {
    auto r = resolve_arch(s);
    ASSERT_FALSE(r) << s;
    EXPECT_NE(r.error().message.find(std::string("'") + s + "'"), std::string::npos) << r.error().message;
  }
}

TEST(Key, ResolveArchSet) {
  // Sorted by compute capability (not as text: sm_100 after sm_90a), duplicates dropped, ',' between.
  EXPECT_EQ(*resolve_arch("90a;80;86;89"), "sm_80,sm_86,sm_89,sm_90a");
  EXPECT_EQ(*resolve_arch("sm_90a, 80 ,sm_86,sm_89,80,compute_86"), "sm_80,sm_86,sm_89,sm_90a");
  EXPECT_EQ(*resolve_arch("100;90a;90;120f;120"), "sm_90,sm_90a,sm_100,sm_120,sm_120f");
  // A set of one is that architecture's spelling.
  EXPECT_EQ(*resolve_arch("90a,90a;sm_90a"), "sm_90a");
  EXPECT_EQ(*resolve_arch("sm_80,sm_86"), "sm_80,sm_86");  // canonical stays canonical
  EXPECT_EQ(arch_set("sm_80,sm_86,sm_90a"), (std::vector<std::string>{"sm_80", "sm_86", "sm_90a"}));
  EXPECT_EQ(arch_set("sm_90a"), (std::vector<std::string>{"sm_90a"}));
  EXPECT_TRUE(arch_set("").empty());
  for (const char* s : {"80,,90a", "80,", ";90a", "80, ,90a", "80,hopper"}) {
    auto r = resolve_arch(s);
    EXPECT_FALSE(r) << s;
  }
  EXPECT_NE(resolve_arch("80,hopper").error().message.find("'hopper'"), std::string::npos);
  std::string many;
  for (int i = 0; i <= static_cast<int>(kMaxArchSetSize); ++i) many += (i ? "," : "") + std::to_string(80 + i);
  EXPECT_FALSE(resolve_arch(many));
}

TEST(Key, ArchSetKey) {
  const Spec spec = parse_ok("name: t\ndtype: bf16\nhead_dim: 128\n");
  const auto key = [&](const char* arch) { return spec_key(spec, *resolve_arch(arch)); };
  // Order and duplicates do not matter; a set of one is today's single-architecture key.
  EXPECT_EQ(key("80;86;89;90a"), key("90a,89,86,80,86"));
  EXPECT_EQ(key("90a;90a"), spec_key(spec, "sm_90a"));
  EXPECT_EQ(key("sm_80"), spec_key(spec, "sm_80"));
  // Different sets, different keys.
  EXPECT_NE(key("80;86;89;90a"), key("80;86;89"));
  EXPECT_NE(key("80;90a"), key("90a"));
  EXPECT_NE(key("80;90a"), key("80"));
  EXPECT_NE(key("80;90"), key("80;90a"));
}

TEST(Key, IsADigestAndStable) {
  const Spec spec = parse_ok("name: t\ndtype: bf16\nhead_dim: 128\n");
  const std::string key = spec_key(spec, "sm_90a");
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(key, spec_key(spec, "sm_90a"));
  Spec other_file = spec;
  other_file.file = "elsewhere/t.yaml";
  EXPECT_EQ(spec_key(other_file, "sm_90a"), key);  // the path is never part of the key
}

}  // namespace
}  // namespace kg::spec
