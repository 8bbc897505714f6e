#include "reference/cpu_reference.h"

#include <gtest/gtest.h>

#include <cmath>

#include "spec/spec.h"

namespace kg::reference {
namespace {

spec::Spec parse(const std::string& mods) {
  auto r = spec::parse_spec("name: t\ndtype: bf16\nhead_dim: 64\n" + mods, "r.yaml");
  EXPECT_TRUE(r) << (r ? "" : r.error()[0].str());
  return r ? *r : spec::Spec{};
}

// A problem of the given sizes with deterministic pseudo-random inputs in [-1, 1).
CpuProblem problem(int batch, int hq, int hkv, int sq, int skv, int d) {
  CpuProblem p;
  p.rt.batch = batch;
  p.rt.heads_q = hq;
  p.rt.heads_kv = hkv;
  p.rt.seqlen_q = sq;
  p.rt.seqlen_kv = skv;
  p.head_dim = d;
  p.softmax_scale = 1.0 / std::sqrt(static_cast<double>(d));
  uint32_t state = 12345;
  auto next = [&]() {
    state = state * 1664525u + 1013904223u;
    return static_cast<double>(state >> 8) / (1 << 23) - 1.0;
  };
  for (auto* v : {&p.q, &p.k, &p.v}) {
    const int heads = v == &p.q ? hq : hkv;
    const int seq = v == &p.q ? sq : skv;
    v->resize(static_cast<size_t>(batch) * heads * seq * d);
    for (double& x : *v) {
      x = next();
    }
  }
  return p;
}

TEST(CpuReference, SingleKeyGivesItsValue) {
  const CpuProblem p = problem(1, 1, 1, 3, 1, 4);
  std::vector<double> out, lse;
  cpu_attention_forward(parse(""), p, out, lse);
  for (int i = 0; i < 3; ++i) {
    for (int d = 0; d < 4; ++d) {
      EXPECT_NEAR(out[i * 4 + d], p.v[d], 1e-15);
    }
    double dot = 0;
    for (int d = 0; d < 4; ++d) {
      dot += p.q[i * 4 + d] * p.k[d];
    }
    EXPECT_NEAR(lse[i], dot * p.softmax_scale, 1e-15);  // log of one term
  }
}

TEST(CpuReference, UniformScoresAverageTheValues) {
  CpuProblem p = problem(1, 1, 1, 2, 5, 3);
  std::fill(p.q.begin(), p.q.end(), 0.0);  // every score 0
  std::vector<double> out, lse;
  cpu_attention_forward(parse(""), p, out, lse);
  for (int d = 0; d < 3; ++d) {
    double mean = 0;
    for (int j = 0; j < 5; ++j) {
      mean += p.v[j * 3 + d] / 5;
    }
    EXPECT_NEAR(out[d], mean, 1e-15);
    EXPECT_NEAR(out[3 + d], mean, 1e-15);
  }
  EXPECT_NEAR(lse[0], std::log(5.0), 1e-15);
}

TEST(CpuReference, FullyMaskedRowIsZeroWithMinusInfinityLse) {
  const CpuProblem p = problem(1, 2, 1, 4, 3, 8);
  std::vector<double> out, lse;
  cpu_attention_forward(parse("mask_mod: q_idx != 2\n"), p, out, lse);
  for (int h = 0; h < 2; ++h) {
    const size_t row = h * 4 + 2;
    EXPECT_TRUE(std::isinf(lse[row]) && lse[row] < 0);
    for (int d = 0; d < 8; ++d) {
      EXPECT_EQ(out[row * 8 + d], 0.0);
    }
    EXPECT_TRUE(std::isfinite(lse[h * 4 + 1]));
  }
}

TEST(CpuReference, CausalFirstRowSeesOnlyFirstKey) {
  const CpuProblem p = problem(1, 1, 1, 3, 3, 4);
  std::vector<double> out, lse;
  cpu_attention_forward(parse("mask_mod: q_idx >= kv_idx\n"), p, out, lse);
  for (int d = 0; d < 4; ++d) {
    EXPECT_NEAR(out[d], p.v[d], 1e-15);
  }
}

TEST(CpuReference, GqaMapsQueryHeadsToKvHeadGroups) {
  // 4 query heads over 2 kv heads: q heads 0,1 → kv head 0; 2,3 → kv head 1. With one key,
  // each output row is that kv head's value.
  const CpuProblem p = problem(2, 4, 2, 1, 1, 2);
  std::vector<double> out, lse;
  cpu_attention_forward(parse(""), p, out, lse);
  for (int b = 0; b < 2; ++b) {
    for (int h = 0; h < 4; ++h) {
      const int h_kv = h / 2;
      for (int d = 0; d < 2; ++d) {
        EXPECT_EQ(out[(b * 4 + h) * 2 + d], p.v[(b * 2 + h_kv) * 2 + d]) << b << " " << h;
      }
    }
  }
  CpuProblem bad = problem(1, 3, 2, 1, 1, 2);
  EXPECT_THROW(cpu_attention_forward(parse(""), bad, out, lse), std::invalid_argument);
}

TEST(CpuReference, ScoreBiasMatchesDirectComputation) {
  const int B = 2, H = 2, SQ = 5, SKV = 7, D = 16;
  const CpuProblem p = problem(B, H, H, SQ, SKV, D);
  std::vector<double> out, lse;
  cpu_attention_forward(
      parse("score_mod: score + 0.1 * (q_idx - kv_idx) - h\nmask_mod: kv_idx <= q_idx + 1\n"), p, out, lse);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < SQ; ++i) {
        const size_t row = (b * H + h) * SQ + i;
        std::vector<double> w(SKV, 0.0);
        double total = 0.0;
        for (int j = 0; j <= std::min(i + 1, SKV - 1); ++j) {
          double s = 0.0;
          for (int d = 0; d < D; ++d) {
            s += p.q[row * D + d] * p.k[((b * H + h) * SKV + j) * D + d];
          }
          s = s * p.softmax_scale + 0.1 * (i - j) - h;
          w[j] = std::exp(s);
          total += w[j];
        }
        EXPECT_NEAR(lse[row], std::log(total), 1e-12);
        for (int d = 0; d < D; ++d) {
          double o = 0.0;
          for (int j = 0; j < SKV; ++j) {
            o += w[j] / total * p.v[((b * H + h) * SKV + j) * D + d];
          }
          EXPECT_NEAR(out[row * D + d], o, 1e-12);
        }
      }
    }
  }
}

TEST(CpuReference, NanScoresPropagate) {
  const CpuProblem p = problem(1, 1, 1, 1, 2, 2);
  std::vector<double> out, lse;
  cpu_attention_forward(parse("score_mod: log(score - 100)\n"), p, out, lse);
  EXPECT_TRUE(std::isnan(out[0]));
}

TEST(CpuReference, EmptySequences) {
  const CpuProblem p = problem(1, 1, 1, 2, 0, 2);
  std::vector<double> out, lse;
  cpu_attention_forward(parse(""), p, out, lse);
  EXPECT_EQ(out, std::vector<double>(4, 0.0));
  EXPECT_TRUE(std::isinf(lse[0]));
}

}  // namespace
}  // namespace kg::reference
