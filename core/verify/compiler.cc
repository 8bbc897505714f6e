#include "verify/compiler.h"

#include <elf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "util/file.h"
#include "verify/process.h"

namespace kg::verify {

std::string find_nvcc(const config::Environment& env) {
  if (auto v = config::lookup(env, "CUDACXX"); v && !v->empty() && ::access(v->c_str(), X_OK) == 0) {
    return *v;
  }
  std::istringstream dirs(config::lookup(env, "PATH").value_or(""));
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string c = (dir.empty() ? "." : dir) + "/nvcc";
    if (::access(c.c_str(), X_OK) == 0) {
      return c;
    }
  }
  return ::access("/usr/local/cuda/bin/nvcc", X_OK) == 0 ? "/usr/local/cuda/bin/nvcc" : "";
}

std::vector<std::string> nvcc_command(const std::string& nvcc, const CompileJob& job) {
  // "sm_90a" -> compute_90a / sm_90a
  const std::string digits = job.arch.substr(3);
  return {nvcc,
          "--generate-code=arch=compute_" + digits + ",code=sm_" + digits,
          "-O3",
          "-std=c++17",
          "-Xptxas",
          "-v",
          "-shared",
          "-Xcompiler",
          "-fPIC",
          "-Xlinker",
          "--no-undefined",
          "-I" + job.include_dir,
          "-o",
          job.output_path,
          job.source_path};
}

namespace {

std::vector<std::string> entries(const config::Environment& env) {
  std::vector<std::string> out;
  for (const auto& [name, value] : env) {
    out.push_back(name + "=" + value);
  }
  if (env.count("PATH") == 0) {
    out.push_back("PATH=/usr/bin:/bin");
  }
  return out;
}

}  // namespace

NvccCompiler::NvccCompiler(std::string nvcc, config::Environment env, double timeout_s)
    : m_nvcc(std::move(nvcc)), m_env(std::move(env)), m_timeout_s(timeout_s) {}

Expected<CompileResult, Failure> NvccCompiler::compile(const CompileJob& job) {
  if (m_nvcc.empty()) {
    return fail("nvcc not found (set KERNELGEN_NVCC or put nvcc on PATH)");
  }
  ProcessOptions o;
  o.argv = nvcc_command(m_nvcc, job);
  o.env = entries(m_env);
  o.wall_limit_s = m_timeout_s;
  auto r = run_process(o);
  if (!r) {
    return unexpected(r.error());
  }
  CompileResult c;
  for (const std::string& a : o.argv) {
    c.command += (c.command.empty() ? "" : " ") + a;
  }
  c.output = r->out + r->err;
  c.seconds = r->seconds;
  if (r->timed_out) {
    return fail("nvcc did not finish within " + std::to_string(static_cast<int>(m_timeout_s)) + " s",
                Failure::Kind::Timeout);
  }
  c.ok = r->exited_ok();
  return c;
}

std::string NvccCompiler::version() {
  if (m_version.empty() && !m_nvcc.empty()) {
    ProcessOptions o;
    o.argv = {m_nvcc, "--version"};
    o.env = entries(m_env);
    o.wall_limit_s = 60;
    auto r = run_process(o);
    if (r && r->exited_ok()) {
      m_version = last_lines(r->out, 1);
    }
  }
  return m_version;
}

Expected<std::vector<std::string>, Failure> exported_symbols(const std::string& so_path) {
  auto bytes = read_file(so_path);
  if (!bytes) {
    return unexpected(bytes.error());
  }
  const std::string& f = *bytes;
  auto bad = [&](const char* why) { return fail(so_path + ": " + why); };
  if (f.size() < sizeof(Elf64_Ehdr) || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0 || f[EI_CLASS] != ELFCLASS64 ||
      f[EI_DATA] != ELFDATA2LSB) {
    return bad("not a 64-bit little-endian ELF file");
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof eh);
  if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shoff + uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > f.size()) {
    return bad("no readable section headers");
  }
  auto section = [&](size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, f.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof sh);
    return sh;
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sym = section(i);
    if (sym.sh_type != SHT_DYNSYM) {
      continue;
    }
    if (sym.sh_link >= eh.e_shnum) {
      return bad(".dynsym links to no string table");
    }
    const Elf64_Shdr str = section(sym.sh_link);
    if (sym.sh_offset + sym.sh_size > f.size() || str.sh_offset + str.sh_size > f.size() ||
        sym.sh_entsize != sizeof(Elf64_Sym)) {
      return bad("truncated .dynsym");
    }
    std::vector<std::string> names;
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= sym.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym s;
      std::memcpy(&s, f.data() + sym.sh_offset + off, sizeof s);
      const int bind = ELF64_ST_BIND(s.st_info);
      if (s.st_shndx == SHN_UNDEF || (bind != STB_GLOBAL && bind != STB_WEAK) || s.st_name >= str.sh_size) {
        continue;
      }
      const char* name = f.data() + str.sh_offset + s.st_name;
      names.emplace_back(name, strnlen(name, str.sh_size - s.st_name));
    }
    return names;
  }
  return bad("no .dynsym section (not a shared object?)");
}

}  // namespace kg::verify
