// kg_verify_runner — the verifier's GPU side (docs/design.md §4, docs/verifier.md). Runs a candidate kernel
// against the fp32 reference kernel of the same spec, then times it, and writes the findings.
//
//   kg_verify_runner --request request.json --result result.json   (in a fresh directory)
//   kg_verify_runner --probe                                        device or not
//
// The protocol (request, result, exit codes) is core/verify/runner_protocol.h. The candidate runs
// in this process: it can crash it, hang it or end it, and the parent (core/verify/runner.cc)
// turns each of those into a finding. Everything in here assumes the candidate may lie:
//   - every trial draws fresh inputs; one trial refills the same buffers (same pointers) with new
//     values; one shape is drawn from the request's seed, which the candidate cannot know;
//   - out and lse are poisoned (NaN) before every run, with 4 KiB guard zones around them;
//   - the candidate runs on a non-blocking stream created here, and results are read back on that
//     stream after synchronizing only it: work left on another stream shows as unwritten output
//     (then a device-wide sync tells wrong_stream apart from plain wrong output);
//   - inputs are checksummed before and after; every element is compared; NaN/Inf never pass;
//   - timing: warm-up, >= 20 runs with the L2 flushed before each, rotating input sets, CUDA events
//     on our stream, every timed output compared on the GPU, a host-clock cross-check around
//     cudaDeviceSynchronize, and a physical floor.
// Progress goes to stderr, one "kg_verify_runner: trial NAME: SHAPE" line per trial, so a crash or
// hang is attributed to a trial.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "device_ops.h"
#include "gpu_problem.h"
#include "spec/interpret.h"
#include "spec/spec.h"
#include "util/file.h"
#include "verify/runner_protocol.h"

namespace kg::verify_runner {
namespace {

using gpu::CompareReport;
using gpu::DeviceBuffer;
using gpu::ForwardFn;
using gpu::Layout;
using gpu::Outputs;
using gpu::Problem;
using gpu::Shape;
using gpu::Tolerance;
using verify::Finding;
using verify::FindingKind;

// The FLOP floor counts only kFloorSafety of the estimated unmasked pairs: the kept fraction is
// estimated from sampled rows, and this keeps the floor a lower bound for any mask whose sampled
// estimate is off by up to 2x. Real kernels run well above the peak-rate floor anyway.
constexpr double kFloorSafety = 0.5;

using Clock = std::chrono::steady_clock;
const Clock::time_point g_start = Clock::now();  // the runner's start
Clock::time_point g_trial_start = g_start;        // the running trial's start
std::string g_trial;  // the trial running now (for messages about CUDA errors)

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// " [at 1.234 s]": seconds since the runner started, closing every progress line.
std::string at_now() {
  std::ostringstream os;
  os << " [at " << std::fixed << std::setprecision(3) << seconds_since(g_start) << " s]";
  return os.str();
}

// A progress line within a trial ("kg_verify_runner: timing: references done [at 1.234 s]").
void mark(const std::string& what) { std::cerr << "kg_verify_runner: " << g_trial << ": " << what << at_now() << std::endl; }

void announce(const std::string& trial, const std::string& shape) {
  g_trial = trial;
  g_trial_start = Clock::now();
  std::cerr << "kg_verify_runner: trial " << trial << ": " << shape << at_now() << std::endl;
}

// The float whose bits are the low 32 bits of `bits` (the device comparison's packed values).
float float_from_bits(unsigned long long bits) {
  const uint32_t b = static_cast<uint32_t>(bits);
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

struct NamedShape {
  std::string name;
  Shape shape;
};

// Correctness shapes: tile non-multiples, length 1, Sq != Skv both ways, batch > 1, GQA and MQA,
// strided (token-major) and packed layouts, padded out, empty sequences, LSE on and off, scores
// large enough that exp overflows fp32 without the max subtraction.
std::vector<NamedShape> fixed_shapes() {
  // B Hq Hkv Sq Skv layout lse score_std
  return {
      {"single", {1, 1, 1, 1, 1, Layout::BHSD, true, 2.0}},
      {"tiny_bshd", {2, 2, 2, 7, 7, Layout::BSHD, false, 1.0}},
      {"ragged", {1, 4, 4, 63, 65, Layout::BHSD, true, 3.0}},
      {"gqa_bshd", {2, 8, 2, 65, 63, Layout::BSHD, true, 2.0}},
      {"mqa", {1, 8, 1, 127, 129, Layout::BHSD, false, 2.0}},
      {"packed_qkv", {2, 4, 4, 129, 129, Layout::Packed, true, 2.0}},
      {"sq_lt_skv", {1, 2, 2, 200, 1000, Layout::BHSD, true, 2.0}},
      {"sq_gt_skv", {1, 2, 2, 1000, 200, Layout::BSHD, true, 2.0}},
      {"one_query", {1, 1, 1, 1, 200, Layout::BSHD, true, 2.0}},
      {"one_key", {1, 2, 2, 129, 1, Layout::BHSD, true, 2.0}},
      {"empty_kv", {1, 2, 1, 64, 0, Layout::BHSD, true, 2.0}},
      {"empty_q", {1, 2, 2, 0, 64, Layout::BSHD, true, 2.0}},
      // std 60: the largest scores of a row reach ~150, and e^150 overflows fp32.
      {"large_scores", {2, 4, 4, 257, 257, Layout::BSHD, true, 60.0}},
  };
}

// A shape the candidate cannot know in advance: drawn from the request's seed.
Shape random_shape(std::mt19937_64& rng) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Shape s;
  s.batch = uniform(1, 3);
  s.heads_kv = 1 << uniform(0, 2);
  s.heads_q = s.heads_kv << uniform(0, 2);
  s.seqlen_q = uniform(1, 700);
  s.seqlen_kv = uniform(0, 3) == 0 ? s.seqlen_q : uniform(1, 700);
  s.layout = uniform(0, 1) ? Layout::BSHD : Layout::BHSD;
  s.lse = uniform(0, 3) != 0;
  s.score_std = std::uniform_real_distribution<double>(0.5, 8.0)(rng);
  return s;
}

struct Runner {
  const spec::Spec* spec = nullptr;
  ForwardFn candidate = nullptr;
  ForwardFn reference = nullptr;
  cudaStream_t stream = nullptr;
  std::mt19937_64 rng;
  verify::RunnerSettings settings;
  verify::RunnerResult result;
  Tolerance tol;

  bool rejected() const {
    return std::any_of(result.findings.begin(), result.findings.end(), [](const Finding& f) { return !f.warning; });
  }

  void add(FindingKind kind, const char* stage, std::string message, const std::string& trial = "",
           const std::string& shape = "", bool warning = false) {
    Finding f;
    f.kind = kind;
    f.stage = stage;
    f.message = std::move(message);
    f.trial = trial;
    f.shape = shape;
    f.warning = warning;
    result.findings.push_back(std::move(f));
  }

  // Runs the reference into `ref` (trusted: its failures are the verifier's problem), and reads the
  // result back unless it is only compared on the GPU.
  void run_reference(const Problem& p, Outputs& ref, bool download = true) {
    ref.poison(stream);
    const cudaError_t e = gpu::run_kernel(reference, p, ref, stream);
    if (e != cudaSuccess) {
      throw std::runtime_error(std::string("the reference kernel rejected valid arguments: ") + cudaGetErrorName(e));
    }
    if (download) {
      ref.download(stream);
    }
  }

  // Calls the candidate into `got` and reads the result back on our stream only. False (with a
  // finding) when the entry point refused valid arguments.
  bool run_candidate(const Problem& p, Outputs& got, const std::string& trial, const char* stage) {
    got.poison(stream);
    const KgAttentionArgs a = gpu::make_args(p, got);
    const cudaError_t e = candidate(&a, stream);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      add(FindingKind::RejectedValidArgs, stage,
          std::string("the entry point returned ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
              ") for valid arguments",
          trial, p.shape.str());
      return false;
    }
    KG_CUDA(cudaGetLastError());
    KG_CUDA(cudaStreamSynchronize(stream));
    got.download(stream);
    return true;
  }

  Finding compare_finding(const CompareReport& r, const Problem& p, const std::string& trial, const char* stage) {
    Finding f;
    f.stage = stage;
    f.trial = trial;
    f.shape = p.shape.str();
    std::string hint;
    if (r.clobbered || r.lse_clobbered) {
      f.kind = FindingKind::OutOfBoundsWrite;
      hint = "the kernel wrote outside out/lse (guard zones or padding between rows/heads changed)";
    } else if (r.unwritten) {
      f.kind = FindingKind::UnwrittenOutput;
      hint = std::to_string(r.unwritten) + " output elements still hold the NaN poison written before the run: "
             "the kernel did not write them (or wrote them on another stream, after returning)";
    } else if (r.nonfinite) {
      f.kind = FindingKind::NonfiniteOutput;
      hint = std::to_string(r.nonfinite) + " output elements are NaN/Inf where the reference is finite "
             "(overflow: e.g. exp of unshifted scores)";
    } else if (r.bad) {
      f.kind = FindingKind::WrongOutput;
      hint = std::to_string(r.bad) + " output elements differ from the reference beyond tolerance (abs " +
             std::to_string(tol.abs) + " + rel " + std::to_string(tol.rel) + ")";
    } else {
      f.kind = FindingKind::WrongLse;
      hint = std::to_string(r.lse_bad) + " LSE values differ from the reference (tolerance abs " +
             std::to_string(tol.lse_abs) + " + rel " + std::to_string(tol.lse_rel) + "; -inf exactly where the "
             "reference has -inf)";
    }
    f.message = hint + "\n" + r.detail + (p.describe_params().empty() ? "" : "    params: " + p.describe_params() + "\n");
    if (f.kind == FindingKind::WrongLse && r.lse_worst_b >= 0) {
      f.worst = verify::WorstElement{"lse", r.lse_worst_b, r.lse_worst_h, r.lse_worst_i, -1, r.lse_worst_got,
                                     r.lse_worst_want, std::fabs(r.lse_worst_got - r.lse_worst_want),
                                     r.lse_worst_allowed};
    } else if (r.worst_b >= 0) {
      f.worst = verify::WorstElement{"out", r.worst_b, r.worst_h, r.worst_i, r.worst_d, r.worst_got, r.worst_want,
                                     std::fabs(r.worst_got - r.worst_want), r.worst_allowed};
    }
    return f;
  }

  // One correctness comparison of the candidate's `got` (already downloaded) with `ref`.
  bool check(const Problem& p, Outputs& ref, Outputs& got, const std::string& trial) {
    const gpu::Expected want = gpu::expected_from(p, ref);
    CompareReport r = gpu::compare(p, got, want, tol, "reference");
    verify::TrialSummary t{trial, p.shape.str(), r.ok, r.worst_err, r.worst_ratio, r.lse_worst_err};
    t.seconds = seconds_since(g_trial_start);
    if (!r.ok) {
      // Did the work finish later, outside our stream? Then it ran on another stream.
      KG_CUDA(cudaDeviceSynchronize());
      got.download(stream);
      const CompareReport late = gpu::compare(p, got, want, tol, "reference");
      if (late.ok) {
        add(FindingKind::WrongStream, verify::kStageCorrectness,
            "the output was incomplete when the stream passed to the entry point finished, and complete after a "
            "device-wide synchronization: the kernel ran on another stream (its own, the legacy default stream "
            "or the per-thread stream) and returned early. Enqueue all work on `stream`.",
            trial, p.shape.str());
      } else {
        result.findings.push_back(compare_finding(late, p, trial, verify::kStageCorrectness));
      }
    }
    std::string what;
    if (!p.inputs_unchanged(what, stream)) {
      t.ok = false;
      add(FindingKind::InputModified, verify::kStageCorrectness, what + ": a kernel must not write to its inputs", trial,
          p.shape.str());
    }
    result.trials.push_back(t);
    return t.ok;
  }

  void correctness() {
    std::vector<NamedShape> shapes = fixed_shapes();
    shapes.push_back({"random", random_shape(rng)});
    for (const NamedShape& ns : shapes) {
      announce(ns.name, ns.shape.str());
      Problem p(*spec, ns.shape, rng);
      Outputs ref(p), got(p);
      run_reference(p, ref);
      if (!run_candidate(p, got, ns.name, verify::kStageCorrectness)) {
        return;
      }
      if (!check(p, ref, got, ns.name)) {
        return;
      }
      if (ns.name == "ragged") {  // a second run on the same inputs must give the same bits
        Outputs again(p);
        if (run_candidate(p, again, ns.name, verify::kStageCorrectness) && !gpu::identical(got, again)) {
          add(FindingKind::Nondeterministic, verify::kStageCorrectness,
              "two runs on the same inputs gave different bits (a race, an uninitialised read, or atomics in "
              "a varying order)",
              ns.name, ns.shape.str(), /*warning=*/true);
        }
      }
    }

    // Same buffers, new contents: a kernel that caches results by pointer or shape fails here.
    const Shape refill_shape{2, 4, 2, 130, 130, Layout::BHSD, true, 2.0};
    announce("refill", refill_shape.str());
    Problem p(*spec, refill_shape, rng);
    Outputs ref(p), got(p);
    for (int round = 1; round <= 3; ++round) {
      const std::string name = "refill." + std::to_string(round);
      if (round > 1) {
        announce(name, refill_shape.str());
        p.refill(rng);
      }
      run_reference(p, ref);
      if (!run_candidate(p, got, name, verify::kStageCorrectness) || !check(p, ref, got, name)) {
        return;
      }
    }

    // Long rows: catches half-precision accumulation (v has mean 1, so outputs are O(1) and an
    // accumulator that stops absorbing small terms is far off).
    const int L = settings.long_seqlen;
    if (L > 0) {
      Shape long_shape{1, 2, 1, L, L, Layout::BHSD, true, 2.0};
      long_shape.v_mean = 1.0;
      long_shape.device_fill = true;
      announce("long", long_shape.str());
      Problem lp(*spec, long_shape, rng);
      Outputs lref(lp), lgot(lp);
      run_reference(lp, lref);
      if (run_candidate(lp, lgot, "long", verify::kStageCorrectness)) {
        check(lp, lref, lgot, "long");
      }
    }
  }

  // Fraction of (q, kv) pairs the mask keeps at `p`'s shape, from sampled rows (CPU, interpreter).
  static double kept_fraction(const spec::Spec& s, const Problem& p) {
    if (!s.mask_mod) {
      return 1.0;
    }
    spec::RuntimeValues rt;
    rt.batch = p.shape.batch, rt.heads_q = p.shape.heads_q, rt.heads_kv = p.shape.heads_kv;
    rt.seqlen_q = p.shape.seqlen_q, rt.seqlen_kv = p.shape.seqlen_kv;
    rt.params = p.params;
    for (const auto& t : p.tensor_host) {
      rt.tensors.push_back(t.data());
    }
    const int Sq = p.shape.seqlen_q, Skv = p.shape.seqlen_kv;
    const int rows = std::min(Sq, 64);
    // Sampled rows (b, h, i), shared out over a few threads: the interpreter is pure.
    std::vector<std::array<int, 3>> sampled;
    for (int b = 0; b < p.shape.batch; ++b) {
      for (int h : {0, p.shape.heads_q - 1}) {
        for (int r = 0; r <= rows; ++r) {
          sampled.push_back({b, h, r == rows ? Sq - 1 : static_cast<int>((int64_t(r) * Sq) / rows)});
        }
      }
    }
    const size_t n_threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
    std::vector<uint64_t> kept(n_threads, 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < n_threads; ++t) {
      threads.emplace_back([&, t] {
        for (size_t k = t; k < sampled.size(); k += n_threads) {
          for (int j = 0; j < Skv; ++j) {
            kept[t] += spec::eval_mask_mod(s, rt, sampled[k][0], sampled[k][1], sampled[k][2], j);
          }
        }
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
    const uint64_t total = uint64_t(sampled.size()) * uint64_t(std::max(Skv, 0));
    return total ? double(std::accumulate(kept.begin(), kept.end(), uint64_t{0})) / double(total) : 1.0;
  }

  // Timed runs' outputs, compared on the GPU: the first failing run as a finding. `label` names the
  // loop ("event-timed", "host-timed", "warm-up").
  bool timed_counts_ok(const std::vector<gpu::DeviceCompareCounts>& counts, size_t first, size_t n,
                       const Problem& p, const char* label, bool report, const std::string& trial = "timing") {
    for (size_t r = first; r < first + n; ++r) {
      const gpu::DeviceCompareCounts& c = counts[r];
      if (c.bad == 0 && c.clobbered == 0 && c.lse_bad == 0 && c.lse_clobbered == 0) {
        continue;
      }
      if (!report) {
        return false;
      }
      CompareReport cr;
      cr.ok = false;
      cr.bad = c.bad, cr.unwritten = c.unwritten, cr.nonfinite = c.nonfinite, cr.clobbered = c.clobbered;
      cr.lse_bad = c.lse_bad, cr.lse_clobbered = c.lse_clobbered;
      const int D = p.head_dim, S = p.shape.seqlen_q, H = p.shape.heads_q;
      const uint64_t idx = c.worst_key & 0xFFFFFFFFu;
      const float ratio = float_from_bits(c.worst_key >> 32);
      cr.worst_b = static_cast<int>(idx / (uint64_t(H) * S * D));
      cr.worst_h = static_cast<int>(idx / (uint64_t(S) * D) % H);
      cr.worst_i = static_cast<int>(idx / D % S);
      cr.worst_d = static_cast<int>(idx % D);
      cr.worst_got = NAN, cr.worst_want = NAN;
      std::ostringstream os;
      os << "    " << label << " run " << (r - first + 1) << " of " << n << ": " << c.bad << " out elements wrong ("
         << c.unwritten << " never written, " << c.nonfinite << " other NaN/Inf), " << c.clobbered
         << " guard elements written, " << c.lse_bad << " lse values wrong; worst at (b=" << cr.worst_b
         << ",h=" << cr.worst_h << ",i=" << cr.worst_i << ",d=" << cr.worst_d << ") with error/allowed " << ratio
         << "\n";
      cr.detail = os.str();
      Finding f = compare_finding(cr, p, trial, verify::kStageTiming);
      if (f.worst) {
        f.worst->got = f.worst->want = f.worst->abs_err = 0;  // not kept for GPU-compared runs
      }
      result.findings.push_back(std::move(f));
      return false;
    }
    return true;
  }

  void timing(const cudaDeviceProp& prop) {
    const auto& st = settings;
    Shape ts{st.timing_batch, st.timing_heads, st.timing_heads, st.timing_seqlen, st.timing_seqlen,
             Layout::BHSD, true, 2.0};
    ts.device_fill = true;
    announce("timing", ts.str());
    const int sets = std::max(1, st.input_sets);
    std::vector<std::unique_ptr<Problem>> problems;
    std::vector<std::unique_ptr<Outputs>> refs;
    for (int s = 0; s < sets; ++s) {
      problems.push_back(std::make_unique<Problem>(*spec, ts, rng));
    }
    // The kept fraction on the CPU while the GPU computes the references.
    auto kept_future = std::async(std::launch::async, [&] { return kept_fraction(*spec, *problems[0]); });
    for (int s = 0; s < sets; ++s) {
      refs.push_back(std::make_unique<Outputs>(*problems[s]));
      run_reference(*problems[s], *refs[s], /*download=*/false);
    }
    mark("inputs and references ready");
    Outputs got(*problems[0]);
    std::vector<KgAttentionArgs> args;
    for (int s = 0; s < sets; ++s) {
      args.push_back(gpu::make_args(*problems[s], got));
    }
    const size_t flush_bytes = std::max<size_t>(2 * size_t(std::max(prop.l2CacheSize, 0)), size_t{64} << 20);
    DeviceBuffer flush(flush_bytes);
    const int warmup = std::max(0, st.warmup), runs = std::max(1, st.runs);
    const size_t slots = size_t(warmup) + 2 * size_t(runs);  // + 2 for the refill check below
    DeviceBuffer counts_dev((slots + 2) * sizeof(gpu::DeviceCompareCounts));
    KG_CUDA(cudaMemsetAsync(counts_dev.data(), 0, counts_dev.bytes(), stream));
    auto* counts = reinterpret_cast<gpu::DeviceCompareCounts*>(counts_dev.data());
    const bool bf16 = spec->dtype == spec::DType::BF16;
    auto compare_into = [&](int set, size_t slot) {
      const Outputs& want = *refs[set];
      gpu::device_compare_out(got.out_alloc(), want.out_alloc(), got.out_guard, got.out_span, bf16,
                              static_cast<float>(tol.abs), static_cast<float>(tol.rel),
                              Outputs::poison_bits(spec->dtype), counts + slot, stream);
      gpu::device_compare_lse(got.lse_alloc(), want.lse_alloc(), got.lse_guard, got.lse_span,
                              static_cast<float>(tol.lse_abs), static_cast<float>(tol.lse_rel),
                              Outputs::lse_poison_bits(), counts + slot, stream);
    };
    auto call = [&](int set) {
      const cudaError_t e = candidate(&args[set], stream);
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        add(FindingKind::RejectedValidArgs, verify::kStageTiming,
            std::string("the entry point returned ") + cudaGetErrorName(e) + " for valid arguments", "timing",
            ts.str());
        return false;
      }
      return true;
    };

    // Warm-up, then event-timed runs: poison, flush L2, [start] candidate [end], compare.
    for (int w = 0; w < warmup; ++w) {
      got.poison_async(stream);
      KG_CUDA(cudaMemsetAsync(flush.data(), w & 0xFF, flush_bytes, stream));
      if (!call(w % sets)) {
        return;
      }
      compare_into(w % sets, size_t(w));
    }
    std::vector<cudaEvent_t> start(runs), end(runs);
    for (int r = 0; r < runs; ++r) {
      KG_CUDA(cudaEventCreate(&start[r]));
      KG_CUDA(cudaEventCreate(&end[r]));
    }
    for (int r = 0; r < runs; ++r) {
      const int set = (warmup + r) % sets;
      got.poison_async(stream);
      KG_CUDA(cudaMemsetAsync(flush.data(), r & 0xFF, flush_bytes, stream));
      KG_CUDA(cudaEventRecord(start[r], stream));
      if (!call(set)) {
        return;
      }
      KG_CUDA(cudaEventRecord(end[r], stream));
      compare_into(set, size_t(warmup) + r);
    }
    KG_CUDA(cudaGetLastError());
    KG_CUDA(cudaStreamSynchronize(stream));
    std::vector<double> ms(runs);
    for (int r = 0; r < runs; ++r) {
      float t = 0;
      KG_CUDA(cudaEventElapsedTime(&t, start[r], end[r]));
      ms[r] = t;
      cudaEventDestroy(start[r]);
      cudaEventDestroy(end[r]);
    }

    mark("warm-up and event-timed runs done");
    // Host-timed runs: the host clock around the call and a device-wide synchronization.
    std::vector<double> host_ms(runs);
    for (int r = 0; r < runs; ++r) {
      const int set = r % sets;
      got.poison_async(stream);
      KG_CUDA(cudaMemsetAsync(flush.data(), (r + 7) & 0xFF, flush_bytes, stream));
      KG_CUDA(cudaStreamSynchronize(stream));
      const auto t0 = std::chrono::steady_clock::now();
      if (!call(set)) {
        return;
      }
      KG_CUDA(cudaDeviceSynchronize());
      host_ms[r] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      compare_into(set, size_t(warmup) + runs + r);
    }
    KG_CUDA(cudaGetLastError());
    KG_CUDA(cudaStreamSynchronize(stream));
    std::vector<gpu::DeviceCompareCounts> c(slots);
    KG_CUDA(cudaMemcpy(c.data(), counts_dev.data(), slots * sizeof(gpu::DeviceCompareCounts), cudaMemcpyDeviceToHost));

    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    };
    verify::TimingResult& t = result.timing;
    t.shape = ts.str();
    t.warmup = warmup, t.runs = runs, t.input_sets = sets;
    t.median_ms = median(ms);
    t.min_ms = *std::min_element(ms.begin(), ms.end());
    t.max_ms = *std::max_element(ms.begin(), ms.end());
    t.host_median_ms = median(host_ms);
    t.flush_bytes = static_cast<double>(flush_bytes);
    mark("host-timed runs done");
    t.kept_fraction = kept_future.get();
    mark("kept fraction sampled");
    const double B = ts.batch, H = ts.heads_q, S = ts.seqlen_q, D = spec->head_dim;
    t.flops = 4.0 * B * H * S * S * D * t.kept_fraction;
    t.bytes = 4.0 * B * H * S * D * 2;  // q, k, v, out (MHA: all the same size), 2-byte elements
    t.floor_ms = 1e3 * std::max(t.bytes / (st.peak_tbps * 1e12), t.flops * kFloorSafety / (st.peak_tflops * 1e12));
    t.tflops = t.median_ms > 0 ? t.flops / (t.median_ms * 1e-3) / 1e12 : 0;
    t.measured = true;

    // Outputs of every run. Event-timed runs read back on our stream; host-timed ones after a
    // device-wide sync: failing only the former means the work ran on another stream.
    const bool warm_ok = timed_counts_ok(c, 0, warmup, *problems[0], "warm-up", false);
    const bool event_ok = timed_counts_ok(c, warmup, runs, *problems[0], "event-timed", false);
    const bool host_ok = timed_counts_ok(c, size_t(warmup) + runs, runs, *problems[0], "host-timed", false);
    if ((!warm_ok || !event_ok) && host_ok) {
      add(FindingKind::WrongStream, verify::kStageTiming,
          "timed runs left the output incomplete when the given stream finished, but complete after a device-wide "
          "synchronization: the kernel ran on another stream and returned early",
          "timing", ts.str());
    } else if (!warm_ok || !event_ok || !host_ok) {
      if (timed_counts_ok(c, 0, warmup, *problems[0], "warm-up", true) &&
          timed_counts_ok(c, warmup, runs, *problems[0], "event-timed", true)) {
        timed_counts_ok(c, size_t(warmup) + runs, runs, *problems[0], "host-timed", true);
      }
    }
    std::ostringstream os;
    os.precision(4);
    if (t.median_ms < t.floor_ms) {
      os << "median " << t.median_ms << " ms is under the physical floor " << t.floor_ms << " ms (bytes "
         << t.bytes / 1e6 << " MB at " << st.peak_tbps << " TB/s; " << kFloorSafety << " x " << t.flops / 1e9
         << " GFLOP at " << st.peak_tflops << " TFLOP/s): the kernel skips work or the timing misses it";
      add(FindingKind::BelowPhysicalFloor, verify::kStageTiming, os.str(), "timing", ts.str());
    }
    // Host time covers launch and synchronization latency (tens of microseconds) on top of the kernel.
    if (t.host_median_ms > 2 * t.median_ms + 0.05 || t.median_ms > 1.25 * t.host_median_ms + 0.02) {
      std::ostringstream m;
      m.precision(4);
      m << "CUDA events on the given stream measured " << t.median_ms << " ms per run, the host clock around a "
        << "device-wide synchronization " << t.host_median_ms << " ms: the work is not where the events are "
        << "(another stream?)";
      add(FindingKind::TimingMismatch, verify::kStageTiming, m.str(), "timing", ts.str());
    }

    // The timed shape once more, in the same buffers with new contents: a kernel that memoises
    // results by pointer (or shape) returns what the timed runs computed, and fails here. Compared
    // on the GPU like the timed runs, after synchronizing only our stream; when that fails, once
    // more after a device-wide synchronization (work on another stream: wrong_stream).
    announce("timing.refill", ts.str());
    Problem& rp = *problems[0];
    rp.refill(rng);
    run_reference(rp, *refs[0], /*download=*/false);
    got.poison_async(stream);
    if (!call(0)) {
      return;
    }
    compare_into(0, slots);
    KG_CUDA(cudaGetLastError());
    KG_CUDA(cudaStreamSynchronize(stream));
    std::vector<gpu::DeviceCompareCounts> rc(2);
    KG_CUDA(cudaMemcpy(rc.data(), counts + slots, sizeof(gpu::DeviceCompareCounts), cudaMemcpyDeviceToHost));
    bool ok = timed_counts_ok(rc, 0, 1, rp, "refill", false);
    if (!ok) {
      KG_CUDA(cudaDeviceSynchronize());
      compare_into(0, slots + 1);
      KG_CUDA(cudaStreamSynchronize(stream));
      KG_CUDA(cudaMemcpy(&rc[1], counts + slots + 1, sizeof(gpu::DeviceCompareCounts), cudaMemcpyDeviceToHost));
      if (timed_counts_ok(rc, 1, 1, rp, "refill", false)) {
        add(FindingKind::WrongStream, verify::kStageTiming,
            "the output was incomplete when the stream passed to the entry point finished, and complete after a "
            "device-wide synchronization: the kernel ran on another stream and returned early",
            "timing.refill", ts.str());
      } else {
        timed_counts_ok(rc, 1, 1, rp, "refill", true, "timing.refill");
      }
    }
    const gpu::DeviceCompareCounts& last = rc[ok ? 0 : 1];
    verify::TrialSummary s{"timing.refill", ts.str(), ok, float_from_bits(last.max_err_bits),
                           float_from_bits(last.worst_key >> 32), float_from_bits(last.lse_max_err_bits)};
    std::string what;
    if (!rp.inputs_unchanged(what, stream)) {
      s.ok = false;
      add(FindingKind::InputModified, verify::kStageTiming, what + ": a kernel must not write to its inputs",
          "timing.refill", ts.str());
    }
    s.seconds = seconds_since(g_trial_start);
    result.trials.push_back(s);
  }
};

verify::DeviceInfo device_info(const cudaDeviceProp& prop) {
  verify::DeviceInfo d;
  d.name = prop.name;
  d.arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
  d.sms = prop.multiProcessorCount;
  d.l2_bytes = prop.l2CacheSize;
  cudaDriverGetVersion(&d.driver);
  cudaRuntimeGetVersion(&d.runtime);
  return d;
}

bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

FindingKind error_kind(const std::string& message) {
  for (const char* e : {"cudaErrorIllegalAddress", "cudaErrorMisalignedAddress", "cudaErrorInvalidAddressSpace",
                        "cudaErrorInvalidPc", "cudaErrorHardwareStackError"}) {
    if (message.find(e) != std::string::npos) {
      return FindingKind::IllegalAddress;
    }
  }
  return FindingKind::CudaError;
}

int usage(const std::string& msg) {
  std::cerr << "kg_verify_runner: " << msg
            << "\nusage: kg_verify_runner --probe | --request FILE --result FILE\n"
               "  (started by the verifier; see docs/verifier.md, \"Runner protocol\")\n";
  return verify::kRunnerExitBadRequest;
}

int run(int argc, char** argv) {
  std::string request_path, result_path;
  bool probe = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--probe") {
      probe = true;
    } else if ((a == "--request" || a == "--result") && i + 1 < argc) {
      (a == "--request" ? request_path : result_path) = argv[++i];
    } else {
      return usage("unknown argument " + a);
    }
  }
  if (probe) {
    if (!have_device()) {
      std::cout << "{\"device\": null}\n";
      return verify::kRunnerExitNoDevice;
    }
    cudaDeviceProp prop;
    KG_CUDA(cudaGetDeviceProperties(&prop, 0));
    std::cout << nlohmann::json{{"device", device_info(prop)}}.dump() << "\n";
    return 0;
  }
  if (request_path.empty() || result_path.empty()) {
    return usage("--request and --result are required");
  }
  auto text = read_file(request_path);
  if (!text) {
    return usage(text.error().message);
  }
  auto req = verify::parse_request(*text);
  if (!req) {
    return usage(req.error().message);
  }
  auto parsed = spec::parse_spec(req->spec_yaml, req->spec_name + ".yaml");
  if (!parsed) {
    return usage("the request's spec does not parse: " + parsed.error().front().str());
  }
  const spec::Spec spec = std::move(*parsed);
  if (!have_device()) {
    std::cerr << "kg_verify_runner: no CUDA device\n";
    return verify::kRunnerExitNoDevice;
  }

  Runner r;
  r.spec = &spec;
  r.settings = req->settings;
  r.rng.seed(req->seed);
  r.tol = gpu::default_tolerance(spec.dtype);
  r.result.nonce = req->nonce;
  auto write_result = [&]() -> int {
    auto w = write_file_atomic(result_path, verify::result_to_json(r.result));
    if (!w) {
      std::cerr << "kg_verify_runner: " << w.error().message << "\n";
      return 3;
    }
    return 0;
  };

  cudaDeviceProp prop;
  KG_CUDA(cudaGetDeviceProperties(&prop, 0));
  r.result.device = device_info(prop);
  KG_CUDA(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));

  // The reference first: its initialisers are trusted.
  void* ref_lib = dlopen(req->reference_library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (ref_lib == nullptr) {
    std::cerr << "kg_verify_runner: cannot load the reference kernel: " << dlerror() << "\n";
    return 3;
  }
  r.reference = reinterpret_cast<ForwardFn>(dlsym(ref_lib, req->reference_symbol.c_str()));
  if (r.reference == nullptr) {
    std::cerr << "kg_verify_runner: the reference library lacks " << req->reference_symbol << "\n";
    return 3;
  }
  announce("load", req->candidate_library);
  void* lib = dlopen(req->candidate_library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    r.add(FindingKind::LoadError, verify::kStageRun, std::string("dlopen failed: ") + dlerror());
    return write_result();
  }
  r.candidate = reinterpret_cast<ForwardFn>(dlsym(lib, req->candidate_symbol.c_str()));
  if (r.candidate == nullptr) {
    r.add(FindingKind::MissingEntry, verify::kStageRun, "the shared object does not export " + req->candidate_symbol);
    return write_result();
  }

  r.result.startup_seconds = seconds_since(g_start);
  try {
    const Clock::time_point c0 = Clock::now();
    r.correctness();
    r.result.correctness_seconds = seconds_since(c0);
    if (!r.rejected() && r.settings.timing) {
      const Clock::time_point t0 = Clock::now();
      r.timing(prop);
      r.result.timing_seconds = seconds_since(t0);
    }
  } catch (const gpu::CudaError& e) {
    // A CUDA error surfacing in our calls while the candidate's work is in flight is the
    // candidate's: faults inside its kernels are reported at the next synchronization.
    const std::string msg = e.what();
    r.add(error_kind(msg), g_trial.rfind("timing", 0) == 0 ? verify::kStageTiming : verify::kStageCorrectness,
          "CUDA error while running the candidate: " + msg, g_trial);
  }
  std::cerr << "kg_verify_runner: done, " << r.result.findings.size() << " finding(s)" << at_now() << "\n";
  return write_result();
}

}  // namespace
}  // namespace kg::verify_runner

int main(int argc, char** argv) {
  try {
    return kg::verify_runner::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kg_verify_runner: " << e.what() << "\n";
    return 3;
  }
}
