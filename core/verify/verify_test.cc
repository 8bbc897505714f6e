// The verifier's control flow without nvcc or a GPU: a fake compiler, and stand-ins for
// kg_verify_runner that are real processes (shell scripts) misbehaving in each way a candidate
// can make the runner misbehave.
#include "verify/verify.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "spec/spec.h"
#include "util/file.h"
#include "version.h"

namespace kg::verify {
namespace {

// What the stand-in runners may inherit: they are shell scripts.
const config::Environment kTestEnv = {{"PATH", "/usr/bin:/bin"}};

namespace fs = std::filesystem;

const char* kSpecYaml = "name: causal\ndtype: bf16\nhead_dim: 128\nmask_mod: q_idx >= kv_idx\n";

const char* kCandidate = R"(#include <cuda_runtime.h>
#include "kernelgen/attention_abi.h"
extern "C" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) { return cudaSuccess; }
)";

// The verifier reads the compiled object's exported symbols, so the fake compiler writes a tiny
// hand-made ELF file exporting the names it is told to.
std::string make_elf(const std::vector<std::string>& names) {
  // .dynsym + .dynstr + section header string table, 64-bit little endian.
  std::string dynstr(1, '\0');
  std::vector<uint32_t> offsets;
  for (const std::string& n : names) {
    offsets.push_back(static_cast<uint32_t>(dynstr.size()));
    dynstr += n + '\0';
  }
  std::string shstr = std::string("\0.dynsym\0.dynstr\0.shstrtab\0", 26);
  std::string dynsym(24, '\0');  // null symbol
  for (uint32_t off : offsets) {
    std::string sym(24, '\0');
    std::memcpy(&sym[0], &off, 4);
    sym[4] = static_cast<char>((1 << 4) | 2);  // STB_GLOBAL, STT_FUNC
    const uint16_t shndx = 1;
    std::memcpy(&sym[6], &shndx, 2);
    dynsym += sym;
  }
  std::string f(64, '\0');
  const size_t dynsym_off = f.size();
  f += dynsym;
  const size_t dynstr_off = f.size();
  f += dynstr;
  const size_t shstr_off = f.size();
  f += shstr;
  while (f.size() % 8) f += '\0';
  const uint64_t shoff = f.size();
  auto shdr = [&](uint32_t name, uint32_t type, uint64_t off, uint64_t size, uint32_t link, uint64_t entsize) {
    std::string s(64, '\0');
    std::memcpy(&s[0], &name, 4);
    std::memcpy(&s[4], &type, 4);
    std::memcpy(&s[24], &off, 8);
    std::memcpy(&s[32], &size, 8);
    std::memcpy(&s[40], &link, 4);
    std::memcpy(&s[56], &entsize, 8);
    return s;
  };
  f += std::string(64, '\0');
  f += shdr(1, 11 /*SHT_DYNSYM*/, dynsym_off, dynsym.size(), 2, 24);
  f += shdr(9, 3 /*SHT_STRTAB*/, dynstr_off, dynstr.size(), 0, 0);
  f += shdr(17, 3, shstr_off, shstr.size(), 0, 0);
  const unsigned char ident[16] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  std::memcpy(&f[0], ident, 16);
  const uint16_t type = 3, machine = 62, ehsize = 64, shentsize = 64, shnum = 4, shstrndx = 3;
  std::memcpy(&f[16], &type, 2);
  std::memcpy(&f[18], &machine, 2);
  std::memcpy(&f[40], &shoff, 8);
  std::memcpy(&f[52], &ehsize, 2);
  std::memcpy(&f[58], &shentsize, 2);
  std::memcpy(&f[60], &shnum, 2);
  std::memcpy(&f[62], &shstrndx, 2);
  return f;
}

class FakeCompiler : public Compiler {
 public:
  bool fail = false;
  std::string output = "ptxas info    : Compiling entry function '_Z1kv' for 'sm_90a'\n"
                       "ptxas info    : Used 40 registers, 0 bytes smem\n";
  std::vector<std::string> exports = {"kg_causal_forward", "kg_causal_reference_forward"};
  int calls = 0;
  bool inspect_findings = false;  // true: compile() reports a host-check finding, as inspect would
  Expected<CompileResult, Failure> compile(const CompileJob& job) override {
    ++calls;
    CompileResult r;
    if (inspect_findings) {
      EXPECT_TRUE(job.inspect);
      Finding f;
      f.kind = FindingKind::ForbiddenSymbol;
      f.stage = kStageCompile;
      f.message = "the host object refers to `fork`";
      r.findings.push_back(f);
      return r;
    }
    r.ok = !fail;
    r.output = output;
    r.seconds = 0.01;
    if (r.ok) {
      KG_TRY(write_file_atomic(job.output_path, make_elf(exports)));
    }
    return r;
  }
  std::string version() override { return "fake 1.0"; }
};

class VerifyTest : public testing::Test {
 protected:
  void SetUp() override {
    m_dir = testing::TempDir() + "/kg_verify_test_" + std::to_string(::getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
    auto s = spec::parse_spec(kSpecYaml, "causal.yaml");
    ASSERT_TRUE(s);
    m_spec = std::move(*s);
    m_options.work_dir = m_dir + "/work";
    m_options.seed = 42;
    m_options.limits.wall_limit_s = 3;
  }
  void TearDown() override { fs::remove_all(m_dir); }

  // A runner stand-in: a shell script run in the run directory, the request on its stdin, its
  // stdout the result.
  std::string stand_in(const std::string& body) {
    const std::string path = m_dir + "/runner_" + std::to_string(m_scripts++) + ".sh";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }

  VerifyReport verify(const std::string& runner_script, const std::string& source = kCandidate) {
    SandboxRunner runner(runner_script, m_options.work_dir, kTestEnv);
    Verifier v(m_compiler, runner, m_options);
    auto r = v.verify(m_spec, kSpecYaml, source);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : VerifyReport{};
  }

  std::string m_dir;
  spec::Spec m_spec;
  VerifyOptions m_options;
  FakeCompiler m_compiler;
  int m_scripts = 0;
};

// Echoes the request's nonce into a valid result with the given findings (JSON array text).
std::string result_script(const std::string& findings) {
  return "nonce=$(sed -n 's/.*\"nonce\": \"\\([0-9a-f]*\\)\".*/\\1/p')\n"
         "printf '{\"protocol\":2,\"nonce\":\"%s\",\"trials\":[{\"name\":\"single\",\"ok\":true}],"
         "\"findings\":" + findings + ",\"timing\":{\"measured\":true,\"median_ms\":0.5,\"tflops\":300}}' "
         "\"$nonce\"\n";
}

const Finding* only_rejection(const VerifyReport& r) {
  EXPECT_EQ(r.verdict, Verdict::Rejected);
  return r.first_rejection();
}

TEST_F(VerifyTest, StaticRejectionStopsBeforeCompiling) {
  const VerifyReport r = verify(stand_in("exit 0"), std::string(kCandidate) + "void f() { fork(); }\n");
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::ForbiddenCall);
  EXPECT_EQ(m_compiler.calls, 0);
  EXPECT_EQ(r.stages.at(1).status, StageStatus::Skipped);
}

TEST_F(VerifyTest, CompileErrorAndUndefinedSymbol) {
  m_compiler.fail = true;
  m_compiler.output = "x.cu(3): error: identifier \"foo\" is undefined\n";
  VerifyReport r = verify(stand_in("exit 0"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::CompileError);
  EXPECT_NE(r.compiler_output.find("identifier"), std::string::npos);
  m_compiler.output = "/usr/bin/ld: /tmp/x.o: in function `f': undefined reference to `cublasCreate_v2'\n";
  r = verify(stand_in("exit 0"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::UndefinedSymbol);
}

TEST_F(VerifyTest, EntryMissingFromTheSharedObject) {
  m_compiler.exports = {"kg_causal_forwardx"};
  const VerifyReport r = verify(stand_in("exit 0"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::MissingEntry);
  EXPECT_EQ(r.first_rejection()->stage, kStageCompile);
}

TEST_F(VerifyTest, CompiledObjectsAreCachedByContent) {
  verify(stand_in(result_script("[]")));
  const int first = m_compiler.calls;  // candidate + reference
  EXPECT_EQ(first, 2);
  const VerifyReport r = verify(stand_in(result_script("[]")));
  EXPECT_EQ(m_compiler.calls, first);
  EXPECT_TRUE(r.compile_cached);
  ASSERT_TRUE(r.ptxas);
  EXPECT_EQ(r.ptxas->max_registers, 40);  // from the kept log
}

TEST_F(VerifyTest, PassingResult) {
  const VerifyReport r = verify(stand_in(result_script("[]")));
  EXPECT_EQ(r.verdict, Verdict::Pass);
  EXPECT_TRUE(r.timing.measured);
  EXPECT_DOUBLE_EQ(r.timing.tflops, 300);
  ASSERT_EQ(r.trials.size(), 1u);
  EXPECT_TRUE(r.sandbox.ran);
  EXPECT_EQ(r.sandbox.exit_code, 0);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.verifier_version, kVerifierVersion);
}

TEST_F(VerifyTest, RunnerFindingsAreReported) {
  const VerifyReport r = verify(stand_in(result_script(
      "[{\"kind\":\"unwritten_output\",\"stage\":\"correctness\",\"message\":\"m\",\"trial\":\"ragged\"}]")));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::UnwrittenOutput);
  EXPECT_EQ(r.first_rejection()->trial, "ragged");
}

TEST_F(VerifyTest, WarningsDoNotReject) {
  const VerifyReport r = verify(stand_in(result_script(
      "[{\"kind\":\"nondeterministic\",\"stage\":\"correctness\",\"message\":\"m\",\"warning\":true}]")));
  EXPECT_EQ(r.verdict, Verdict::Pass);
  EXPECT_EQ(r.findings.size(), 1u);
}

TEST_F(VerifyTest, HangIsATimeout) {
  const VerifyReport r = verify(stand_in("echo 'kg_verify_runner: trial long: B=1 Hq=2' >&2\nsleep 100"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::Timeout);
  EXPECT_EQ(r.first_rejection()->trial, "long");  // attributed to the trial announced last
  EXPECT_EQ(r.first_rejection()->shape, "B=1 Hq=2");
  EXPECT_TRUE(r.sandbox.timed_out);
  EXPECT_LT(r.total_seconds, 60);  // killed at the 3 s wall limit, not after the runner's 100 s
}

TEST_F(VerifyTest, CrashAndAbort) {
  for (const char* sig : {"SEGV", "ABRT", "KILL"}) {
    const VerifyReport r =
        verify(stand_in(std::string("echo 'kg_verify_runner: trial ragged: B=1' >&2\nkill -") + sig + " $$"));
    ASSERT_NE(only_rejection(r), nullptr) << sig;
    EXPECT_EQ(r.first_rejection()->kind, FindingKind::Crash) << sig;
    EXPECT_EQ(r.first_rejection()->trial, "ragged");
    EXPECT_NE(r.first_rejection()->message.find("signal"), std::string::npos);
  }
}

TEST_F(VerifyTest, ExitWithoutResultAndGarbage) {
  VerifyReport r = verify(stand_in("exit 0"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::NoResult);
  r = verify(stand_in("exit 5"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::NoResult);
  r = verify(stand_in("echo '{\"garbage'; echo garbage on stdout"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::BadResult);
  // A result that is not for this request (a candidate writing a canned "pass").
  r = verify(stand_in("echo '{\"protocol\":2,\"nonce\":\"0123\",\"trials\":[],\"findings\":[]}'"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::BadResult);
  EXPECT_NE(r.first_rejection()->message.find("nonce"), std::string::npos);
}

TEST_F(VerifyTest, MemoryLimit) {
  m_options.limits.memory_limit_bytes = 100u << 20;
  // The runner holds 200 MB until it is killed: without the watchdog the wall limit ends it (a
  // timeout finding), so the outcome does not depend on how fast the watchdog samples.
  m_options.limits.wall_limit_s = 120;
  const VerifyReport r =
      verify(stand_in("x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 100000; echo ${#x}"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::MemoryLimit);
}

TEST_F(VerifyTest, NoDeviceIsIncomplete) {
  const VerifyReport r = verify(stand_in("exit 77"));
  EXPECT_EQ(r.verdict, Verdict::Incomplete);
  EXPECT_EQ(r.first_rejection(), nullptr);
  EXPECT_EQ(r.stages.back().note, "no CUDA device");
}

TEST_F(VerifyTest, RunnerSeesACleanEnvironmentAndItsOwnDirectory) {
  ::setenv("KG_VERIFY_TEST_SECRET", "x", 1);
  ::setenv("CUDA_LAUNCH_BLOCKING", "1", 1);
  const std::string log = m_dir + "/env.txt";
  const VerifyReport r = verify(stand_in("env > " + log + "; pwd >> " + log + "\n" + result_script("[]")));
  ::unsetenv("CUDA_LAUNCH_BLOCKING");
  EXPECT_EQ(r.verdict, Verdict::Pass);
  auto env = read_file(log);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->find("KG_VERIFY_TEST_SECRET"), std::string::npos);
  EXPECT_EQ(env->find("CUDA_LAUNCH_BLOCKING"), std::string::npos);
  EXPECT_NE(env->find("/work/run/"), std::string::npos);  // cwd and HOME: the fresh run directory
  // The run directory is removed afterwards.
  EXPECT_TRUE(fs::is_empty(m_options.work_dir + "/run"));
}

// Each cached object has its XXH3-128 beside it; an object whose bytes changed (or whose digest
// is gone) is recompiled, never used.
TEST_F(VerifyTest, TamperedCachedObjectIsRecompiled) {
  m_options.run = false;
  VerifyReport r = verify(stand_in("exit 1"));
  EXPECT_EQ(m_compiler.calls, 1);
  std::string so;
  for (const auto& e : fs::directory_iterator(m_options.work_dir + "/so")) {
    if (e.path().extension() == ".so") {
      so = e.path().string();
    }
  }
  ASSERT_FALSE(so.empty());
  auto sum = read_file(so + ".xxh3");
  ASSERT_TRUE(sum);
  auto digest = object_file_digest(so);
  ASSERT_TRUE(digest);
  EXPECT_EQ(*sum, *digest + "\n");
  EXPECT_EQ(digest->size(), 32u);

  r = verify(stand_in("exit 1"));  // intact: used as it is
  EXPECT_EQ(m_compiler.calls, 1);
  EXPECT_TRUE(r.compile_cached);
  EXPECT_EQ(r.stages.at(1).note, "cached");

  auto bytes = read_file(so);
  ASSERT_TRUE(bytes);
  (*bytes)[bytes->size() / 2] ^= 0x55;  // one changed byte
  ASSERT_TRUE(write_file_atomic(so, *bytes));
  r = verify(stand_in("exit 1"));
  EXPECT_EQ(m_compiler.calls, 2);
  EXPECT_FALSE(r.compile_cached);
  EXPECT_NE(r.stages.at(1).note.find("did not match its digest; recompiled"), std::string::npos) << r.stages.at(1).note;
  EXPECT_EQ(object_file_digest(so).value_or(""), read_file(so + ".xxh3").value_or("").substr(0, 32));

  fs::remove(so + ".xxh3");
  r = verify(stand_in("exit 1"));
  EXPECT_EQ(m_compiler.calls, 3);
  EXPECT_NE(r.stages.at(1).note.find("no digest"), std::string::npos) << r.stages.at(1).note;
}

TEST_F(VerifyTest, ObjectCacheDirectoryIsPrivate) {
  m_options.run = false;
  verify(stand_in("exit 1"));
  const std::string dir = m_options.work_dir + "/so";
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ::chmod(dir.c_str(), 0755);  // ours and not writable by others: tightened again
  verify(stand_in("exit 1"));
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ::chmod(dir.c_str(), 0777);  // anyone could have replaced an object: refused
  SandboxRunner runner(stand_in("exit 1"), m_options.work_dir, kTestEnv);
  Verifier v(m_compiler, runner, m_options);
  auto r = v.verify(m_spec, kSpecYaml, kCandidate);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("writable by group or others"), std::string::npos) << r.error().message;
  ::chmod(dir.c_str(), 0700);
}

// The host checks' findings (CompileJob::inspect) reject the candidate in the compile stage.
TEST_F(VerifyTest, HostCheckFindingsReject) {
  m_options.run = false;
  m_compiler.inspect_findings = true;
  const VerifyReport r = verify(stand_in("exit 1"));
  ASSERT_NE(only_rejection(r), nullptr);
  EXPECT_EQ(r.first_rejection()->kind, FindingKind::ForbiddenSymbol);
  EXPECT_EQ(r.first_rejection()->stage, kStageCompile);
  EXPECT_EQ(r.stages.at(1).status, StageStatus::Fail);
}

TEST_F(VerifyTest, NoRunStopsAfterCompiling) {
  m_options.run = false;
  const VerifyReport r = verify(stand_in("exit 1"));
  EXPECT_EQ(r.verdict, Verdict::Incomplete);
  EXPECT_EQ(m_compiler.calls, 1);  // the reference is not needed
}

TEST_F(VerifyTest, MissingRunnerIsTheVerifiersFailure) {
  SandboxRunner runner(m_dir + "/no_such_runner", m_options.work_dir, kTestEnv);
  Verifier v(m_compiler, runner, m_options);
  auto r = v.verify(m_spec, kSpecYaml, kCandidate);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no_such_runner"), std::string::npos);
}

TEST_F(VerifyTest, Probe) {
  SandboxRunner yes(stand_in("echo '{}'"), m_options.work_dir, kTestEnv);
  auto y = yes.probe(m_options.limits);
  ASSERT_TRUE(y);
  EXPECT_TRUE(*y);
  SandboxRunner no(stand_in("exit 77"), m_options.work_dir, kTestEnv);
  auto n = no.probe(m_options.limits);
  ASSERT_TRUE(n);
  EXPECT_FALSE(*n);
  SandboxRunner broken(stand_in("kill -SEGV $$"), m_options.work_dir, kTestEnv);
  EXPECT_FALSE(broken.probe(m_options.limits));
}

TEST(ExportedSymbols, ReadsDynsymWithoutLoading) {
  const std::string path = testing::TempDir() + "/kg_elf_test.so";
  ASSERT_TRUE(write_file_atomic(path, make_elf({"kg_a_forward", "other"})));
  auto names = exported_symbols(path);
  ASSERT_TRUE(names) << names.error().message;
  EXPECT_EQ(*names, (std::vector<std::string>{"kg_a_forward", "other"}));
  ASSERT_TRUE(write_file_atomic(path, "not an elf"));
  EXPECT_FALSE(exported_symbols(path));
}

}  // namespace
}  // namespace kg::verify
