// The `kernelgen` command line: one function per subcommand, each returning the process exit code.
#pragma once

#include <string>
#include <vector>

namespace kg::cli {

// Exit codes, as documented in `kernelgen --help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the requested work failed (bad spec, cache error, …)
inline constexpr int kExitUsage = 2;    // bad command line

struct GlobalOptions {
  std::string cache_dir;  // empty: kg::cache::default_cache_dir()
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
};
int run_emit(const GlobalOptions& global, const EmitOptions& opts);

struct CacheOptions {
  std::string action;  // stats | ls | show
  std::string key;     // show
  std::string part;    // show: "" (record), source, header, canonical, report
  bool json = false;
};
int run_cache(const GlobalOptions& global, const CacheOptions& opts);

}  // namespace kg::cli
