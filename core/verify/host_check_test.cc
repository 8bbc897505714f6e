// The host-side checks (host_check.h). StaticCheck.*: on host translations written the way nvcc
// writes them (line markers, device bodies in `#if 0`), on symbol names and on objdump text; no
// tools needed. NvccCompile.*: the real pipeline (nvcc --keep, the host object, objdump) on each
// spelling trick and on every kernel kernelgen emits; skipped without nvcc.
#include "verify/host_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>

#include "codegen/codegen.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/file.h"
#include "verify/compiler.h"
#include "verify/static_check.h"

namespace kg::verify {
namespace {

namespace fs = std::filesystem;

const char* kPath = "/w/so/cand.cu";

// A host translation as nvcc's cudafe++ writes it: a header line, then the candidate's lines
// `body` (line markers before each, from line 10 on), then nvcc's stub.
std::string translation(const std::string& body) {
  std::string t = "# 1 \"/w/so/cand.cu\"\n# 1 \"/usr/include/stdlib.h\" 1 3\n"
                  "extern int system(const char*); extern \"C\" int atexit(void (*)(void));\n"
                  "# 10 \"/w/so/cand.cu\"\n";
  t += body;
  t += "\n# 1 \"cand.cudafe1.stub.c\"\nstatic void reg(void) { atexit(unreg); }\n";
  return t;
}

std::vector<FindingKind> kinds(const std::vector<Finding>& fs) {
  std::vector<FindingKind> out;
  for (const Finding& f : fs) {
    out.push_back(f.kind);
    EXPECT_EQ(f.stage, kStageCompile);
  }
  return out;
}

// A complete candidate for the raw layer, around `host` (host code in a function).
std::string candidate(const std::string& prelude, const std::string& host) {
  return "#include <cuda_runtime.h>\n#include \"kernelgen/attention_abi.h\"\n" + prelude +
         "\nextern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t stream) {\n" + host +
         "\n  return cudaSuccess;\n}\n";
}

TEST(StaticCheck, TranslationCandidateLinesAndLineNumbers) {
  const std::string t = translation(
      "inline float g(float x) {int volatile ___ = 1;(void)x;::exit(___);}\nvoid f() ;\n#if 0\n# 11\n{ asm volatile(\"mma.sync ...\"); fork(); }\n#endif\n# 20\nint x = 1;\n# 21 "
      "\"/w/so/cand.cu\"\nint y = 2;");
  const CandidateCode cc = candidate_code(t, kPath);
  EXPECT_EQ(cc.code, "inline float g(float x) {int volatile ___ = 1;(void)x;::exit(___);}\nvoid f() ;\nint x = 1;\nint y = "
                     "2;\n");
  EXPECT_EQ(cc.lines, (std::vector<int>{10, 11, 20, 21}));
  EXPECT_EQ(cc.line_at(cc.code.find("y")), 21);
  // Header lines (system's declaration), nvcc's stub (atexit), device bodies: none is the candidate's.
  EXPECT_TRUE(translation_check(t, kPath).empty());
}

TEST(StaticCheck, TranslationAllowsPlainKernelsAndVariablesNamedLikeCalls) {
  const std::string t = translation(
      "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs *a, cudaStream_t stream) {\n"
      "int open = 0, thread = 1; struct S { int link; } s; s.link = open + thread;\n"
      "(__cudaPushCallConfiguration(grid, 128, 0, stream)) ? (void)0 : attention(*a);\n"
      "printf(\"%d\\n\", open); return cudaGetLastError(); }");
  EXPECT_TRUE(translation_check(t, kPath).empty());
}

// Each spelling trick: the raw-text layer (static_check) does not see it, the host translation
// (where nvcc has expanded it) does. `source` is what the candidate wrote, `expanded` the line as
// the preprocessed text holds it.
struct Trick {
  const char* name;
  std::string prelude, host;  // the candidate's source
  std::string expanded;       // its host function line in the translation
  FindingKind kind;
  const char* word;  // the message names it
  bool raw_misses = true;  // false: the raw layer sees this one too (it knows the name or the spelling)
};

TEST(StaticCheck, TranslationFindsWhatSpellingHidFromTheRawCheck) {
  const std::vector<Trick> tricks = {
      {"macro call", "#define SPAWN(f) f()", "SPAWN(fork);", "fork();", FindingKind::ForbiddenCall, "fork"},
      {"digraph paste", "#define J(a, b) a %:%: b", "J(fo, rk)();", "fork();", FindingKind::ForbiddenCall, "fork",
       false},
      {"address of", "", "auto p = &fork; p();", "auto p = &fork; p();", FindingKind::ForbiddenCall, "fork"},
      {"parenthesised call", "", "(fork)();", "(fork)();", FindingKind::ForbiddenCall, "fork"},
      {"parenthesised common word", "", "(system)(\"ls\");", "(system)(\"ls\");", FindingKind::ForbiddenCall,
       "system"},
      {"alias _Exit", "#define CALL(f, x) f(x)", "CALL(_Exit, 0);", "_Exit(0);", FindingKind::ForbiddenCall, "_Exit"},
      {"alias quick_exit", "", "auto q = &quick_exit; q(0);", "auto q = &quick_exit; q(0);",
       FindingKind::ForbiddenCall, "quick_exit"},
      {"atexit handler", "#define AT(f, h) f(h)", "AT(atexit, nullptr);", "atexit(nullptr);",
       FindingKind::ForbiddenCall, "atexit"},
      {"getenv", "", "const char* v = (getenv)(\"HOME\");", "const char* v = (getenv)(\"HOME\");",
       FindingKind::ForbiddenCall, "getenv"},
      {"secure_getenv", "#define G(f) f(\"X\")", "G(secure_getenv);", "secure_getenv(\"X\");",
       FindingKind::ForbiddenCall, "secure_getenv"},
      {"freopen64", "#define R(f) f", "R(freopen64)(\"/tmp/x\", \"w\", stdout);",
       "freopen64(\"/tmp/x\", \"w\", stdout);", FindingKind::ForbiddenCall, "freopen64"},
      {"split string", "",
       "void* p; cudaDriverEntryPointQueryResult q; cudaGetDriverEntryPointByVersion(\"cuStr\" \"eamCreate\", &p, "
       "12000, 0, &q);",
       "void* p; cudaDriverEntryPointQueryResult q; cudaGetDriverEntryPointByVersion(\"cuStr\"\n# 12\n\"eamCreate\", "
       "&p, 12000, 0, &q);",
       FindingKind::ForbiddenCall, "cuStream"},
      {"escaped string", "", "const char* n = \"cu\\x53tream\\103reate\";", "const char* n = \"cu\\x53tream\\103reate\";",
       FindingKind::ForbiddenCall, "cuStream"},
      {"numeric stream", "", "k<<<1, 1, 0, (cudaStream_t)2>>>();",
       "(__cudaPushCallConfiguration(1, 1, 0, (cudaStream_t)2)) ? (void)0 : k();", FindingKind::ForbiddenCall,
       "value `2`"},
      {"per-thread stream macro", "", "cudaStream_t s = cudaStreamPerThread;",
       "cudaStream_t s = ((cudaStream_t)0x2);", FindingKind::ForbiddenCall, "0x2", false},
      {"reinterpret_cast stream", "", "auto s = reinterpret_cast<cudaStream_t>(0x1);",
       "auto s = reinterpret_cast< cudaStream_t>(0x1);", FindingKind::ForbiddenCall, "0x1"},
      {"functional cast stream", "", "cudaStream_t s = cudaStream_t(1);", "cudaStream_t s = cudaStream_t(1);",
       FindingKind::ForbiddenCall, "value `1`"},
      {"stream alias", "typedef cudaStream_t S;", "S s = (S)1;", "S s = (S)1;", FindingKind::ForbiddenCall,
       "value `1`"},
      {"host asm", "#define RAW(x) x", "RAW(__asm__)(\"syscall\");", "__asm__(\"syscall\");",
       FindingKind::HostInlineAsm, "__asm__"},
      {"host asm keyword", "", "asm volatile(\"syscall\");", "asm volatile(\"syscall\");", FindingKind::HostInlineAsm,
       "asm"},
  };
  for (const Trick& t : tricks) {
    SCOPED_TRACE(t.name);
    const std::string src = candidate(t.prelude, t.host);
    const auto raw = static_check(src, "causal");
    if (t.raw_misses) {
      EXPECT_TRUE(raw.empty()) << raw[0].message;
    } else {
      EXPECT_FALSE(raw.empty());
    }
    const std::string tr = translation(
        "typedef struct CUstream_st *cudaStream_t;\n# 11\n" + std::string(t.prelude.rfind("typedef", 0) == 0 ? t.prelude : "") +
        "\n# 11\nextern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs *a, cudaStream_t stream) {\n# 11\n" +
        t.expanded + "\n# 13\nreturn cudaSuccess; }");
    const auto found = translation_check(tr, kPath);
    ASSERT_FALSE(found.empty());
    EXPECT_EQ(found[0].kind, t.kind) << found[0].message;
    EXPECT_NE(found[0].message.find(t.word), std::string::npos) << found[0].message;
    EXPECT_EQ(found[0].message.rfind("line 11: ", 0), 0u) << found[0].message;
  }
}

TEST(StaticCheck, RawLayerRefusesLineDirectivesDigraphIncludesAndTrigraphs) {
  for (const char* bad : {"#line 1 \"/usr/include/stdlib.h\"", "# 7 \"x.cu\"", "%:line 3", "#define J(a,b) a%:%:b",
                          "?\?=define X 1", "int ___ = 1;",
                          "#define H # 1 \"/usr/include/stdlib.h\"", "#define H %: 1", "#define ID(x) x\nID(#) 1",
                          "int x = 1; # 2"}) {
    const auto fs = static_check(candidate(bad, ""), "causal");
    ASSERT_FALSE(fs.empty()) << bad;
    EXPECT_EQ(fs[0].kind, FindingKind::ForbiddenCall) << bad;
  }
  // Stringification in a function-like macro, and `#` in literals, are fine.
  EXPECT_TRUE(static_check(candidate("#define STR(x) #x\n#define S2(x) \\\n  STR(x)\nconst char* h = \"#\";", ""),
                           "causal")
                  .empty());
  const auto fs = static_check(candidate("%:include <unistd.h>", ""), "causal");
  ASSERT_FALSE(fs.empty());
  EXPECT_EQ(fs[0].kind, FindingKind::ForbiddenHeader);
}

TEST(StaticCheck, SymbolAllowlist) {
  for (const char* ok : {"cudaLaunchKernel", "cudaGetLastError", "cudaFuncSetAttribute", "__cudaRegisterFatBinary",
                         "__cudaRegisterFunction", "__cudaPushCallConfiguration", "__cudaLaunchKernel", "expf", "exp2f",
                         "sqrt", "__expf_finite", "memcpy", "strlen", "printf", "fprintf", "stderr", "puts", "_Znwm",
                         "_ZdlPvm", "__cxa_guard_acquire", "__cxa_atexit", "_Unwind_Resume", "__gxx_personality_v0",
                         "__stack_chk_fail", "atexit", "exit", "__libc_single_threaded", "_ZTVN10__cxxabiv117__class_type_infoE",
                         "_ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEE10_M_replaceEmmPKcm", "strcmp", "_ZSt20__throw_length_errorPKc", "abort"}) {
    EXPECT_EQ(symbol_refusal(ok), std::nullopt) << ok;
  }
  for (const char* bad : {"fork", "system", "execve", "popen", "cudaStreamCreate", "cudaStreamCreateWithFlags",
                          "cudaLaunchHostFunc", "cudaGraphLaunch", "cudaGetDriverEntryPoint", "cudaSetDevice",
                          "cudaLaunchKernel_ptsz", "cudaMemcpyAsync_ptsz", "__cudaLaunchKernel_ptsz", "getenv",
                          "secure_getenv", "freopen64", "fopen", "_Exit", "_exit", "quick_exit", "at_quick_exit", "on_exit",
                          "dlopen", "syscall", "open", "write", "read", "stdin", "pthread_create", "mprotect",
                          "_ZNSt6thread15_M_start_threadESt10unique_ptrINS_6_StateESt14default_deleteIS1_EEPFvvE",
                          "kg_helper_from_another_library", "cuStreamCreate"}) {
    EXPECT_NE(symbol_refusal(bad), std::nullopt) << bad;
  }
  const auto fs = symbol_check({"cudaGetLastError", "fork", "fork", "_ZNSt6thread6detachEv"});
  ASSERT_EQ(kinds(fs), (std::vector<FindingKind>{FindingKind::ForbiddenSymbol, FindingKind::ForbiddenSymbol}));
  EXPECT_NE(fs[0].message.find("`fork`"), std::string::npos);
  EXPECT_NE(fs[1].message.find("std::thread::detach()"), std::string::npos) << fs[1].message;
}

TEST(StaticCheck, MachineCodeSystemCalls) {
  const std::string dis =
      "x.o:     file format elf64-x86-64\n\nDisassembly of section .text:\n\n"
      "0000000000000000 <_Z4evilv>:\n   0:\tmov    $0x39,%eax\n   5:\tsyscall\n   7:\tret\n\n"
      "0000000000000010 <kg_causal_forward>:\n  10:\tint    $0x80\n  12:\tsysenter\n  14:\tint3\n";
  const auto fs = machine_code_check(dis);
  ASSERT_EQ(kinds(fs), (std::vector<FindingKind>(3, FindingKind::HostInlineAsm)));
  EXPECT_NE(fs[0].message.find("`syscall` in `evil()`"), std::string::npos) << fs[0].message;
  EXPECT_NE(fs[1].message.find("int $0x80"), std::string::npos) << fs[1].message;
  EXPECT_TRUE(machine_code_check("0000000000000000 <f>:\n   0:\tmov    $0x50f,%eax\n   5:\tret\n").empty());
}

TEST(StaticCheck, UndefinedSymbolsRejectsWhatIsNotAnObject) {
  const std::string path = testing::TempDir() + "/kg_not_an_object.o";
  ASSERT_TRUE(write_file_atomic(path, "not an elf"));
  EXPECT_FALSE(undefined_symbols(path));
  EXPECT_FALSE(undefined_symbols(path + ".missing"));
}

// ---- with nvcc ----

std::string nvcc_or_empty() {
  const char* env = std::getenv("KERNELGEN_NVCC");
  if (env != nullptr && *env != '\0') {
    return env;
  }
  return ::access("/usr/local/cuda/bin/nvcc", X_OK) == 0 ? "/usr/local/cuda/bin/nvcc" : "";
}

config::Environment tool_env() {
  const char* path = std::getenv("PATH");
  return {{"PATH", path != nullptr ? path : "/usr/bin:/bin"}};
}

struct Compiled {
  std::string name;
  bool ok = false;
  std::vector<Finding> findings;
  std::string output;
  double seconds = 0, inspect_seconds = 0;
};

// Compiles `source` for sm_90a the way the verifier does, with the host checks in between.
Compiled compile_checked(const std::string& nvcc, const fs::path& dir, const std::string& name,
                         const std::string& source) {
  Compiled c;
  c.name = name;
  const std::string src = (dir / (name + ".cu")).string();
  std::ofstream(src) << source;
  NvccCompiler compiler(nvcc, tool_env());
  CompileJob job{src, (dir / (name + ".so")).string(), "sm_90a", (fs::path(KG_SOURCE_DIR) / "core" / "include").string(),
                 nullptr};
  job.inspect = [](const HostArtifacts& h) {
    return host_check(h.translation_path, h.source_path, h.object_path, h.env);
  };
  auto r = compiler.compile(job);
  if (!r) {
    c.output = r.error().message;
    return c;
  }
  c.ok = r->ok;
  c.findings = r->findings;
  c.output = r->output;
  c.seconds = r->seconds;
  c.inspect_seconds = r->inspect_seconds;
  return c;
}

fs::path scratch_dir(const std::string& what) {
  const fs::path dir = fs::path(testing::TempDir()) / ("kg_host_check_" + what + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Two compilations at a time (CI machines have 2 cores).
std::vector<Compiled> compile_all(const std::string& nvcc, const fs::path& dir,
                                  const std::vector<std::pair<std::string, std::string>>& sources) {
  std::vector<Compiled> out;
  for (size_t i = 0; i < sources.size(); i += 2) {
    std::vector<std::future<Compiled>> batch;
    for (size_t j = i; j < std::min(sources.size(), i + 2); ++j) {
      batch.push_back(std::async(std::launch::async, compile_checked, nvcc, dir, sources[j].first, sources[j].second));
    }
    for (auto& f : batch) {
      out.push_back(f.get());
    }
  }
  return out;
}

const char* kKernel = R"(#include <cuda_runtime.h>
#include "kernelgen/attention_abi.h"
__device__ __forceinline__ float ex2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
__global__ void k(float* p) { p[threadIdx.x] = ex2(1.0f); }
)";

// Declares fork() without the raw layer seeing `fork(` (unistd.h is not an allowed header).
const char* kDecl = "#define DECLARE(f) extern \"C\" int f()\nDECLARE(fork);";

std::string with_entry(const std::string& prelude, const std::string& host) {
  return std::string(kKernel) + prelude + "\nextern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* a, "
         "cudaStream_t stream) {\n  (void)a;\n" + host + "\n  k<<<1, 32, 0, stream>>>(nullptr);\n  return cudaGetLastError();\n}\n";
}

TEST(NvccCompile, HostChecksFindEverySpellingTrick) {
  const std::string nvcc = nvcc_or_empty();
  if (nvcc.empty()) GTEST_SKIP() << "no nvcc (set KERNELGEN_NVCC)";
  const fs::path dir = scratch_dir("tricks");
  struct Case {
    std::string name, source;
    FindingKind kind;
    std::string word;
  };
  const std::vector<Case> cases = {
      {"plain", with_entry("", ""), FindingKind::CompileError, ""},
      {"macro_call", with_entry(std::string(kDecl) + "\n#define SPAWN(f) f()", "  SPAWN(fork);"),
       FindingKind::ForbiddenCall, "fork"},
      {"digraph", with_entry(std::string(kDecl) + "\n#define J(a, b) a %:%: b", "  J(fo, rk)();"),
       FindingKind::ForbiddenCall, "fork"},
      {"address_of", with_entry(kDecl, "  auto p = &fork;\n  p();"), FindingKind::ForbiddenCall, "fork"},
      {"alias_exit", with_entry("#include <cstdlib>\n#define CALL(f, x) f(x)", "  if (!a) CALL(_Exit, 0);"),
       FindingKind::ForbiddenCall, "_Exit"},
      {"split_string",
       with_entry("", "  void* p = nullptr; cudaDriverEntryPointQueryResult q;\n"
                      "  cudaGetDriverEntryPointByVersion(\"cuStr\" \"eamCreate\", &p, 12000, cudaEnableDefault, &q);"),
       FindingKind::ForbiddenCall, "cuStream"},
      {"numeric_stream", with_entry("", "  k<<<1, 32, 0, (cudaStream_t)2>>>(nullptr);"), FindingKind::ForbiddenCall,
       "value `2`"},
      {"host_asm", with_entry("#define RAW __asm__", "  long r; RAW volatile(\"syscall\" : \"=a\"(r) : \"a\"(39L));"),
       FindingKind::HostInlineAsm, "__asm__"},
  };
  std::vector<std::pair<std::string, std::string>> sources;
  for (const Case& c : cases) {
    sources.emplace_back(c.name, c.source);
  }
  const auto results = compile_all(nvcc, dir, sources);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Compiled& r = results[i];
    SCOPED_TRACE(c.name);
    if (c.name == "plain") {
      EXPECT_TRUE(r.ok) << r.output << (r.findings.empty() ? "" : r.findings[0].message);
      std::printf("[host checks] plain kernel: nvcc %.2f s, host checks %.3f s\n", r.seconds, r.inspect_seconds);
      continue;
    }
    if (c.name != "digraph") {
      EXPECT_TRUE(static_check(c.source, "causal").empty()) << "the raw layer already sees it";
    }
    EXPECT_FALSE(r.ok);
    ASSERT_FALSE(r.findings.empty()) << r.output;
    EXPECT_EQ(r.findings[0].kind, c.kind) << r.findings[0].message;
    EXPECT_NE(r.findings[0].message.find(c.word), std::string::npos) << r.findings[0].message;
    EXPECT_EQ(r.findings[0].message.rfind("line ", 0), 0u) << r.findings[0].message;
    EXPECT_FALSE(fs::exists(dir / (c.name + ".so"))) << "a refused object is never linked";
  }
  // The symbol layer sees what the source layer was not told about (the function's own name).
  for (const Finding& f : results[1].findings) {
    if (f.kind == FindingKind::ForbiddenSymbol) {
      EXPECT_NE(f.message.find("`fork`"), std::string::npos);
    }
  }
  // The machine-code layer sees the raw system call even without its spelling.
  bool machine = false;
  for (const Finding& f : results.back().findings) {
    machine = machine || f.message.find("raw system call (`syscall`") != std::string::npos;
  }
  EXPECT_TRUE(machine);
  fs::remove_all(dir);
}

// Every kernel kernelgen emits (template and reference, every spec of specs/) passes all three
// layers: device PTX asm stays allowed, and the allowlist holds everything nvcc's host code needs.
TEST(NvccCompile, EveryTemplateAndReferenceKernelPassesTheHostChecks) {
  const std::string nvcc = nvcc_or_empty();
  if (nvcc.empty()) GTEST_SKIP() << "no nvcc (set KERNELGEN_NVCC)";
  const fs::path dir = scratch_dir("emitted");
  std::vector<std::pair<std::string, std::string>> sources;
  for (const auto& e : fs::directory_iterator(fs::path(KG_SOURCE_DIR) / "specs")) {
    if (e.path().extension() != ".yaml") {
      continue;
    }
    auto spec = spec::load_spec_file(e.path().string());
    ASSERT_TRUE(spec) << e.path();
    codegen::Provenance prov{spec->name, spec::spec_key(*spec, "sm_90a")};
    sources.emplace_back(spec->name, codegen::emit_template_kernel(*spec, prov, "sm_90a"));
    sources.emplace_back(spec->name + "_reference", codegen::emit_reference_kernel(*spec, prov));
  }
  std::sort(sources.begin(), sources.end());
  ASSERT_GT(sources.size(), 10u);
  double nvcc_s = 0, check_s = 0;
  for (const Compiled& c : compile_all(nvcc, dir, sources)) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(c.ok) << c.output;
    for (const Finding& f : c.findings) {
      ADD_FAILURE() << finding_kind_name(f.kind) << ": " << f.message;
    }
    nvcc_s += c.seconds;
    check_s += c.inspect_seconds;
  }
  std::printf("[host checks] %zu kernels: nvcc %.1f s in all, host checks %.2f s in all (%.3f s per kernel)\n",
              sources.size(), nvcc_s, check_s, check_s / static_cast<double>(sources.size()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kg::verify
