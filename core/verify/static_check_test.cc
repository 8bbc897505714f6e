#include "verify/static_check.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "codegen/codegen.h"
#include "spec/key.h"
#include "spec/spec.h"

namespace kg::verify {
namespace {

const char* kGood = R"(// a candidate
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include "kernelgen/attention_abi.h"

__global__ void k(float* p) { p[0] = 1.0f; }

extern "C" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {
  k<<<1, 1, 0, stream>>>(nullptr);
  return cudaGetLastError();
}
)";

std::vector<FindingKind> kinds(const std::vector<Finding>& fs) {
  std::vector<FindingKind> out;
  for (const Finding& f : fs) {
    out.push_back(f.kind);
    EXPECT_EQ(f.stage, kStageStatic);
  }
  return out;
}

TEST(StaticCheck, AcceptsAPlainKernel) { EXPECT_TRUE(static_check(kGood, "causal").empty()); }

TEST(StaticCheck, StripsCommentsAndLiteralsKeepingLines) {
  const std::string s = "a // cudaStreamCreate\n/* fork( \n */ \"popen(\" 'x' extern \"C\" R\"(system()\")\nb";
  const std::string t = strip_comments_and_literals(s);
  EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), std::count(s.begin(), s.end(), '\n'));
  EXPECT_EQ(t.find("cudaStreamCreate"), std::string::npos);
  EXPECT_EQ(t.find("fork"), std::string::npos);
  EXPECT_EQ(t.find("popen"), std::string::npos);
  EXPECT_EQ(t.find("system"), std::string::npos);
  EXPECT_NE(t.find("extern \"C\""), std::string::npos);
  EXPECT_NE(t.find('b'), std::string::npos);
  // Denied names in comments and strings are not calls.
  std::string src = kGood;
  src += "// cudaStreamCreate(&s); fork();\nconst char* msg = \"do not fopen(here)\";\n";
  EXPECT_TRUE(static_check(src, "causal").empty());
}

TEST(StaticCheck, MissingOrDeclaredOnlyEntry) {
  std::string src = kGood;
  EXPECT_EQ(kinds(static_check(src, "other")), std::vector<FindingKind>{FindingKind::MissingEntry});
  const std::string decl_only =
      "#include <cuda_runtime.h>\n#include \"kernelgen/attention_abi.h\"\n"
      "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream);\n";
  EXPECT_EQ(kinds(static_check(decl_only, "causal")), std::vector<FindingKind>{FindingKind::MissingEntry});
  const std::string cpp_linkage =
      "#include <cuda_runtime.h>\ncudaError_t kg_causal_forward(const void* a, cudaStream_t s) { return cudaSuccess; }\n";
  EXPECT_EQ(kinds(static_check(cpp_linkage, "causal")), std::vector<FindingKind>{FindingKind::MissingEntry});
  const std::string block =
      "#include <cuda_runtime.h>\nextern \"C\" {\ncudaError_t kg_causal_forward(const void* a, cudaStream_t s)\n{ "
      "return cudaSuccess; }\n}\n";
  EXPECT_TRUE(static_check(block, "causal").empty());
}

TEST(StaticCheck, DeniedCalls) {
  for (const char* bad : {"cudaStream_t s; cudaStreamCreate(&s);", "cudaStreamCreateWithFlags(&s, 1);",
                          "cudaLaunchHostFunc(stream, f, nullptr);", "auto s = cudaStreamPerThread;",
                          "std::thread t([]{});", "pthread_create(&t, 0, f, 0);", "fork();", "execvp(\"x\", a);",
                          "system(\"ls\");", "popen(\"ls\", \"r\");", "FILE* f = fopen(\"x\", \"w\");",
                          "int fd = open(\"/etc/passwd\", 0);", "std::ofstream o(\"x\");",
                          "int s = socket(2, 1, 0);", "void* h = dlopen(\"libcuda.so\", 2);",
                          "cudaSetDevice(1);", "syscall(57);", "#define F(a) a##b"}) {
    std::string src = kGood;
    src += std::string("\nvoid evil() { ") + bad + " }\n";
    const auto fs = static_check(src, "causal");
    // (a `#` in the middle of a line is refused on its own too: two findings for the last one)
    ASSERT_EQ(fs.size(), bad[0] == '#' ? 2u : 1u) << bad;
    for (const Finding& f : fs) {
      EXPECT_EQ(f.kind, FindingKind::ForbiddenCall) << bad;
      EXPECT_NE(f.message.find("line 13"), std::string::npos) << f.message;
    }
  }
  // Common words as plain names (not calls) are fine; member calls are fine.
  std::string ok = kGood;
  ok += "\nstruct S { int open; int link; };\n__device__ int system_size = 0;\n"
        "template <typename T> void g(S& s, T& t) { s.open = 1; t.remove(3); t->open(); int thread = 2; (void)thread; }\n";
  EXPECT_TRUE(static_check(ok, "causal").empty());
}

TEST(StaticCheck, DriverNamesInStrings) {
  std::string src = kGood;
  src += "\nvoid g() { void* p; cudaGetDriverEntryPoint(\"cuStreamCreate\", &p, 0); }\n";
  EXPECT_EQ(kinds(static_check(src, "causal")), std::vector<FindingKind>{FindingKind::ForbiddenCall});
}

TEST(StaticCheck, HeaderAllowlist) {
  for (const char* bad : {"#include <unistd.h>", "#include <thread>", "#include <fstream>", "#include <dlfcn.h>",
                          "#include \"helper.cuh\"", "#include <sys/socket.h>", "#include MACRO_HEADER",
                          "#  include <pthread.h>", "#import <x>"}) {
    std::string src = std::string(bad) + "\n" + kGood;
    const auto fs = static_check(src, "causal");
    ASSERT_FALSE(fs.empty()) << bad;
    EXPECT_EQ(fs[0].kind, FindingKind::ForbiddenHeader) << bad;
  }
  const std::string ok = "#include <cstdint>\n#include <cuda_fp16.h>\n#include <mma.h>\n#include <cuda/barrier>\n"
                         "// #include <unistd.h>\n" + std::string(kGood);
  EXPECT_TRUE(static_check(ok, "causal").empty());
}

// The kernels kernelgen itself emits must pass (else emit's verification would reject them).
TEST(StaticCheck, EveryTemplateAndReferenceKernelPasses) {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(KG_SOURCE_DIR) / "specs")) {
    if (e.path().extension() != ".yaml") {
      continue;
    }
    auto spec = spec::load_spec_file(e.path().string());
    ASSERT_TRUE(spec) << e.path();
    codegen::Provenance prov{spec->name, spec::spec_key(*spec, "sm_90a")};
    const std::string tmpl = codegen::emit_template_kernel(*spec, prov, "sm_90a");
    for (const Finding& f : static_check(tmpl, spec->name)) {
      ADD_FAILURE() << e.path() << ": template: " << finding_kind_name(f.kind) << ": " << f.message;
    }
    const std::string ref = codegen::emit_reference_kernel(*spec, prov);
    for (const Finding& f : static_check(ref, spec->name + "_reference")) {
      ADD_FAILURE() << e.path() << ": reference: " << finding_kind_name(f.kind) << ": " << f.message;
    }
    ++n;
  }
  EXPECT_GT(n, 5);
}

}  // namespace
}  // namespace kg::verify
