// The judge's side of the candidate host (docs/verifier.md, "Trust boundary"): starts
// kg_candidate_host in its sandbox, hands it the shared arena and the candidate object, and sends
// it work over runner/host_protocol.h. Every answer is checked for size, kind and sequence; a host
// that dies, hangs past the reply limit or sends anything else ends as a finding.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "host_protocol.h"
#include "verify/report.h"
#include "verify/sandbox.h"

namespace kg::judge {

// How one request to the host went.
struct Reply {
  bool ok = false;  // a well-formed Done for this request arrived
  host::Done done;
  double judge_ms = 0;  // the judge's clock from sending the request to receiving the answer
  // When !ok: what to report (kind, message); the host is gone or unusable.
  verify::FindingKind kind = verify::FindingKind::BadReply;
  std::string message;
};

struct HostOptions {
  std::string executable;         // kg_candidate_host
  std::vector<std::string> args;  // its arguments (none for kg_candidate_host)
  std::vector<std::string> env;   // its whole environment
  double reply_timeout_s = 20;    // per answer (Ready included)
  bool trap_syscalls = false;
};

class HostLink {
 public:
  HostLink() = default;
  ~HostLink();
  HostLink(const HostLink&) = delete;
  HostLink& operator=(const HostLink&) = delete;

  // Spawns the host and waits for it to be ready to run the candidate: `arena_fd` (the judge keeps
  // its own) and `object_fd` (a sealed memfd of the candidate's bytes) go to it with the entry
  // symbol. Returns nullopt when the host is ready and sandboxed; otherwise the finding (load
  // error, missing entry, crash, ...). Throws std::runtime_error for failures of the verifier's own
  // (the host cannot be started, or it runs without its seccomp filter: the candidate is never
  // run then).
  std::optional<verify::Finding> start(const HostOptions& options, int arena_fd, uint64_t arena_bytes,
                                       int object_fd, const std::string& symbol);

  // run: one call of the entry point with `args` (none for a null run) between events on the
  // host's stream, then a synchronization of that stream; sync: a device-wide synchronization of
  // the host's context. When the host fails (died, hung, a malformed answer) the reply is not ok and says
  // why (kind, message); the host is then gone.
  Reply run(const host::RunArgs& args, bool null_run = false);
  Reply sync();

  // SIGKILLs the host (its whole PID namespace) and reaps it; records how it ended. Returns the
  // finding when it had already ended on its own (any exit once the candidate was loaded is one).
  std::optional<verify::Finding> finish();

  bool alive() const { return m_pid > 0 && !m_dead; }
  const verify::HostSandboxFacts& facts() const { return m_facts; }
  std::string output_tail() const;

 private:
  template <typename T>
  Reply request(const T& msg, uint64_t seq);
  Reply host_failed(const std::string& what);  // reaps the host, turns its end into a finding
  std::string describe_end(int status) const;

  verify::HostSpawned m_spawned;
  pid_t m_pid = -1;
  bool m_dead = false;  // reaped
  int m_status = 0;     // wait status once reaped
  int m_channel = -1;   // the judge's end of the socket pair
  int m_output = -1;    // the read end of the host's stdout/stderr
  double m_reply_timeout_s = 20;
  uint64_t m_seq = 0;
  std::thread m_drain;
  mutable std::mutex m_output_mutex;
  std::string m_output_tail;  // last 64 KiB
  verify::HostSandboxFacts m_facts;
};

}  // namespace kg::judge
