#include "verify/static_check.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

namespace kg::verify {

namespace {

// Identifiers a candidate may not use. Matched as whole identifiers anywhere in the code
// (not after `.` or `->`, which are member accesses).
const std::set<std::string_view>& denied_identifiers() {
  static const std::set<std::string_view> k = {
      // Streams, graphs, host callbacks: the kernel must run on the stream it was given.
      "cudaStreamCreate", "cudaStreamCreateWithFlags", "cudaStreamCreateWithPriority", "cudaStreamPerThread",
      "cudaStreamLegacy", "cudaLaunchHostFunc", "cudaStreamAddCallback", "cudaStreamBeginCapture",
      "cudaStreamBeginCaptureToGraph", "cudaGraphLaunch", "cudaGraphInstantiate", "cudaGraphCreate",
      "cudaLaunchCooperativeKernelMultiDevice", "cudaSetDevice", "cudaDeviceReset", "cudaThreadExit",
      "cudaDeviceSetLimit", "cudaCtxResetPersistingL2Cache", "cudaIpcOpenMemHandle", "cudaIpcGetMemHandle",
      // Threads.
      "thread", "jthread", "async", "pthread_create", "pthread_attr_init", "thrd_create", "clone", "clone3",
      // Processes.
      "fork", "vfork", "execl", "execlp", "execle", "execv", "execvp", "execve", "execvpe", "fexecve", "system",
      "popen", "posix_spawn", "posix_spawnp", "kill", "ptrace", "syscall", "daemon", "setsid",
      // Leaving the process early or running code after the entry returns: the judge decides when the
      // candidate is done.
      "exit", "_exit", "_Exit", "quick_exit", "atexit", "at_quick_exit", "on_exit", "__cxa_atexit",
      "__cxa_thread_atexit", "signal", "sigaction", "pthread_atfork",
      // The environment (the runner's settings are the judge's, not the candidate's).
      "getenv", "secure_getenv", "setenv", "putenv", "unsetenv", "clearenv", "environ", "__environ",
      // Memory protection and descriptors (forging the runner's messages, writable code).
      "mprotect", "dup2", "dup3", "prctl",
      // Files.
      "fopen", "fopen64", "freopen", "freopen64", "fdopen", "tmpfile64", "open", "open64", "openat", "creat", "tmpfile", "mkstemp",
      "mkdtemp", "ofstream", "ifstream", "fstream", "filebuf", "filesystem", "mmap", "mmap64", "unlink",
      "remove", "rename", "mkdir", "rmdir", "opendir", "truncate", "ftruncate", "chdir", "chmod", "symlink",
      "link",
      // Sockets and network.
      "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "getaddrinfo",
      "gethostbyname", "sendto", "recvfrom", "sendmsg", "recvmsg",
      // Dynamic loading.
      "dlopen", "dlmopen", "dlsym", "dlvsym",
  };
  return k;
}

// Driver-API names that must not appear in string literals (cudaGetDriverEntryPoint lookups).
// (Matched as substrings: "cuStream" covers cuStreamCreate, cuStreamCreateWithPriority, ...)
const std::set<std::string_view>& denied_driver_names() {
  static const std::set<std::string_view> k = {
      "cuStream", "cuLaunchHostFunc", "cuCtx", "cuDevicePrimaryCtx", "cuGraph", "cuMemcpy", "cuIpc",
      "cuModuleLoad", "cuLibraryLoad", "cuGetProcAddress", "cuGetExportTable", "cuLaunchCooperativeKernelMultiDevice",
      "cuUserObject",
  };
  return k;
}

// Short, common words: denied only where they are called (`open(`), template-called, or std::
// qualified, so that a variable called `open` or `thread` stays fine.
const std::set<std::string_view>& common_words() {
  static const std::set<std::string_view> k = {
      "thread", "async", "clone", "kill", "daemon", "system", "open", "remove", "rename", "link", "truncate",
      "socket", "connect", "bind", "listen", "accept", "exit", "signal", "mkdir", "rmdir", "chdir", "chmod",
      "symlink", "creat", "filebuf", "filesystem",
  };
  return k;
}

bool header_allowed(const std::string& h, bool angle) {
  if (!angle) {
    return h == "kernelgen/attention_abi.h";
  }
  static const std::set<std::string_view> k = {
      // CUDA.
      "cuda.h", "cuda_runtime.h", "cuda_runtime_api.h", "cuda_fp16.h", "cuda_fp16.hpp", "cuda_bf16.h",
      "cuda_bf16.hpp", "cuda_fp8.h", "cuda_fp8.hpp", "cuda_fp6.h", "cuda_fp4.h", "cuda_pipeline.h",
      "cuda_pipeline_primitives.h", "cuda_awbarrier.h", "cuda_awbarrier_primitives.h", "cooperative_groups.h",
      "mma.h", "device_functions.h", "device_atomic_functions.h", "sm_90_rt.h", "vector_types.h",
      "vector_functions.h", "math_constants.h", "cudaTypedefs.h", "builtin_types.h", "driver_types.h",
      "kernelgen/attention_abi.h",
      // C.
      "stdint.h", "stddef.h", "stdbool.h", "stdio.h", "stdlib.h", "string.h", "math.h", "float.h",
      "limits.h", "assert.h", "stdarg.h", "inttypes.h",
      // C++.
      "cstdint", "cstddef", "cstdio", "cstdlib", "cstring", "cmath", "cfloat", "climits", "cassert",
      "cstdarg", "cinttypes", "type_traits", "utility", "algorithm", "array", "limits", "tuple", "numeric",
      "initializer_list", "bit", "new", "functional", "iterator", "memory", "string", "string_view", "vector",
      "optional", "variant", "atomic", "cuda/barrier", "cuda/pipeline", "cuda/ptx", "cuda/annotated_ptr",
      "cuda/atomic", "cuda/std/cstdint", "cuda/std/type_traits", "cuda/std/utility", "cuda/std/array",
      "cuda/std/limits", "cuda/std/bit", "cuda/std/cmath", "cuda/std/tuple", "cuda/std/atomic",
      "cooperative_groups/reduce.h", "cooperative_groups/memcpy_async.h", "cooperative_groups/scan.h",
  };
  return k.count(h) != 0;
}

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

int line_of(const std::string& text, size_t pos) {
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

Finding static_finding(FindingKind kind, std::string message) {
  Finding f;
  f.kind = kind;
  f.stage = kStageStatic;
  f.message = std::move(message);
  return f;
}

// Calls `visit(literal_begin, literal_end_exclusive, is_string)` for each string/char literal of
// comment-free positions, and `comment(begin, end)` for each comment. Handles raw strings.
template <typename Lit, typename Com>
void scan(const std::string& s, Lit lit, Com comment) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const char c = s[i];
    if (c == '/' && i + 1 < n && s[i + 1] == '/') {
      size_t e = s.find('\n', i);
      e = e == std::string::npos ? n : e;
      comment(i, e);
      i = e;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      size_t e = s.find("*/", i + 2);
      e = e == std::string::npos ? n : e + 2;
      comment(i, e);
      i = e;
    } else if (c == 'R' && i + 1 < n && s[i + 1] == '"' && (i == 0 || !ident_char(s[i - 1]))) {
      const size_t open = s.find('(', i + 2);
      if (open == std::string::npos) {
        ++i;
        continue;
      }
      const std::string close = ")" + s.substr(i + 2, open - i - 2) + "\"";
      size_t e = s.find(close, open);
      e = e == std::string::npos ? n : e + close.size();
      lit(open + 1, e - close.size() < open + 1 ? open + 1 : e - close.size(), true);
      i = e;
    } else if (c == '"' || (c == '\'' && !(i > 0 && std::isxdigit(static_cast<unsigned char>(s[i - 1])) &&
                                           i + 1 < n && std::isxdigit(static_cast<unsigned char>(s[i + 1]))))) {
      // (a ' between hex digits is a C++14 digit separator, not a literal)
      size_t j = i + 1;
      while (j < n && s[j] != c && s[j] != '\n') {
        j += s[j] == '\\' ? 2 : 1;
      }
      lit(i + 1, std::min(j, n), c == '"');
      i = std::min(j + 1, n);
    } else {
      ++i;
    }
  }
}

// Position of the first `#` / `%:` in `code` (comment- and literal-free) that is neither a
// directive's introducer nor inside a function-like macro's body (where `#x` stringifies), or npos.
// An object-like macro `#define H # 1 "file"`, or `#` passed as a macro argument, expands into a
// line marker when it lands at the start of a line of the preprocessed output.
size_t stray_hash(const std::string& code) {
  size_t i = 0;
  while (i < code.size()) {
    // One logical line: backslash-newline continues it.
    size_t end = i;
    while (end < code.size() && (code[end] != '\n' || (end > i && code[end - 1] == '\\'))) {
      ++end;
    }
    size_t k = code.find_first_not_of(" \t", i);
    size_t body = i;  // where stray `#`s are looked for
    bool function_like = false;
    if (k < end && (code[k] == '#' || code.compare(k, 2, "%:") == 0)) {
      body = k + (code[k] == '#' ? 1 : 2);
      size_t w = code.find_first_not_of(" \t", body);
      if (w < end && code.compare(w, 6, "define") == 0) {
        size_t n = code.find_first_not_of(" \t\\\n", w + 6);
        while (n < end && ident_char(code[n])) {
          ++n;
        }
        function_like = n < end && code[n] == '(';
        body = n;
      }
    }
    if (!function_like) {
      for (size_t j = body; j < end; ++j) {
        if (code[j] == '#' || (code[j] == '%' && j + 1 < end && code[j + 1] == ':')) {
          return j;
        }
      }
    }
    i = end + 1;
  }
  return std::string::npos;
}

}  // namespace

bool is_denied_identifier(std::string_view id) { return denied_identifiers().count(id) != 0; }

bool is_common_word(std::string_view id) { return common_words().count(id) != 0; }

std::string denied_driver_name_in(std::string_view literal) {
  for (std::string_view name : denied_driver_names()) {
    if (literal.find(name) != std::string_view::npos) {
      return std::string(name);
    }
  }
  return "";
}

std::string entry_symbol(const std::string& spec_name) { return "kg_" + spec_name + "_forward"; }

std::string strip_comments_and_literals(const std::string& source) {
  std::string out = source;
  auto blank = [&](size_t b, size_t e) {
    for (size_t k = b; k < e && k < out.size(); ++k) {
      if (out[k] != '\n') {
        out[k] = ' ';
      }
    }
  };
  scan(
      source,
      [&](size_t b, size_t e, bool is_string) {
        if (!(is_string && e == b + 1 && source[b] == 'C')) {  // keep extern "C"
          blank(b, e);
        }
      },
      blank);
  return out;
}

std::vector<std::string> string_literals(const std::string& source) {
  std::vector<std::string> out;
  scan(
      source, [&](size_t b, size_t e, bool is_string) {
        if (is_string) {
          out.push_back(source.substr(b, e - b));
        }
      },
      [](size_t, size_t) {});
  return out;
}

std::vector<Finding> static_check(const std::string& source, const std::string& spec_name) {
  std::vector<Finding> findings;
  // Includes are read from the comment-free text before literals are blanked ("..." is a literal).
  std::string no_comments = source;
  scan(
      source, [](size_t, size_t, bool) {},
      [&](size_t b, size_t e) {
        for (size_t k = b; k < e; ++k) {
          if (no_comments[k] != '\n') {
            no_comments[k] = ' ';
          }
        }
      });
  size_t line_start = 0;
  int line_no = 0;
  while (line_start <= no_comments.size()) {
    ++line_no;
    size_t line_end = no_comments.find('\n', line_start);
    if (line_end == std::string::npos) {
      line_end = no_comments.size();
    }
    std::string_view line(no_comments.data() + line_start, line_end - line_start);
    size_t k = line.find_first_not_of(" \t");
    // `%:` is the digraph of `#`: `%:include <unistd.h>` is an include.
    const bool digraph = k != std::string_view::npos && line.substr(k, 2) == "%:";
    if (k != std::string_view::npos && (line[k] == '#' || digraph)) {
      std::string_view rest = line.substr(k + (digraph ? 2 : 1));
      rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
      if (rest.substr(0, 4) == "line" || (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0])))) {
        // A line directive would make the candidate's code look as if it came from elsewhere (a
        // system header, nvcc's stub), where the checks on the preprocessed text do not look.
        findings.push_back(static_finding(FindingKind::ForbiddenCall,
                                          "line " + std::to_string(line_no) + ": `#" + std::string(rest) +
                                              "`: line directives are not allowed in a kernel"));
      }
      if (rest.substr(0, 7) == "include" || rest.substr(0, 12) == "include_next" || rest.substr(0, 6) == "import") {
        const size_t word = rest.substr(0, 12) == "include_next" ? 12 : (rest[1] == 'm' ? 6 : 7);
        std::string_view arg = rest.substr(word);
        arg.remove_prefix(std::min(arg.find_first_not_of(" \t"), arg.size()));
        std::string header;
        bool angle = false, ok_form = false;
        if (!arg.empty() && (arg[0] == '<' || arg[0] == '"')) {
          const char close = arg[0] == '<' ? '>' : '"';
          const size_t e = arg.find(close, 1);
          if (e != std::string_view::npos) {
            header = std::string(arg.substr(1, e - 1));
            angle = arg[0] == '<';
            ok_form = rest.substr(0, 7) == "include" && word == 7;
          }
        }
        if (!ok_form) {
          findings.push_back(static_finding(
              FindingKind::ForbiddenHeader, "line " + std::to_string(line_no) + ": `#" + std::string(rest) +
                                          "`: only `#include <header>` of allowed headers and "
                                          "`#include \"kernelgen/attention_abi.h\"` are accepted"));
        } else if (!header_allowed(header, angle)) {
          findings.push_back(static_finding(
              FindingKind::ForbiddenHeader,
              "line " + std::to_string(line_no) + ": header " + (angle ? "<" + header + ">" : "\"" + header + "\"") +
                  " is not allowed (only CUDA headers, C/C++ standard headers without file, thread or process "
                  "access, and \"kernelgen/attention_abi.h\"; the kernel must be one self-contained .cu file)"));
        }
      }
    }
    line_start = line_end + 1;
  }

  const std::string code = strip_comments_and_literals(source);
  if (const size_t stray = stray_hash(code); stray != std::string::npos) {
    findings.push_back(static_finding(
        FindingKind::ForbiddenCall,
        "line " + std::to_string(line_of(code, stray)) +
            ": `#` (or `%:`) outside a directive or a function-like macro's stringification: expanded at the "
            "start of a line it would forge a line marker in the preprocessed text"));
  }
  // Denied identifiers (each reported once, at its first use).
  std::set<std::string> reported;
  const std::string entry = entry_symbol(spec_name);
  bool entry_defined = false;
  for (size_t i = 0; i < code.size();) {
    if (!ident_start(code[i]) || (i > 0 && ident_char(code[i - 1]))) {
      ++i;
      continue;
    }
    size_t e = i;
    while (e < code.size() && ident_char(code[e])) {
      ++e;
    }
    const std::string id = code.substr(i, e - i);
    size_t before = i;
    while (before > 0 && (code[before - 1] == ' ' || code[before - 1] == '\t')) {
      --before;
    }
    const bool member = before > 0 && (code[before - 1] == '.' || (before > 1 && code[before - 1] == '>' &&
                                                                   code[before - 2] == '-'));
    const bool std_qualified = before > 1 && code[before - 1] == ':' && code[before - 2] == ':';
    if (denied_identifiers().count(id) && !member && !reported.count(id)) {
      // Short common words count only as calls or std:: names: `int open = 0;` is fine.
      size_t after = e;
      while (after < code.size() && std::isspace(static_cast<unsigned char>(code[after]))) {
        ++after;
      }
      const bool call = after < code.size() && (code[after] == '(' || code[after] == '<');
      const bool cuda_name = id.rfind("cuda", 0) == 0;
      if (cuda_name || call || std_qualified) {
        reported.insert(id);
        findings.push_back(static_finding(
            FindingKind::ForbiddenCall,
            "line " + std::to_string(line_of(code, i)) + ": `" + id +
                "` is not allowed in a kernel: no stream, graph, thread, process, file or socket creation, "
                "device changes or dynamic loading; enqueue all work on the stream passed to the entry point"));
      }
    }
    if (id == entry && !member) {
      // A definition: `(` ... `)` then `{` (not `;`).
      size_t p = e;
      while (p < code.size() && std::isspace(static_cast<unsigned char>(code[p]))) {
        ++p;
      }
      if (p < code.size() && code[p] == '(') {
        int depth = 0;
        for (; p < code.size(); ++p) {
          depth += code[p] == '(' ? 1 : code[p] == ')' ? -1 : 0;
          if (depth == 0) {
            break;
          }
        }
        ++p;
        while (p < code.size() && std::isspace(static_cast<unsigned char>(code[p]))) {
          ++p;
        }
        if (p < code.size() && code[p] == '{' && code.find("extern \"C\"") != std::string::npos &&
            code.find("extern \"C\"") < i) {
          entry_defined = true;
        }
      }
    }
    i = e;
  }
  // `___` is the name nvcc's generated host code uses (`{int volatile ___ = 1; ::exit(___);}`
  // stands in for a device function's body); the checks on the preprocessed text trust it.
  for (size_t i = code.find("___"); i != std::string::npos; i = code.find("___", i + 3)) {
    if ((i == 0 || !ident_char(code[i - 1])) && (i + 3 >= code.size() || !ident_char(code[i + 3]))) {
      findings.push_back(static_finding(FindingKind::ForbiddenCall,
                                        "line " + std::to_string(line_of(code, i)) +
                                            ": the name `___` is reserved for nvcc's generated code"));
      break;
    }
  }
  // `##`, and its digraph spelling `%:%:`, can assemble a denied name out of harmless parts.
  for (const char* paste : {"##", "%:%:"}) {
    if (code.find(paste) != std::string::npos) {
      findings.push_back(static_finding(FindingKind::ForbiddenCall,
                                        "line " + std::to_string(line_of(code, code.find(paste))) + ": token pasting (`" +
                                            paste + "`) is not allowed: it can assemble denied names"));
    }
  }
  // Trigraphs (`??=` is `#`) are another spelling of the same characters.
  if (code.find("?\?=") != std::string::npos) {
    findings.push_back(static_finding(FindingKind::ForbiddenCall,
                                      "line " + std::to_string(line_of(code, code.find("?\?="))) +
                                          ": trigraphs are not allowed in a kernel"));
  }
  for (const std::string& lit : string_literals(source)) {
    for (std::string_view name : denied_driver_names()) {
      if (lit.find(name) != std::string::npos && !reported.count(std::string(name))) {
        reported.insert(std::string(name));
        findings.push_back(static_finding(FindingKind::ForbiddenCall,
                                          "string literal names the driver API `" + std::string(name) +
                                              "...`, which a kernel may not reach (cudaGetDriverEntryPoint)"));
      }
    }
  }
  if (!entry_defined) {
    findings.insert(findings.begin(),
                    static_finding(FindingKind::MissingEntry,
                                   "no definition of `extern \"C\" cudaError_t " + entry +
                                       "(const KgAttentionArgs* args, cudaStream_t stream)` (kernelgen/attention_abi.h): "
                                       "the entry point must be defined in this file with C linkage"));
  }
  return findings;
}

}  // namespace kg::verify
