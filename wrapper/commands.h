// The `kernelgen` command line: one function per subcommand, each returning the process exit code.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lock/mode.h"

namespace kg::lock {
class Lockfile;
}

namespace kg::config {
class Config;
}

namespace kg::cli {

// Exit codes, as documented in `kernelgen --help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the requested work failed (bad spec, cache error, …)
inline constexpr int kExitUsage = 2;    // bad command line
inline constexpr int kExitVerifierError = 3;  // verify: the verifier itself could not work (no nvcc, ...)
inline constexpr int kExitNoGpu = 77;   // verify: static and compile passed, no CUDA device to run on

struct GlobalOptions {
  std::string cache_dir;                    // --cache-dir; main() then sets it from `config`
  const config::Config* config = nullptr;   // set by main() before any command runs
  // --mode, else the mode setting (KERNELGEN_MODE; lock/mode.h says what each allows); set by main().
  lock::Mode mode = lock::Mode::Online;
};

struct SpecCheckOptions {
  std::vector<std::string> files;
  std::string arch = "sm_90a";
  bool json = false;
};
int run_spec_check(const GlobalOptions& global, const SpecCheckOptions& opts);

struct EmitOptions {
  std::string spec_file;
  std::string out_dir;
  std::string arch = "sm_90a";
  std::string expect_name;  // non-empty: fail unless the spec's name equals it
  bool reference = false;
  bool touch = false;
  bool no_daemon = false;  // generate in this process instead of asking kernelgend (emit_client.h)
  bool no_verify = false;  // never touch the GPU: a generated kernel is cached as "unverified"
  std::string budget;      // --budget: the closed loop's time on a miss ("15m"; "0": template only; "": default)
  std::string lockfile;    // --lockfile: fail unless the kernel is the one locked there (lock/lockfile.h)
  std::shared_ptr<const lock::Lockfile> locked;  // `lockfile` as read by run_emit; null without one
};
int run_emit(const GlobalOptions& global, const EmitOptions& opts);

struct LockOptions {
  std::vector<std::string> spec_files;
  std::string lockfile = "kernelgen.lock";
  std::string arch = "sm_90a";
  bool update = false;  // replace entries whose key or kernel changed (else that is an error)
};
// Writes the lockfile entries of `spec_files` from the local cache (nothing is generated). Exit 1
// when a spec does not parse, is not cached, or changed without --update; the lockfile is then
// left as it was.
int run_lock(const GlobalOptions& global, const LockOptions& opts);

struct VerifyOptions {
  std::string spec_file;
  std::string kernel_file;   // "" with use_template
  bool use_template = false; // verify the template kernel kernelgen generates for the spec
  std::string arch = "sm_90a";
  bool json = false;
  int repeat = 1;            // consecutive verifications; stops at the first that does not pass
  uint64_t seed = 0;         // 0: random
  bool no_run = false;       // static checks and compile only
  bool no_timing = false;
  double timeout_s = 60;     // runner wall-clock limit
  std::string work_dir;      // "" : verify::default_work_dir()
  std::string report_file;   // also write the JSON report here
  bool keep = false;         // keep the runner's directory
};
int run_verify(const GlobalOptions& global, const VerifyOptions& opts);

struct GenerateOptions {
  std::vector<std::string> spec_files;
  std::string arch = "sm_90a";
  std::string budget;    // --budget: llm_budget ("15m"); "" = the setting
  std::string samples;   // --samples: llm_samples
  std::string rounds;    // --rounds: llm_rounds
  bool no_run = false;   // static and compile checks only; nothing cached
  bool force = false;    // run even when the cache holds a loop result
  std::string history_file;  // --no-run: where the history goes (default kernelgen-history-<name>.json)
};
int run_generate(const GlobalOptions& global, const GenerateOptions& opts);

struct ExplainOptions {
  std::string spec_file;
  std::string arch = "sm_90a";
};
int run_explain(const GlobalOptions& global, const ExplainOptions& opts);

struct CacheOptions {
  std::string action;  // stats | ls | show
  std::string key;     // show
  std::string part;    // show: "" (record), source, header, canonical, report, history
  std::vector<std::string> keys;   // export: keys or prefixes ("" : every kernel)
  std::string out;                 // export: the bundle to write
  std::vector<std::string> files;  // import: bundles
  std::string max_size;            // gc: --max-size ("" : the max_size setting)
  bool json = false;
  std::string arch;                // verify: --arch, only records for this target ("" : every one)
  bool force = false;              // verify: verify the named keys again even when verified
  bool zero = false;               // stats: --zero, reset the per-tier counters
};
int run_cache(const GlobalOptions& global, const CacheOptions& opts);

// kernelgen cache verify [KEY...] (cmd_cache_verify.cc): verifies unverified records (opts.keys, else
// every unverified one) on this machine's GPU and writes them back verified. Exit kExitOk when
// every selected record passed (or nothing was to verify); kExitFailure when one was rejected (its
// record is removed), damaged, a key mismatch or unknown; kExitNoGpu when no CUDA device is here
// (the waiting records are listed); kExitVerifierError when the verifier cannot work (no nvcc, no
// runner).
int run_cache_verify(const GlobalOptions& global, const CacheOptions& opts);

struct ReportOptions {
  std::string key;           // a cache key or unique prefix; "" with history_file
  std::string history_file;  // a loop history JSON file (loop/history.h); "" with key
  std::string out_file;      // "": ./kernelgen-report-<name>-<key8>.html
};
// Writes the HTML page of a loop run (loop/report_html.h) and prints its path. Exit 1 for an
// unknown key, a damaged history or report, an unreadable history file or an unwritable page.
int run_report(const GlobalOptions& global, const ReportOptions& opts);

struct DaemonOptions {
  std::string action;  // start | stop | status
  bool json = false;   // status
};
int run_daemon(const GlobalOptions& global, const DaemonOptions& opts);

struct LaunchOptions {
  std::vector<std::string> command;  // the compiler and its arguments
};
// kernelgen launch -- <compiler> <args...> (wrapper/cmd_launch.cc): runs the command; on success
// zeroes nvcc's temporary-file names in the object it wrote (util/reproducible.h). Returns the
// command's exit status (128 + signal if a signal ended it, 127 if it could not be started).
int run_launch(const LaunchOptions& opts);

struct ConfigOptions {
  bool json = false;
};
int run_config(const GlobalOptions& global, const ConfigOptions& opts);

}  // namespace kg::cli
