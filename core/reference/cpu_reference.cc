#include "reference/cpu_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace kg::reference {
namespace {

void check_problem(const CpuProblem& p) {
  const auto& rt = p.rt;
  if (rt.batch < 0 || rt.heads_q <= 0 || rt.heads_kv <= 0 || rt.seqlen_q < 0 || rt.seqlen_kv < 0 ||
      p.head_dim <= 0) {
    throw std::invalid_argument("cpu_attention_forward: sizes must be positive");
  }
  if (rt.heads_q % rt.heads_kv != 0) {
    throw std::invalid_argument("cpu_attention_forward: heads_q (" + std::to_string(rt.heads_q) +
                                ") is not a multiple of heads_kv (" + std::to_string(rt.heads_kv) + ")");
  }
  const size_t d = static_cast<size_t>(p.head_dim);
  const size_t q_size = static_cast<size_t>(rt.batch) * rt.heads_q * rt.seqlen_q * d;
  const size_t kv_size = static_cast<size_t>(rt.batch) * rt.heads_kv * rt.seqlen_kv * d;
  if (p.q.size() != q_size || p.k.size() != kv_size || p.v.size() != kv_size) {
    throw std::invalid_argument("cpu_attention_forward: q/k/v sizes do not match the shape");
  }
}

}  // namespace

void cpu_attention_forward(const spec::Spec& spec, const CpuProblem& p, std::vector<double>& out,
                           std::vector<double>& lse) {
  check_problem(p);
  const auto& rt = p.rt;
  const size_t D = static_cast<size_t>(p.head_dim);
  const int group = rt.heads_q / rt.heads_kv;  // query heads per kv head (GQA / MQA)
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  out.assign(static_cast<size_t>(rt.batch) * rt.heads_q * rt.seqlen_q * D, 0.0);
  lse.assign(static_cast<size_t>(rt.batch) * rt.heads_q * rt.seqlen_q, kNegInf);
  std::vector<double> s(static_cast<size_t>(rt.seqlen_kv));

  for (int b = 0; b < rt.batch; ++b) {
    for (int h = 0; h < rt.heads_q; ++h) {
      const int h_kv = h / group;
      const size_t kv_base = (static_cast<size_t>(b) * rt.heads_kv + h_kv) * rt.seqlen_kv * D;
      for (int i = 0; i < rt.seqlen_q; ++i) {
        const size_t row = (static_cast<size_t>(b) * rt.heads_q + h) * rt.seqlen_q + i;
        const double* q = &p.q[row * D];
        // s_j = mask(score_mod(q·k_j · scale)), masked → -inf.
        double max_s = kNegInf;
        bool has_nan = false;  // a NaN from score_mod must show, not vanish as "masked"
        for (int j = 0; j < rt.seqlen_kv; ++j) {
          if (!spec::eval_mask_mod(spec, rt, b, h, i, j)) {
            s[j] = kNegInf;
            continue;
          }
          const double* k = &p.k[kv_base + j * D];
          double dot = 0.0;
          for (size_t d = 0; d < D; ++d) {
            dot += q[d] * k[d];
          }
          s[j] = spec::eval_score_mod(spec, rt, dot * p.softmax_scale, b, h, i, j);
          has_nan = has_nan || std::isnan(s[j]);
          max_s = std::max(max_s, s[j]);
        }
        if (has_nan) {
          std::fill(&out[row * D], &out[row * D] + D, std::nan(""));
          lse[row] = std::nan("");
          continue;
        }
        if (max_s == kNegInf) {
          continue;  // fully masked row (or every score -inf): out 0, lse -inf
        }
        // Softmax with the max subtracted; O = Σ_j p_j v_j / Σ_j p_j.
        double sum = 0.0;
        double* o = &out[row * D];
        for (int j = 0; j < rt.seqlen_kv; ++j) {
          const double pj = std::exp(s[j] - max_s);
          if (pj == 0.0) {
            continue;
          }
          sum += pj;
          const double* v = &p.v[kv_base + j * D];
          for (size_t d = 0; d < D; ++d) {
            o[d] += pj * v[d];
          }
        }
        for (size_t d = 0; d < D; ++d) {
          o[d] /= sum;
        }
        lse[row] = max_s + std::log(sum);
      }
    }
  }
}

}  // namespace kg::reference
