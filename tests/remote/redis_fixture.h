// A real redis-server for a test: started on 127.0.0.1 on a free port with nothing persisted
// (--save "" --appendonly no, its directory a private temporary one), optionally with a password;
// stalled (SIGSTOP), resumed (SIGCONT) or killed on demand, and stopped when the object goes.
//
//   std::string why;
//   auto server = kg::testing::RedisServer::start({}, &why);
//   ASSERT_TRUE(server) << why;   // a missing redis-server is a failure, never a skip
//
// The server program is $KG_REDIS_SERVER, else /usr/bin/redis-server (Debian: redis-server).
// Unit tests only (built into kg_unit_tests by tests/CMakeLists.txt).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace kg::testing {

class RedisServer {
 public:
  struct Options {
    std::string password;  // non-empty: --requirepass
  };

  // Starts a server and waits (at most 10 s) until it answers. Returns null with `*error` saying
  // why (no redis-server program, it exited at once: its log is quoted, it never answered).
  static std::unique_ptr<RedisServer> start(const Options& options, std::string* error);

  // Kills the server (also a stalled one) and removes its directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return m_port; }
  // redis://127.0.0.1:<port>, without the password.
  std::string url() const;

  // SIGSTOP: the kernel still accepts connections, but nothing answers.
  void stall();
  // SIGCONT after stall().
  void resume();
  // SIGKILL, and waits for it: connections are then refused.
  void kill();

  // Runs one command on a new connection (authenticated with the password when there is one),
  // for tests that write behind the storage's back. Returns the reply as text ("OK", a bulk
  // string, an integer in decimal, "(nil)") or, for an error or a failed connection, "ERR: why".
  std::string command(const std::vector<std::string>& args) const;

 private:
  RedisServer(const Options& options) : m_options(options) {}
  bool launch(int port, std::string* error);

  Options m_options;
  TempDir m_dir{"kg-redis"};
  int m_port = 0;
  pid_t m_pid = -1;
};

}  // namespace kg::testing
