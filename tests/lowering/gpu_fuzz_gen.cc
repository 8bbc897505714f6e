// kg_gpu_fuzz_gen — the build half of the GPU differential fuzzer (docs/verifier.md, "Differential
// fuzzer", "GPU part"): random specs and their compiled kernels, to be run on a GPU machine by
// `kg_gpu_tests --fuzz-dir DIR`.
//
//   kg_gpu_fuzz_gen --out DIR [--count N] [--seed S] [-j N] [--nvcc PATH] [--max-bound B] [--keep-sources]
//
// Writes into DIR, for each of N random well-typed specs (tests/lowering/spec_gen.h; dtype bf16 or
// fp16, head_dim 64 or 128, chosen at random):
//   <name>.yaml            the spec
//   <name>_template.so     kg_<name>_forward (codegen::emit_template_kernel, arch sm_90a)
//   <name>_reference.so    kg_<name>_reference_forward and kg_<name>_reference_count_kept
//                          (codegen::emit_reference_kernel)
// compiled like tests/gpu/CMakeLists.txt compiles its spec kernels (nvcc -O2 -std=c++17
// --generate-code=arch=compute_90a,code=[compute_90a,sm_90a] -Xcompiler=-fPIC) into shared
// libraries linked against the shared CUDA runtime, which is copied into DIR (rpath $ORIGIN), with
// the fat binary compressed (--compress-mode=size) and stripped: about 0.25 MB per spec (nvcc:
// ~45 s of CPU per spec on average; double-precision mods inlined into a template's inner loop
// can take ptxas minutes). Then DIR/manifest.txt, one line per spec:
//   <name> <float_bound>
// float_bound: the generated bound on score_mod's float intermediates (0 without a score_mod; the
// runner's tolerance for the template's fp32 mods grows with it). Specs whose bound exceeds
// --max-bound (default 300) are drawn again, so N specs are always written.
//
// Exit status: 0 all written and compiled; 1 a generated spec that the checker refuses or whose
// kernels do not compile (a generator or codegen bug: the spec and nvcc's output are printed);
// 2 usage or I/O error.
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "codegen/codegen.h"
#include "spec/spec.h"
#include "spec_gen.h"

namespace kg::lowering_fuzz {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string out;
  int count = 40;
  uint64_t seed = 1;
  int jobs = 2;
  std::string nvcc;
  double max_bound = 300;
  bool keep_sources = false;
};

struct Job {
  std::string name;
  std::string cu;  // source path
  std::string so;  // output path
  std::string log;
  bool ok = false;
  double seconds = 0;  // nvcc and strip
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

// Runs `cmd` (stdout and stderr into `log_path`); true when it exits 0.
bool run_command(const std::string& cmd, const std::string& log_path) {
  const int rc = std::system((cmd + " >" + shell_quote(log_path) + " 2>&1").c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  if (!out) {
    throw std::runtime_error("cannot write " + p.string());
  }
}

std::string find_nvcc(const std::string& given) {
  if (!given.empty()) {
    return given;
  }
  if (const char* c = std::getenv("CUDACXX"); c && *c) {
    return c;
  }
  if (std::system("command -v nvcc >/dev/null 2>&1") == 0) {
    return "nvcc";
  }
  return "/usr/local/cuda/bin/nvcc";
}

// 32 hex digits from the seed and the index (the provenance key of the generated files).
std::string provenance_key(uint64_t seed, int index) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(seed),
                static_cast<unsigned long long>(index));
  return buf;
}

// The generated spec with its dtype and head_dim redrawn (spec_gen always writes bf16, 64).
std::string vary_config(const std::string& yaml, std::mt19937_64& rng) {
  const std::string from = "dtype: bf16\nhead_dim: 64\n";
  const size_t at = yaml.find(from);
  if (at == std::string::npos) {
    return yaml;
  }
  const bool fp16 = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  const bool d128 = std::uniform_int_distribution<int>(0, 2)(rng) == 2;
  const std::string to =
      std::string("dtype: ") + (fp16 ? "fp16" : "bf16") + "\nhead_dim: " + (d128 ? "128" : "64") + "\n";
  return yaml.substr(0, at) + to + yaml.substr(at + from.size());
}

int run(const Options& opt) {
  if (opt.out.empty()) {
    throw std::invalid_argument("--out DIR is required");
  }
  if (opt.count < 1 || opt.jobs < 1) {
    throw std::invalid_argument("--count and -j must be at least 1");
  }
  const fs::path dir(opt.out);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(dir)) {  // a previous run's files (only those: named gfz*)
    const std::string file = e.path().filename().string();
    const std::string ext = e.path().extension().string();
    const bool ours = file.rfind("gfz", 0) == 0 && (ext == ".so" || ext == ".yaml" || ext == ".cu" || ext == ".log");
    if (e.is_regular_file() && (ours || file == "manifest.txt" || file.rfind("libcudart.so", 0) == 0)) {
      fs::remove(e.path());
    }
  }
  const std::string nvcc = find_nvcc(opt.nvcc);
  const std::string include = std::string(KG_SOURCE_DIR) + "/core/include";

  std::mt19937_64 rng(opt.seed);
  std::string manifest;
  std::vector<Job> jobs;
  int drawn = 0;
  for (int i = 0; i < opt.count; ++i) {
    const std::string name = "gfz" + std::to_string(i);
    GeneratedSpec gen;
    do {
      gen = generate_spec(rng, name);
      ++drawn;
    } while (!(gen.float_bound <= opt.max_bound));
    const std::string yaml = vary_config(gen.yaml, rng);
    auto parsed = spec::parse_spec(yaml, name + ".yaml");
    if (!parsed) {
      std::cout << "GENERATOR BUG (spec refused by the checker):\n" << yaml;
      for (const auto& d : parsed.error()) {
        std::cout << "  " << d.str() << "\n";
      }
      return 1;
    }
    write_text(dir / (name + ".yaml"), yaml);
    const codegen::Provenance prov{name + ".yaml", provenance_key(opt.seed, i)};
    const std::string tcu = (dir / (name + "_template.cu")).string();
    const std::string rcu = (dir / (name + "_reference.cu")).string();
    write_text(tcu, codegen::emit_template_kernel(*parsed, prov, "sm_90a"));
    write_text(rcu, codegen::emit_reference_kernel(*parsed, prov));
    jobs.push_back({name, tcu, (dir / (name + "_template.so")).string(), "", false});
    jobs.push_back({name, rcu, (dir / (name + "_reference.so")).string(), "", false});
    std::ostringstream line;
    line.precision(17);
    line << name << " " << gen.float_bound << "\n";
    manifest += line.str();
  }

  // The flags of tests/gpu's spec kernels (CMake, RelWithDebInfo without host debug info), as
  // shared libraries on the shared runtime; the fat binary compressed (it changes no code: a
  // masked template kernel's 0.85 MB of SASS and PTX become 0.16 MB).
  const std::string flags =
      " -O2 --generate-code=arch=compute_90a,code=[compute_90a,sm_90a] -Xcompiler=-fPIC -std=c++17 -I" +
      shell_quote(include) + " -shared -cudart shared -Xlinker -rpath -Xlinker '$ORIGIN' --compress-mode=size";
  const bool have_strip = std::system("command -v strip >/dev/null 2>&1") == 0;
  std::atomic<size_t> next{0};
  auto worker = [&]() {
    for (size_t j = next++; j < jobs.size(); j = next++) {
      Job& job = jobs[j];
      const auto t0 = std::chrono::steady_clock::now();
      job.log = job.so + ".log";
      job.ok = run_command(shell_quote(nvcc) + flags + " -o " + shell_quote(job.so) + " " + shell_quote(job.cu),
                           job.log);
      if (job.ok && have_strip) {
        job.ok = run_command("strip --strip-unneeded " + shell_quote(job.so), job.log + ".strip");
        fs::remove(job.log + ".strip");
      }
      job.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < opt.jobs; ++t) {
    threads.emplace_back(worker);
  }
  for (auto& t : threads) {
    t.join();
  }
  int failed = 0;
  for (const Job& job : jobs) {
    if (!job.ok) {
      ++failed;
      std::cout << "FAIL: " << job.cu << " does not compile:\n" << read_text(job.log) << "spec:\n"
                << read_text(dir / (job.name + ".yaml"));
    }
    fs::remove(job.log);
    if (job.ok && !opt.keep_sources) {
      fs::remove(job.cu);
    }
  }
  if (failed) {
    std::cout << "FAIL: " << failed << " of " << jobs.size() << " kernels do not compile; seed " << opt.seed << "\n";
    return 1;
  }

  // The shared runtime the libraries were linked against, beside them.
  bool copied = false;
  for (const char* cand : {"/usr/local/cuda/lib64/libcudart.so.13", "/usr/local/cuda/lib64/libcudart.so.12"}) {
    if (fs::exists(cand)) {
      fs::copy_file(cand, dir / fs::path(cand).filename(), fs::copy_options::overwrite_existing);
      copied = true;
      break;
    }
  }
  if (!copied) {
    std::cout << "warning: no libcudart.so.13 found to copy into " << dir.string()
              << "; the GPU machine must provide it\n";
  }
  write_text(dir / "manifest.txt", manifest);
  uintmax_t bytes = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) {
      bytes += e.file_size();
    }
  }
  std::vector<const Job*> by_time;
  double total_s = 0;
  for (const Job& job : jobs) {
    by_time.push_back(&job);
    total_s += job.seconds;
  }
  std::sort(by_time.begin(), by_time.end(), [](const Job* a, const Job* b) { return a->seconds > b->seconds; });
  std::cout << "compile time: " << std::lround(total_s) << " s in all, slowest";
  for (size_t k = 0; k < by_time.size() && k < 3; ++k) {
    std::cout << " " << fs::path(by_time[k]->so).filename().string() << " " << std::lround(by_time[k]->seconds) << " s";
  }
  std::cout << "\n";
  std::cout << "wrote " << opt.count << " specs (" << drawn << " drawn, max float bound " << opt.max_bound << ") and "
            << jobs.size() << " kernels into " << dir.string() << ": " << (bytes + 512 * 1024) / (1024 * 1024)
            << " MB; seed " << opt.seed << "\n";
  return 0;
}

}  // namespace
}  // namespace kg::lowering_fuzz

int main(int argc, char** argv) {
  kg::lowering_fuzz::Options opt;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) {
          throw std::invalid_argument(a + " needs a value");
        }
        return argv[++i];
      };
      if (a == "--out") {
        opt.out = value();
      } else if (a == "--count") {
        opt.count = std::stoi(value());
      } else if (a == "--seed") {
        opt.seed = std::stoull(value());
      } else if (a == "-j") {
        opt.jobs = std::stoi(value());
      } else if (a == "--nvcc") {
        opt.nvcc = value();
      } else if (a == "--max-bound") {
        opt.max_bound = std::stod(value());
      } else if (a == "--keep-sources") {
        opt.keep_sources = true;
      } else {
        throw std::invalid_argument("unknown argument " + a);
      }
    }
    return kg::lowering_fuzz::run(opt);
  } catch (const std::exception& e) {
    std::cerr << "kg_gpu_fuzz_gen: " << e.what()
              << "\nusage: kg_gpu_fuzz_gen --out DIR [--count N] [--seed S] [-j N] [--nvcc PATH] [--max-bound B] "
                 "[--keep-sources]\n";
    return 2;
  }
}
