// kernelgend's listener and connections (docs/protocol.md): one thread per connection, the
// requests of §4 answered from a JobRunner, idle timeout, drain on shutdown.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "protocol/paths.h"
#include "protocol/protocol.h"
#include "protocol/unix_socket.h"
#include "jobs.h"

namespace kg::daemon {

// What the server speaks and where it lives (core/protocol/).
using protocol::DaemonConfig;
using protocol::DaemonPaths;
using protocol::Error;
using protocol::ErrorCode;
using protocol::Fd;
using protocol::FileLock;
using protocol::GenerateRequest;
using protocol::Hello;
using protocol::Request;
using protocol::Response;
using protocol::ShutdownAck;
using protocol::Stats;
using protocol::Status;

struct ServerOptions {
  DaemonConfig config;
  std::string config_id;
  DaemonPaths paths;
  std::string log;               // log file path; "" when logging to stderr
  std::string storage;           // the storage tiers, for status (storage::describe_setup)
  int64_t idle_timeout_s = 600;  // 0: never
  int max_connections = 1024;  // beyond it a new connection gets hello, then error busy
  // A connection with nothing running for it is closed after this long without a request.
  int connection_idle_ms = 60'000;
  // While a job runs, a waiting connection gets a progress event at least this often (the last
  // one again, elapsed time updated), so that a client can tell a silent daemon from a busy one.
  int heartbeat_ms = 5'000;
  std::string announce_version;  // testing knob: the version the greeting claims ("" = kVersion)
  // True once the cache the daemon writes was removed or replaced (checked every 5 s; the daemon
  // then drains and exits). Empty: never checked.
  std::function<bool()> cache_gone;
};

class Server {
 public:
  Server(ServerOptions options, JobRunner& runner);
  ~Server();

  // Takes the daemon lock and listens on the socket. Errors: NotFound when another daemon holds
  // the lock (it serves this configuration already); Error when the socket cannot be set up.
  Expected<void, Failure> start();

  // Serves until a shutdown request, a signal on `signal_fd` (a signalfd for SIGTERM, SIGINT and
  // SIGHUP), the idle timeout, or the loss of the socket file; then drains (stops listening,
  // finishes jobs, lets waiters read their results) and returns. Returns false when connection
  // threads are still running (they did not finish in time): the caller must then leave with
  // _exit() rather than destroy this object.
  bool run(int signal_fd);

 private:
  void accept_ready();
  void serve(int fd) noexcept;                  // a connection's thread
  void serve_requests(int fd);                  // serve()'s loop; may throw (serve() catches)
  bool answer(int fd, const Request& request);  // false: close the connection
  bool generate(int fd, const GenerateRequest& request);
  bool generate_counted(int fd, const GenerateRequest& request);
  bool send(int fd, const Response& response);
  Hello hello() const;  // the greeting
  void request_stop(const std::string& why);
  bool socket_still_ours();
  bool drain();
  Status status() const;
  Stats stats() const;

  const ServerOptions m_options;
  JobRunner& m_runner;
  const std::chrono::steady_clock::time_point m_started;

  FileLock m_lock;
  Fd m_listener;
  dev_t m_socket_dev = 0;
  ino_t m_socket_ino = 0;
  Fd m_wake_read, m_wake_write;  // a pipe: request_stop() wakes run()

  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_draining{false};
  std::mutex m_stop_mutex;
  std::string m_stop_reason;

  mutable std::mutex m_connections_mutex;
  std::condition_variable m_connections_changed;
  std::set<int> m_connections;  // fds of open connections

  // Idle means: no job, no generate request being answered, and none ended for the idle timeout.
  // Status and stats requests do not count, so monitoring does not keep a daemon alive.
  std::atomic<int> m_generating{0};
  std::atomic<int64_t> m_last_generate_end{0};  // steady_clock ticks

  std::atomic<int64_t> m_requests{0}, m_generate_requests{0}, m_cache_hits{0}, m_joins{0}, m_failures{0},
      m_protocol_errors{0};
};

}  // namespace kg::daemon
