// kg_gpu_tests — checks every spec's emitted kernels on a GPU.
//
//   kg_gpu_tests --spec NAME [--spec NAME...]   template kernel vs fp32 reference kernel
//   kg_gpu_tests --all                          the same for every spec in the registry
//   kg_gpu_tests --reference-vs-cpu [--spec N]  fp32 reference kernel vs CPU double reference
//   kg_gpu_tests --list                         spec names, one a line
//   kg_gpu_tests --fuzz-dir DIR                 the differential fuzzer's random specs, compiled into
//                                               DIR by kg_gpu_fuzz_gen (tests/gpu/gpu_fuzz.h)
//   options: --seed N (default: random, printed), --source-dir DIR (where specs/ lives;
//            default: the current directory if it has the spec, else the configured source tree)
//
// Exit status: 0 all passed, 1 a check failed, 2 bad usage or a spec that does not load,
// 77 no CUDA device (CTest shows the test as skipped).
//
// Per spec and trial: fresh random inputs (q, k, v ~ N(0, 1), softmax_scale chosen so scores
// have a set spread; one trial with scores near ±50 to catch a missing max subtraction), random
// params (ints in [1, 64], floats in [0.1, 2]) and index tensors (small sorted ints), outputs
// poisoned with NaN including padding and guard zones, every element compared, inputs
// checksummed before and after, the template kernel run twice and required to be bit-identical
// (a difference means a race), and the entry points' rejection of invalid arguments.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gpu_fuzz.h"
#include "gpu_problem.h"
#include "reference/cpu_reference.h"
#include "registry.h"
#include "spec/spec.h"

namespace kg::gpu_test {

// The problem/compare machinery lives in runner/gpu_problem.h (shared with kg_verify_runner).
using namespace kg::gpu;
using kg::gpu::Expected;

namespace {

constexpr int k_skip = 77;

// What is running now ("spec X, shape ..."): main() names it when a CUDA error ends the run.
std::string g_context;

// Template vs reference tolerance: the verifier's (default_tolerance in runner/gpu_problem.h says
// why these bounds).
Tolerance template_tolerance(spec::DType dtype) { return default_tolerance(dtype); }

// Shapes for template vs reference: tile non-multiples, length 1, Sq != Skv both ways, batch > 1,
// GQA and MQA, strided and packed layouts, padded out, empty sequences, LSE on and off; every
// shape with seqlen_q <= 64 (and few CTAs or a small GQA group) takes the decode path.
std::vector<Shape> template_shapes() {
  // B Hq Hkv Sq Skv layout lse score_std
  return {
      {1, 1, 1, 1, 1, Layout::BHSD, true, 2.0},
      {2, 2, 2, 7, 7, Layout::BSHD, false, 1.0},
      {1, 4, 4, 63, 65, Layout::BHSD, true, 3.0},
      {2, 8, 2, 65, 63, Layout::BSHD, true, 2.0},      // GQA
      {1, 8, 1, 127, 129, Layout::BHSD, false, 2.0},   // MQA
      {2, 4, 4, 129, 129, Layout::Packed, true, 2.0},  // q/k/v slices of one [B, S, 3, H, D] buffer
      {1, 2, 2, 200, 1000, Layout::BHSD, true, 2.0},   // Sq < Skv
      {1, 2, 2, 1000, 200, Layout::BSHD, true, 2.0},   // Sq > Skv
      {2, 8, 2, 257, 257, Layout::Packed, false, 1.5}, // packed GQA
      {1, 2, 1, 1000, 1000, Layout::BHSD, true, 2.5},
      {1, 1, 1, 1, 200, Layout::BSHD, true, 2.0},      // one query
      {1, 2, 2, 129, 1, Layout::BHSD, true, 2.0},      // one key
      {1, 2, 1, 64, 0, Layout::BHSD, true, 2.0},       // seqlen_kv = 0: every row fully masked
      {1, 2, 2, 0, 64, Layout::BSHD, true, 2.0},       // seqlen_q = 0: nothing to do
      {2, 4, 4, 257, 257, Layout::BSHD, true, 20.0},   // scores near ±50
      {2, 4, 2, 2100, 2300, Layout::BSHD, false, 2.0}, // Skv >= kg_hull_min_kv: tile hull tables, partial last chunks
      // The decode path (flash_decode.cuh: seqlen_q <= 64, split-KV, GQA rows packed into one
      // tile). Causal-type masks with Sq < Skv leave every split but the first fully masked.
      // (q/k/v of the two largest filled on the device: 100 M elements would take seconds per spec.)
      {4, 32, 8, 1, 8192, Layout::BHSD, true, 2.0, 1.0, true},     // decoding, GQA 4: several splits
      {2, 32, 8, 1, 8192, Layout::BSHD, false, 20.0, 0.0, true},   // the same, scores near ±50, no LSE
      {2, 16, 2, 16, 4100, Layout::BSHD, false, 2.0},     // chunk, group 8: 8 row tiles per KV head
      {1, 8, 1, 64, 3000, Layout::BHSD, true, 2.0, 0.5},  // MQA, 512 rows per KV head
      {3, 4, 4, 1, 1, Layout::BSHD, true, 2.0},           // one key
      {2, 8, 8, 1, 777, Layout::BHSD, true, 2.0},         // MHA, Skv not a tile multiple
      {1, 16, 1, 3, 5000, Layout::BSHD, true, 2.0},       // MQA, 48 rows: 3 row tiles
      {1, 4, 2, 33, 2049, Layout::BHSD, true, 3.0},       // chunk, Skv one past a tile multiple
      {2, 32, 8, 1, 4097, Layout::BHSD, true, 2.0},       // flex_check's decode shape: two splits keep keys
  };
}

// Small shapes for reference vs CPU (O(B·H·Sq·Skv·D) in double on the host).
std::vector<Shape> cpu_shapes() {
  return {
      {1, 1, 1, 1, 1, Layout::BHSD, true, 2.0},
      {2, 4, 2, 37, 53, Layout::BSHD, true, 2.0},
      {1, 2, 1, 33, 33, Layout::Packed, false, 2.0},
      {1, 2, 2, 70, 17, Layout::BHSD, true, 3.0},
      {1, 2, 2, 5, 0, Layout::BHSD, true, 2.0},
      {1, 2, 2, 0, 5, Layout::BSHD, true, 2.0},
      {2, 2, 2, 65, 130, Layout::BSHD, true, 20.0},
  };
}

struct Options {
  std::vector<std::string> specs;
  bool all = false, reference_vs_cpu = false, list = false;
  uint64_t seed = 0;
  bool seed_given = false;
  std::string source_dir;
  std::string fuzz_dir;  // --fuzz-dir: run gpu_fuzz.h's checks instead
};

std::string spec_file(const KernelEntry& k, const Options& opt) {
  namespace fs = std::filesystem;
  if (!opt.source_dir.empty()) {
    return (fs::path(opt.source_dir) / k.spec_path).string();
  }
  if (fs::exists(k.spec_path)) {
    return k.spec_path;
  }
  return (fs::path(KG_SOURCE_DIR) / k.spec_path).string();
}

const char* dtype_name(spec::DType d) { return d == spec::DType::BF16 ? "bf16" : "fp16"; }

void print_spec_header(const KernelEntry& k, const spec::Spec& s, const std::string& path) {
  std::cout << "== spec " << k.name << " (" << path << "): " << dtype_name(s.dtype) << ", head_dim " << s.head_dim
            << ", " << s.params.size() << " param(s), " << s.tensors.size() << " tensor(s), score_mod "
            << (s.score_mod ? "yes" : "no") << ", mask_mod " << (s.mask_mod ? "yes" : "no") << "\n";
}

// The entry point must answer cudaErrorInvalidValue to broken arguments and write nothing.
bool check_rejections(const char* which, ForwardFn fn, const spec::Spec& s, std::mt19937_64& rng,
                      cudaStream_t stream) {
  g_context = "spec " + s.name + ", " + which + " kernel, invalid-argument checks";
  Problem p(s, Shape{1, 2, 2, 16, 16, Layout::BHSD, true, 2.0}, rng);
  Outputs o(p);
  struct Case {
    const char* what;
    void (*mutate)(KgAttentionArgs&);
  };
  const Case cases[] = {
      {"abi_version + 1", [](KgAttentionArgs& a) { a.abi_version = KG_ABI_VERSION + 1; }},
      {"wrong head_dim", [](KgAttentionArgs& a) { a.head_dim = a.head_dim == 64 ? 128 : 64; }},
      {"heads_q % heads_kv != 0", [](KgAttentionArgs& a) { a.heads_q = 3; }},
      {"batch = 0", [](KgAttentionArgs& a) { a.batch = 0; }},
      {"seqlen_q = -1", [](KgAttentionArgs& a) { a.seqlen_q = -1; }},
      {"q misaligned by 2 bytes", [](KgAttentionArgs& a) { a.q = static_cast<const char*>(a.q) + 2; }},
      {"k_stride[2] not a multiple of 8", [](KgAttentionArgs& a) { a.k_stride[2] += 1; }},
  };
  bool ok = true;
  cudaError_t e = fn(nullptr, stream);
  if (e != cudaErrorInvalidValue) {
    std::cout << "  FAIL " << which << ": args = NULL returned " << cudaGetErrorName(e)
              << ", expected cudaErrorInvalidValue\n";
    ok = false;
  }
  for (const Case& c : cases) {
    KgAttentionArgs a = make_args(p, o);
    c.mutate(a);
    e = fn(&a, stream);
    if (e != cudaErrorInvalidValue) {
      std::cout << "  FAIL " << which << ": " << c.what << " returned " << cudaGetErrorName(e)
                << ", expected cudaErrorInvalidValue\n";
      ok = false;
    }
  }
  (void)cudaGetLastError();  // a rejected call leaves no sticky error, but clear any stray one
  KG_CUDA(cudaStreamSynchronize(stream));
  o.download();
  const uint16_t pb = Outputs::poison_bits(s.dtype);
  const bool untouched = std::all_of(o.out_all.begin(), o.out_all.end(), [&](uint16_t x) { return x == pb; });
  if (!untouched) {
    std::cout << "  FAIL " << which << ": a rejected call wrote to out\n";
    ok = false;
  }
  if (ok) {
    std::cout << "  ok   " << which << ": rejects NULL args and " << std::size(cases) << " kinds of invalid args, writes nothing\n";
  }
  return ok;
}

bool run_template_checks(const KernelEntry& k, const spec::Spec& s, std::mt19937_64& rng, cudaStream_t stream) {
  bool ok = check_rejections("template", k.forward, s, rng, stream);
  ok = check_rejections("reference", k.reference, s, rng, stream) && ok;
  const Tolerance tol = template_tolerance(s.dtype);
  Tolerance self;  // the reference against itself: only finiteness, padding and guards count
  int passed = 0, trials = 0;
  double worst_ratio = 0;
  for (const Shape& shape : template_shapes()) {
    ++trials;
    g_context = "spec " + std::string(k.name) + ", template vs reference, " + shape.str();
    Problem p(s, shape, rng);
    Outputs ref(p), got(p), again(p);
    std::ostringstream why;
    const cudaError_t er = run_kernel(k.reference, p, ref, stream);
    const cudaError_t et = run_kernel(k.forward, p, got, stream);
    const cudaError_t e2 = run_kernel(k.forward, p, again, stream);
    bool trial_ok = true;
    if (er != cudaSuccess || et != cudaSuccess || e2 != cudaSuccess) {
      why << "    valid arguments rejected: reference " << cudaGetErrorName(er) << ", template " << cudaGetErrorName(et)
          << "\n";
      trial_ok = false;
    } else {
      ref.download();
      got.download();
      again.download();
      const Expected want = expected_from(p, ref);
      const CompareReport rself = compare(p, ref, want, self, "itself");
      if (!rself.ok) {
        why << "    the REFERENCE kernel's own output is bad:\n" << rself.detail;
        trial_ok = false;
      }
      const CompareReport r = compare(p, got, want, tol, "reference");
      if (!r.ok) {
        why << r.detail;
        trial_ok = false;
      }
      worst_ratio = std::max(worst_ratio, r.worst_ratio);
      if (!identical(got, again)) {
        why << "    two runs of the template kernel on the same inputs differ bitwise: a race or uninitialised read\n";
        trial_ok = false;
      }
      std::string changed;
      if (!p.inputs_unchanged(changed)) {
        why << "    " << changed << " (a kernel wrote to its inputs)\n";
        trial_ok = false;
      }
      if (trial_ok) {
        std::cout << "  ok   " << shape.str() << ": max |diff| " << r.worst_err;
        if (shape.lse) {
          std::cout << ", lse max |diff| " << r.lse_worst_err;
        }
        std::cout << " (" << std::lround(100 * r.worst_ratio) << "% of allowed)\n";
      }
    }
    if (!trial_ok) {
      std::cout << "  FAIL spec " << k.name << ", " << shape.str() << ", softmax_scale " << p.softmax_scale
                << (p.describe_params().empty() ? "" : ", ") << p.describe_params() << "\n"
                << why.str();
    }
    passed += trial_ok;
  }
  ok = ok && passed == trials;
  std::cout << (ok ? "PASS" : "FAIL") << " spec " << k.name << ": " << passed << "/" << trials
            << " shapes match the reference (tolerance abs " << tol.abs << " + rel " << tol.rel << "; worst "
            << std::lround(100 * worst_ratio) << "% of allowed)\n";
  return ok;
}

bool run_cpu_checks(const KernelEntry& k, const spec::Spec& s, std::mt19937_64& rng, cudaStream_t stream) {
  int passed = 0, trials = 0;
  for (const Shape& shape : cpu_shapes()) {
    ++trials;
    g_context = "spec " + std::string(k.name) + ", reference vs cpu, " + shape.str();
    Problem p(s, shape, rng);
    Outputs o(p);
    const cudaError_t e = run_kernel(k.reference, p, o, stream);
    if (e != cudaSuccess) {
      std::cout << "  FAIL spec " << k.name << ", " << shape.str() << ": reference rejected valid arguments ("
                << cudaGetErrorName(e) << ")\n";
      continue;
    }
    o.download();
    reference::CpuProblem cp;
    cp.rt.batch = shape.batch, cp.rt.heads_q = shape.heads_q, cp.rt.heads_kv = shape.heads_kv;
    cp.rt.seqlen_q = shape.seqlen_q, cp.rt.seqlen_kv = shape.seqlen_kv;
    cp.rt.params = p.params;
    for (const auto& t : p.tensor_host) {
      cp.rt.tensors.push_back(t.data());
    }
    cp.head_dim = p.head_dim;
    cp.softmax_scale = p.softmax_scale;  // the float the kernel got, exactly
    cp.q.assign(p.q.begin(), p.q.end());
    cp.k.assign(p.k.begin(), p.k.end());
    cp.v.assign(p.v.begin(), p.v.end());
    Expected want;
    std::vector<double> lse;
    reference::cpu_attention_forward(s, cp, want.out, lse);
    if (shape.lse) {
      want.lse = lse;
    }
    // fp32 arithmetic vs double: ~1e-4 of the output's scale, plus the final rounding of out to
    // the dtype (half an ulp at the value). LSE is fp32: 1e-4 relative.
    double scale = 0;
    for (double x : want.out) {
      scale = std::max(scale, std::fabs(x));
    }
    Tolerance tol;
    tol.abs = 1e-4 * scale, tol.half_ulp = true, tol.lse_abs = 1e-4, tol.lse_rel = 1e-4;
    const CompareReport r = compare(p, o, want, tol, "cpu");
    std::string changed;
    const bool inputs_ok = p.inputs_unchanged(changed);
    if (r.ok && inputs_ok) {
      ++passed;
      std::cout << "  ok   " << shape.str() << ": max |diff| " << r.worst_err << " (output scale " << scale << ")"
                << (shape.lse ? ", lse max |diff| " + std::to_string(r.lse_worst_err) : "") << "\n";
    } else {
      std::cout << "  FAIL spec " << k.name << ", " << shape.str() << ", softmax_scale " << p.softmax_scale
                << (p.describe_params().empty() ? "" : ", ") << p.describe_params() << "\n"
                << r.detail << (inputs_ok ? "" : "    " + changed + "\n");
    }
  }
  std::cout << (passed == trials ? "PASS" : "FAIL") << " reference_vs_cpu " << k.name << ": " << passed << "/"
            << trials << " shapes\n";
  return passed == trials;
}

int usage(const char* msg) {
  std::cerr << "kg_gpu_tests: " << msg
            << "\nusage: kg_gpu_tests (--spec NAME... | --all | --list | --fuzz-dir DIR) [--reference-vs-cpu] "
               "[--seed N] [--source-dir DIR]\n";
  return 2;
}

int run(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        throw std::invalid_argument(a + " needs a value");
      }
      return argv[++i];
    };
    if (a == "--spec") {
      opt.specs.push_back(value());
    } else if (a == "--all") {
      opt.all = true;
    } else if (a == "--reference-vs-cpu") {
      opt.reference_vs_cpu = true;
    } else if (a == "--list") {
      opt.list = true;
    } else if (a == "--seed") {
      opt.seed = std::stoull(value());
      opt.seed_given = true;
    } else if (a == "--source-dir") {
      opt.source_dir = value();
    } else if (a == "--fuzz-dir") {
      opt.fuzz_dir = value();
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (!opt.fuzz_dir.empty()) {
    if (!opt.seed_given) {
      opt.seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    }
    return run_fuzz_dir(opt.fuzz_dir, opt.seed);
  }
  const auto& reg = registry();
  if (opt.list) {
    for (const auto& k : reg) {
      std::cout << k.name << "\n";
    }
    return 0;
  }
  std::vector<const KernelEntry*> chosen;
  if (opt.all || (opt.reference_vs_cpu && opt.specs.empty())) {
    for (const auto& k : reg) {
      chosen.push_back(&k);
    }
  } else {
    for (const auto& name : opt.specs) {
      auto it = std::find_if(reg.begin(), reg.end(), [&](const KernelEntry& k) { return name == k.name; });
      if (it == reg.end()) {
        return usage(("no spec named '" + name + "' (see --list)").c_str());
      }
      chosen.push_back(&*it);
    }
  }
  if (chosen.empty()) {
    return usage("nothing to check");
  }

  int devices = 0;
  const cudaError_t de = cudaGetDeviceCount(&devices);
  if (de != cudaSuccess || devices == 0) {
    std::cout << "SKIP: no CUDA device (cudaGetDeviceCount: "
              << (de != cudaSuccess ? cudaGetErrorName(de) : "0 devices") << ")\n";
    return k_skip;
  }
  cudaDeviceProp prop;
  KG_CUDA(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  KG_CUDA(cudaDriverGetVersion(&driver));
  KG_CUDA(cudaRuntimeGetVersion(&runtime));
  if (!opt.seed_given) {
    opt.seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  std::cout << "device 0: " << prop.name << ", sm_" << prop.major << prop.minor << ", " << prop.multiProcessorCount
            << " SMs; driver " << driver << ", runtime " << runtime << "\nseed " << opt.seed
            << " (repeat with --seed " << opt.seed << ")\n";
  std::mt19937_64 rng(opt.seed);
  cudaStream_t stream;
  KG_CUDA(cudaStreamCreate(&stream));

  int failed = 0, bad_specs = 0;
  for (const KernelEntry* k : chosen) {
    const std::string path = spec_file(*k, opt);
    auto s = spec::load_spec_file(path);
    if (!s) {
      std::cout << "FAIL spec " << k->name << ": cannot load " << path << "\n";
      for (const auto& d : s.error()) {
        std::cout << "  " << d.str() << "\n";
      }
      ++bad_specs;
      continue;
    }
    print_spec_header(*k, *s, path);
    const bool ok = opt.reference_vs_cpu ? run_cpu_checks(*k, *s, rng, stream) : run_template_checks(*k, *s, rng, stream);
    failed += !ok;
  }
  KG_CUDA(cudaStreamDestroy(stream));
  const size_t n = chosen.size();
  std::cout << (failed + bad_specs == 0 ? "PASS" : "FAIL") << ": " << (n - failed - bad_specs) << "/" << n << " spec(s) "
            << (opt.reference_vs_cpu ? "match the CPU reference" : "match their reference kernel") << "; seed "
            << opt.seed << "\n";
  return bad_specs ? 2 : (failed ? 1 : 0);
}

}  // namespace
}  // namespace kg::gpu_test

int main(int argc, char** argv) {
  try {
    return kg::gpu_test::run(argc, argv);
  } catch (const kg::gpu::CudaError& e) {
    // After a fault inside a kernel the context is unusable: report and stop.
    std::cout << "FAIL: CUDA error: " << e.what() << "\n";
    if (!kg::gpu_test::g_context.empty()) {
      std::cout << "  while running: " << kg::gpu_test::g_context << "\n";
    }
    return 1;
  } catch (const std::exception& e) {
    std::cout << "FAIL: " << e.what() << "\n";
    return 1;
  }
}
