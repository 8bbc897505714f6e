// kernelgen: the client used by CMake and by people (DESIGN §6).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "commands.h"
#include "util/log.h"
#include "version.h"

namespace {

constexpr const char* kDescription =
    "kernelgen turns attention specs (YAML) into verified CUDA kernels.\n"
    "\n"
    "A spec names a FlexAttention-style variant; kernelgen resolves it to a key, serves the\n"
    "kernel from the cache or generates it, and writes <name>.cu and <name>.h.\n";

constexpr const char* kFooter =
    "\nExamples:\n"
    "  kernelgen spec check specs/causal.yaml          canonical form and cache key\n"
    "  kernelgen emit --spec specs/causal.yaml --out-dir gen\n"
    "                                                  write gen/causal.cu and gen/causal.h\n"
    "  kernelgen cache stats                           what the local cache holds\n"
    "  kernelgen cache show <key> --source             a cached kernel's source\n"
    "\n"
    "Environment:\n"
    "  KERNELGEN_CACHE_DIR  cache location (default $XDG_CACHE_HOME/kernelgen or ~/.cache/kernelgen)\n"
    "  KERNELGEN_LOG        error | warn (default) | info | debug\n"
    "\n"
    "Exit status: 0 success, 1 the work failed (message on stderr), 2 bad command line.\n"
    "In CMake, use kernelgen_add_attention() from cmake/KernelGen.cmake instead of calling this.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace kg::cli;
  CLI::App app{kDescription, "kernelgen"};
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("kernelgen ") + kg::kVersion + " (generator " +
                                        kg::kGeneratorVersion + ")");
  app.require_subcommand(1);

  GlobalOptions global;
  bool verbose = false;
  app.add_option("--cache-dir", global.cache_dir, "Cache directory (overrides KERNELGEN_CACHE_DIR)");
  app.add_flag("-v,--verbose", verbose, "Log what happens (same as KERNELGEN_LOG=debug)");

  // spec check
  CLI::App* spec = app.add_subcommand("spec", "Work with spec files");
  spec->require_subcommand(1);
  SpecCheckOptions check;
  CLI::App* spec_check = spec->add_subcommand(
      "check", "Parse and type-check specs; print each one's canonical form and cache key");
  spec_check->add_option("files", check.files, "Spec files (YAML)")->required()->check(CLI::ExistingFile);
  spec_check->add_option("--arch", check.arch, "Target architecture the key is for")->capture_default_str();
  spec_check->add_flag("--json", check.json,
                       "Print a JSON array of {file, name, key, canonical} instead of text");
  spec_check->footer(
      "\nErrors are printed as file:line:col: error: expected X, found Y; the exit status is 1 if any\n"
      "file has an error. The key is the cache key for --arch and changes with any change of meaning.\n");

  // emit
  EmitOptions emit;
  CLI::App* emit_cmd = app.add_subcommand(
      "emit", "Write <name>.cu and <name>.h for a spec: from the cache, or generated and cached");
  emit_cmd->add_option("--spec", emit.spec_file, "Spec file (YAML)")->required()->check(CLI::ExistingFile);
  emit_cmd->add_option("--out-dir", emit.out_dir, "Directory for the generated files (created)")->required();
  emit_cmd->add_option("--arch", emit.arch, "Target architecture, e.g. sm_90a or 90a")->capture_default_str();
  emit_cmd->add_flag("--reference", emit.reference,
                     "Also write <name>_reference.cu, the plain fp32 reference kernel (tests)");
  emit_cmd->add_option("--expect-name", emit.expect_name,
                       "Fail unless the spec's name is this (the build system derives file names)");
  emit_cmd->add_flag("--touch", emit.touch, "Update time stamps of outputs whose content did not change");
  emit_cmd->footer(
      "\nFiles are written atomically and only when their content changes, so a rebuild recompiles\n"
      "nothing when the kernel is the same. The cache key covers the canonical spec, the target,\n"
      "and the generator and verifier versions.\n");

  // cache
  CacheOptions cache;
  CLI::App* cache_cmd = app.add_subcommand("cache", "Inspect the local kernel cache");
  cache_cmd->require_subcommand(1);
  CLI::App* cache_stats = cache_cmd->add_subcommand("stats", "Entry counts and sizes");
  cache_stats->add_flag("--json", cache.json, "JSON output");
  CLI::App* cache_ls = cache_cmd->add_subcommand("ls", "One line per cached kernel: key, name, arch, state");
  cache_ls->add_flag("--json", cache.json, "JSON output");
  CLI::App* cache_show = cache_cmd->add_subcommand("show", "A cached kernel's record, or one of its blobs");
  cache_show->add_option("key", cache.key, "Cache key (32 hex digits) or a unique prefix")->required();
  auto* parts = cache_show->add_option_group("part", "Print a blob instead of the record");
  parts->add_flag_callback("--source", [&] { cache.part = "source"; }, "The kernel source (<name>.cu)");
  parts->add_flag_callback("--header", [&] { cache.part = "header"; }, "The header (<name>.h)");
  parts->add_flag_callback("--canonical", [&] { cache.part = "canonical"; }, "The canonical spec");
  parts->add_flag_callback("--report", [&] { cache.part = "report"; }, "The verifier report");
  parts->require_option(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (verbose) {
    kg::log::set_level(kg::log::Level::Debug);
  }

  try {
    if (spec_check->parsed()) {
      return run_spec_check(global, check);
    }
    if (emit_cmd->parsed()) {
      return run_emit(global, emit);
    }
    if (cache_cmd->parsed()) {
      cache.action = cache_stats->parsed() ? "stats" : cache_ls->parsed() ? "ls" : "show";
      return run_cache(global, cache);
    }
  } catch (const std::exception& e) {
    KG_LOG_ERROR("internal error: " << e.what() << " (rerun with KERNELGEN_LOG=debug for details)");
    return kExitFailure;
  }
  return kExitUsage;
}
