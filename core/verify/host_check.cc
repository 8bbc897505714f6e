#include "verify/host_check.h"

#include <cxxabi.h>
#include <elf.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

#include "util/file.h"
#include "verify/compiler.h"
#include "verify/process.h"
#include "verify/static_check.h"

namespace kg::verify {

namespace {

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

Finding compile_finding(FindingKind kind, std::string message) {
  Finding f;
  f.kind = kind;
  f.stage = kStageCompile;
  f.message = std::move(message);
  return f;
}

std::string at_line(int line) { return line > 0 ? "line " + std::to_string(line) + ": " : ""; }

// The preprocessed text's tokens: identifiers, numbers (pp-numbers), `::`, `->`, and single
// punctuation characters. Literal contents are blanked before this runs.
struct Token {
  std::string text;
  size_t pos = 0;
};

std::vector<Token> tokens_of(const std::string& code) {
  std::vector<Token> out;
  for (size_t i = 0; i < code.size();) {
    const char c = code[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (ident_start(c)) {
      size_t e = i;
      while (e < code.size() && ident_char(code[e])) {
        ++e;
      }
      out.push_back({code.substr(i, e - i), i});
      i = e;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t e = i;
      while (e < code.size() && (ident_char(code[e]) || code[e] == '.' || code[e] == '\'')) {
        ++e;
      }
      out.push_back({code.substr(i, e - i), i});
      i = e;
    } else if (i + 1 < code.size() && ((c == ':' && code[i + 1] == ':') || (c == '-' && code[i + 1] == '>'))) {
      out.push_back({code.substr(i, 2), i});
      i += 2;
    } else {
      out.push_back({std::string(1, c), i});
      ++i;
    }
  }
  return out;
}

// Adjacent string literals of `code` joined (as the compiler joins them), escapes decoded; each
// with the position of its first part.
std::vector<std::pair<size_t, std::string>> joined_strings(const std::string& code) {
  std::vector<std::pair<size_t, std::string>> out;
  bool open_run = false;  // the last thing seen was a string literal (whitespace aside)
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (size_t i = 0; i < code.size();) {
    const char c = code[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    // String literal, with an optional encoding prefix (u8, u, U, L) and R for raw strings.
    size_t q = i;
    while (q < code.size() && q < i + 3 && (code[q] == 'u' || code[q] == 'U' || code[q] == 'L' || code[q] == '8' ||
                                            code[q] == 'R')) {
      ++q;
    }
    const bool starts_literal = q < code.size() && code[q] == '"' && (i == 0 || !ident_char(code[i - 1]));
    if (!starts_literal) {
      if (c == '\'' && !(i > 0 && hex(code[i - 1]))) {  // a character literal ('"' must not open a string)
        size_t j = i + 1;
        while (j < code.size() && code[j] != '\'' && code[j] != '\n') {
          j += code[j] == '\\' ? 2 : 1;
        }
        i = j + 1;
      } else if (ident_char(c)) {
        while (i < code.size() && ident_char(code[i])) {
          ++i;
        }
      } else {
        ++i;
      }
      open_run = false;
      continue;
    }
    std::string text;
    size_t j = q + 1;
    if (q > i && code[q - 1] == 'R') {
      const size_t paren = code.find('(', j);
      if (paren == std::string::npos) {
        break;
      }
      const std::string close = ")" + code.substr(j, paren - j) + "\"";
      size_t e = code.find(close, paren);
      e = e == std::string::npos ? code.size() : e;
      text = code.substr(paren + 1, e - paren - 1);
      j = std::min(code.size(), e + close.size());
    } else {
      while (j < code.size() && code[j] != '"' && code[j] != '\n') {
        if (code[j] != '\\' || j + 1 >= code.size()) {
          text += code[j++];
          continue;
        }
        const char e = code[j + 1];
        j += 2;
        if (e == 'x') {
          unsigned v = 0;
          while (j < code.size() && hex(code[j])) {
            v = v * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(code[j]))
                                                   ? code[j] - '0'
                                                   : std::tolower(static_cast<unsigned char>(code[j])) - 'a' + 10);
            ++j;
          }
          text += static_cast<char>(v & 0xff);
        } else if (e >= '0' && e <= '7') {
          unsigned v = static_cast<unsigned>(e - '0');
          for (int n = 0; n < 2 && j < code.size() && code[j] >= '0' && code[j] <= '7'; ++n) {
            v = v * 8 + static_cast<unsigned>(code[j++] - '0');
          }
          text += static_cast<char>(v & 0xff);
        } else if (e == 'u' || e == 'U') {
          // \uXXXX: a letter of a name would be ASCII; keep ASCII code points, drop the rest.
          const size_t n = e == 'u' ? 4 : 8;
          unsigned long v = std::strtoul(code.substr(j, n).c_str(), nullptr, 16);
          j += n;
          text += v < 128 ? static_cast<char>(v) : '?';
        } else {
          const char* simple = "n\nt\tr\rv\va\ab\bf\f";
          const char* p = std::strchr(simple, e);
          text += (p != nullptr && (p - simple) % 2 == 0) ? p[1] : e;
        }
      }
      ++j;
    }
    if (open_run) {
      out.back().second += text;
    } else {
      out.emplace_back(i, text);
    }
    open_run = true;
    i = j;
  }
  return out;
}

bool is_number(const Token& t) { return !t.text.empty() && std::isdigit(static_cast<unsigned char>(t.text[0])); }

// After the `)` of a cast at `k`, optional `(`s, then a number or a null pointer: the handle's value.
const Token* cast_operand(const std::vector<Token>& t, size_t k) {
  while (k < t.size() && t[k].text == "(") {
    ++k;
  }
  if (k < t.size() && (is_number(t[k]) || t[k].text == "nullptr" || t[k].text == "__null")) {
    return &t[k];
  }
  return nullptr;
}

// The name a `typedef ...;` or `using X = ...;` starting at `i` declares, when its type names a
// stream type of `types`; "" otherwise.
std::string stream_alias(const std::vector<Token>& t, size_t i, const std::set<std::string>& types) {
  size_t e = i;
  bool mentions = false;
  while (e < t.size() && t[e].text != ";" && t[e].text != "{" && e < i + 16) {
    mentions = mentions || types.count(t[e].text) != 0;
    ++e;
  }
  if (!mentions || e >= t.size() || t[e].text != ";") {
    return "";
  }
  if (t[i].text == "using" && i + 2 < t.size() && t[i + 2].text == "=") {
    return t[i + 1].text;
  }
  return t[i].text == "typedef" && ident_start(t[e - 1].text[0]) ? t[e - 1].text : "";
}

}  // namespace

int CandidateCode::line_at(size_t pos) const {
  const size_t n = static_cast<size_t>(std::count(code.begin(), code.begin() + static_cast<std::ptrdiff_t>(std::min(pos, code.size())), '\n'));
  return n < lines.size() ? lines[n] : 0;
}

CandidateCode candidate_code(const std::string& translation, const std::string& candidate_path) {
  CandidateCode out;
  std::string file;
  int line = 1;
  int skip = 0;  // depth inside `#if 0`
  for (size_t start = 0; start < translation.size();) {
    size_t end = translation.find('\n', start);
    end = end == std::string::npos ? translation.size() : end;
    std::string_view l(translation.data() + start, end - start);
    start = end + 1;
    const size_t k = l.find_first_not_of(" \t");
    if (k != std::string_view::npos && l[k] == '#') {
      std::string_view rest = l.substr(k + 1);
      rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
      auto word = [&](std::string_view w) {
        return rest.substr(0, w.size()) == w && (rest.size() == w.size() || !ident_char(rest[w.size()]));
      };
      if (skip > 0) {
        skip += (word("if") || word("ifdef") || word("ifndef")) ? 1 : word("endif") ? -1 : 0;
        continue;
      }
      if (word("line")) {
        rest.remove_prefix(4);
        rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
      }
      if (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0]))) {
        line = std::atoi(std::string(rest.substr(0, rest.find_first_not_of("0123456789"))).c_str());
        const size_t q = rest.find('"');
        if (q != std::string_view::npos) {
          std::string name;
          for (size_t j = q + 1; j < rest.size() && rest[j] != '"'; ++j) {
            if (rest[j] == '\\' && j + 1 < rest.size()) {
              ++j;
            }
            name += rest[j];
          }
          file = name;
        }
        continue;
      }
      if (word("if")) {
        std::string_view cond = rest.substr(2);
        cond.remove_prefix(std::min(cond.find_first_not_of(" \t"), cond.size()));
        if (cond.substr(0, 1) == "0" && cond.find_first_not_of(" \t\r", 1) == std::string_view::npos) {
          skip = 1;
        }
      }
      ++line;
      continue;
    }
    if (skip == 0 && file == candidate_path) {
      out.code.append(l);
      out.code += '\n';
      out.lines.push_back(line);
    }
    ++line;
  }
  return out;
}

std::vector<Finding> translation_check(const std::string& translation, const std::string& candidate_path) {
  std::vector<Finding> findings;
  const CandidateCode cc = candidate_code(translation, candidate_path);
  const std::string stripped = strip_comments_and_literals(cc.code);
  const std::vector<Token> t = tokens_of(stripped);
  const char* after_preprocessing = " (after preprocessing)";

  std::set<std::string> stream_types = {"cudaStream_t", "CUstream", "CUstream_st"};
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].text == "typedef" || t[i].text == "using") {
      if (std::string alias = stream_alias(t, i, stream_types); !alias.empty()) {
        stream_types.insert(alias);
      }
    }
  }

  std::set<std::string> reported;
  int asm_reports = 0, stream_reports = 0;
  auto text_at = [&](size_t k) -> const std::string& {
    static const std::string none;
    return k < t.size() ? t[k].text : none;
  };
  for (size_t i = 0; i < t.size(); ++i) {
    const std::string& id = t[i].text;
    if (!ident_start(id[0])) {
      continue;
    }
    const std::string& prev = i > 0 ? t[i - 1].text : text_at(t.size());
    const bool member = prev == "." || prev == "->";
    const int line = cc.line_at(t[i].pos);
    // Host inline assembly, and bytes placed into a code section by hand.
    const bool is_asm = id == "asm" || id == "__asm__" || id == "__asm";
    const bool is_section = (id == "section" || id == "__section__") && text_at(i + 1) == "(";
    if ((is_asm || is_section) && !member && asm_reports < 3) {
      ++asm_reports;
      findings.push_back(compile_finding(
          FindingKind::HostInlineAsm,
          at_line(line) + (is_asm ? "`" + id + "` in host code" : "a `section(...)` attribute in host code") +
              after_preprocessing +
              ": host inline assembly (or code placed by hand) is not allowed; device code may use PTX asm"));
      continue;
    }
    // Denied names: any use, or for common words a call, a template call, a qualified name or a
    // parenthesised call `(name)(...)`.
    // cudafe++'s host stand-in for a __device__ function's body is `{int volatile ___ = 1;
    // ::exit(___);}`; the raw layer refuses the name `___` in a candidate, so this is nvcc's.
    const bool device_stub_exit = id == "exit" && prev == "::" && text_at(i + 1) == "(" && text_at(i + 2) == "___" &&
                                  text_at(i + 3) == ")";
    if (!member && !device_stub_exit && !reported.count(id) && is_denied_identifier(id)) {
      const bool call = text_at(i + 1) == "(" || text_at(i + 1) == "<";
      const bool qualified = prev == "::";
      const bool parenthesised = prev == "(" && text_at(i + 1) == ")" && text_at(i + 2) == "(";
      const bool address_call = prev == "&" && i > 1 && t[i - 2].text == "(" && text_at(i + 1) == ")";
      if (!is_common_word(id) || call || qualified || parenthesised || address_call) {
        reported.insert(id);
        findings.push_back(compile_finding(
            FindingKind::ForbiddenCall,
            at_line(line) + "`" + id + "` is used" + after_preprocessing +
                ": no stream, graph, thread, process, file, socket or environment access, exit handlers or "
                "dynamic loading in a kernel; enqueue all work on the stream passed to the entry point"));
      }
    }
    // Stream handles made from numbers: (cudaStream_t)2, cudaStream_t(1), reinterpret_cast<cudaStream_t>(0x2).
    if (stream_reports < 3 && stream_types.count(id) != 0) {
      const Token* value = nullptr;
      if (prev == "(" || prev == "struct" || prev == "const") {
        size_t k = i + 1;
        while (k < t.size() && (t[k].text == "*" || t[k].text == "const" || t[k].text == "volatile")) {
          ++k;
        }
        if (text_at(k) == ")") {
          value = cast_operand(t, k + 1);
        }
      } else if (prev == "<" && i > 1 && t[i - 2].text.size() > 5 &&
                 t[i - 2].text.compare(t[i - 2].text.size() - 5, 5, "_cast") == 0) {
        size_t k = i + 1;
        while (k < t.size() && (t[k].text == "*" || t[k].text == "const" || t[k].text == "volatile")) {
          ++k;
        }
        if (text_at(k) == ">") {
          value = cast_operand(t, k + 1);
        }
      } else if (text_at(i + 1) == "(") {
        value = cast_operand(t, i + 1);
      }
      if (value != nullptr) {
        ++stream_reports;
        findings.push_back(compile_finding(
            FindingKind::ForbiddenCall,
            at_line(line) + "a stream handle made from the value `" + value->text + "`" + after_preprocessing +
                " (0: the legacy default stream, 1: cudaStreamLegacy, 2: cudaStreamPerThread): launch on the "
                "stream passed to the entry point"));
      }
    }
  }
  for (const auto& [pos, text] : joined_strings(cc.code)) {
    const std::string name = denied_driver_name_in(text);
    if (!name.empty() && !reported.count(name)) {
      reported.insert(name);
      findings.push_back(compile_finding(FindingKind::ForbiddenCall,
                                         at_line(cc.line_at(pos)) + "a string literal (joined with its neighbours, escapes decoded) names the "
                                             "driver API `" + name + "...`" + after_preprocessing +
                                             ", which a kernel may not reach (cudaGetDriverEntryPoint)"));
    }
  }
  return findings;
}

Expected<std::vector<std::string>, Failure> undefined_symbols(const std::string& object_path) {
  return elf_global_symbols(object_path, SHT_SYMTAB, /*defined=*/false);
}

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// C library and libm functions a kernel's host code may call (no files, processes, threads,
// environment or descriptors).
const std::set<std::string_view>& allowed_c_symbols() {
  static const std::set<std::string_view> k = {
      // Memory and strings.
      "malloc", "calloc", "realloc", "free", "aligned_alloc", "posix_memalign", "memcpy", "memmove", "memset",
      "memcmp", "memchr", "strlen", "strnlen", "strcmp", "strncmp", "strcpy", "strncpy", "strcat", "strncat",
      "strchr", "strrchr", "strstr", "strtol", "strtoul", "strtoll", "strtoull", "strtod", "strtof", "atoi", "atol",
      "atof", "__isoc23_strtol", "__isoc23_strtoul", "__isoc23_strtoll", "__isoc23_strtoull", "__memcpy_chk",
      "__memmove_chk", "__memset_chk", "__strcpy_chk", "__strncpy_chk", "__strcat_chk", "abs", "labs", "llabs",
      "div", "ldiv", "qsort", "bsearch",
      // Printing to stdout / stderr (harmless: the judge reads nothing the candidate prints), and
      // formatting into memory. No stream can be opened: fopen, fdopen, ... are not here.
      "printf", "puts", "putchar", "putc", "fputs", "fputc", "fprintf", "fwrite", "fflush", "vprintf", "vfprintf",
      "sprintf", "snprintf", "vsprintf", "vsnprintf", "__printf_chk", "__fprintf_chk", "__vprintf_chk",
      "__vfprintf_chk", "__sprintf_chk", "__snprintf_chk", "__vsprintf_chk", "__vsnprintf_chk", "stdout", "stderr",
      // Failing loudly, which the run stage reports as a crash.
      "abort", "__assert_fail",
      // Compiler support.
      "__stack_chk_fail", "__dso_handle", "_GLOBAL_OFFSET_TABLE_", "__tls_get_addr", "__gxx_personality_v0",
      "__libc_single_threaded",  // read by libstdc++'s reference counts (std::shared_ptr)
      // nvcc's host stub registers the module's destructor with atexit (crt/host_runtime.h), and
      // its host stand-ins for __device__ functions call exit; the candidate's own calls are
      // refused in its source (layer 1), and an exit at run time is candidate_exited.
      "atexit", "exit",
      "__fpclassify", "__fpclassifyf", "__isinf", "__isinff", "__isnan", "__isnanf", "__finite", "__finitef",
      "__signbit", "__signbitf",
  };
  return k;
}

bool is_libm(std::string_view s) {
  static const std::set<std::string_view> base = {
      "sin",   "cos",   "tan",      "asin",      "acos",  "atan",  "atan2",   "sinh",   "cosh",     "tanh",
      "asinh", "acosh", "atanh",    "exp",       "exp2",  "exp10", "expm1",   "log",    "log2",     "log10",
      "log1p", "logb",  "pow",      "sqrt",      "cbrt",  "hypot", "fabs",    "floor",  "ceil",     "round",
      "lround", "llround", "trunc", "rint",      "lrint", "llrint", "nearbyint", "fmod", "remainder", "remquo",
      "fmin",  "fmax",  "fdim",     "fma",       "frexp", "ldexp", "modf",    "scalbn", "scalbln",  "ilogb",
      "nextafter", "nexttoward", "copysign", "erf", "erfc", "tgamma", "lgamma", "nan", "sincos",
  };
  if (base.count(s)) {
    return true;
  }
  if (!s.empty() && (s.back() == 'f' || s.back() == 'l') && base.count(s.substr(0, s.size() - 1))) {
    return true;
  }
  // glibc's finite-math entry points (__expf_finite, ...).
  return starts_with(s, "__") && ends_with(s, "_finite") && is_libm(s.substr(2, s.size() - 9));
}

// CUDA runtime functions a kernel may not call (docs/verifier.md): by prefix of the symbol.
std::optional<std::string> denied_cuda(std::string_view s) {
  static const std::vector<std::pair<std::string_view, std::string_view>> k = {
      {"cudaStreamCreate", "creates a stream"}, {"cudaStreamDestroy", "destroys a stream"},
      {"cudaLaunchHostFunc", "runs host code from the stream"}, {"cudaStreamAddCallback", "runs host code from the stream"},
      {"cudaStreamBeginCapture", "captures a graph"}, {"cudaStreamEndCapture", "captures a graph"},
      {"cudaGraph", "builds or launches a graph"}, {"cudaUserObject", "attaches host code to a graph"},
      {"cudaSetDevice", "changes the device"}, {"cudaSetValidDevices", "changes the device"},
      {"cudaDeviceReset", "resets the device"}, {"cudaThreadExit", "resets the device"},
      {"cudaDeviceSetLimit", "changes device limits"}, {"cudaThreadSetLimit", "changes device limits"},
      {"cudaCtxResetPersistingL2Cache", "changes the L2 state the timing relies on"},
      {"cudaIpc", "shares memory with other processes"},
      {"cudaGetDriverEntryPoint", "reaches the driver API"}, {"cudaGetExportTable", "reaches runtime internals"},
      {"cudaLaunchCooperativeKernelMultiDevice", "launches on other devices"},
  };
  for (const auto& [prefix, why] : k) {
    if (starts_with(s, prefix)) {
      return "denied: " + std::string(why);
    }
  }
  // The per-thread default stream variants (CUDA_API_PER_THREAD_DEFAULT_STREAM): work on a
  // stream that is not the one passed to the entry point.
  if (ends_with(s, "_ptsz") || ends_with(s, "_ptds")) {
    return std::string("denied: the per-thread default stream API (CUDA_API_PER_THREAD_DEFAULT_STREAM)");
  }
  return std::nullopt;
}

std::string demangled(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && d ? std::string(d.get()) : name;
}

}  // namespace

std::optional<std::string> symbol_refusal(std::string_view s) {
  if (starts_with(s, "cuda") && s.size() > 4 && std::isupper(static_cast<unsigned char>(s[4]))) {
    return denied_cuda(s);
  }
  // nvcc's host stubs: module registration, launch configuration, kernel handles.
  for (std::string_view p : {"__cudaRegister", "__cudaUnregister", "__cudaPushCallConfiguration",
                             "__cudaPopCallConfiguration", "__cudaGetKernel", "__cudaLaunchKernel",
                             "__cudaInitModule"}) {
    if (starts_with(s, p)) {
      return denied_cuda(s);
    }
  }
  if (allowed_c_symbols().count(s) || is_libm(s)) {
    return std::nullopt;
  }
  // The C++ runtime: guards, exceptions, unwinding, operator new/delete, libstdc++'s throw helpers,
  // std::string and the standard exception classes, typeinfo. __cxa_atexit registers static
  // destructors (the source check refuses the candidate's own calls).
  for (std::string_view p : {"__cxa_", "_Unwind_", "_Znw", "_Zna", "_Zdl", "_Zda", "_ZSt9terminatev", "_ZSt7nothrow",
                             "_ZNSt7__cxx1112basic_string", "_ZNKSt7__cxx1112basic_string", "_ZNSt9exception",
                             "_ZNKSt9exception", "_ZNSt9bad_alloc", "_ZNKSt9bad_alloc", "_ZNSt11logic_error",
                             "_ZNSt12length_error", "_ZNSt12out_of_range", "_ZNSt13runtime_error",
                             "_ZNSt16invalid_argument", "_ZTVN10__cxxabiv1", "_ZTISt", "_ZTSSt", "_ZTVSt"}) {
    if (starts_with(s, p)) {
      return std::nullopt;
    }
  }
  // std::__throw_length_error(char const*) and kin: _ZSt<len>__throw_...
  if (starts_with(s, "_ZSt")) {
    size_t k = 4;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
      ++k;
    }
    if (k > 4 && starts_with(s.substr(k), "__throw_")) {
      return std::nullopt;
    }
  }
  if (is_denied_identifier(s)) {
    return std::string("denied: process, thread, file, socket, environment or exit-handler access");
  }
  return std::string("not on the allowlist of what a kernel's host code may call");
}

std::vector<Finding> symbol_check(const std::vector<std::string>& undefined) {
  std::vector<Finding> out;
  std::set<std::string> seen;
  for (const std::string& s : undefined) {
    if (!seen.insert(s).second) {
      continue;
    }
    if (auto why = symbol_refusal(s)) {
      const std::string d = demangled(s);
      out.push_back(compile_finding(FindingKind::ForbiddenSymbol,
                                    "the host object refers to `" + d + "`" + (d == s ? "" : " (" + s + ")") + ": " +
                                        *why +
                                        " (the CUDA runtime, libm, memory and string functions, printing to "
                                        "stdout/stderr and the C++ runtime's support are what a kernel may use)"));
    }
  }
  return out;
}

std::vector<Finding> machine_code_check(const std::string& disassembly) {
  std::vector<Finding> out;
  std::string function;
  for (size_t start = 0; start < disassembly.size() && out.size() < 3;) {
    size_t end = disassembly.find('\n', start);
    end = end == std::string::npos ? disassembly.size() : end;
    std::string_view l(disassembly.data() + start, end - start);
    start = end + 1;
    if (ends_with(l, ">:")) {  // "0000000000000000 <kg_causal_forward>:"
      const size_t lt = l.find('<');
      function = lt == std::string_view::npos ? std::string() : std::string(l.substr(lt + 1, l.size() - lt - 3));
      continue;
    }
    // "  1a:\tsyscall" (--no-show-raw-insn: address, tab, instruction)
    const size_t tab = l.find('\t');
    if (tab == std::string_view::npos || l.substr(0, tab).find(':') == std::string_view::npos) {
      continue;
    }
    std::string insn;
    for (char c : l.substr(tab + 1)) {
      if (c == '\t' || c == ' ') {
        if (!insn.empty() && insn.back() != ' ') {
          insn += ' ';
        }
      } else {
        insn += c;
      }
    }
    while (!insn.empty() && insn.back() == ' ') {
      insn.pop_back();
    }
    if (insn == "syscall" || insn == "sysenter" || starts_with(insn, "int $0x80")) {
      out.push_back(compile_finding(FindingKind::HostInlineAsm,
                                    "the host object's machine code makes a raw system call (`" + insn + "` in `" +
                                        demangled(function) + "`): host inline assembly is not allowed"));
    }
  }
  return out;
}

Expected<std::string, Failure> disassemble(const std::string& object_path, const config::Environment& env) {
  ProcessOptions o;
  o.argv = {"objdump", "-d", "--no-show-raw-insn", object_path};
  std::vector<std::string> entries;
  for (const auto& [name, value] : env) {
    entries.push_back(name + "=" + value);
  }
  if (env.count("PATH") == 0) {
    entries.push_back("PATH=/usr/bin:/bin");
  }
  o.env = entries;
  o.wall_limit_s = 120;
  o.output_limit = size_t{256} << 20;
  auto r = run_process(o);
  if (!r) {
    return unexpected(r.error());
  }
  if (!r->exited_ok() || r->out_dropped != 0) {
    return fail("objdump -d " + object_path + " failed (binutils' objdump is needed to check host machine code): " +
                last_lines(r->err, 5));
  }
  return r->out;
}

Expected<std::vector<Finding>, Failure> host_check(const std::string& translation_path,
                                                   const std::string& candidate_path, const std::string& object_path,
                                                   const config::Environment& env) {
  std::vector<Finding> out;
  if (!translation_path.empty()) {
    auto text = read_file(translation_path);
    if (!text) {
      return unexpected(text.error());
    }
    out = translation_check(*text, candidate_path);
  }
  auto undefined = undefined_symbols(object_path);
  if (!undefined) {
    return unexpected(undefined.error());
  }
  for (Finding& f : symbol_check(*undefined)) {
    out.push_back(std::move(f));
  }
  auto dis = disassemble(object_path, env);
  if (!dis) {
    return unexpected(dis.error());
  }
  for (Finding& f : machine_code_check(*dis)) {
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace kg::verify
