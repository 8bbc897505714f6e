#include "codegen/interval.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "codegen/test_specs.h"
#include "spec/interpret.h"

namespace kg::codegen {
namespace rules_under_test {
#include "codegen/templates/interval_rules.inc"
}  // namespace rules_under_test
namespace {

using namespace testing;
namespace r = rules_under_test;

// Python semantics, written independently of the rules.
int64_t py_floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t py_mod(int64_t a, int64_t b) { return a - b * py_floordiv(a, b); }

bool contains(r::KgIv iv, int64_t x) { return iv.lo <= x && x <= iv.hi; }
bool contains(r::KgBv bv, bool x) { return x ? bv.can_true : bv.can_false; }

// Every small interval pair, every concrete pair inside: the rule's result must contain the value.
TEST(IntervalRules, BinaryIntRulesAreSoundByExhaustion) {
  const int kR = 6;
  for (int alo = -kR; alo <= kR; ++alo)
    for (int ahi = alo; ahi <= kR; ++ahi)
      for (int blo = -kR; blo <= kR; ++blo)
        for (int bhi = blo; bhi <= kR; ++bhi) {
          const r::KgIv A{alo, ahi}, B{blo, bhi};
          const r::KgIv add = r::kg_iv_add(A, B), sub = r::kg_iv_sub(A, B), mul = r::kg_iv_mul(A, B);
          const r::KgIv fdiv = r::kg_iv_floordiv(A, B), mod = r::kg_iv_mod(A, B);
          const r::KgIv mn = r::kg_iv_min(A, B), mx = r::kg_iv_max(A, B);
          const r::KgBv lt = r::kg_iv_lt(A, B), le = r::kg_iv_le(A, B), eq = r::kg_iv_eq(A, B);
          const r::KgBv ne = r::kg_iv_ne(A, B), gt = r::kg_iv_gt(A, B), ge = r::kg_iv_ge(A, B);
          for (int a = alo; a <= ahi; ++a)
            for (int b = blo; b <= bhi; ++b) {
              SCOPED_TRACE(::testing::Message() << "a=" << a << " in [" << alo << "," << ahi << "], b=" << b
                                                << " in [" << blo << "," << bhi << "]");
              ASSERT_TRUE(contains(add, a + b));
              ASSERT_TRUE(contains(sub, a - b));
              ASSERT_TRUE(contains(mul, a * b));
              ASSERT_TRUE(contains(mn, std::min(a, b)));
              ASSERT_TRUE(contains(mx, std::max(a, b)));
              if (b != 0) {
                ASSERT_TRUE(contains(fdiv, py_floordiv(a, b)));
                ASSERT_TRUE(contains(mod, py_mod(a, b)));
              }
              ASSERT_TRUE(contains(lt, a < b));
              ASSERT_TRUE(contains(le, a <= b));
              ASSERT_TRUE(contains(gt, a > b));
              ASSERT_TRUE(contains(ge, a >= b));
              ASSERT_TRUE(contains(eq, a == b));
              ASSERT_TRUE(contains(ne, a != b));
            }
        }
}

TEST(IntervalRules, UnaryPowClampSelectAreSound) {
  for (int lo = -7; lo <= 7; ++lo)
    for (int hi = lo; hi <= 7; ++hi) {
      const r::KgIv A{lo, hi};
      for (int e = 0; e <= 5; ++e) {
        const r::KgIv p = r::kg_iv_pow(A, r::kg_iv_point(e));
        for (int a = lo; a <= hi; ++a) {
          int64_t v = 1;
          for (int i = 0; i < e; ++i) v *= a;
          ASSERT_TRUE(contains(p, v)) << a << "**" << e;
        }
      }
      const r::KgIv ab = r::kg_iv_abs(A), ng = r::kg_iv_neg(A);
      const r::KgIv cl = r::kg_iv_clamp(A, r::KgIv{-2, 1}, r::KgIv{0, 3});
      for (int a = lo; a <= hi; ++a) {
        ASSERT_TRUE(contains(ab, std::abs(a)));
        ASSERT_TRUE(contains(ng, -a));
        for (int l = -2; l <= 1; ++l)
          for (int u = 0; u <= 3; ++u) ASSERT_TRUE(contains(cl, std::min(std::max(a, l), u)));
      }
    }
  // Tightness where it matters for masks: a range inside one period keeps its shape.
  const r::KgIv m = r::kg_iv_mod(r::KgIv{130, 140}, r::kg_iv_point(64));
  EXPECT_EQ(m.lo, 2);
  EXPECT_EQ(m.hi, 12);
  const r::KgIv d = r::kg_iv_floordiv(r::KgIv{-130, 140}, r::kg_iv_point(64));
  EXPECT_EQ(d.lo, -3);
  EXPECT_EQ(d.hi, 2);
  // Leaving int32 widens to everything (the 32-bit op could wrap).
  const r::KgIv big = r::kg_iv_mul(r::kg_iv_point(1 << 20), r::kg_iv_point(1 << 20));
  EXPECT_EQ(big.lo, -2147483648LL);
  EXPECT_EQ(big.hi, 2147483647LL);
  // Bool select and connectives.
  const r::KgBv t = r::kg_bv_point(true), f = r::kg_bv_point(false), u = r::kg_bv_top();
  EXPECT_TRUE(r::kg_bv_and(t, f).can_false && !r::kg_bv_and(t, f).can_true);
  EXPECT_TRUE(r::kg_bv_or(u, t).can_true && !r::kg_bv_or(u, t).can_false);
  const r::KgIv s = r::kg_iv_select(u, r::kg_iv_point(1), r::kg_iv_point(5));
  EXPECT_EQ(s.lo, 1);
  EXPECT_EQ(s.hi, 5);
}

TileQuery tile(int64_t q_lo, int64_t q_hi, int64_t kv_lo, int64_t kv_hi) {
  TileQuery t;
  t.q_lo = q_lo;
  t.q_hi = q_hi;
  t.kv_lo = kv_lo;
  t.kv_hi = kv_hi;
  return t;
}

TEST(ClassifyTile, CausalIsExact) {
  const spec::Spec s = causal_spec();
  EXPECT_EQ(classify_tile(s, tile(128, 255, 0, 63)), TileClass::Full);       // below the diagonal
  EXPECT_EQ(classify_tile(s, tile(128, 255, 256, 319)), TileClass::Empty);   // above it
  EXPECT_EQ(classify_tile(s, tile(128, 255, 192, 255)), TileClass::Partial); // on it
  EXPECT_EQ(classify_tile(s, tile(128, 255, 64, 129)), TileClass::Partial);  // crosses it by one
  EXPECT_EQ(classify_tile(s, tile(128, 255, 64, 128)), TileClass::Full);     // touches it: q >= kv holds
  EXPECT_EQ(classify_tile(full_spec(), tile(0, 127, 0, 63)), TileClass::Full);
  // Without the elements, tensor reads are unbounded: a document mask without causality is
  // Partial everywhere.
  spec::Spec doc = document_spec();
  doc.mask_mod->result = doc.mask_mod->result->args[0];
  EXPECT_EQ(classify_tile(doc, tile(0, 127, 0, 63)), TileClass::Partial);
  // ...but the causal half still empties tiles above the diagonal.
  EXPECT_EQ(classify_tile(document_spec(), tile(0, 127, 128, 191)), TileClass::Empty);
}

// Brute force against the interpreter: Empty ⇒ no element kept, Full ⇒ every element kept.
// Returns the fraction of tiles classified Empty or Full (how much work the classifier saves).
// The elements of [2, seqlen] int32 tensors, as TileQuery::tensor reads them (0 outside the shape).
std::function<int64_t(int, const std::vector<int64_t>&)> tensor_reader(std::vector<const int32_t*> tensors,
                                                                       int seqlen) {
  return [tensors, seqlen](int index, const std::vector<int64_t>& at) -> int64_t {
    if (at.size() != 2 || at[0] < 0 || at[0] >= 2 || at[1] < 0 || at[1] >= seqlen) return 0;
    return tensors.at(static_cast<size_t>(index))[at[0] * seqlen + at[1]];
  };
}

double check_soundness(const spec::Spec& s, int seqlen, int block_m, int block_n, int samples, unsigned seed,
                       std::vector<double> params = {}, std::vector<const void*> tensors = {},
                       std::function<int64_t(int, const std::vector<int64_t>&)> reader = {}) {
  spec::RuntimeValues rt;
  rt.batch = 2;
  rt.heads_q = rt.heads_kv = 4;
  rt.seqlen_q = rt.seqlen_kv = seqlen;
  rt.params = params;
  rt.tensors = tensors;
  std::mt19937 rng(seed);
  int decided = 0;
  for (int i = 0; i < samples; ++i) {
    // Aligned tiles as the kernel visits them, plus arbitrary small boxes.
    int64_t q_lo, q_hi, kv_lo, kv_hi;
    if (i % 2 == 0) {
      q_lo = static_cast<int64_t>(rng() % ((seqlen + block_m - 1) / block_m)) * block_m;
      kv_lo = static_cast<int64_t>(rng() % ((seqlen + block_n - 1) / block_n)) * block_n;
      q_hi = std::min<int64_t>(q_lo + block_m, seqlen) - 1;
      kv_hi = std::min<int64_t>(kv_lo + block_n, seqlen) - 1;
    } else {
      q_lo = rng() % seqlen;
      kv_lo = rng() % seqlen;
      q_hi = std::min<int64_t>(q_lo + rng() % 97, seqlen - 1);
      kv_hi = std::min<int64_t>(kv_lo + rng() % 97, seqlen - 1);
    }
    TileQuery t = tile(q_lo, q_hi, kv_lo, kv_hi);
    t.b = static_cast<int>(rng() % 2);
    t.h = static_cast<int>(rng() % 4);
    t.params = params;
    t.tensor = reader;
    const TileClass c = classify_tile(s, t);
    if (c == TileClass::Partial) continue;
    ++decided;
    for (int64_t qi = q_lo; qi <= q_hi; ++qi)
      for (int64_t kj = kv_lo; kj <= kv_hi; ++kj) {
        const bool m = spec::eval_mask_mod(s, rt, t.b, t.h, static_cast<int>(qi), static_cast<int>(kj));
        if (m != (c == TileClass::Full)) {
          ADD_FAILURE() << s.name << ": tile q[" << q_lo << "," << q_hi << "] kv[" << kv_lo << "," << kv_hi
                        << "] classified " << tile_class_name(c) << " but mask(" << qi << "," << kj << ") = " << m;
          return 0.0;
        }
      }
  }
  return static_cast<double>(decided) / samples;
}

TEST(ClassifyTile, SoundByBruteForce) {
  EXPECT_GT(check_soundness(causal_spec(), 1000, 128, 64, 300, 1), 0.5);
  EXPECT_GT(check_soundness(sliding_window_spec(), 4096, 128, 64, 300, 2), 0.5);
  EXPECT_GT(check_soundness(neighbourhood_spec(), 4096, 128, 64, 300, 3), 0.5);
  // Small grid and radius, so that windows clamp at the borders of many tiles.
  EXPECT_GT(check_soundness(neighbourhood_spec(12, 2), 144, 16, 8, 400, 4), 0.2);
  std::vector<int32_t> doc(2 * 300);
  for (size_t i = 0; i < doc.size(); ++i) doc[i] = static_cast<int32_t>((i % 300) / 70);
  check_soundness(document_spec(), 300, 128, 64, 100, 5, {}, {doc.data(), doc.data()});
  // With the elements, document tiles are decided from the ids themselves: sorted ids (documents
  // of 70 tokens) leave only the tiles that straddle a document boundary Partial. Unsorted ids
  // and ids that differ between q_doc and kv_doc must stay sound.
  const auto docs = tensor_reader({doc.data(), doc.data()}, 300);
  EXPECT_GT(check_soundness(document_spec(), 300, 16, 16, 400, 7, {}, {doc.data(), doc.data()}, docs), 0.5);
  std::vector<int32_t> noise(doc.size()), other(doc.size());
  std::mt19937 rng(8);
  for (size_t i = 0; i < doc.size(); ++i) {
    noise[i] = static_cast<int32_t>(rng() % 3) - 1;
    other[i] = doc[i] + static_cast<int32_t>(i % 300 >= 150);
  }
  check_soundness(document_spec(), 300, 16, 8, 400, 9, {}, {noise.data(), noise.data()},
                  tensor_reader({noise.data(), noise.data()}, 300));
  check_soundness(document_spec(), 300, 32, 32, 400, 10, {}, {doc.data(), other.data()},
                  tensor_reader({doc.data(), other.data()}, 300));
  check_soundness(alibi_spec(), 500, 128, 64, 200, 6, {16.0});
}

TEST(ClassifyTile, TensorReadsBoundedByTheirElements) {
  spec::Spec doc = document_spec();
  doc.mask_mod->result = doc.mask_mod->result->args[0];  // q_doc[b, q] == kv_doc[b, kv]
  std::vector<int32_t> ids(2 * 512);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i % 512) / 128);  // 4 documents
  const auto with_ids = [&](TileQuery t) {
    t.tensor = tensor_reader({ids.data(), ids.data()}, 512);
    return t;
  };
  EXPECT_EQ(classify_tile(doc, with_ids(tile(128, 255, 128, 255))), TileClass::Full);   // one document
  EXPECT_EQ(classify_tile(doc, with_ids(tile(128, 255, 256, 383))), TileClass::Empty);  // two others
  EXPECT_EQ(classify_tile(doc, with_ids(tile(128, 255, 192, 319))), TileClass::Partial);
  // Past the shape the reader gives 0, which is document 0's id.
  EXPECT_EQ(classify_tile(doc, with_ids(tile(0, 63, 448, 575))), TileClass::Partial);
  EXPECT_EQ(classify_tile(doc, with_ids(tile(0, 0, 0, 127))), TileClass::Full);
  // One document of 512 tokens: a box of kTensorScanMax elements is read, a larger one is not
  // (unbounded).
  const std::vector<int32_t> one(2 * 512, 5);
  TileQuery t = tile(0, 0, 0, kTensorScanMax - 1);
  t.tensor = tensor_reader({one.data(), one.data()}, 512);
  EXPECT_EQ(classify_tile(doc, t), TileClass::Full);
  t.kv_hi = kTensorScanMax;
  EXPECT_EQ(classify_tile(doc, t), TileClass::Partial);

  const std::string f = emit_classify_tile(doc);
  EXPECT_NE(f.find("KgIv kg_iv_tensor0_doc_q(const KgModArgs& ma, KgIv i0, KgIv i1) {"), std::string::npos) << f;
  EXPECT_NE(f.find("if (count > " + std::to_string(kTensorScanMax) + ") return kg_iv_top();"), std::string::npos);
  EXPECT_NE(f.find("#pragma unroll 1\n  for (int n0 = 0; n0 <= static_cast<int>(i0.hi - i0.lo); ++n0) {"),
            std::string::npos);
  EXPECT_NE(f.find("kg_tensor1_doc_kv(ma, static_cast<int>(i0.lo) + n0, static_cast<int>(i1.lo) + n1)"),
            std::string::npos);
  EXPECT_NE(f.find("return kg_tile_class(kg_iv_eq(kg_iv_tensor0_doc_q(ma, kg_iv_point(b), kg_iv_range(q_lo, q_hi)), "
                   "kg_iv_tensor1_doc_kv(ma, kg_iv_point(b), kg_iv_range(kv_lo, kv_hi))));"),
            std::string::npos)
      << f;
  // A box of one batch row reads the pre-pass's hull table when the launcher built one.
  EXPECT_NE(f.find("if (ma.hull_tensor1_doc_kv != nullptr && i0.lo == i0.hi) {"), std::string::npos) << f;
  EXPECT_NE(f.find("if (kg_hull_lookup(ma.hull_tensor1_doc_kv + row * chunks, i1.lo, i1.hi, "
                   "static_cast<long long>(ma.seqlen_kv), &lo, &hi)) return KgIv{lo, hi};"),
            std::string::npos)
      << f;
  EXPECT_EQ(classify_tile_scans(doc), (std::vector<bool>{true, true}));
  // A spec without tensor reads emits no scan.
  EXPECT_EQ(emit_classify_tile(causal_spec()).find("kg_iv_tensor"), std::string::npos);
  EXPECT_EQ(classify_tile_scans(causal_spec()), std::vector<bool>{});
}

TEST(ClassifyTile, NeighbourhoodSkipsMostTiles) {
  // 64x64 image, 13x13 window: a 128-query tile (two image rows) sees at most ~15 image rows of
  // keys, i.e. ~1000 of 4096 keys, so most 64-key tiles must be Empty.
  const spec::Spec s = neighbourhood_spec();
  int empty = 0, total = 0;
  for (int q0 = 0; q0 < 4096; q0 += 128)
    for (int k0 = 0; k0 < 4096; k0 += 64) {
      ++total;
      empty += classify_tile(s, tile(q0, q0 + 127, k0, k0 + 63)) == TileClass::Empty;
    }
  EXPECT_GT(empty, total * 7 / 10) << empty << " of " << total;
}

TEST(ClassifyTile, EmittedFunctionCallsTheSharedRules) {
  const std::string f = emit_classify_tile(sliding_window_spec());
  EXPECT_NE(f.find("KgTileClass kg_classify_tile(const KgModArgs& ma, int b, int h,"), std::string::npos);
  EXPECT_NE(f.find("return kg_tile_class(kg_bv_and(kg_iv_ge(kg_iv_range(q_lo, q_hi), kg_iv_range(kv_lo, kv_hi)), "
                   "kg_iv_lt(kg_iv_sub(kg_iv_range(q_lo, q_hi), kg_iv_range(kv_lo, kv_hi)), kg_iv_point(1024))));"),
            std::string::npos)
      << f;
  EXPECT_NE(emit_classify_tile(full_spec()).find("return kg_tile_full;"), std::string::npos);
  EXPECT_NE(emit_classify_tile(alibi_spec()).find("kg_iv_ge(kg_iv_range(q_lo, q_hi), kg_iv_range(kv_lo, kv_hi))"),
            std::string::npos);
}

}  // namespace
}  // namespace kg::codegen
