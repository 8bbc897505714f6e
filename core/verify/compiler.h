// Compiling a candidate kernel into a shared object: the Compiler interface (so the verifier's
// tests run without nvcc) and NvccCompiler, the real one.
//
// The command (nvcc_command):
//   nvcc --generate-code=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Xptxas -v -shared
//        -Xcompiler -fPIC -Xlinker --no-undefined -I<include_dir> -o <output> <source>
// The CUDA runtime is linked statically (nvcc's default, -cudart static), so the .so needs nothing
// but libc, libm, libstdc++, libgcc_s, libdl, libpthread and librt, and --no-undefined turns any
// reference to another library (cuBLAS, the driver API, ...) into a link error.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "util/expected.h"

namespace kg::verify {

struct CompileJob {
  std::string source_path;  // .cu
  std::string output_path;  // .so to write
  std::string arch;         // resolved, e.g. "sm_90a"
  std::string include_dir;  // holds kernelgen/attention_abi.h
};

struct CompileResult {
  bool ok = false;
  std::string output;   // nvcc's stdout + stderr (ptxas -v report included)
  double seconds = 0;
  std::string command;  // for the report, space-joined
};

class Compiler {
 public:
  virtual ~Compiler() = default;
  // Compiles `job`. A compiler that runs and fails is a result with ok = false; Failure means the
  // compiler could not be run at all (missing, or timed out: Failure::Kind::Timeout).
  virtual Expected<CompileResult, Failure> compile(const CompileJob& job) = 0;
  // One line naming the compiler and version; part of the compiled-object cache key.
  virtual std::string version() = 0;
};

class NvccCompiler : public Compiler {
 public:
  // `nvcc`: path of the nvcc executable ("": none; compile() then fails saying so).
  // `timeout_s`: per compile.
  // `env`: nvcc's environment (it needs PATH for the host compiler, TMPDIR, ...).
  explicit NvccCompiler(std::string nvcc, config::Environment env = {}, double timeout_s = 600);
  Expected<CompileResult, Failure> compile(const CompileJob& job) override;
  std::string version() override;  // last line of `nvcc --version` ("" when nvcc cannot run)
  const std::string& path() const { return m_nvcc; }

 private:
  std::string m_nvcc;
  config::Environment m_env;
  double m_timeout_s;
  std::string m_version;  // cached
};

// $CUDACXX of `env`, else `nvcc` on its PATH, else /usr/local/cuda/bin/nvcc; "" when none exists.
// (The `nvcc` setting, KERNELGEN_NVCC, is applied by the caller: VerifierSetup in verify.h.)
std::string find_nvcc(const config::Environment& env);

// The nvcc argument list for `job` (argv[0] = `nvcc`).
std::vector<std::string> nvcc_command(const std::string& nvcc, const CompileJob& job);

// Names of the symbols a shared object defines and exports (ELF .dynsym), read from the file
// without loading it (loading would run the candidate's initialisers in the caller).
// Errors: unreadable file, not a 64-bit little-endian ELF, no .dynsym.
Expected<std::vector<std::string>, Failure> exported_symbols(const std::string& so_path);

}  // namespace kg::verify
