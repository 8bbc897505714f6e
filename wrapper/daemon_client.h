// The client side of docs/protocol.md: find, start, greet and talk to the kernelgend of a
// configuration. Used by `kernelgen emit` (emit_client.cc) and `kernelgen daemon` (cmd_daemon.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "protocol/paths.h"
#include "protocol/protocol.h"
#include "protocol/unix_socket.h"
#include "util/expected.h"

namespace kg::cli {

// How long the client waits for a daemon (docs/protocol.md §7), from the environment:
//   KERNELGEN_DAEMON_TIMEOUT         seconds a generate request may take in all (default 7200;
//                                    0: no limit). Generation with an LLM loop takes 15 min and more,
//                                    and a request may queue behind others.
//   KERNELGEN_DAEMON_SILENCE_TIMEOUT seconds without any frame from the daemon (default 60). The
//                                    daemon sends a progress heartbeat every 5 s while a job runs,
//                                    so silence this long means it is stopped or hung.
// The greeting must arrive within min(10 s, the silence timeout).
struct ClientTimeouts {
  int64_t total_ms = 7'200'000;  // 0: none
  int64_t silence_ms = 60'000;
  int greeting_ms = 10'000;
};

// The timeouts from the configuration (daemon_timeout, daemon_silence_timeout).
ClientTimeouts client_timeouts(const config::Config& config);

// `ms` for messages: "10 s", "2.5 s".
std::string seconds_text(int64_t ms);

// The daemon serving one configuration: its identity and its files.
struct DaemonTarget {
  protocol::DaemonConfig config;
  std::string id;  // config_id(config)
  protocol::DaemonPaths paths;
  ClientTimeouts timeouts;
  std::string daemon;        // the kernelgend to start (locate_daemon); "" when none was found
  config::Environment env;   // the client's environment, filtered by daemon_environment()
};

// The target for cache directory `cache_dir` (made absolute), with the runtime directory,
// timeouts and daemon program from `config`. Creates and checks the runtime directory. Errors say
// which check failed (paths.h).
Expected<DaemonTarget, Failure> daemon_target(const std::string& cache_dir, const config::Config& config);

// What arrived on a connection.
struct Incoming {
  enum class Kind {
    Message,  // `response` holds it
    Timeout,  // nothing within the time asked for
    Lost,     // the daemon closed or reset the connection (it died, or drained); `error` says how
    Garbage,  // an unreadable frame or message; `error` says what
  };
  Kind kind = Kind::Lost;
  protocol::Response response;
  std::string error;
};

// A connection to a daemon whose greeting has been read.
class DaemonConnection {
 public:
  // `rest_ms`: how long the rest of a frame may take once its first byte arrived.
  DaemonConnection(protocol::Fd fd, protocol::Hello hello, int rest_ms = 10'000)
      : m_fd(std::move(fd)), m_hello(std::move(hello)), m_rest_ms(rest_ms) {}
  const protocol::Hello& hello() const { return m_hello; }
  // Errors: the daemon is gone (the message says so).
  Expected<void, Failure> send(const protocol::Request& request);
  // Waits up to `timeout_ms` (-1: forever) for the next message.
  Incoming receive(int timeout_ms);

 private:
  protocol::Fd m_fd;
  protocol::Hello m_hello;
  int m_rest_ms;
};

// True when `hello` is a daemon this client may use: same program, protocol, release and config.
bool compatible(const protocol::Hello& hello, const DaemonTarget& target);

// Connects to the daemon of `target` without starting one. Errors: NotFound when none listens;
// Timeout when it accepts the connection but sends no greeting within target.timeouts.greeting_ms
// (a stopped or hung daemon; the message says so); Error when it answers with something else.
// A daemon of another version is returned as is (check compatible()).
Expected<DaemonConnection, Failure> connect_daemon(const DaemonTarget& target);

// Connects to a compatible daemon, starting one if none listens (docs/protocol.md §7: spawn lock,
// re-check, detach, wait with a time limit) and replacing one of another version. Errors say
// what failed and name the daemon's log.
Expected<DaemonConnection, Failure> connect_or_start_daemon(const DaemonTarget& target);

// The environment a daemon started by this client gets: only the variables of
// daemon_environment_allowed(), never the rest of the client's (a build's secrets, LD_PRELOAD).
std::vector<std::string> daemon_environment(const config::Environment& env);
// PATH, HOME, USER, LOGNAME, LANG, LC_*, TMPDIR, XDG_*, CUDA_VISIBLE_DEVICES, CUDACXX,
// LD_LIBRARY_PATH (the daemon's own libraries may need it) and KERNELGEN_*.
// `entry` is "NAME=value".
bool daemon_environment_allowed(std::string_view entry);

// The kernelgend executable: `configured` (the daemon setting, KERNELGEN_DAEMON) when not "",
// else kernelgend beside this program (where the build and the install put it). "" when that is
// not executable.
std::string locate_daemon(const std::string& configured);

}  // namespace kg::cli
