// kg_verify_runner — the verifier's judge (docs/design.md §4, docs/verifier.md). Checks and times
// a candidate kernel against the fp32 reference kernel of the same spec, and writes the verdict's
// findings.
//
//   kg_verify_runner --request FILE|- --result FILE|-   (the verifier passes both as pipes: "-")
//   kg_verify_runner --probe                             device or not
//
// The protocol (request, result, exit codes) is core/verify/runner_protocol.h. The candidate never
// runs in this process: kg_candidate_host loads it in its own sandboxed process (host_link.h,
// core/verify/sandbox.h) and calls it on buffers of a shared arena (shared_arena.h) that this
// process allocated and exported. Here alone are the inputs' generation, the reference outputs
// (memory that cannot be shared), every comparison, the clock and the result; nothing the host says
// about itself or the outputs is believed:
//   - every trial draws fresh inputs; one trial refills the same buffers (same pointers) with new
//     values; one shape is drawn from the request's seed, which the candidate cannot know;
//   - out and lse are poisoned (NaN) before every run, with 4 KiB guard zones around them;
//   - the host calls the candidate on a non-blocking stream of its own and answers when that
//     stream is done; outputs are read then, again after a device-wide synchronization of the
//     host's context when they are wrong (wrong_stream), and once more for every trial after the
//     host's last synchronization and after the host is dead (late_write);
//   - inputs are checksummed before and after; every element and every row's error norm is
//     compared; NaN/Inf never pass;
//   - timing: fresh q, k, v for every run, the L2 flushed before each, every run compared in full,
//     this process's clock around each run cross-checked with the host's event times, and a floor
//     at the peak rates of the GPU that ran it.
// Progress goes to stderr, one "kg_verify_runner: trial NAME: SHAPE" line per trial.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <fcntl.h>

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
#include "host_link.h"
#include "shared_arena.h"
#include "spec/interpret.h"
#include "spec/spec.h"
#include "util/file.h"
#include "util/hash.h"
#include "verify/timing_check.h"
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

// When the reference object cannot count the mask's kept pairs exactly, the kept fraction is
// estimated from sampled rows and the FLOP floor counts only kSampledFloorSafety of it, so that it
// stays a lower bound for a mask whose estimate is off by up to 2x.
constexpr double kSampledFloorSafety = 0.5;

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

// A trial's candidate output, kept to the end: after the host's last synchronization and after its
// death the bits must be the ones that were checked (else late_write).
struct KeptOutput {
  std::string trial, shape;
  std::unique_ptr<Problem> problem;
  std::unique_ptr<Outputs> got;
  std::vector<uint16_t> out_bits;
  std::vector<float> lse_bits;
};

struct Judge {
  const spec::Spec* spec = nullptr;
  judge::HostLink* host = nullptr;
  gpu::SharedArena* arena = nullptr;
  ForwardFn reference = nullptr;
  // kg_<name>_reference_count_kept when the reference object has it: exact kept pairs.
  cudaError_t (*count_kept)(const KgAttentionArgs*, unsigned long long*, cudaStream_t) = nullptr;
  cudaStream_t stream = nullptr;
  std::mt19937_64 rng;
  verify::RunnerSettings settings;
  verify::RunnerResult result;
  Tolerance tol;
  std::vector<KeptOutput> kept;

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

  // The host's view of a launch: arena offsets for every pointer.
  host::RunArgs run_args(const Problem& p, Outputs& o) const {
    const KgAttentionArgs a = gpu::make_args(p, o);
    host::RunArgs r;
    r.q = arena->offset_of(a.q), r.k = arena->offset_of(a.k), r.v = arena->offset_of(a.v);
    r.out = arena->offset_of(a.out);
    r.lse = a.lse ? arena->offset_of(a.lse) : host::kNull;
    r.head_dim = a.head_dim;
    r.batch = a.batch, r.heads_q = a.heads_q, r.heads_kv = a.heads_kv, r.seqlen_q = a.seqlen_q;
    r.seqlen_kv = a.seqlen_kv;
    for (int i = 0; i < 3; ++i) {
      r.q_stride[i] = a.q_stride[i], r.k_stride[i] = a.k_stride[i], r.v_stride[i] = a.v_stride[i];
      r.out_stride[i] = a.out_stride[i];
    }
    r.softmax_scale = a.softmax_scale;
    if (p.params.size() > size_t(host::kMaxParams) || p.tensor_dev_ptrs.size() > size_t(host::kMaxTensors)) {
      throw std::runtime_error("the spec has more params or tensors than the host protocol carries");
    }
    r.n_params = static_cast<uint32_t>(p.params.size());
    std::copy(p.params.begin(), p.params.end(), r.params);
    r.n_tensors = static_cast<uint32_t>(p.tensor_dev_ptrs.size());
    for (size_t i = 0; i < p.tensor_dev_ptrs.size(); ++i) {
      r.tensors[i] = arena->offset_of(p.tensor_dev_ptrs[i]);
    }
    return r;
  }

  // Findings for an answer of the host that is not a clean run: the host failed (died, hung,
  // malformed answer), the entry point refused valid arguments, or a CUDA error surfaced.
  bool reply_ok(const judge::Reply& r, const std::string& trial, const std::string& shape, const char* stage) {
    if (!r.ok) {
      add(r.kind, verify::kStageRun, r.message, trial, shape);  // the host process itself failed
      return false;
    }
    if (r.done.entry_status != cudaSuccess) {
      const auto e = static_cast<cudaError_t>(r.done.entry_status);
      add(FindingKind::RejectedValidArgs, stage,
          std::string("the entry point returned ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
              ") for valid arguments",
          trial, shape);
      return false;
    }
    if (r.done.sync_status != cudaSuccess) {
      const auto e = static_cast<cudaError_t>(r.done.sync_status);
      const std::string name = cudaGetErrorName(e);
      add(error_kind(name), stage,
          "CUDA error while running the candidate: " + name + " (" + cudaGetErrorString(e) + ")", trial, shape);
      return false;
    }
    return true;
  }

  static FindingKind error_kind(const std::string& message) {
    for (const char* e : {"cudaErrorIllegalAddress", "cudaErrorMisalignedAddress", "cudaErrorInvalidAddressSpace",
                          "cudaErrorInvalidPc", "cudaErrorHardwareStackError", "cudaErrorIllegalInstruction"}) {
      if (message.find(e) != std::string::npos) {
        return FindingKind::IllegalAddress;
      }
    }
    return FindingKind::CudaError;
  }

  // Has the host call the candidate into `got` (poisoned first), then reads the output back.
  bool run_candidate(const Problem& p, Outputs& got, const std::string& trial, const char* stage) {
    got.poison(stream);
    const judge::Reply r = host->run(run_args(p, got));
    if (!reply_ok(r, trial, p.shape.str(), stage)) {
      return false;
    }
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
    } else if (r.lse_bad) {
      f.kind = FindingKind::WrongLse;
      hint = std::to_string(r.lse_bad) + " LSE values differ from the reference (tolerance abs " +
             std::to_string(tol.lse_abs) + " + rel " + std::to_string(tol.lse_rel) + "; -inf exactly where the "
             "reference has -inf)";
    } else {
      f.kind = FindingKind::RowError;
      std::ostringstream os;
      os << r.rows_bad << " rows have an error norm over the row bound (rms error <= " << tol.row_rel
         << " x the row's rms, floor " << tol.row_floor << "), though every element is within its own "
         << "tolerance: a systematic error such as coarsely quantised probabilities or a low-precision accumulator";
      hint = os.str();
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

  // Keeps a checked output (and its problem, which owns the inputs) for the late-write checks.
  void keep(std::unique_ptr<Problem> p, std::unique_ptr<Outputs> got, const std::string& trial) {
    KeptOutput k{trial, p->shape.str(), nullptr, nullptr, got->out_all, got->lse_all};
    k.problem = std::move(p);
    k.got = std::move(got);
    kept.push_back(std::move(k));
  }

  // One correctness comparison of the candidate's `got` (already downloaded) with `ref`.
  bool check(const Problem& p, Outputs& ref, Outputs& got, const std::string& trial) {
    const gpu::Expected want = gpu::expected_from(p, ref);
    CompareReport r = gpu::compare(p, got, want, tol, "reference");
    verify::TrialSummary t{trial, p.shape.str(), r.ok, r.worst_err, r.worst_ratio, r.lse_worst_err};
    t.row_worst_ratio = r.row_worst_ratio;
    t.seconds = seconds_since(g_trial_start);
    if (!r.ok) {
      // Did the work finish later, outside the stream the candidate was given? Synchronize the
      // host's whole context and look again.
      const judge::Reply s = host->sync();
      if (!reply_ok(s, trial, p.shape.str(), verify::kStageCorrectness)) {
        result.trials.push_back(t);
        return false;
      }
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
      auto p = std::make_unique<Problem>(*spec, ns.shape, rng, arena);
      auto got = std::make_unique<Outputs>(*p, arena);
      Outputs ref(*p);
      run_reference(*p, ref);
      if (!run_candidate(*p, *got, ns.name, verify::kStageCorrectness)) {
        return;
      }
      if (!check(*p, ref, *got, ns.name)) {
        return;
      }
      if (ns.name == "ragged") {  // a second run on the same inputs must give the same bits
        Outputs again(*p, arena);
        if (run_candidate(*p, again, ns.name, verify::kStageCorrectness) && !gpu::identical(*got, again)) {
          add(FindingKind::Nondeterministic, verify::kStageCorrectness,
              "two runs on the same inputs gave different bits (a race, an uninitialised read, or atomics in "
              "a varying order)",
              ns.name, ns.shape.str(), /*warning=*/true);
        }
        if (rejected()) {
          return;
        }
      }
      keep(std::move(p), std::move(got), ns.name);
    }

    // Same buffers, new contents: a kernel that caches results by pointer or shape fails here.
    const Shape refill_shape{2, 4, 2, 130, 130, Layout::BHSD, true, 2.0};
    announce("refill", refill_shape.str());
    auto p = std::make_unique<Problem>(*spec, refill_shape, rng, arena);
    auto got = std::make_unique<Outputs>(*p, arena);
    Outputs ref(*p);
    for (int round = 1; round <= 3; ++round) {
      const std::string name = "refill." + std::to_string(round);
      if (round > 1) {
        announce(name, refill_shape.str());
        p->refill(rng);
      }
      run_reference(*p, ref);
      if (!run_candidate(*p, *got, name, verify::kStageCorrectness) || !check(*p, ref, *got, name)) {
        return;
      }
    }
    keep(std::move(p), std::move(got), "refill.3");

    // Long rows: catches half-precision accumulation (v has mean 1, so outputs are O(1) and an
    // accumulator that stops absorbing small terms is far off) and, through the row norms,
    // coarsely quantised probabilities.
    const int L = settings.long_seqlen;
    if (L > 0) {
      Shape long_shape{1, 2, 1, L, L, Layout::BHSD, true, 2.0};
      long_shape.v_mean = 1.0;
      long_shape.device_fill = true;
      announce("long", long_shape.str());
      auto lp = std::make_unique<Problem>(*spec, long_shape, rng, arena);
      auto lgot = std::make_unique<Outputs>(*lp, arena);
      Outputs lref(*lp);
      run_reference(*lp, lref);
      if (!run_candidate(*lp, *lgot, "long", verify::kStageCorrectness) || !check(*lp, lref, *lgot, "long")) {
        return;
      }
      keep(std::move(lp), std::move(lgot), "long");
      // Long rows of zero-mean values: outputs O(1/sqrt(L)), where only the row norms see a
      // systematic error.
      Shape zero_mean = long_shape;
      zero_mean.v_mean = 0.0;
      announce("long.zero_mean", zero_mean.str());
      auto zp = std::make_unique<Problem>(*spec, zero_mean, rng, arena);
      auto zgot = std::make_unique<Outputs>(*zp, arena);
      Outputs zref(*zp);
      run_reference(*zp, zref);
      if (run_candidate(*zp, *zgot, "long.zero_mean", verify::kStageCorrectness) &&
          check(*zp, zref, *zgot, "long.zero_mean")) {
        keep(std::move(zp), std::move(zgot), "long.zero_mean");
      }
    }
  }

  // Re-reads every kept output: any bit that changed since its check is a late write. `when`
  // says after what ("the host's device-wide synchronization", "the host's death").
  void late_write_check(const std::string& when) {
    for (KeptOutput& k : kept) {
      k.got->download(stream);
      size_t changed = 0;
      for (size_t j = 0; j < k.out_bits.size() && j < k.got->out_all.size(); ++j) {
        changed += k.out_bits[j] != k.got->out_all[j];
      }
      size_t lse_changed = 0;
      for (size_t j = 0; j < k.lse_bits.size() && j < k.got->lse_all.size(); ++j) {
        lse_changed += std::memcmp(&k.lse_bits[j], &k.got->lse_all[j], 4) != 0;
      }
      if (changed || lse_changed) {
        add(FindingKind::LateWrite, verify::kStageCorrectness,
            std::to_string(changed) + " out and " + std::to_string(lse_changed) + " lse elements of trial " + k.trial +
                " changed after they were checked, seen after " + when +
                ": the kernel kept working after the stream it was given had finished (another stream, a "
                "thread, or a kernel that outlives its launch)",
            k.trial, k.shape);
        return;
      }
    }
  }

  // Fraction of (q, kv) pairs the mask keeps at `p`'s shape, from sampled rows (CPU, interpreter):
  // the fallback when the reference object has no exact count.
  static double sampled_kept_fraction(const spec::Spec& s, const Problem& p) {
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
    std::vector<std::array<int, 3>> sampled;
    for (int b = 0; b < p.shape.batch; ++b) {
      for (int h : {0, p.shape.heads_q - 1}) {
        for (int r = 0; r <= rows; ++r) {
          sampled.push_back({b, h, r == rows ? Sq - 1 : static_cast<int>((int64_t(r) * Sq) / rows)});
        }
      }
    }
    const size_t n_threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
    std::vector<uint64_t> kept_n(n_threads, 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < n_threads; ++t) {
      threads.emplace_back([&, t] {
        for (size_t k = t; k < sampled.size(); k += n_threads) {
          for (int j = 0; j < Skv; ++j) {
            kept_n[t] += spec::eval_mask_mod(s, rt, sampled[k][0], sampled[k][1], sampled[k][2], j);
          }
        }
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
    const uint64_t total = uint64_t(sampled.size()) * uint64_t(std::max(Skv, 0));
    return total ? double(std::accumulate(kept_n.begin(), kept_n.end(), uint64_t{0})) / double(total) : 1.0;
  }

  // The comparison counters of one timed run as a finding (stage timing).
  void timed_finding(const gpu::DeviceCompareCounts& c, const Problem& p, const std::string& label,
                     const std::string& trial) {
    CompareReport cr;
    cr.ok = false;
    cr.bad = c.bad, cr.unwritten = c.unwritten, cr.nonfinite = c.nonfinite, cr.clobbered = c.clobbered;
    cr.lse_bad = c.lse_bad, cr.lse_clobbered = c.lse_clobbered, cr.rows_bad = c.rows_bad;
    const int D = p.head_dim, S = p.shape.seqlen_q, H = p.shape.heads_q;
    const bool rows_only = c.bad == 0 && c.clobbered == 0 && c.lse_bad == 0 && c.lse_clobbered == 0;
    const uint64_t idx = (rows_only ? c.row_worst_key : c.worst_key) & 0xFFFFFFFFu;
    const float ratio = float_from_bits((rows_only ? c.row_worst_key : c.worst_key) >> 32);
    const uint64_t row = rows_only ? idx : idx / D;
    cr.worst_b = static_cast<int>(row / (uint64_t(H) * S));
    cr.worst_h = static_cast<int>(row / S % H);
    cr.worst_i = static_cast<int>(row % S);
    cr.worst_d = rows_only ? 0 : static_cast<int>(idx % D);
    std::ostringstream os;
    os << "    " << label << ": " << c.bad << " out elements wrong (" << c.unwritten << " never written, "
       << c.nonfinite << " other NaN/Inf), " << c.clobbered << " guard elements written, " << c.lse_bad
       << " lse values wrong, " << c.rows_bad << " rows over the row bound; worst at (b=" << cr.worst_b
       << ",h=" << cr.worst_h << ",i=" << cr.worst_i << (rows_only ? "" : ",d=" + std::to_string(cr.worst_d))
       << ") with error/allowed " << ratio << "\n";
    cr.detail = os.str();
    Finding f = compare_finding(cr, p, trial, verify::kStageTiming);
    if (f.worst) {
      f.worst->got = f.worst->want = f.worst->abs_err = 0;  // not kept for GPU-compared runs
    }
    result.findings.push_back(std::move(f));
  }

  static bool counts_ok(const gpu::DeviceCompareCounts& c) {
    return c.bad == 0 && c.clobbered == 0 && c.lse_bad == 0 && c.lse_clobbered == 0 && c.rows_bad == 0;
  }

  void timing(const cudaDeviceProp& prop) {
    const auto& st = settings;
    Shape ts{st.timing_batch, st.timing_heads, st.timing_heads, st.timing_seqlen, st.timing_seqlen,
             Layout::BHSD, true, 2.0};
    ts.device_fill = true;
    announce("timing", ts.str());
    auto problem = std::make_unique<Problem>(*spec, ts, rng, arena);
    Problem& p = *problem;
    auto got_owner = std::make_unique<Outputs>(p, arena);
    Outputs& got = *got_owner;
    Outputs ref(p);
    verify::TimingResult& t = result.timing;

    // Kept pairs: exact on the GPU when the reference object counts them, else sampled on the CPU
    // (in parallel with the runs).
    std::future<double> sampled;
    if (count_kept) {
      DeviceBuffer n(sizeof(unsigned long long));
      KG_CUDA(cudaMemsetAsync(n.data(), 0, sizeof(unsigned long long), stream));
      Outputs scratch(p);
      const KgAttentionArgs a = gpu::make_args(p, scratch);
      KG_CUDA(count_kept(&a, reinterpret_cast<unsigned long long*>(n.data()), stream));
      unsigned long long k = 0;
      KG_CUDA(cudaMemcpyAsync(&k, n.data(), sizeof k, cudaMemcpyDeviceToHost, stream));
      KG_CUDA(cudaStreamSynchronize(stream));
      const double all = double(ts.batch) * ts.heads_q * double(ts.seqlen_q) * ts.seqlen_kv;
      t.kept_fraction = all > 0 ? double(k) / all : 1.0;
      t.kept_exact = true;
    } else {
      sampled = std::async(std::launch::async, [&] { return sampled_kept_fraction(*spec, p); });
    }
    const size_t flush_bytes = std::max<size_t>(2 * size_t(std::max(prop.l2CacheSize, 0)), size_t{64} << 20);
    DeviceBuffer flush(flush_bytes);
    const int warmup = std::max(0, st.warmup), runs = std::max(1, st.runs);
    DeviceBuffer counts_dev(2 * sizeof(gpu::DeviceCompareCounts));
    auto* counts = reinterpret_cast<gpu::DeviceCompareCounts*>(counts_dev.data());
    const bool bf16 = spec->dtype == spec::DType::BF16;
    const size_t rows = size_t(ts.batch) * ts.heads_q * ts.seqlen_q;
    // What each run is compared with: `want` (the reference's output transformed like the run's
    // inputs) and the reference's LSE.
    Outputs want(p);
    // Compares `got` with `want` on the GPU and returns the counters.
    auto compare_now = [&](int slot) {
      KG_CUDA(cudaMemsetAsync(counts + slot, 0, sizeof(gpu::DeviceCompareCounts), stream));
      gpu::device_compare_out(got.out_alloc(), want.out_alloc(), got.out_guard, got.out_span, bf16,
                              static_cast<float>(tol.abs), static_cast<float>(tol.rel),
                              Outputs::poison_bits(spec->dtype), counts + slot, stream);
      gpu::device_compare_lse(got.lse_alloc(), ref.lse_alloc(), got.lse_guard, got.lse_span,
                              static_cast<float>(tol.lse_abs), static_cast<float>(tol.lse_rel),
                              Outputs::lse_poison_bits(), counts + slot, stream);
      gpu::device_compare_rows(got.out_alloc(), want.out_alloc(), got.out_guard, rows, spec->head_dim, bf16,
                               static_cast<float>(tol.row_rel), static_cast<float>(tol.row_floor), counts + slot,
                               stream);
      KG_CUDA(cudaGetLastError());
      gpu::DeviceCompareCounts c{};
      KG_CUDA(cudaMemcpyAsync(&c, counts + slot, sizeof c, cudaMemcpyDeviceToHost, stream));
      KG_CUDA(cudaStreamSynchronize(stream));
      return c;
    };
    // The inputs as filled (private copies) and the reference's output for them: every timed run
    // transforms these into fresh q, k, v contents whose exact reference output is known
    // (device_ops.h, device_transform), so the reference runs once, not once per run.
    const int D = spec->head_dim;
    const size_t nq = size_t(ts.batch) * ts.heads_q * ts.seqlen_q * D;
    const size_t nkv = size_t(ts.batch) * ts.heads_kv * ts.seqlen_kv * D;
    DeviceBuffer base_q(nq * 2), base_k(nkv * 2), base_v(nkv * 2);
    auto* q_dev = static_cast<uint16_t*>(const_cast<void*>(p.q_dev));
    auto* k_dev = static_cast<uint16_t*>(const_cast<void*>(p.k_dev));
    auto* v_dev = static_cast<uint16_t*>(const_cast<void*>(p.v_dev));
    // (Re)takes the base from the current inputs and runs the reference on them.
    auto take_base = [&] {
      KG_CUDA(cudaMemcpyAsync(base_q.data(), q_dev, nq * 2, cudaMemcpyDeviceToDevice, stream));
      KG_CUDA(cudaMemcpyAsync(base_k.data(), k_dev, nkv * 2, cudaMemcpyDeviceToDevice, stream));
      KG_CUDA(cudaMemcpyAsync(base_v.data(), v_dev, nkv * 2, cudaMemcpyDeviceToDevice, stream));
      run_reference(p, ref, /*download=*/false);
    };
    // Fresh contents: random sign flips of q's and k's dimensions (the same ones), of v's, and a
    // doubling of v half the time; `want` follows exactly. identity: the base itself.
    auto transform = [&](bool identity) {
      gpu::SignMask qk{}, vs{};
      for (int w = 0; w < 8; ++w) {
        qk.words[w] = identity ? 0u : static_cast<uint32_t>(rng());
        vs.words[w] = identity ? 0u : static_cast<uint32_t>(rng());
      }
      const int e = identity ? 0 : static_cast<int>(rng() & 1);
      const auto* bq = reinterpret_cast<const uint16_t*>(base_q.data());
      const auto* bk = reinterpret_cast<const uint16_t*>(base_k.data());
      const auto* bv = reinterpret_cast<const uint16_t*>(base_v.data());
      gpu::device_transform(bq, q_dev, nq, D, qk, 0, bf16, stream);
      gpu::device_transform(bk, k_dev, nkv, D, qk, 0, bf16, stream);
      gpu::device_transform(bv, v_dev, nkv, D, vs, e, bf16, stream);
      gpu::device_transform(reinterpret_cast<const uint16_t*>(ref.out_dev), static_cast<uint16_t*>(want.out_dev),
                            got.out_span, D, vs, e, bf16, stream);
      KG_CUDA(cudaGetLastError());
    };
    // Everything a run does before the call: poison, L2 flush, and wait for it all.
    auto prepare = [&] {
      got.poison_async(stream);
      KG_CUDA(cudaMemsetAsync(flush.data(), static_cast<int>(rng() & 0xFF), flush_bytes, stream));
      KG_CUDA(cudaStreamSynchronize(stream));
    };
    // One run as the timing loop does it. False (with a finding) when the host failed or the
    // output is wrong.
    auto one_run = [&](bool identity, const std::string& label, const std::string& trial, judge::Reply& reply) {
      transform(identity);
      prepare();
      reply = host->run(run_args(p, got));
      if (!reply_ok(reply, trial, ts.str(), verify::kStageTiming)) {
        return false;
      }
      const gpu::DeviceCompareCounts c = compare_now(0);
      if (counts_ok(c)) {
        return true;
      }
      const judge::Reply s = host->sync();
      if (!reply_ok(s, trial, ts.str(), verify::kStageTiming)) {
        return false;
      }
      const gpu::DeviceCompareCounts late = compare_now(1);
      if (counts_ok(late)) {
        add(FindingKind::WrongStream, verify::kStageTiming,
            label + ": the output was incomplete when the stream passed to the entry point finished, and complete "
                    "after a device-wide synchronization: the kernel ran on another stream and returned early",
            trial, ts.str());
      } else {
        timed_finding(late, p, label, trial);
      }
      return false;
    };

    // Warm-up, then timed runs, each on fresh contents and compared in full, each paired (in a
    // random order) with a null run prepared the same way: the judge's clock on the null run is
    // what it adds to a run (the message round trip, the host's wake-ups, the GPU switching from
    // the judge's context to the host's).
    take_base();
    mark("inputs and reference ready");
    std::vector<double> ms, judge_ms, null_ms;
    for (int r = 0; r < warmup + runs; ++r) {
      judge::Reply reply;
      const bool warm = r < warmup;
      const std::string label =
          warm ? "warm-up run " + std::to_string(r + 1) : "timed run " + std::to_string(r - warmup + 1) + " of " +
                                                             std::to_string(runs);
      const bool null_first = (rng() & 1) != 0;
      auto null_run = [&] {
        prepare();
        const judge::Reply n = host->run(run_args(p, got), /*null_run=*/true);
        if (!reply_ok(n, "timing", ts.str(), verify::kStageTiming)) {
          return false;
        }
        if (!warm) {
          null_ms.push_back(n.judge_ms);
        }
        return true;
      };
      if ((null_first && !null_run()) || !one_run(false, label, "timing", reply) || (!null_first && !null_run())) {
        return;
      }
      if (!warm) {
        ms.push_back(reply.done.event_ms);
        judge_ms.push_back(reply.judge_ms);
      }
    }
    mark("warm-up and timed runs done");

    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    };
    t.shape = ts.str();
    t.warmup = warmup, t.runs = runs, t.input_sets = warmup + runs;  // fresh contents every run
    // The verdict's time is the judge's: its clock around each run less the null runs' lower
    // quartile (verify::null_roundtrip_ms). The host's events are the candidate's word and only
    // cross-check it.
    t.host_median_ms = median(judge_ms);
    t.roundtrip_ms = verify::null_roundtrip_ms(null_ms);
    std::vector<double> judged;
    for (double j : judge_ms) {
      judged.push_back(j - t.roundtrip_ms);
    }
    t.median_ms = median(judged);
    t.min_ms = *std::min_element(judged.begin(), judged.end());
    t.max_ms = *std::max_element(judged.begin(), judged.end());
    t.event_median_ms = median(ms);
    t.flush_bytes = static_cast<double>(flush_bytes);
    if (!t.kept_exact) {
      t.kept_fraction = sampled.get();
    }
    const PeakRates peak = peak_rates(prop);
    t.peak_tflops = st.peak_tflops > 0 ? st.peak_tflops : peak.tflops;
    t.peak_tbps = st.peak_tbps > 0 ? st.peak_tbps : peak.tbps;
    const double B = ts.batch, H = ts.heads_q, S = ts.seqlen_q;
    t.flops = 4.0 * B * H * S * S * D * t.kept_fraction;
    // q and out always; k and v unless the mask keeps nothing.
    t.bytes = (2.0 + (t.kept_fraction > 0 ? 2.0 : 0.0)) * B * H * S * D * 2;
    const double safety = t.kept_exact ? 1.0 : kSampledFloorSafety;
    t.floor_ms = 1e3 * std::max(t.bytes / (t.peak_tbps * 1e12), t.flops * safety / (t.peak_tflops * 1e12));
    t.tflops = t.median_ms > 0 ? t.flops / (t.median_ms * 1e-3) / 1e12 : 0;
    t.measured = true;

    std::ostringstream os;
    os.precision(4);
    if (t.median_ms < t.floor_ms || t.event_median_ms < t.floor_ms) {
      os << "median " << t.median_ms << " ms (the judge's clock; the host's events " << t.event_median_ms
         << " ms) is under the physical floor " << t.floor_ms << " ms (bytes " << t.bytes / 1e6 << " MB at "
         << t.peak_tbps << " TB/s; " << safety << " x " << t.flops / 1e9 << " GFLOP at " << t.peak_tflops
         << " TFLOP/s, the peak rates of this " << prop.name << "): the kernel skips work or the timing misses it";
      add(FindingKind::BelowPhysicalFloor, verify::kStageTiming, os.str(), "timing", ts.str());
    }
    // Honest events measure the kernel inside the judge's window (verify::timing_disagreement).
    if (const std::string why = verify::timing_disagreement(t.median_ms, t.event_median_ms); !why.empty()) {
      std::ostringstream m;
      m.precision(4);
      m << why << ": the host's events measured " << t.event_median_ms << " ms per run, the judge's clock " << t.median_ms
        << " ms (" << t.host_median_ms << " ms less the " << t.roundtrip_ms << " ms of a null run): the reported "
        << "times are not the kernel's (forged, or the work is not on the timed stream)";
      add(FindingKind::TimingMismatch, verify::kStageTiming, m.str(), "timing", ts.str());
    }

    // The timed shape once more, in the same buffers with everything new (params and tensors
    // too): a kernel that memoises results by pointer or shape returns what the timed runs
    // computed, and fails here.
    announce("timing.refill", ts.str());
    p.refill(rng);
    take_base();
    judge::Reply reply;
    verify::TrialSummary s{"timing.refill", ts.str(), false, 0, 0, 0};
    s.ok = one_run(true, "refill", "timing.refill", reply);
    if (s.ok) {
      const gpu::DeviceCompareCounts c = compare_now(0);
      s.max_abs_err = float_from_bits(c.max_err_bits);
      s.worst_ratio = float_from_bits(c.worst_key >> 32);
      s.lse_max_abs_err = float_from_bits(c.lse_max_err_bits);
      s.row_worst_ratio = float_from_bits(c.row_worst_key >> 32);
    }
    std::string what;
    if (!p.inputs_unchanged(what, stream)) {
      s.ok = false;
      add(FindingKind::InputModified, verify::kStageTiming, what + ": a kernel must not write to its inputs",
          "timing.refill", ts.str());
    }
    s.seconds = seconds_since(g_trial_start);
    result.trials.push_back(s);
    if (s.ok) {
      got.download(stream);
      keep(std::move(problem), std::move(got_owner), "timing.refill");
    }
  }

  struct PeakRates {
    double tflops = 0, tbps = 0;
  };

  // Dense fp16/bf16 tensor rate (with fp32 accumulation) and memory bandwidth of the device, from
  // its SM count, its peak clocks and its bus width: the floor must hold on whatever GPU runs it.
  static PeakRates peak_rates(const cudaDeviceProp& prop) {
    int dev = 0, clock_khz = 0, mem_khz = 0, bus_bits = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev);
    cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
    // Dense tensor FLOPs per SM per clock: sm_80 2048 (A100 312 TFLOP/s), sm_86/sm_89 1024, sm_90
    // 4096 (H100 SXM 989), sm_100 and anything newer or unknown 8192 (B200): a higher rate only
    // lowers the floor.
    const int cc = prop.major * 10 + prop.minor;
    const double per_clock = cc == 80 ? 2048 : (cc == 86 || cc == 87 || cc == 89) ? 1024 : cc == 90 ? 4096 : 8192;
    PeakRates r;
    r.tflops = clock_khz > 0 ? prop.multiProcessorCount * (clock_khz * 1e3) * per_clock / 1e12 : 1e4;
    // Double data rate: two transfers per memory clock.
    r.tbps = mem_khz > 0 && bus_bits > 0 ? 2.0 * (mem_khz * 1e3) * (bus_bits / 8.0) / 1e12 : 100;
    return r;
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

int usage(const std::string& msg) {
  std::cerr << "kg_verify_runner: " << msg
            << "\nusage: kg_verify_runner --probe | --request FILE|- --result FILE|-\n"
               "  (started by the verifier; see docs/verifier.md, \"Runner protocol\")\n";
  return verify::kRunnerExitBadRequest;
}

// The bytes of the object at `path`, checked against `digest` (when given), in a sealed memfd:
// what is loaded is exactly what was checked, whatever happens to the file afterwards.
Expected<int, Failure> sealed_object(const std::string& path, const std::string& digest) {
  auto bytes = read_file(path);
  if (!bytes) {
    return unexpected(bytes.error());
  }
  if (!digest.empty() && xxh3_128_hex(*bytes) != digest) {
    return fail(path + " does not hold the object the verifier compiled (its digest is " + xxh3_128_hex(*bytes) +
                ", not " + digest + ")");
  }
  const int fd = ::memfd_create("kernelgen-object", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    return fail(std::string("memfd_create: ") + std::strerror(errno));
  }
  size_t off = 0;
  while (off < bytes->size()) {
    const ssize_t n = ::write(fd, bytes->data() + off, bytes->size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      ::close(fd);
      return fail(std::string("writing the object to a memfd: ") + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    ::close(fd);
    return fail(std::string("sealing the object's memfd: ") + std::strerror(errno));
  }
  return fd;
}

// The directory of this executable (kg_candidate_host is installed beside it).
std::string own_directory() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) {
    return ".";
  }
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::vector<std::string> own_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    env.emplace_back(*e);
  }
  return env;
}

// Arena bytes for every candidate-visible buffer of a verification: the timing shape's inputs and
// outputs, the long trials, and room for the correctness shapes and index tensors.
size_t arena_bytes(const verify::RunnerSettings& st, int head_dim) {
  const size_t D = size_t(head_dim), e = 2;
  const size_t timing = size_t(st.timing_batch) * st.timing_heads * st.timing_seqlen * D * e * 4 +
                        size_t(st.timing_batch) * st.timing_heads * st.timing_seqlen * 4;
  const size_t long_trial = st.long_seqlen > 0 ? size_t(st.long_seqlen) * D * e * 6 + size_t(st.long_seqlen) * 8 : 0;
  return timing + 2 * long_trial + (size_t{384} << 20);
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
  Expected<std::string, Failure> text = std::string();
  if (request_path == "-") {
    std::ostringstream os;
    os << std::cin.rdbuf();
    text = os.str();
  } else {
    text = read_file(request_path);
  }
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

  Judge r;
  r.spec = &spec;
  r.settings = req->settings;
  r.rng.seed(req->seed);
  r.tol = gpu::default_tolerance(spec.dtype);
  r.result.nonce = req->nonce;
  auto write_result = [&]() -> int {
    const std::string json = verify::result_to_json(r.result);
    if (result_path == "-") {
      std::cout << json << std::flush;
      return std::cout ? 0 : 3;
    }
    auto w = write_file_atomic(result_path, json);
    if (!w) {
      std::cerr << "kg_verify_runner: " << w.error().message << "\n";
      return 3;
    }
    return 0;
  };

  // The host starts first: its CUDA initialisation overlaps with ours.
  auto object = sealed_object(req->candidate_library, req->candidate_digest);
  if (!object) {
    std::cerr << "kg_verify_runner: " << object.error().message << "\n";
    return 3;
  }
  cudaDeviceProp prop;
  KG_CUDA(cudaGetDeviceProperties(&prop, 0));
  r.result.device = device_info(prop);
  KG_CUDA(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  auto arena = gpu::SharedArena::create(arena_bytes(r.settings, spec.head_dim));
  r.arena = arena.get();

  // The reference: trusted code, loaded here from checked bytes.
  auto ref_object = sealed_object(req->reference_library, req->reference_digest);
  if (!ref_object) {
    std::cerr << "kg_verify_runner: " << ref_object.error().message << "\n";
    return 3;
  }
  const std::string ref_path = "/proc/self/fd/" + std::to_string(*ref_object);
  void* ref_lib = dlopen(ref_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (ref_lib == nullptr) {
    std::cerr << "kg_verify_runner: cannot load the reference kernel: " << dlerror() << "\n";
    return 3;
  }
  r.reference = reinterpret_cast<ForwardFn>(dlsym(ref_lib, req->reference_symbol.c_str()));
  if (r.reference == nullptr) {
    std::cerr << "kg_verify_runner: the reference library lacks " << req->reference_symbol << "\n";
    return 3;
  }
  const std::string suffix = "_forward";
  if (req->reference_symbol.size() > suffix.size() &&
      req->reference_symbol.compare(req->reference_symbol.size() - suffix.size(), suffix.size(), suffix) == 0) {
    const std::string count = req->reference_symbol.substr(0, req->reference_symbol.size() - suffix.size()) +
                              "_count_kept";
    r.count_kept = reinterpret_cast<decltype(r.count_kept)>(dlsym(ref_lib, count.c_str()));
  }

  // From here on nothing of the same user (the candidate host included) may read this process's
  // memory through /proc/<pid>/mem or ptrace. (After loading the reference: a non-dumpable
  // process's /proc/self belongs to root, so it could not open its own memfd by path.)
  const std::string host_executable = own_directory() + "/kg_candidate_host";
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  announce("load", req->candidate_library);
  judge::HostLink host;
  r.host = &host;
  judge::HostOptions ho;
  ho.executable = host_executable;
  ho.env = own_environment();
  ho.reply_timeout_s = r.settings.host_reply_timeout_s;
  ho.trap_syscalls = r.settings.trap_syscalls;
  const int arena_fd = arena->export_fd();
  std::optional<Finding> start;
  try {
    start = host.start(ho, arena_fd, arena->size(), *object, req->candidate_symbol);
  } catch (const std::exception& e) {
    ::close(arena_fd);
    std::cerr << "kg_verify_runner: " << e.what() << "\n";
    return 3;
  }
  ::close(arena_fd);
  ::close(*object);
  r.result.startup_seconds = seconds_since(g_start);
  if (start) {
    r.result.findings.push_back(*start);
  } else {
    try {
      const Clock::time_point c0 = Clock::now();
      r.correctness();
      r.result.correctness_seconds = seconds_since(c0);
      if (!r.rejected() && r.settings.timing) {
        const Clock::time_point t0 = Clock::now();
        r.timing(prop);
        r.result.timing_seconds = seconds_since(t0);
      }
      // Every kept output once more: after a device-wide synchronization of the host's context,
      // then after the host is dead. Nothing may have changed.
      if (!r.rejected() && host.alive()) {
        announce("late_writes", "every kept output");
        const judge::Reply s = host.sync();
        if (r.reply_ok(s, "late_writes", "", verify::kStageCorrectness)) {
          r.late_write_check("the host's device-wide synchronization");
        }
      }
    } catch (const gpu::CudaError& e) {
      // The judge's own CUDA calls failing is the verifier's problem, not the candidate's (the
      // candidate's context is another process's).
      std::cerr << "kg_verify_runner: " << e.what() << "\n";
      return 3;
    }
  }
  if (auto end = host.finish()) {
    if (!r.rejected()) {
      r.result.findings.push_back(*end);
    }
  }
  if (!r.rejected()) {
    r.late_write_check("the host's death");
  }
  r.result.host = host.facts();
  r.result.host.output_tail = host.output_tail();
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
