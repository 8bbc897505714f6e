#include "verify/compiler.h"

#include <elf.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "spec/key.h"
#include "util/file.h"
#include "util/hash.h"
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

namespace {

std::vector<std::string> arch_flag(const CompileJob& job) {
  // "sm_90a" -> compute_90a / sm_90a; a set ("sm_80,sm_90a") gives one flag per architecture.
  std::vector<std::string> flags;
  for (const std::string& arch : spec::arch_set(job.arch)) {
    const std::string digits = arch.size() > 3 ? arch.substr(3) : arch;
    flags.push_back("--generate-code=arch=compute_" + digits + ",code=sm_" + digits);
  }
  return flags;
}

}  // namespace

std::vector<std::string> nvcc_object_command(const std::string& nvcc, const CompileJob& job, const std::string& object,
                                             const std::string& keep_dir) {
  std::vector<std::string> c = {nvcc};
  for (std::string& a : arch_flag(job)) {
    c.push_back(std::move(a));
  }
  for (const char* a : {"-O3", "-std=c++17", "-Xptxas", "-v", "-Xcompiler", "-fPIC"}) {
    c.emplace_back(a);
  }
  for (const std::string& a : {"-I" + job.include_dir, std::string("--keep"), std::string("--keep-dir"), keep_dir,
                               std::string("-c"), std::string("-o"), object, job.source_path}) {
    c.push_back(a);
  }
  return c;
}

std::vector<std::string> nvcc_link_command(const std::string& nvcc, const CompileJob& job, const std::string& object) {
  std::vector<std::string> c = {nvcc};
  for (std::string& a : arch_flag(job)) {
    c.push_back(std::move(a));
  }
  for (const std::string& a : {std::string("-shared"), std::string("-Xlinker"), std::string("--no-undefined"),
                               std::string("-o"), job.output_path, object}) {
    c.push_back(a);
  }
  return c;
}

Expected<std::string, Failure> object_file_digest(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) {
    return unexpected(bytes.error());
  }
  return xxh3_128_hex(*bytes);
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
  // Intermediate files (the host object, nvcc's --keep files) live in a directory of their own
  // beside the output, removed whatever happens.
  const std::string scratch = job.output_path + ".d";
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  KG_TRY(make_dirs(scratch, 0700));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      std::filesystem::remove_all(dir, e);
    }
  } cleanup{scratch};
  const std::string object = scratch + "/host.o";
  CompileResult c;
  auto step = [&](std::vector<std::string> argv) -> Expected<bool, Failure> {
    ProcessOptions o;
    o.argv = std::move(argv);
    o.env = entries(m_env);
    o.wall_limit_s = m_timeout_s;
    std::string joined;
    for (const std::string& a : o.argv) {
      joined += (joined.empty() ? "" : " ") + a;
    }
    c.command += (c.command.empty() ? "" : " && ") + joined;
    auto r = run_process(o);
    if (!r) {
      return unexpected(r.error());
    }
    c.output += r->out + r->err;
    c.seconds += r->seconds;
    if (r->timed_out) {
      return fail("nvcc did not finish within " + std::to_string(static_cast<int>(m_timeout_s)) + " s",
                  Failure::Kind::Timeout);
    }
    return r->exited_ok();
  };
  auto built = step(nvcc_object_command(m_nvcc, job, object, scratch));
  if (!built) {
    return unexpected(built.error());
  }
  if (!*built) {
    return c;
  }
  if (job.inspect) {
    HostArtifacts host;
    host.source_path = job.source_path;
    host.object_path = object;
    host.env = m_env;
    // nvcc names its kept files after the source's stem: x.cu -> x.cudafe1.cpp
    const std::filesystem::path src(job.source_path);
    host.translation_path = scratch + "/" + src.stem().string() + ".cudafe1.cpp";
    if (::access(host.translation_path.c_str(), R_OK) != 0) {
      return fail("nvcc left no host translation at " + host.translation_path + " (--keep); cannot check the host code");
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto found = job.inspect(host);
    c.inspect_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!found) {
      return unexpected(found.error());
    }
    c.findings = std::move(*found);
    if (!c.findings.empty()) {
      return c;  // not linked: nothing loadable is made from a refused object
    }
  }
  auto linked = step(nvcc_link_command(m_nvcc, job, object));
  if (!linked) {
    return unexpected(linked.error());
  }
  c.ok = *linked;
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

Expected<std::vector<std::string>, Failure> elf_global_symbols(const std::string& path, uint32_t section_type,
                                                                bool defined) {
  auto bytes = read_file(path);
  if (!bytes) {
    return unexpected(bytes.error());
  }
  const std::string& f = *bytes;
  const char* table = section_type == SHT_DYNSYM ? ".dynsym" : ".symtab";
  auto bad = [&](const std::string& why) { return fail(path + ": " + why); };
  if (f.size() < sizeof(Elf64_Ehdr) || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0 || f[EI_CLASS] != ELFCLASS64 ||
      f[EI_DATA] != ELFDATA2LSB) {
    return bad("not a 64-bit little-endian ELF file");
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof eh);
  // Every offset and size is bounded by the file's size without overflowing.
  if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > f.size() ||
      uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > f.size() - eh.e_shoff) {
    return bad("no readable section headers");
  }
  auto section = [&](size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, f.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof sh);
    return sh;
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sym = section(i);
    if (sym.sh_type != section_type) {
      continue;
    }
    if (sym.sh_link >= eh.e_shnum) {
      return bad(std::string(table) + " links to no string table");
    }
    const Elf64_Shdr str = section(sym.sh_link);
    if (sym.sh_offset > f.size() || sym.sh_size > f.size() - sym.sh_offset || str.sh_offset > f.size() ||
        str.sh_size > f.size() - str.sh_offset || sym.sh_entsize != sizeof(Elf64_Sym)) {
      return bad(std::string("truncated ") + table);
    }
    std::vector<std::string> names;
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= sym.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym s;
      std::memcpy(&s, f.data() + sym.sh_offset + off, sizeof s);
      const int bind = ELF64_ST_BIND(s.st_info);
      if ((s.st_shndx != SHN_UNDEF) != defined || (bind != STB_GLOBAL && bind != STB_WEAK) || s.st_name == 0 ||
          s.st_name >= str.sh_size) {
        continue;
      }
      const char* name = f.data() + str.sh_offset + s.st_name;
      names.emplace_back(name, strnlen(name, str.sh_size - s.st_name));
    }
    return names;
  }
  return bad(std::string("no ") + table + " section");
}

Expected<std::vector<std::string>, Failure> exported_symbols(const std::string& so_path) {
  return elf_global_symbols(so_path, SHT_DYNSYM, /*defined=*/true);
}

}  // namespace kg::verify
