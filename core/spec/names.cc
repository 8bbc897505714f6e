#include "spec/names.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace kg::spec {
namespace {

constexpr std::array kReservedWords = {
    // C and C++ (including alternative tokens and contextual words that would confuse codegen).
    "alignas", "alignof", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
    "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr",
    "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default",
    "delete", "do", "double", "dynamic_cast", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not_eq", "nullptr",
    "operator", "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "requires",
    "restrict", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
    "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename",
    "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq", "_Bool",
    "_Complex", "_Imaginary",
    // Python.
    "None", "as", "assert", "async", "await", "def", "del", "elif", "except", "finally", "from", "global",
    "import", "in", "is", "lambda", "nonlocal", "pass", "raise", "with", "yield"};

// Basenames of headers an emitted <name>.h must not shadow (spec_name_problem), lowercase.
// A plain array: a deduced std::array of this many elements exceeds clang's fold-expression limit.
constexpr const char* kSystemHeaders[] = {
    // C.
    "assert", "complex", "ctype", "errno", "fenv", "float", "inttypes", "iso646", "limits", "locale", "math",
    "setjmp", "signal", "stdalign", "stdarg", "stdatomic", "stdbit", "stdbool", "stdckdint", "stddef",
    "stdint", "stdio", "stdlib", "stdnoreturn", "string", "tgmath", "threads", "time", "uchar", "wchar",
    "wctype",
    // C++.
    "algorithm", "any", "array", "atomic", "barrier", "bit", "bitset", "cassert", "ccomplex", "cctype",
    "cerrno", "cfenv", "cfloat", "charconv", "chrono", "cinttypes", "ciso646", "climits", "clocale", "cmath",
    "codecvt", "compare", "complex", "concepts", "condition_variable", "coroutine", "csetjmp", "csignal",
    "cstdalign", "cstdarg", "cstdbool", "cstddef", "cstdint", "cstdio", "cstdlib", "cstring", "ctgmath",
    "ctime", "cuchar", "cwchar", "cwctype", "deque", "exception", "execution", "expected", "filesystem",
    "flat_map", "flat_set", "format", "forward_list", "fstream", "functional", "future", "generator",
    "initializer_list", "iomanip", "ios", "iosfwd", "iostream", "istream", "iterator", "latch", "limits",
    "list", "locale", "map", "mdspan", "memory", "memory_resource", "mutex", "new", "numbers", "numeric",
    "optional", "ostream", "print", "queue", "random", "ranges", "ratio", "regex", "scoped_allocator",
    "semaphore", "set", "shared_mutex", "source_location", "span", "spanstream", "sstream", "stack",
    "stacktrace", "stdexcept", "stdfloat", "stop_token", "streambuf", "string", "string_view", "strstream",
    "syncstream", "system_error", "text_encoding", "thread", "tuple", "type_traits", "typeindex", "typeinfo",
    "unordered_map", "unordered_set", "utility", "valarray", "variant", "vector", "version",
    // POSIX and glibc.
    "aio", "alloca", "argp", "argz", "byteswap", "cpio", "crypt", "dirent", "dlfcn", "elf", "endian", "envz",
    "err", "error", "execinfo", "fcntl", "features", "fmtmsg", "fnmatch", "fts", "ftw", "getopt", "glob",
    "grp", "iconv", "ifaddrs", "langinfo", "lastlog", "libgen", "libintl", "link", "malloc", "mcheck",
    "memory", "mntent", "monetary", "mqueue", "ndbm", "netdb", "nl_types", "obstack", "paths", "poll",
    "printf", "pthread", "pty", "pwd", "re_comp", "regex", "regexp", "resolv", "sched", "search", "semaphore",
    "sgtty", "shadow", "spawn", "stab", "strings", "stropts", "sysexits", "syslog", "tar", "termio",
    "termios", "thread_db", "trace", "ttyent", "ucontext", "ulimit", "unistd", "ustat", "utime", "utmp",
    "utmpx", "values", "wait", "wordexp", "xlocale",
    // CUDA toolkit.
    "builtin_types", "channel_descriptor", "common_functions", "cooperative_groups", "cublas", "cublas_api",
    "cublas_v2", "cublaslt", "cublasxt", "cucomplex", "cuda", "cuda_awbarrier", "cuda_awbarrier_helpers",
    "cuda_awbarrier_primitives", "cuda_bf16", "cuda_device_runtime_api", "cuda_egl_interop", "cuda_fp16",
    "cuda_fp4", "cuda_fp6", "cuda_fp8", "cuda_gl_interop", "cuda_occupancy", "cuda_pipeline",
    "cuda_pipeline_helpers", "cuda_pipeline_primitives", "cuda_profiler_api", "cuda_runtime",
    "cuda_runtime_api", "cuda_stdint", "cuda_surface_types", "cuda_texture_types", "cuda_vdpau_interop",
    "cudaegl", "cudaegltypedefs", "cudagl", "cudagltypedefs", "cudaprofiler", "cudaprofilertypedefs",
    "cudart_platform", "cudatypedefs", "cudavdpau", "cudavdpautypedefs", "cudnn", "cufft", "cufftw",
    "cufftxt", "cufile", "curand", "curand_discrete", "curand_kernel", "curand_normal", "curand_uniform",
    "cusolver_common", "cusolverdn", "cusolversp", "cusparse", "cusparselt", "cutensor",
    "device_atomic_functions", "device_double_functions", "device_functions", "device_launch_parameters",
    "device_types", "driver_functions", "driver_types", "fatbinary_section", "host_config", "host_defines",
    "library_types", "math_constants", "math_functions", "mma", "nppi", "npps", "nvblas", "nvfunctional",
    "nvjpeg", "nvml", "nvperf_host", "nvrtc", "nvtoolsext", "nvtx3", "sm_20_atomic_functions",
    "sm_20_intrinsics", "sm_30_intrinsics", "sm_32_atomic_functions", "sm_32_intrinsics",
    "sm_35_atomic_functions", "sm_35_intrinsics", "sm_60_atomic_functions", "sm_61_intrinsics",
    "surface_functions", "surface_indirect_functions", "surface_types", "texture_fetch_functions",
    "texture_indirect_functions", "texture_types", "vector_functions", "vector_types",
};

constexpr std::array kBuiltinVariables = {"score", "b", "h", "q_idx", "kv_idx"};
constexpr std::array kBuiltinFunctions = {"abs", "min",  "max",  "clamp", "exp",  "exp2",
                                          "log", "log2", "sqrt", "tanh",  "floor"};
constexpr std::array kLanguageKeywords = {"True", "False", "and", "or", "not", "if", "else"};

template <class Words>
bool contains(const Words& words, std::string_view s) {
  return std::any_of(std::begin(words), std::end(words), [&](const char* w) { return s == w; });
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

bool is_identifier(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(s[0])) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [&](char c) { return alpha(c) || digit(c); });
}

bool is_reserved_word(std::string_view s) { return contains(kReservedWords, s); }

bool is_system_header_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) {
    c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return contains(kSystemHeaders, lower);
}

std::string spec_name_problem(std::string_view name) {
  if (is_system_header_name(name)) {
    return "it is the name of a system or CUDA header, and the emitted " + std::string(name) +
           ".h would shadow it in the build directory on the include path";
  }
  constexpr std::string_view kReferenceSuffix = "_reference";
  if (name.size() >= kReferenceSuffix.size() &&
      name.substr(name.size() - kReferenceSuffix.size()) == kReferenceSuffix) {
    return "names ending in '_reference' are taken by the reference kernel of another spec (spec '" +
           std::string(name.substr(0, name.size() - kReferenceSuffix.size())) + "' writes " + std::string(name) +
           ".cu)";
  }
  return "";
}

bool is_builtin_name(std::string_view s) {
  return contains(kBuiltinVariables, s) || contains(kBuiltinFunctions, s) || contains(kLanguageKeywords, s);
}

std::string builtin_kind(std::string_view s) {
  if (contains(kBuiltinVariables, s)) {
    return "built-in variable";
  }
  if (contains(kBuiltinFunctions, s)) {
    return "built-in function";
  }
  return "keyword";
}

std::optional<std::string> closest_name(std::string_view word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(1, word.size() / 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance && c != word) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  const auto best = closest_name(word, candidates);
  return best ? " (did you mean '" + *best + "'?)" : "";
}

const char* tensor_dtype_name(TensorDType t) {
  switch (t) {
    case TensorDType::Int32:
      return "int32";
    case TensorDType::Int64:
      return "int64";
    case TensorDType::Float32:
      return "float32";
  }
  return "?";
}

const char* dim_name(Dim d) {
  switch (d) {
    case Dim::Batch:
      return "batch";
    case Dim::HeadsQ:
      return "heads_q";
    case Dim::HeadsKv:
      return "heads_kv";
    case Dim::SeqQ:
      return "seq_q";
    case Dim::SeqKv:
      return "seq_kv";
    case Dim::Fixed:
      return "";
  }
  return "?";
}

std::string dim_text(const TensorDim& d) {
  return d.dim == Dim::Fixed ? std::to_string(d.extent) : std::string(dim_name(d.dim));
}

}  // namespace kg::spec
