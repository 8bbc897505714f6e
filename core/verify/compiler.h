// Compiling a candidate kernel into a shared object: the Compiler interface (so the verifier's
// tests run without nvcc) and NvccCompiler, the real one.
//
// Two steps, so that the host object can be inspected before it becomes a loadable object:
//   nvcc --generate-code=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Xptxas -v -Xcompiler -fPIC
//        -I<include_dir> --keep --keep-dir <dir> -c -o <object> <source>       (nvcc_object_command)
//   nvcc --generate-code=arch=compute_90a,code=sm_90a -shared -Xlinker --no-undefined
//        -o <output> <object>                                                 (nvcc_link_command)
// --keep leaves nvcc's host translation (<stem>.cudafe1.cpp, what the host compiler compiled) in
// <dir>: CompileJob::inspect reads it and the object in between (host_check.h), at no extra
// compile. The CUDA runtime is linked statically (nvcc's default, -cudart static), so the .so
// needs nothing but libc, libm, libstdc++, libgcc_s, libdl, libpthread and librt, and
// --no-undefined turns any reference to another library (cuBLAS, the driver API, ...) into a link
// error.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/expected.h"
#include "verify/report.h"

namespace kg::verify {

// What the compiler hands CompileJob::inspect: the files of the host side, still in place.
struct HostArtifacts {
  std::string source_path;       // as nvcc was given it (the host translation's line markers name it)
  std::string translation_path;  // the host translation (nvcc's .cudafe1.cpp); "" when the compiler has none
  std::string object_path;       // the host object (.o, with the device code embedded)
  config::Environment env;       // the compiler's environment, for tools the inspection runs (objdump)
};

struct CompileJob {
  std::string source_path;  // .cu
  std::string output_path;  // .so to write
  std::string arch;         // resolved, e.g. "sm_90a", or a set "sm_80,sm_90a" (one --generate-code each)
  std::string include_dir;  // holds kernelgen/attention_abi.h
  // Called once the host object exists, before it is linked. Findings it returns stop the
  // compile there: no .so is written, CompileResult::ok is false and findings holds them. A
  // Failure from it is the compile's Failure. Empty: no inspection.
  std::function<Expected<std::vector<Finding>, Failure>(const HostArtifacts&)> inspect;
};

struct CompileResult {
  bool ok = false;
  std::string output;   // nvcc's stdout + stderr (ptxas -v report included)
  double seconds = 0;   // nvcc's own time (both steps)
  std::string command;  // for the report, space-joined (both steps, `&&`-joined)
  std::vector<Finding> findings;  // from CompileJob::inspect (stage "compile")
  double inspect_seconds = 0;     // time spent in CompileJob::inspect
  // Set by the object cache (Verifier::compile_cached): XXH3-128 of the .so's bytes, 32 hex
  // digits, so that whoever loads the object can check it is the one that was verified
  // (object_file_digest). "" when no object was made.
  std::string object_digest;
  std::string note;  // set by the object cache: "cached", or why a cached object was recompiled
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

// The nvcc argument lists for `job` (argv[0] = `nvcc`): the host object `object` (intermediate
// files kept in `keep_dir`, which must exist), then the shared object from it.
std::vector<std::string> nvcc_object_command(const std::string& nvcc, const CompileJob& job, const std::string& object,
                                             const std::string& keep_dir);
std::vector<std::string> nvcc_link_command(const std::string& nvcc, const CompileJob& job, const std::string& object);

// XXH3-128 (32 hex digits) of the bytes of the file at `path`: what compile_cached records beside
// each cached object, for a loader to compare with the bytes it is about to dlopen.
// Errors: the file cannot be read.
Expected<std::string, Failure> object_file_digest(const std::string& path);

// The global and weak symbols of an ELF64 file's first symbol table of `section_type` (SHT_DYNSYM,
// SHT_SYMTAB), in table order: the defined ones when `defined`, else the undefined ones. Read from
// the file (a hostile one: every offset is bounded by its size). Errors: unreadable, not a 64-bit
// little-endian ELF, no such table, truncated headers or tables.
Expected<std::vector<std::string>, Failure> elf_global_symbols(const std::string& path, uint32_t section_type,
                                                                bool defined);

// Names of the symbols a shared object defines and exports (ELF .dynsym), read from the file
// without loading it (loading would run the candidate's initialisers in the caller).
// Errors: unreadable file, not a 64-bit little-endian ELF, no .dynsym.
Expected<std::vector<std::string>, Failure> exported_symbols(const std::string& so_path);

}  // namespace kg::verify
