#include "gpu_fuzz.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "gpu_problem.h"
#include "reference/cpu_reference.h"
#include "spec/interpret.h"
#include "spec/spec.h"

namespace kg::gpu_test {
namespace {

namespace fs = std::filesystem;
using gpu::ForwardFn;
using gpu::Layout;
using gpu::Outputs;
using gpu::Problem;
using gpu::Shape;

using CountKeptFn = cudaError_t (*)(const KgAttentionArgs*, unsigned long long*, cudaStream_t);

constexpr int k_skip = 77;
// Rows whose score_mod amplifies a rounding of the score by more than this are not compared.
constexpr double k_max_amplification = 16;

struct FuzzSpec {
  std::string name, yaml_path, yaml;
  double float_bound = 0;
  spec::Spec spec;
  ForwardFn forward = nullptr, reference = nullptr;
  CountKeptFn count_kept = nullptr;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// dlsym of `symbol` in `path` (loaded once, never closed); NULL with `why` set on failure.
void* load_symbol(const std::string& path, const std::string& symbol, std::string& why) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    why = std::string("dlopen failed: ") + dlerror();
    return nullptr;
  }
  void* f = dlsym(lib, symbol.c_str());
  if (!f) {
    why = path + " has no symbol " + symbol;
  }
  return f;
}

// The manifest's specs with their kernels; returns false (after printing why) when any fails to load.
bool load_dir(const std::string& dir, std::vector<FuzzSpec>& out) {
  const fs::path root(dir);
  std::ifstream manifest(root / "manifest.txt");
  if (!manifest) {
    std::cout << "FAIL: cannot read " << (root / "manifest.txt").string()
              << " (write the directory with kg_gpu_fuzz_gen --out " << dir << ")\n";
    return false;
  }
  std::string line;
  int line_no = 0;
  bool ok = true;
  while (std::getline(manifest, line)) {
    ++line_no;
    if (line.empty()) {
      continue;
    }
    std::istringstream ls(line);
    FuzzSpec f;
    if (!(ls >> f.name >> f.float_bound) || f.name.find('/') != std::string::npos) {
      std::cout << "FAIL: " << (root / "manifest.txt").string() << ":" << line_no
                << ": expected `<name> <float_bound>`, found '" << line << "'\n";
      ok = false;
      continue;
    }
    f.yaml_path = (root / (f.name + ".yaml")).string();
    f.yaml = read_text(f.yaml_path);
    auto parsed = spec::parse_spec(f.yaml, f.yaml_path);
    if (!parsed) {
      std::cout << "FAIL spec " << f.name << ": cannot load " << f.yaml_path << "\n";
      for (const auto& d : parsed.error()) {
        std::cout << "  " << d.str() << "\n";
      }
      ok = false;
      continue;
    }
    f.spec = *parsed;
    std::string why;
    f.forward = reinterpret_cast<ForwardFn>(
        load_symbol((root / (f.name + "_template.so")).string(), "kg_" + f.spec.name + "_forward", why));
    if (f.forward) {
      const std::string ref = (root / (f.name + "_reference.so")).string();
      f.reference = reinterpret_cast<ForwardFn>(load_symbol(ref, "kg_" + f.spec.name + "_reference_forward", why));
      if (f.reference) {
        f.count_kept =
            reinterpret_cast<CountKeptFn>(load_symbol(ref, "kg_" + f.spec.name + "_reference_count_kept", why));
      }
    }
    if (!f.count_kept) {
      std::cout << "FAIL spec " << f.name << ": " << why << "\n";
      ok = false;
      continue;
    }
    out.push_back(std::move(f));
  }
  if (ok && out.empty()) {
    std::cout << "FAIL: " << (root / "manifest.txt").string() << " lists no specs\n";
    return false;
  }
  return ok;
}

// A few small shapes, within the sizes the generated specs keep their ints in range for
// (tests/lowering/spec_gen.h: batch <= 2, heads_q <= 4, q_idx < 300, kv_idx < 280).
std::vector<Shape> fuzz_shapes(std::mt19937_64& rng) {
  auto len = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int s = len(1, 130);
  // B Hq Hkv Sq Skv layout lse score_std
  return {
      {2, 4, 2, len(1, 160), len(1, 200), Layout::BSHD, true, 2.0},  // batch 2, GQA, ragged, Sq != Skv
      {1, 4, 1, len(65, 200), len(1, 64), Layout::BHSD, false, 2.0},  // MQA, Sq > Skv, LSE off
      {2, 2, 2, s, s, Layout::Packed, true, 3.0},                     // packed q/k/v
      {1, 2, 2, len(1, 8), len(100, 280), Layout::BSHD, true, 10.0},  // few queries, long rows, large scores
      {1, 4, 1, len(1, 4), len(130, 279), Layout::BHSD, true, 2.0},   // MQA rows packed into one decode tile
  };
}

double half_ulp(double x, spec::DType dtype) {
  const int mant_bits = dtype == spec::DType::BF16 ? 7 : 10;
  const int min_exp = dtype == spec::DType::BF16 ? -126 : -14;
  x = std::fabs(x);
  const int e = std::max(x > 0 ? std::ilogb(x) : min_exp, min_exp);
  return std::ldexp(1.0, e - mant_bits - 1);
}

// The interpreter's view of one problem: outputs, and per row whether it is fully masked, NaN,
// and how much score_mod amplifies a rounding of the score there.
struct CpuTruth {
  std::vector<double> out, lse;  // lse: -inf for fully masked rows (always computed)
  std::vector<double> amplification;
  unsigned long long kept = 0;
  double v_max = 0;
};

CpuTruth cpu_truth(const spec::Spec& s, const Problem& p) {
  const Shape& sh = p.shape;
  reference::CpuProblem cp;
  cp.rt.batch = sh.batch, cp.rt.heads_q = sh.heads_q, cp.rt.heads_kv = sh.heads_kv;
  cp.rt.seqlen_q = sh.seqlen_q, cp.rt.seqlen_kv = sh.seqlen_kv;
  cp.rt.params = p.params;
  for (const auto& t : p.tensor_host) {
    cp.rt.tensors.push_back(t.data());
  }
  cp.head_dim = p.head_dim;
  cp.softmax_scale = p.softmax_scale;
  cp.q.assign(p.q.begin(), p.q.end());
  cp.k.assign(p.k.begin(), p.k.end());
  cp.v.assign(p.v.begin(), p.v.end());
  CpuTruth t;
  reference::cpu_attention_forward(s, cp, t.out, t.lse);
  for (double x : cp.v) {
    t.v_max = std::max(t.v_max, std::fabs(x));
  }
  const int D = p.head_dim, group = sh.heads_q / sh.heads_kv;
  t.amplification.assign(size_t(sh.batch) * sh.heads_q * sh.seqlen_q, 0.0);
  for (int b = 0; b < sh.batch; ++b) {
    for (int h = 0; h < sh.heads_q; ++h) {
      for (int i = 0; i < sh.seqlen_q; ++i) {
        const size_t row = (size_t(b) * sh.heads_q + h) * sh.seqlen_q + i;
        const double* q = &cp.q[row * D];
        double amp = 0;
        for (int j = 0; j < sh.seqlen_kv; ++j) {
          if (!spec::eval_mask_mod(s, cp.rt, b, h, i, j)) {
            continue;
          }
          ++t.kept;
          if (!s.score_mod) {
            continue;
          }
          const double* k = &cp.k[((size_t(b) * sh.heads_kv + h / group) * sh.seqlen_kv + j) * D];
          double dot = 0, mag = 0;
          for (int d = 0; d < D; ++d) {
            dot += q[d] * k[d];
            mag += std::fabs(q[d] * k[d]);
          }
          const double score = dot * cp.softmax_scale;
          // A generous bound on the fp32 score's rounding error (dot product, then the scale).
          const double delta = std::ldexp(mag * cp.softmax_scale + std::fabs(score), -18) + 1e-30;
          const double f0 = spec::eval_score_mod(s, cp.rt, score, b, h, i, j);
          const double fp = spec::eval_score_mod(s, cp.rt, score + delta, b, h, i, j);
          const double fm = spec::eval_score_mod(s, cp.rt, score - delta, b, h, i, j);
          const double a = std::max(std::fabs(fp - f0), std::fabs(fm - f0)) / delta;
          amp = std::isfinite(a) ? std::max(amp, a) : INFINITY;
        }
        t.amplification[row] = amp;
      }
    }
  }
  return t;
}

// Agreement of one kernel's output with an expectation, with per-row tolerances.
struct Check {
  explicit Check(const char* what_) : what(what_) {}
  const char* what;  // "reference vs cpu"
  size_t bad = 0, compared_rows = 0, masked_rows = 0, skipped_rows = 0, nan_rows = 0;
  double worst_ratio = 0;
  std::string worst;  // the worst element, described
  std::ostringstream detail;
  int shown = 0;

  void fail(const std::string& msg) {
    ++bad;
    if (shown++ < 6) {
      detail << "    " << what << ": " << msg << "\n";
    }
  }
};

// `want_out` / `want_lse` in [B, Hq, Sq, D] / [B, Hq, Sq] order; `out_tol(row, want)`,
// `lse_tol(row, want)` give the allowed |diff| (before the half ulp of out, when `half_ulp`).
template <typename OutTol, typename LseTol>
void check_values(Check& c, const Problem& p, const Outputs& got, const CpuTruth& truth,
                  const std::vector<double>& want_out, const std::vector<double>& want_lse, bool half_ulp_on,
                  OutTol out_tol, LseTol lse_tol) {
  const Shape& sh = p.shape;
  const int D = p.head_dim;
  const spec::DType dt = p.spec->dtype;
  const uint16_t poison = Outputs::poison_bits(dt);
  for (int b = 0; b < sh.batch; ++b) {
    for (int h = 0; h < sh.heads_q; ++h) {
      for (int i = 0; i < sh.seqlen_q; ++i) {
        const size_t row = (size_t(b) * sh.heads_q + h) * sh.seqlen_q + i;
        std::ostringstream where;
        where << "(b=" << b << ",h=" << h << ",i=" << i;
        if (std::isnan(truth.lse[row])) {
          ++c.nan_rows;
          continue;
        }
        const bool masked = truth.lse[row] == -INFINITY;
        const double amp = truth.amplification[row];
        const bool compare_values = !masked && amp <= k_max_amplification;
        c.masked_rows += masked;
        c.compared_rows += compare_values;
        c.skipped_rows += !masked && !compare_values;
        if (sh.lse) {
          const float g = got.lse_at(b, h, i);
          if ((g == -INFINITY) != masked) {
            c.fail("lse" + where.str() + ") = " + std::to_string(g) + ", the interpreter's row is " +
                   (masked ? "fully masked (lse -inf)" : "not fully masked (lse " + std::to_string(truth.lse[row]) + ")"));
          } else if (compare_values) {
            const double w = want_lse[row], allowed = lse_tol(row, w), err = std::fabs(g - w);
            const double ratio = std::isfinite(g) ? err / allowed : INFINITY;
            if (!(ratio <= 1)) {
              c.fail("lse" + where.str() + ") = " + std::to_string(g) + ", want " + std::to_string(w) + ", allowed " +
                     std::to_string(allowed));
            }
          }
        }
        for (int d = 0; d < D; ++d) {
          const uint16_t bits = got.out_at(b, h, i, d);
          const double g = gpu::bits_to_float(bits, dt);
          const double w = want_out[row * D + d];
          const std::string at = "out" + where.str() + ",d=" + std::to_string(d) + ")";
          if (masked) {
            if (g != 0) {
              c.fail(at + " = " + std::to_string(g) + " in a fully masked row (want exactly 0)" +
                     (bits == poison ? ", never written" : ""));
            }
            continue;
          }
          if (!compare_values) {
            if (!std::isfinite(g)) {
              c.fail(at + " = " + std::to_string(g) + (bits == poison ? " (never written)" : ""));
            }
            continue;
          }
          const double allowed = out_tol(row, w) + (half_ulp_on ? half_ulp(std::max(std::fabs(g), std::fabs(w)), dt) : 0);
          const double err = std::fabs(g - w);
          const double ratio = std::isfinite(g) ? err / allowed : INFINITY;
          if (ratio > c.worst_ratio || (c.worst.empty() && !(ratio <= 1))) {
            c.worst_ratio = ratio;
            std::ostringstream os;
            os.precision(9);
            os << at << ": got " << g << ", want " << w << ", |diff| " << err << ", allowed " << allowed
               << " (row amplification " << amp << ")";
            c.worst = os.str();
          }
          if (!(ratio <= 1)) {
            std::ostringstream os;
            os.precision(9);
            os << at << " = " << g << (bits == poison ? " (never written)" : "") << ", want " << w << ", allowed |diff| "
               << allowed;
            c.fail(os.str());
          }
        }
      }
    }
  }
}

// Guards and padding (compare() against the output itself counts only those and non-finite values).
void check_guards(Check& c, const Problem& p, const Outputs& got) {
  const gpu::CompareReport r = gpu::compare(p, got, gpu::expected_from(p, got), gpu::Tolerance{}, "itself");
  if (r.clobbered) {
    c.fail(std::to_string(r.clobbered) + " out element(s) outside the output (padding or guards) were written");
  }
  if (r.lse_clobbered) {
    c.fail(std::to_string(r.lse_clobbered) + " float(s) in the guard zones around lse were written");
  }
}

struct SpecResult {
  bool ok = true;
  double ref_worst = 0, tmpl_worst = 0;
  size_t compared = 0, masked = 0, skipped = 0, nan_rows = 0;
};

SpecResult run_spec(const FuzzSpec& f, std::mt19937_64& rng, cudaStream_t stream, std::string& context) {
  SpecResult res;
  const spec::Spec& s = f.spec;
  const gpu::Tolerance tt = gpu::default_tolerance(s.dtype);
  std::ostringstream failures;
  for (const Shape& shape : fuzz_shapes(rng)) {
    context = "fuzz spec " + f.name + ", " + shape.str();
    Problem p(s, shape, rng);
    Outputs ref(p), got(p), again(p);
    const cudaError_t er = gpu::run_kernel(f.reference, p, ref, stream);
    const cudaError_t et = gpu::run_kernel(f.forward, p, got, stream);
    const cudaError_t e2 = gpu::run_kernel(f.forward, p, again, stream);
    if (er != cudaSuccess || et != cudaSuccess || e2 != cudaSuccess) {
      failures << "  FAIL " << shape.str() << ": valid arguments rejected: reference " << cudaGetErrorName(er)
               << ", template " << cudaGetErrorName(et) << "\n";
      res.ok = false;
      continue;
    }
    ref.download();
    got.download();
    again.download();
    unsigned long long kept_gpu = 0;
    {
      gpu::DeviceBuffer counter(sizeof(unsigned long long));
      KG_CUDA(cudaMemsetAsync(counter.data(), 0, sizeof(unsigned long long), stream));
      Outputs scratch(p);
      const KgAttentionArgs a = gpu::make_args(p, scratch);
      const cudaError_t ec = f.count_kept(&a, reinterpret_cast<unsigned long long*>(counter.data()), stream);
      KG_CUDA(ec);
      KG_CUDA(cudaStreamSynchronize(stream));
      counter.download(&kept_gpu, sizeof kept_gpu);
    }
    const CpuTruth truth = cpu_truth(s, p);

    Check rc("reference vs cpu"), tc("template vs reference");
    double scale = 0;
    for (double x : truth.out) {
      if (std::isfinite(x)) {
        scale = std::max(scale, std::fabs(x));
      }
    }
    auto amp = [&](size_t row) { return std::max(1.0, truth.amplification[row]); };
    // Reference vs CPU: the bounds of --reference-vs-cpu, scaled by the row's amplification.
    check_values(
        rc, p, ref, truth, truth.out, truth.lse, true, [&](size_t row, double) { return 1e-4 * scale * amp(row); },
        [&](size_t row, double w) { return (1e-4 + 1e-4 * std::fabs(w)) * amp(row); });
    check_guards(rc, p, ref);
    // Template vs reference kernel: the verifier's tolerance, plus the template's fp32 mods.
    const gpu::Expected ref_vals = gpu::expected_from(p, ref);
    std::vector<double> ref_lse = ref_vals.lse;
    if (!shape.lse) {
      ref_lse.assign(truth.lse.size(), 0.0);
    }
    const double mod_err = s.score_mod ? 1e-5 * (1 + f.float_bound) : 0.0;
    check_values(
        tc, p, got, truth, ref_vals.out, ref_lse, false,
        [&](size_t row, double w) { return (tt.abs + tt.rel * std::fabs(w)) * amp(row) + 2 * truth.v_max * mod_err; },
        [&](size_t row, double w) { return (tt.lse_abs + tt.lse_rel * std::fabs(w)) * amp(row) + mod_err; });
    check_guards(tc, p, got);
    if (!gpu::identical(got, again)) {
      tc.fail("two runs of the template kernel on the same inputs differ bitwise (a race or uninitialised read)");
    }
    std::string changed;
    if (!p.inputs_unchanged(changed, stream)) {
      tc.fail(changed + " (a kernel wrote to its inputs)");
    }
    if (kept_gpu != truth.kept) {
      rc.fail("kg_" + s.name + "_reference_count_kept counted " + std::to_string(kept_gpu) +
              " kept pairs, the interpreter " + std::to_string(truth.kept));
    }

    res.ref_worst = std::max(res.ref_worst, rc.worst_ratio);
    res.tmpl_worst = std::max(res.tmpl_worst, tc.worst_ratio);
    res.compared += rc.compared_rows, res.masked += rc.masked_rows, res.skipped += rc.skipped_rows;
    res.nan_rows += rc.nan_rows;
    if (rc.bad || tc.bad) {
      res.ok = false;
      failures << "  FAIL " << shape.str() << ", softmax_scale " << p.softmax_scale
               << (p.describe_params().empty() ? "" : ", ") << p.describe_params() << "\n";
      for (const Check* c : {&rc, &tc}) {
        if (c->bad) {
          failures << "    " << c->what << ": " << c->bad << " disagreement(s)"
                   << (c->worst.empty() ? "" : "; worst " + c->worst) << "\n"
                   << c->detail.str();
        }
      }
    }
  }
  auto pct = [](double r) { return std::isfinite(r) ? std::to_string(std::lround(100 * r)) + "%" : std::string("inf"); };
  std::cout << (res.ok ? "PASS" : "FAIL") << " fuzz " << f.name << " (" << (s.dtype == spec::DType::BF16 ? "bf16" : "fp16")
            << ", d" << s.head_dim << ", score_mod " << (s.score_mod ? "yes" : "no") << ", mask_mod "
            << (s.mask_mod ? "yes" : "no") << "): worst reference vs cpu " << pct(res.ref_worst)
            << ", template vs reference " << pct(res.tmpl_worst) << " of allowed; rows " << res.compared
            << " compared, " << res.masked << " fully masked (exact), " << res.skipped << " ill-conditioned, "
            << res.nan_rows << " NaN\n";
  if (!res.ok) {
    std::cout << failures.str() << "  spec " << f.yaml_path << ":\n";
    std::istringstream y(f.yaml);
    for (std::string line; std::getline(y, line);) {
      std::cout << "    | " << line << "\n";
    }
  }
  return res;
}

}  // namespace

int run_fuzz_dir(const std::string& dir, uint64_t seed) {
  // The directory first: its specs and libraries load (and are checked) without a GPU too.
  std::vector<FuzzSpec> specs;
  if (!load_dir(dir, specs)) {
    return 2;
  }
  int devices = 0;
  const cudaError_t de = cudaGetDeviceCount(&devices);
  if (de != cudaSuccess || devices == 0) {
    std::cout << "SKIP: no CUDA device (cudaGetDeviceCount: " << (de != cudaSuccess ? cudaGetErrorName(de) : "0 devices")
              << "); " << specs.size() << " fuzz spec(s) of " << dir << " load\n";
    return k_skip;
  }
  std::cout << "fuzz directory " << dir << ": " << specs.size() << " spec(s); seed " << seed << " (repeat with --seed "
            << seed << ")\n";
  std::mt19937_64 rng(seed);
  std::string context;
  int failed = 0;
  size_t compared = 0, skipped = 0, masked = 0;
  try {
    cudaStream_t stream;
    KG_CUDA(cudaStreamCreate(&stream));
    for (const FuzzSpec& f : specs) {
      const SpecResult r = run_spec(f, rng, stream, context);
      failed += !r.ok;
      compared += r.compared, skipped += r.skipped, masked += r.masked;
    }
    KG_CUDA(cudaStreamDestroy(stream));
  } catch (const gpu::CudaError& e) {
    std::cout << "FAIL: CUDA error: " << e.what() << "\n  while running: " << context << "\n";
    return 1;
  }
  std::cout << (failed ? "FAIL" : "PASS") << ": " << (specs.size() - failed) << "/" << specs.size()
            << " fuzz spec(s) agree (interpreter, reference kernel, template kernel); rows " << compared
            << " compared, " << masked << " fully masked, " << skipped << " ill-conditioned; seed " << seed << "\n";
  return failed ? 1 : 0;
}

}  // namespace kg::gpu_test
