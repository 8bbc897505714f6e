// The client side of docs/protocol.md: find, start, greet and talk to the kernelgend of a
// configuration. Used by `kernelgen emit` (emit_client.cc) and `kernelgen daemon` (cmd_daemon.cc).
#pragma once

#include <string>

#include "protocol/paths.h"
#include "protocol/protocol.h"
#include "protocol/unix_socket.h"
#include "util/expected.h"

namespace kg::cli {

// The daemon serving one configuration: its identity and its files.
struct DaemonTarget {
  protocol::DaemonConfig config;
  std::string id;  // config_id(config)
  protocol::DaemonPaths paths;
};

// The target for cache directory `cache_dir` (made absolute). Creates and checks the runtime
// directory. Errors say which check failed (paths.h).
Expected<DaemonTarget, Failure> daemon_target(const std::string& cache_dir);

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
  DaemonConnection(protocol::Fd fd, protocol::Hello hello) : m_fd(std::move(fd)), m_hello(std::move(hello)) {}
  const protocol::Hello& hello() const { return m_hello; }
  // Errors: the daemon is gone (the message says so).
  Expected<void, Failure> send(const protocol::Request& request);
  // Waits up to `timeout_ms` (-1: forever) for the next message.
  Incoming receive(int timeout_ms);

 private:
  protocol::Fd m_fd;
  protocol::Hello m_hello;
};

// True when `hello` is a daemon this client may use: same program, protocol, release and config.
bool compatible(const protocol::Hello& hello, const DaemonTarget& target);

// Connects to the daemon of `target` without starting one. Errors: NotFound when none listens;
// Error when the socket answers but not with a greeting. A daemon of another version is returned
// as is (check compatible()).
Expected<DaemonConnection, Failure> connect_daemon(const DaemonTarget& target);

// Connects to a compatible daemon, starting one if none listens (docs/protocol.md §7: spawn lock,
// re-check, detach, wait with a time limit) and replacing one of another version. Errors say
// what failed and name the daemon's log.
Expected<DaemonConnection, Failure> connect_or_start_daemon(const DaemonTarget& target);

// The kernelgend executable: $KERNELGEN_DAEMON, else kernelgend beside this program (where the
// build and the install put it). "" when that is not executable.
std::string locate_daemon();

}  // namespace kg::cli
