// A small fuzzing driver for LLVMFuzzerTestOneInput targets, so that the fuzz targets build with
// any compiler and run under CTest (with clang, -DKERNELGEN_FUZZ=libfuzzer links libFuzzer instead).
//
//   fuzz_<target> [--time S] [--runs N] [--seed N] [--timeout-ms MS] [--max-len BYTES]
//                 [--batch N] [--crash-dir DIR] SEED_FILE_OR_DIR...
//
// Input i (0-based) is a pure function of (--seed, i, the seed corpus): the seeds first, in
// sorted path order, then mutations of them: bit flips, byte changes, inserts and deletes,
// duplicated ranges, splices of two seeds, and inserts of language and YAML/JSON tokens (`(`,
// `**`, `if`, digit runs, `[`, `{`, `,`, `---`, frame headers ...), some repeated hundreds of times
// to reach the nesting limits. There is no coverage feedback: this is the always-on CI check;
// bench/fuzz.sh runs libFuzzer for the long searches.
//
// Inputs run in a forked child, a batch at a time. A child that dies (signal, abort, sanitizer
// exit) is a crash; an input that runs longer than --timeout-ms is a hang (a watchdog in the
// parent kills the child). Either way the input is saved under --crash-dir (crash-<i> / hang-<i>)
// and the run goes on with the next input, so a long run counts every crash and hang rather than
// stopping at the first. Stops after --runs inputs or --time seconds, whichever comes first, and
// prints `inputs tried N, crashes C, hangs H, S s`. Exit status 0 when C and H are 0, else 1; 2 for
// a usage error.
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

struct Options {
  double time_s = 20.0;
  uint64_t runs = UINT64_MAX;
  uint64_t seed = 1;
  int timeout_ms = 2000;
  size_t max_len = 64 * 1024;
  uint64_t batch = 2000;
  std::string crash_dir;
  std::vector<std::string> corpus_paths;
};

// What the child tells the parent, in memory shared between them.
struct Shared {
  std::atomic<uint64_t> current;      // index of the input running now
  std::atomic<int64_t> started_ns;    // when it started (steady clock); 0: between inputs
  std::atomic<uint64_t> next;         // first input not yet finished
  std::atomic<uint32_t> length;       // bytes of the current input in `data`
  unsigned char data[1];              // max_len bytes in fact
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// splitmix64: a small, fully deterministic generator.
class Rng {
 public:
  explicit Rng(uint64_t seed) : m_state(seed) {}
  uint64_t next() {
    uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }

 private:
  uint64_t m_state;
};

// Tokens worth inserting: the mod language, YAML and JSON punctuation, the spec's field names,
// numbers at the edges of the ranges, and bytes a terminal would interpret.
const std::vector<std::string>& tokens() {
  static const std::vector<std::string> kTokens = {
      "(", ")", "[", "]", "{", "}", ",", ":", "-", "+", "*", "**", "/", "//", "%", "<", "<=", "==", "!=", ">=",
      " if ", " else ", "not ", " and ", " or ", "True", "False", "=", "\n", "\n  ", " ", "\\\n", "#",
      "0", "1", "7", "00", "2147483647", "2147483648", "-2147483648", "1e308", "1e309", "0.5", ".5", "5.",
      "1e-400", "99999999999999999999", "score", "b", "h", "q_idx", "kv_idx", "abs(", "min(", "max(",
      "clamp(", "exp(", "log(", "sqrt(", "floor(", "tanh(", "exp2(", "log2(", "W", "doc[", "x = ",
      "name: ", "dtype: ", "head_dim: ", "score_mod: ", "mask_mod: ", "constants:", "params:", "tensors:",
      "shape: [", "batch", "seq_q", "seq_kv", "heads_q", "heads_kv", "int32", "int64", "float32", "bf16",
      "fp16", "64", "128", "256", "int", "float", "---", "...", "|", ">", "|-", "&a ", "*a", "!!str ", "? ",
      "'", "\"", "\\x01", "\\e", "%YAML 1.2\n", "\t", "\r", std::string(1, '\0'), "\x1b[31m", "\xc2\x9b",
      "\xe2\x80\xae", "\xff", "{\"type\": \"generate\", \"spec\": \"", "\"type\"", "\"generate\"",
      "\"status\"", "\"stats\"", "\"shutdown\"", "\"hello\"", "\"progress\"", "\"result\"", "\"error\"",
      "\"spec\"", "\"arch\"", "\"verify\"", "\"ok\"", "\"key\"", "\"outcome\"", "\"code\"", "\"pid\"",
      "null", "true", "false", "-0", "1e999", "18446744073709551616", "\"\\u0000\"", "\"\\ud800\"",
      std::string("\x00\x00\x00\x00", 4), std::string("\x02\x00\x00\x00", 4), std::string("\xff\xff\xff\xff", 4),
      std::string("\x10\x00\x00\x00", 4), std::string("\x00\x00\x00\x01", 4)};
  return kTokens;
}

std::string mutate(const std::vector<std::string>& corpus, Rng& rng, size_t max_len) {
  std::string s = corpus.empty() ? std::string() : corpus[rng.below(corpus.size())];
  const size_t rounds = 1 + rng.below(8);
  for (size_t r = 0; r < rounds; ++r) {
    const size_t at = rng.below(s.size() + 1);
    switch (rng.below(9)) {
      case 0:  // bit flip
        if (!s.empty()) {
          s[rng.below(s.size())] ^= static_cast<char>(1u << rng.below(8));
        }
        break;
      case 1:  // byte set
        if (!s.empty()) {
          s[rng.below(s.size())] = static_cast<char>(rng.below(256));
        }
        break;
      case 2:  // byte insert
        s.insert(at, 1, static_cast<char>(rng.below(256)));
        break;
      case 3: {  // delete a range
        const size_t n = std::min(s.size() - std::min(at, s.size()), 1 + rng.below(16));
        s.erase(std::min(at, s.size()), n);
        break;
      }
      case 4: {  // duplicate a range
        if (!s.empty()) {
          const size_t from = rng.below(s.size());
          const size_t n = std::min(s.size() - from, 1 + rng.below(64));
          s.insert(at, s.substr(from, n));
        }
        break;
      }
      case 5: {  // splice: a piece of another seed
        if (!corpus.empty()) {
          const std::string& other = corpus[rng.below(corpus.size())];
          if (!other.empty()) {
            const size_t from = rng.below(other.size());
            s.insert(at, other.substr(from, 1 + rng.below(other.size() - from)));
          }
        }
        break;
      }
      case 6:  // a token repeated many times: nesting and length limits
        s.insert(at, [&] {
          const std::string& t = tokens()[rng.below(tokens().size())];
          std::string run;
          for (size_t k = 0, n = 1 + rng.below(rng.below(4) == 0 ? 3000 : 40); k < n && run.size() < max_len; ++k) {
            run += t;
          }
          return run;
        }());
        break;
      default:  // one token
        s.insert(at, tokens()[rng.below(tokens().size())]);
        break;
    }
  }
  if (s.size() > max_len) {
    s.resize(max_len);
  }
  return s;
}

// Input `i`: a seed, or a mutation that depends on (seed, i) only.
std::string input(uint64_t i, const std::vector<std::string>& corpus, const Options& o) {
  if (i < corpus.size()) {
    return corpus[i].substr(0, o.max_len);
  }
  Rng rng(o.seed * 0x100000001b3ULL ^ (i + 1) * 0x9e3779b97f4a7c15ULL);
  return mutate(corpus, rng, o.max_len);
}

void add_corpus(const std::string& path, std::vector<std::pair<std::string, std::string>>& files) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "fuzz: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(2);
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* dir = ::opendir(path.c_str());
    while (dir) {
      const dirent* e = ::readdir(dir);
      if (!e) {
        break;
      }
      if (e->d_name[0] != '.') {
        add_corpus(path + "/" + e->d_name, files);
      }
    }
    if (dir) {
      ::closedir(dir);
    }
    return;
  }
  std::ifstream in(path, std::ios::binary);
  files.emplace_back(path, std::string(std::istreambuf_iterator<char>(in), {}));
}

void save(const Options& o, const char* kind, uint64_t i, const Shared& sh) {
  if (o.crash_dir.empty()) {
    return;
  }
  ::mkdir(o.crash_dir.c_str(), 0755);
  const std::string path = o.crash_dir + "/" + kind + "-" + std::to_string(i);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(sh.data), sh.length.load());
  std::fprintf(stderr, "fuzz: %s on input %llu, saved as %s\n", kind, static_cast<unsigned long long>(i),
               path.c_str());
}

// The child: runs inputs [first, last) and exits 0.
[[noreturn]] void child(uint64_t first, uint64_t last, const std::vector<std::string>& corpus, const Options& o,
                        Shared& sh) {
  for (uint64_t i = first; i < last; ++i) {
    const std::string in = input(i, corpus, o);
    std::memcpy(sh.data, in.data(), in.size());
    sh.length.store(static_cast<uint32_t>(in.size()));
    sh.current.store(i);
    sh.started_ns.store(now_ns());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(in.data()), in.size());
    sh.started_ns.store(0);
    sh.next.store(i + 1);
  }
  std::fflush(nullptr);
  ::_exit(0);
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--time" && (v = value())) {
      o.time_s = std::atof(v);
    } else if (a == "--runs" && (v = value())) {
      o.runs = std::strtoull(v, nullptr, 10);
    } else if (a == "--seed" && (v = value())) {
      o.seed = std::strtoull(v, nullptr, 10);
    } else if (a == "--timeout-ms" && (v = value())) {
      o.timeout_ms = std::atoi(v);
    } else if (a == "--max-len" && (v = value())) {
      o.max_len = std::max<size_t>(1, std::strtoull(v, nullptr, 10));
    } else if (a == "--batch" && (v = value())) {
      o.batch = std::max<uint64_t>(1, std::strtoull(v, nullptr, 10));
    } else if (a == "--crash-dir" && (v = value())) {
      o.crash_dir = v;
    } else if (!a.empty() && a[0] != '-') {
      o.corpus_paths.push_back(a);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--time S] [--runs N] [--seed N] [--timeout-ms MS] [--max-len BYTES] [--batch N] "
                   "[--crash-dir DIR] SEED_FILE_OR_DIR...\n",
                   argv[0]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) {
    return 2;
  }
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& p : o.corpus_paths) {
    add_corpus(p, files);
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> corpus;
  for (auto& f : files) {
    corpus.push_back(std::move(f.second));
  }

  const size_t shared_bytes = sizeof(Shared) + o.max_len;
  void* mem = ::mmap(nullptr, shared_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::perror("fuzz: mmap");
    return 2;
  }
  Shared& sh = *new (mem) Shared();

  const int64_t start = now_ns();
  const int64_t deadline = start + static_cast<int64_t>(o.time_s * 1e9);
  const int64_t timeout_ns = static_cast<int64_t>(o.timeout_ms) * 1000000;
  uint64_t next = 0;
  uint64_t crashes = 0;
  uint64_t hangs = 0;
  while (next < o.runs && now_ns() < deadline) {
    const uint64_t last = std::min(o.runs, next + o.batch);
    sh.next.store(next);
    sh.started_ns.store(0);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("fuzz: fork");
      return 2;
    }
    if (pid == 0) {
      child(next, last, corpus, o, sh);
    }
    int status = 0;
    bool hung = false;
    bool out_of_time = false;  // killed at the deadline: whatever it was running is no finding
    while (true) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        break;
      }
      const int64_t started = sh.started_ns.load();
      const int64_t t = now_ns();
      if (!hung && started != 0 && t - started > timeout_ns) {
        hung = true;
        ::kill(pid, SIGKILL);
      } else if (!hung && !out_of_time && t > deadline && started == 0) {
        out_of_time = true;
        ::kill(pid, SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const uint64_t done = sh.next.load();
    if (hung) {
      ++hangs;
      save(o, "hang", sh.current.load(), sh);
      next = sh.current.load() + 1;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && done == last) {
      next = last;
    } else if (!out_of_time && sh.started_ns.load() != 0) {
      ++crashes;
      save(o, "crash", sh.current.load(), sh);
      next = sh.current.load() + 1;
    } else {
      next = done;  // stopped at the deadline
    }
  }
  const double seconds = static_cast<double>(now_ns() - start) / 1e9;
  std::printf("%s: inputs tried %llu, crashes %llu, hangs %llu, %.1f s (seeds %zu, seed %llu)\n", argv[0],
              static_cast<unsigned long long>(next), static_cast<unsigned long long>(crashes),
              static_cast<unsigned long long>(hangs), seconds, corpus.size(),
              static_cast<unsigned long long>(o.seed));
  return crashes == 0 && hangs == 0 ? 0 : 1;
}
