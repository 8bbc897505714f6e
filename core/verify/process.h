// Running a child process under limits: the verifier's sandbox for kg_verify_runner (and nvcc).
//
//   ProcessOptions o;
//   o.argv = {"/path/kg_verify_runner", "--request", "request.json"};
//   o.env = std::vector<std::string>{"PATH=/usr/bin"};   // exactly this environment
//   o.cwd = tmp; o.wall_limit_s = 60; o.memory_limit_bytes = 8 << 30; o.private_network = true;
//   auto r = run_process(o);   // r->exit_code, r->signal, r->timed_out, r->out, ...
//
// What the child gets:
//   - its own process group (setpgid); on the wall-clock limit the whole group gets SIGKILL, and
//     after the child exits any process left in its group is killed too;
//   - PR_SET_PDEATHSIG = SIGKILL: it dies with the caller;
//   - stdin from /dev/null (or ProcessOptions::stdin_data); stdout and stderr captured (up to output_limit bytes each, the rest
//     counted and dropped); every other descriptor closed at exec (set_cloexec_from(3)), whatever
//     the caller opened without O_CLOEXEC and however high its numbers;
//   - RLIMIT_CORE = 0 (no core files);
//   - with private_network: a new, empty network namespace (unshare(CLONE_NEWNET): loopback only,
//     down). Needs CAP_SYS_ADMIN (root) or a kernel allowing it; when refused the child runs in the
//     caller's namespace and ProcessResult::network_note says why (never an error).
//   - memory limit: a watchdog in the caller sums the resident set of every process in the child's
//     group (/proc/*/statm) every 5 poll intervals (100 ms by default) and kills the group when it
//     exceeds the limit.
//     Address-space limits (RLIMIT_AS) are not used: CUDA reserves terabytes of virtual address
//     space at initialisation and fails under them. RLIMIT_DATA is not used either: since Linux 4.7 it
//     counts private writable mappings, which the CUDA driver makes in large sizes (untested limit). A cgroup (memory.max) would be
//     exact but needs a delegated cgroup; the watchdog works everywhere, at the cost of missing a
//     spike shorter than its period.
// Safe to call from several threads at once (the child does only async-signal-safe work between
// fork and exec).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/expected.h"

namespace kg::verify {

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up in env's PATH (else /usr/bin:/bin)
  std::string cwd;                // "" : the caller's
  std::optional<std::vector<std::string>> env;  // "NAME=value" entries; nullopt: the caller's environment
  double wall_limit_s = 0;        // 0: none
  uint64_t memory_limit_bytes = 0;  // 0: none (see the watchdog above)
  bool private_network = false;
  size_t output_limit = size_t{1} << 20;  // bytes kept of stdout and of stderr, each
  // The child's stdin: these bytes (from an anonymous memfd, never a file on disk), or /dev/null.
  std::optional<std::string> stdin_data;
  double poll_interval_s = 0.02;
};

struct ProcessResult {
  int exit_code = -1;     // the exit status; -1 when killed by a signal
  int signal = 0;         // the signal that ended it, 0 if it exited
  bool timed_out = false;         // killed at the wall-clock limit
  bool memory_exceeded = false;   // killed by the memory watchdog
  uint64_t peak_rss_bytes = 0;    // largest group resident set sampled (0 without a memory limit)
  bool private_network = false;   // the child ran in a new network namespace
  std::string network_note;       // why not, when private_network was asked for and did not apply
  double seconds = 0;             // wall time from fork to reaping
  std::string out, err;           // captured output (truncated to output_limit)
  size_t out_dropped = 0, err_dropped = 0;  // bytes beyond output_limit

  bool exited_ok() const { return exit_code == 0 && signal == 0; }
};

// Runs the process to completion (or to a limit). Errors (Failure) are the caller's side only:
// empty argv, pipe/fork failure, or argv[0] not executable / cwd unusable (the message names the
// program and the OS error). Whatever the child does is a result, never an error.
Expected<ProcessResult, Failure> run_process(const ProcessOptions& options);

// Marks every descriptor numbered `first` or above close-on-exec, however high RLIMIT_NOFILE is:
// close_range(CLOSE_RANGE_CLOEXEC) where the kernel has it (5.11), else the entries of
// /proc/self/fd (read with getdents64), else every number below the soft RLIMIT_NOFILE.
// Async-signal-safe (no allocation): meant for a child between fork and exec, so that the
// program it runs inherits stdio and nothing else. Returns false when no method worked.
bool set_cloexec_from(int first) noexcept;

// Last `max_lines` lines of `text` (for messages).
std::string last_lines(const std::string& text, int max_lines);

}  // namespace kg::verify
