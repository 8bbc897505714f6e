// The judge's time of the timing stage and its cross-check with the candidate host's events
// (docs/verifier.md, "timing"). Header-only: kg_verify_runner uses it, the unit tests check it.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace kg::verify {

// Quantile q in [0, 1] of `v` (linear between order statistics); 0 for an empty `v`.
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// What the judge takes out of every run: the lower quartile of its clock on the null runs. A
// delay only ever adds to a null run (the host's or the judge's wake-ups, or a host that stalls
// its null answers so that the runs look faster), so a low quantile is the round trip itself:
// with the median, a burst of slow null runs made an honest kernel's time come out under its
// events (0.127 ms against 0.214 on an H200, a null median of 0.364 ms where 0.18 is usual).
inline double null_roundtrip_ms(const std::vector<double>& null_ms) { return quantile(null_ms, 0.25); }

// Why the host's events (event_ms, the candidate's word) do not fit the judge's time (judged_ms,
// its clock less the round trip), or "" when they do. Asymmetric on purpose:
//  - judged under the events (by more than 25 % of the events + 0.05 ms): the verdict's time
//    would be shorter than the kernel the host says it ran, which is what stalled null answers
//    or forged events gain; kept tight.
//  - judged over the events (by more than the events + 0.25 ms): events that do not measure the
//    kernel (forged, or the work is not on the timed stream). Noise on the judge's side only
//    lengthens its clock, and only costs the candidate: honest persistent kernels of 0.25-0.45 ms
//    measured 0.18-0.31 ms over their events on a loaded machine, which the old symmetric bound
//    (25 % + 0.05 ms) rejected.
inline std::string timing_disagreement(double judged_ms, double event_ms) {
  if (judged_ms < event_ms - (0.25 * event_ms + 0.05)) {
    return "the judge's clock is shorter than the host's events";
  }
  if (judged_ms > 2.0 * event_ms + 0.25) {
    return "the judge's clock is far longer than the host's events";
  }
  return "";
}

}  // namespace kg::verify
