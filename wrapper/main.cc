// kernelgen: the client used by CMake and by people (docs/design.md §6).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <map>
#include <string_view>

extern char** environ;

#include "commands.h"
#include "config/config.h"
#include "lock/mode.h"
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
    "  kernelgen lock specs/*.yaml                     record each spec's key and kernel in kernelgen.lock\n"
    "  kernelgen cache stats                           what the local cache holds\n"
    "  kernelgen cache show <key> --source             a cached kernel's source\n"
    "  kernelgen cache verify                          verify, on a GPU, the kernels cached without one\n"
    "  kernelgen verify --spec specs/causal.yaml --kernel my.cu\n"
    "                                                  check and time a candidate kernel\n"
    "  kernelgen daemon status                         the daemon: running?, jobs, counters\n"
    "  kernelgen report <key>                          an HTML page: the loop's candidates and plots\n"
    "\n"
    "Configuration: command line > environment > config file > defaults. Every setting has an\n"
    "environment variable KERNELGEN_<SETTING> and a `setting = value` line in the config file\n"
    "($KERNELGEN_CONFIG, else $XDG_CONFIG_HOME/kernelgen/kernelgen.conf). The main ones:\n"
    "  KERNELGEN_CACHE_DIR  cache location (default $XDG_CACHE_HOME/kernelgen or ~/.cache/kernelgen)\n"
    "  KERNELGEN_LOG        error | warn (default) | info | debug\n"
    "  KERNELGEN_NO_DAEMON  1: generate in the kernelgen process (as --no-daemon)\n"
    "  KERNELGEN_MODE       online (default) | offline | read_only | recache (as --mode; kernelgen emit --help)\n"
    "  KERNELGEN_NVCC       the nvcc the verifier uses (default: nvcc on PATH)\n"
    "`kernelgen config show` lists every setting, its value and where the value came from.\n"
    "\n"
    "Exit status: 0 success, 1 the work failed (message on stderr), 2 bad command line.\n"
    "In CMake, use kernelgen_add_attention() from cmake/KernelGen.cmake instead of calling this.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace kg::cli;
  // The compiler launcher runs on every compile of a target with generated kernels: straight to it,
  // before any configuration is read, so nothing but the command line can make a compile fail.
  if (argc >= 2 && std::string_view(argv[1]) == "launch" &&
      !(argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h"))) {
    LaunchOptions launch;
    const int first = argc >= 3 && std::string_view(argv[2]) == "--" ? 3 : 2;
    launch.command.assign(argv + first, argv + argc);
    return run_launch(launch);
  }
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
  emit_cmd->add_option("--out-dir", emit.out_dir,
                       "Directory for the generated files (created); without it the kernel is only put in the cache");
  emit_cmd->add_option("--arch", emit.arch, "Target architecture or set, e.g. sm_90a, 90a or 80,86,89,90a (one kernel per family, dispatched by the device)")->capture_default_str();
  emit_cmd->add_flag("--reference", emit.reference,
                     "Also write <name>_reference.cu, the plain fp32 reference kernel (tests)");
  emit_cmd->add_option("--expect-name", emit.expect_name,
                       "Fail unless the spec's name is this (the build system derives file names)");
  emit_cmd->add_flag("--touch", emit.touch, "Update time stamps of outputs whose content did not change");
  emit_cmd->add_flag("--no-daemon", emit.no_daemon,
                     "Generate in this process instead of asking kernelgend (also KERNELGEN_NO_DAEMON=1)");
  emit_cmd->add_option("--budget", emit.budget,
                       "On a miss, the closed loop's time: seconds or 90s, 15m, 1h; 0: the template only "
                       "(default: llm_budget, when an LLM endpoint is configured)")
      ->check([](const std::string& text) {
        return kg::config::parse_duration(text) ? std::string()
                                                : "expected seconds, or a number with s, m or h (90s, 15m, 1h)";
      });
  emit_cmd->add_flag("--no-verify", emit.no_verify,
                     "Do not verify a newly generated kernel on the GPU (it is cached as unverified)");
  // --mode (emit and lock): becomes the `mode` setting from the command line.
  std::string mode_flag;
  const auto mode_check = [](const std::string& text) {
    auto m = kg::lock::parse_mode(text);
    return m ? std::string() : m.error().message;
  };
  emit_cmd->add_option("--mode", mode_flag, "online | offline | read_only | recache (default: the mode setting, "
                                            "KERNELGEN_MODE, else online; see below)")
      ->check(mode_check);
  emit_cmd->add_option("--lockfile", emit.lockfile,
                       "Fail unless the kernel is the one this lockfile locks for the spec (kernelgen lock)");
  emit_cmd->footer(
      "\nFiles are written atomically and only when their content changes, so a rebuild recompiles\n"
      "nothing when the kernel is the same. The cache key covers the canonical spec, the target,\n"
      "and the generator and verifier versions.\n"
      "A newly generated kernel is verified on the GPU (see `kernelgen verify`) before it is cached\n"
      "when a CUDA device is present, and its report is kept (kernelgen cache show KEY --report);\n"
      "without a device, or with --no-verify, it is cached as unverified. A kernel that fails\n"
      "verification is an error and is not cached. Cache hits never touch the GPU.\n"
      "\nModes (--mode, or the mode setting: KERNELGEN_MODE, the config file):\n"
      "  online     the default: a hit from the cache, a miss generated (by kernelgend, or in this\n"
      "             process with --no-daemon) and cached\n"
      "  offline    hits only: no generation, no daemon, no network, no LLM; a miss is an error that\n"
      "             names the spec, its key and how to produce it\n"
      "  read_only  hits from the cache; a miss is generated in this process (no daemon) and written to\n"
      "             --out-dir only: the cache is never written\n"
      "  recache    ignore a cached kernel: generate it again in this process (no daemon) and replace\n"
      "             the cached record\n"
      "\nWith --lockfile FILE (kernelgen lock writes it), the kernel is checked before any output is\n"
      "written: the spec's entry (by its path relative to FILE's directory, else by name and arch)\n"
      "must have the key the spec resolves to (else the spec or KernelGen changed) and the digest of\n"
      "the kernel the cache holds for it (else the cache holds a different kernel for that key). A\n"
      "spec without an entry fails too. The error says how to accept a change: kernelgen lock --update.\n"
      "A kernel generated and then refused stays cached (online, recache), so that command finds it.\n");

  // lock
  LockOptions lock_opts;
  CLI::App* lock_cmd = app.add_subcommand(
      "lock", "Record each spec's cache key and kernel digest in a lockfile, from the local cache");
  lock_cmd->add_option("specs", lock_opts.spec_files, "Spec files (YAML)")->required()->check(CLI::ExistingFile);
  lock_cmd->add_option("--lockfile", lock_opts.lockfile, "The lockfile to write")->capture_default_str();
  lock_cmd->add_option("--arch", lock_opts.arch, "Target architecture the kernels are for")->capture_default_str();
  lock_cmd->add_flag("--update", lock_opts.update,
                     "Accept specs whose key or kernel changed (replace their entries)");
  lock_cmd->add_option("--mode", mode_flag, "As for emit; lock only ever reads the local cache")->check(mode_check);
  lock_cmd->footer(
      "\nFor each spec, the kernel the local cache holds for its key (--arch) is locked: the lockfile\n"
      "gets an entry {spec, name, arch, key, kernel (XXH3-128 of <name>.cu), generator, verification},\n"
      "spec being the path relative to the lockfile's directory. Nothing is generated: a spec that is\n"
      "not cached is an error (build first: kernelgen emit, or the build that uses the spec).\n"
      "Entries of other specs are kept. A spec whose entry names another key or kernel is an error\n"
      "unless --update is given; then its entry is replaced. Nothing is written when any spec fails.\n"
      "The file is sorted, stable JSON (commit it); it is rewritten only when its content changes.\n"
      "Builds check against it with kernelgen emit --lockfile (CMake: kernelgen_add_attention(...\n"
      "LOCKFILE kernelgen.lock)).\n");

  // verify
  VerifyOptions verify;
  CLI::App* verify_cmd = app.add_subcommand(
      "verify", "Check a candidate kernel for a spec: static checks, nvcc, then correctness and timing on the GPU");
  verify_cmd->add_option("--spec", verify.spec_file, "Spec file (YAML)")->required()->check(CLI::ExistingFile);
  verify_cmd->add_option("--kernel", verify.kernel_file, "Candidate kernel: one self-contained .cu file")
      ->check(CLI::ExistingFile);
  verify_cmd->add_flag("--template", verify.use_template,
                       "Verify the template kernel kernelgen generates for the spec instead of --kernel");
  verify_cmd->add_option("--arch", verify.arch, "Target architecture, e.g. sm_90a or 90a")->capture_default_str();
  verify_cmd->add_flag("--json", verify.json, "Print the JSON report (docs/verifier.md) instead of a summary");
  verify_cmd->add_option("--report", verify.report_file, "Also write the JSON report to this file");
  verify_cmd->add_option("--repeat", verify.repeat,
                         "Verify N times in a row (fresh random inputs and shapes each time); stop at the first "
                         "that does not pass")
      ->capture_default_str();
  verify_cmd->add_option("--seed", verify.seed,
                         "Seed of the runner's random choices (default: random; the report records it)");
  verify_cmd->add_flag("--no-run", verify.no_run, "Static checks and compilation only (no GPU needed)");
  verify_cmd->add_flag("--no-timing", verify.no_timing, "Skip the timing stage (correctness only)");
  verify_cmd->add_option("--timeout", verify.timeout_s, "Wall-clock limit of the runner process, seconds")
      ->capture_default_str();
  verify_cmd->add_option("--work-dir", verify.work_dir,
                         "Compiled objects and run directories (default $KERNELGEN_VERIFY_DIR or <cache>/verify)");
  verify_cmd->add_flag("--keep", verify.keep, "Keep the runner's directory (request.json, result.json)");
  verify_cmd->footer(
      "\nStages, each ending in findings when something is wrong:\n"
      "  static       the entry kg_<name>_forward is defined with C linkage; no stream, thread, process,\n"
      "               file or socket creation; only CUDA and standard headers (+ kernelgen/attention_abi.h)\n"
      "  compile      nvcc -O3 for --arch into a shared object linked against the CUDA runtime only;\n"
      "               the ptxas report (registers, spills, shared memory, stack) is kept\n"
      "  run          kg_verify_runner in a sandbox: clean environment, fresh directory, wall-clock and\n"
      "               memory limits, private network namespace where allowed. A crash, hang or abort\n"
      "               is a finding\n"
      "  correctness  against the fp32 reference kernel of the spec, on many shapes (ragged, length 1,\n"
      "               Sq != Skv, batch > 1, GQA, strided, one random shape, refilled buffers, large\n"
      "               scores, long rows), outputs poisoned and guarded, inputs checksummed\n"
      "  timing       L2-flushed, rotating inputs, median of CUDA events cross-checked by the host clock,\n"
      "               every output checked, times under the physical floor rejected; TFLOP/s reported\n"
      "\nExit status: 0 the kernel passed (or, with --no-run, passed static checks and compilation);\n"
      "1 it was rejected (findings on stdout); 2 bad command line; 3 the verifier could not work\n"
      "(no nvcc, no runner); 77 static and compile passed but there is no CUDA device to run on.\n"
      "Settings (kernelgen config show): runner, verify_dir, verify_no_netns, nvcc (KERNELGEN_RUNNER, ...).\n"
      "Tolerances, every check and the report schema: docs/verifier.md.\n");

  // generate
  GenerateOptions gen;
  CLI::App* gen_cmd = app.add_subcommand(
      "generate", "Run the closed loop for specs: a reasoning model writes kernels, the verifier judges them");
  gen_cmd->add_option("specs", gen.spec_files, "Spec files (YAML)")->required()->check(CLI::ExistingFile);
  gen_cmd->add_option("--arch", gen.arch, "Target architecture, e.g. sm_90a or 90a")->capture_default_str();
  gen_cmd->add_option("--budget", gen.budget, "Time for each spec: seconds or 90s, 15m, 1h (llm_budget; default 15m)");
  gen_cmd->add_option("--samples", gen.samples, "Candidates per round, asked in parallel (llm_samples; default 8)");
  gen_cmd->add_option("--rounds", gen.rounds, "Most rounds (llm_rounds; default 0: only the budget and patience)");
  gen_cmd->add_flag("--no-run", gen.no_run,
                    "No GPU: static and compile checks only, nothing cached (checks the endpoint and prompts)");
  gen_cmd->add_flag("--force", gen.force, "Run even when the cache holds a kernel the loop made");
  gen_cmd->add_option("--history", gen.history_file,
                      "With --no-run: write the loop's history here (default kernelgen-history-<name>.json)");
  gen_cmd->footer(
      "\nEach round sends one prompt (the rules, the ABI, the spec's math as Python, the target GPU, the\n"
      "best kernel so far with its report, the last failures' findings) to the model --samples times\n"
      "in parallel; answers are parsed, compiled in parallel and verified on the GPU one at a time.\n"
      "The loop starts from the template kernel and stops at the budget, --rounds, llm_patience rounds\n"
      "without a faster kernel, or Ctrl-C. The fastest verified kernel (at least 3 % faster than the\n"
      "template) is cached under the spec's key with every prompt, answer and report; otherwise the\n"
      "template stands. `kernelgen report KEY` draws the loop's history.\n"
      "\nThe endpoint: KERNELGEN_LLM_URL (an OpenAI-compatible base URL ending in /v1), KERNELGEN_LLM_MODEL,\n"
      "KERNELGEN_LLM_API_KEY or KERNELGEN_LLM_API_KEY_FILE; or llm_url, llm_model, llm_api_key_file in\n"
      "the config file. Reasoning may come as reasoning_content (DeepSeek), reasoning (vLLM, Ollama) or\n"
      "<think> in the content (NIM, SGLang). The key is never printed, logged or stored.\n"
      "\nExit status: 0 done (the loop ran; the template may stand), 1 a spec or the endpoint failed,\n"
      "2 bad command line, 77 no CUDA device (use --no-run).\n");

  // explain
  ExplainOptions explain;
  CLI::App* explain_cmd = app.add_subcommand(
      "explain", "Every input of a spec's cache key, and why each storage tier misses it");
  explain_cmd->add_option("spec", explain.spec_file, "Spec file (YAML)")->required()->check(CLI::ExistingFile);
  explain_cmd->add_option("--arch", explain.arch, "Target architecture")->capture_default_str();
  explain_cmd->footer(
      "\nThe key changes exactly when one of its inputs does: the spec's meaning (its canonical form;\n"
      "comments and spacing do not count), the target, or a version of KernelGen's generator, prompts or\n"
      "verifier. The lookup goes local cache, prebuilt bundles (KERNELGEN_PREBUILT), remote\n"
      "(KERNELGEN_REMOTE); explain changes nothing in any of them.\n");

  // cache
  CacheOptions cache;
  CLI::App* cache_cmd = app.add_subcommand("cache", "Inspect the local kernel cache");
  cache_cmd->require_subcommand(1);
  CLI::App* cache_stats = cache_cmd->add_subcommand("stats", "Entry counts and sizes, and what each tier served");
  cache_stats->add_flag("--json", cache.json, "JSON output");
  cache_stats->add_flag("-z,--zero", cache.zero, "Reset the per-tier counters (hits, misses, errors, bytes, time)");
  CLI::App* cache_ls = cache_cmd->add_subcommand("ls", "One line per cached kernel: key, name, arch, state");
  cache_ls->add_flag("--json", cache.json, "JSON output");
  CLI::App* cache_show = cache_cmd->add_subcommand("show", "A cached kernel's record, or one of its blobs");
  cache_show->add_option("key", cache.key, "Cache key (32 hex digits) or a unique prefix")->required();
  auto* parts = cache_show->add_option_group("part", "Print a blob instead of the record");
  parts->add_flag_callback("--source", [&] { cache.part = "source"; }, "The kernel source (<name>.cu)");
  parts->add_flag_callback("--header", [&] { cache.part = "header"; }, "The header (<name>.h)");
  parts->add_flag_callback("--canonical", [&] { cache.part = "canonical"; }, "The canonical spec");
  parts->add_flag_callback("--report", [&] { cache.part = "report"; }, "The verifier report");
  parts->add_flag_callback("--history", [&] { cache.part = "history"; },
                           "The closed loop's history: every prompt, answer, report and timing (JSON)");
  parts->require_option(0, 1);
  CLI::App* cache_export = cache_cmd->add_subcommand(
      "export", "Write cached kernels into one portable bundle file (every kernel when no KEY is given)");
  cache_export->add_option("keys", cache.keys, "Keys or unique key prefixes");
  cache_export->add_option("--out", cache.out, "The bundle to write")->required();
  cache_export->footer(
      "\nA bundle holds the kernels' records and every blob they name (source, header, report, the\n"
      "loop's history), each checked against its digest when read. Build machines without a GPU or a\n"
      "network use it with `kernelgen cache import FILE` or KERNELGEN_PREBUILT=FILE[:FILE...].\n"
      "Kernels the closed loop wrote are exported only once a GPU verified them.\n");
  CLI::App* cache_gc = cache_cmd->add_subcommand(
      "gc", "Evict the kernels used longest ago until the cache fits its limit; drop unreferenced blobs");
  cache_gc->add_option("--max-size", cache.max_size, "The limit: 5G, 512M, ... (default: the max_size setting, 5G)");
  CLI::App* cache_import = cache_cmd->add_subcommand("import", "Copy every kernel of bundles into the local cache");
  cache_import->add_option("files", cache.files, "Bundle files (kernelgen cache export)")
      ->required()
      ->check(CLI::ExistingFile);

  // launch (dispatched before parsing, above; here for --help)
  std::vector<std::string> launch_command;
  CLI::App* launch_cmd = app.add_subcommand(
      "launch", "Run a compiler and make the object it writes reproducible (the CMake module's launcher)");
  launch_cmd->add_option("command", launch_command, "The compiler and its arguments, after --");
  launch_cmd->footer(
      "\nUsage: kernelgen launch -- <compiler> <args...>\n"
      "Runs the command as given and exits as it did. When it succeeds and wrote an ELF object\n"
      "(-o FILE), the names of nvcc's temporary files in the object (tmpxft_<pid>_<n>, which the host\n"
      "compiler records) get zeros for their digits, so one kernel compiles to the same bytes on every\n"
      "run and in every checkout. kernelgen_add_attention() sets it as the target's\n"
      "CUDA_COMPILER_LAUNCHER, in front of any launcher already set (ccache, sccache).\n");
  CLI::App* cache_verify = cache_cmd->add_subcommand(
      "verify", "Verify on this machine's GPU the kernels cached where no GPU was (every unverified one "
                "when no KEY is given)");
  cache_verify->add_option("keys", cache.keys, "Keys or unique key prefixes (kernelgen cache ls)");
  cache_verify->add_option("--arch", cache.arch, "Only kernels for this target, e.g. sm_90a or 90a (default: every one)");
  cache_verify->add_flag("--force", cache.force, "Verify the named kernels again even when they are verified");
  cache_verify->footer(
      "\nA kernel generated where no GPU was is cached as `unverified` (kernelgen cache ls). On a machine\n"
      "with a GPU, this command gives each one the check a generated kernel gets there, and a kernel\n"
      "verified once stays verified wherever its record travels (bundles, a shared remote).\n"
      "\nFor each kernel, first, with or without a GPU: every blob the record names must match its digest,\n"
      "the spec is rebuilt from the record's canonical spec and must give the record's key again (else\n"
      "\"key mismatch\": the record is never marked verified). Then, on the GPU, the verifier of\n"
      "`kernelgen verify` judges the cached source: static checks, nvcc for the record's target,\n"
      "correctness and timing in the sandboxed runner.\n"
      "  passed    the record becomes `verified` with the verifier's report (kernelgen cache show KEY\n"
      "            --report), in one write; a writable remote (KERNELGEN_REMOTE) receives it too\n"
      "  rejected  the findings are printed and the record is removed from the local cache: a kernel a\n"
      "            GPU rejected is never kept, and the next build generates it again\n"
      "Kernels already verified are skipped (--force with their keys verifies them again); kernels for\n"
      "a target this GPU cannot run stay unverified. Progress goes to stderr, and a last line says\n"
      "`N verified, M failed, K skipped`.\n"
      "\nExit status: 0 every kernel passed, or nothing was waiting; 1 a kernel was rejected, damaged, a\n"
      "key mismatch or an unknown key; 2 bad command line; 3 the verifier could not work (no nvcc, no\n"
      "runner); 77 no CUDA device here: nothing is changed and the waiting kernels are listed.\n"
      "\nExamples:\n"
      "  kernelgen cache verify                    every unverified kernel of the local cache\n"
      "  kernelgen cache verify 3f2a91 --force     one kernel again, by a key prefix\n");

  // report
  ReportOptions report;
  CLI::App* report_cmd = app.add_subcommand(
      "report", "Write one HTML page about a kernel: the loop's rounds, candidates, prompts and plots");
  CLI::Option* report_key = report_cmd->add_option(
      "key", report.key, "Cache key (32 hex digits) or a unique prefix (kernelgen cache ls)");
  report_cmd
      ->add_option("--history", report.history_file, "Render a loop history JSON file instead of a cache entry")
      ->excludes(report_key);
  report_cmd->add_option("--out", report.out_file,
                         "The page to write (default ./kernelgen-report-<name>-<key8>.html)");
  report_cmd->footer(
      "\nThe page is one self-contained HTML file (no scripts, nothing fetched): summary, a plot of every\n"
      "candidate's kernel time over the loop with the best-so-far, template and physical-floor lines,\n"
      "the rounds, every candidate's answer, reasoning, source and verifier report, each round's prompts,\n"
      "and the final verifier report. A template kernel (no loop ran) still gets a page with its report.\n"
      "It prints the path it wrote.\n");

  // config
  ConfigOptions config_opts;
  CLI::App* config_cmd = app.add_subcommand("config", "Show the configuration");
  config_cmd->require_subcommand(1);
  CLI::App* config_show = config_cmd->add_subcommand(
      "show", "Every setting with its value and where it came from (default, config file, environment, flag)");
  config_show->add_flag("--json", config_opts.json, "JSON output");
  config_cmd->footer(
      "\nPrecedence: command line > environment (KERNELGEN_<SETTING>) > config file > defaults.\n"
      "The config file is $KERNELGEN_CONFIG, else $XDG_CONFIG_HOME/kernelgen/kernelgen.conf\n"
      "(~/.config/kernelgen/kernelgen.conf); each line is `setting = value`, # starts a comment.\n");

  // daemon
  DaemonOptions daemon;
  CLI::App* daemon_cmd = app.add_subcommand("daemon", "Control kernelgend, the daemon that generates kernels");
  daemon_cmd->require_subcommand(1);
  for (const char* action : {"start", "stop", "status"}) {
    CLI::App* sub = daemon_cmd->add_subcommand(
        action, std::string(action) == "start"  ? "Start the daemon for this cache (no-op when it runs)"
                : std::string(action) == "stop" ? "Ask it to finish its jobs and exit"
                                                : "Is it running; what it did (exit 1 when not running)");
    sub->callback([&daemon, action] { daemon.action = action; });
    if (std::string(action) == "status") {
      sub->add_flag("--json", daemon.json, "JSON output");
    }
  }
  daemon_cmd->footer(
      "\nkernelgen starts the daemon by itself when a kernel is not cached; one daemon serves each\n"
      "cache directory. Its socket, lock and log live in $XDG_RUNTIME_DIR/kernelgen (else\n"
      "/tmp/kernelgen-<uid>). It exits after 10 idle minutes (KERNELGEN_IDLE_TIMEOUT, seconds).\n");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  // The one place the environment is read: everything below gets its settings from `config`.
  std::map<std::string, std::string> overrides;
  if (!global.cache_dir.empty()) {
    overrides["cache_dir"] = global.cache_dir;
  }
  if (verbose) {
    overrides["log"] = "debug";
  }
  if (!mode_flag.empty()) {
    overrides["mode"] = mode_flag;
  }
  if (gen_cmd->parsed()) {
    for (const auto& [key, value] : {std::pair<const char*, std::string*>{"llm_budget", &gen.budget},
                                     {"llm_samples", &gen.samples},
                                     {"llm_rounds", &gen.rounds}}) {
      if (!value->empty()) {
        overrides[key] = *value;
      }
    }
  }
  auto config = kg::config::Config::load(kg::config::environment_from(environ), overrides);
  if (!config) {
    std::fprintf(stderr, "kernelgen: error: %s\n", config.error().message.c_str());
    return kExitUsage;
  }
  kg::log::set_level(kg::log::parse_level(config->text("log")));
  global.config = &*config;
  global.cache_dir = config->cache_dir();
  if (auto mode = kg::lock::parse_mode(config->text("mode")); mode) {
    global.mode = *mode;
  } else {
    const kg::config::Value& from = config->value("mode");
    std::fprintf(stderr, "kernelgen: error: %s: %s\n", from.source.empty() ? "mode" : from.source.c_str(),
                 mode.error().message.c_str());
    return kExitUsage;
  }

  try {
    if (spec_check->parsed()) {
      return run_spec_check(global, check);
    }
    if (emit_cmd->parsed()) {
      return run_emit(global, emit);
    }
    if (verify_cmd->parsed()) {
      return run_verify(global, verify);
    }
    if (gen_cmd->parsed()) {
      if (global.mode == kg::lock::Mode::Offline) {
        KG_LOG_ERROR("kernelgen generate runs the closed loop, which asks an LLM: not in offline mode (the mode "
                     "setting, from "
                     << config->value("mode").source << ")");
        return kExitFailure;
      }
      return run_generate(global, gen);
    }
    if (lock_cmd->parsed()) {
      return run_lock(global, lock_opts);
    }
    if (explain_cmd->parsed()) {
      return run_explain(global, explain);
    }
    if (daemon_cmd->parsed()) {
      return run_daemon(global, daemon);
    }
    if (report_cmd->parsed()) {
      return run_report(global, report);
    }
    if (launch_cmd->parsed()) {
      return run_launch(LaunchOptions{launch_command});
    }
    if (config_cmd->parsed()) {
      return run_config(global, config_opts);
    }
    if (cache_cmd->parsed()) {
      cache.action = cache_stats->parsed()    ? "stats"
                     : cache_ls->parsed()     ? "ls"
                     : cache_export->parsed() ? "export"
                     : cache_import->parsed() ? "import"
                     : cache_gc->parsed()     ? "gc"
                     : cache_verify->parsed() ? "verify"
                                              : "show";
      return run_cache(global, cache);
    }
  } catch (const std::exception& e) {
    KG_LOG_ERROR("internal error: " << e.what() << " (rerun with KERNELGEN_LOG=debug for details)");
    return kExitFailure;
  }
  return kExitUsage;
}
