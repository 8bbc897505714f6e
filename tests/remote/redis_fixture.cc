#include "redis_fixture.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace kg::testing {
namespace {

std::string server_program() {
  const char* env = std::getenv("KG_REDIS_SERVER");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/redis-server";
}

// A port nobody listens on now (the kernel's choice for port 0); another process may take it
// before the server binds it, which start() survives by trying again.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string reply_text(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "ERR: " + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    default:
      return "(array)";
  }
}

std::string run_command(int port, const std::string& password, const std::vector<std::string>& args) {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{2, 0});
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    redisFree(c);
    return "ERR: " + why;
  }
  redisSetTimeout(c, timeval{5, 0});
  auto send = [c](const std::vector<std::string>& a) -> std::string {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& s : a) {
      argv.push_back(s.data());
      lens.push_back(s.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(a.size()), argv.data(), lens.data()));
    if (r == nullptr) {
      return "ERR: " + std::string(c->errstr);
    }
    std::string text = reply_text(r);
    freeReplyObject(r);
    return text;
  };
  std::string out;
  if (!password.empty()) {
    out = send({"AUTH", password});
  }
  if (out.rfind("ERR: ", 0) != 0) {
    out = send(args);
  }
  redisFree(c);
  return out;
}

}  // namespace

std::unique_ptr<RedisServer> RedisServer::start(const Options& options, std::string* error) {
  const std::string program = server_program();
  if (::access(program.c_str(), X_OK) != 0) {
    *error = program + " is not there: the Redis tests need it (Debian: apt-get install redis-server, "
                       "or scripts/install-deps.sh), or set KG_REDIS_SERVER";
    return nullptr;
  }
  std::unique_ptr<RedisServer> server(new RedisServer(options));
  std::string why;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = free_port();
    if (port == 0) {
      why = "no free port on 127.0.0.1";
      continue;
    }
    if (server->launch(port, &why)) {
      return server;
    }
  }
  *error = why;
  return nullptr;
}

bool RedisServer::launch(int port, std::string* error) {
  const std::string program = server_program();
  const std::string log = m_dir.sub("redis.log");
  std::vector<std::string> args = {program,        "--port",      std::to_string(port), "--bind", "127.0.0.1",
                                   "--save",       "",            "--appendonly",       "no",     "--dir",
                                   m_dir.path(),   "--logfile",   log,                  "--daemonize", "no",
                                   "--protected-mode", "no"};
  if (!m_options.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(m_options.password);
  }
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = "fork failed";
    return false;
  }
  if (pid == 0) {
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  m_pid = pid;
  m_port = port;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
      m_pid = -1;
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      *error = program + " on port " + std::to_string(port) + " exited at once; its log:\n" + text.str();
      return false;
    }
    // Any reply, NOAUTH included, means it is serving.
    const std::string reply = run_command(port, "", {"PING"});
    if (reply == "PONG" || reply.find("NOAUTH") != std::string::npos) {
      return true;
    }
    // Readiness poll with an overall deadline (the server's start-up has no event to wait on).
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill();
  *error = program + " on port " + std::to_string(port) + " did not answer within 10 s";
  return false;
}

RedisServer::~RedisServer() { kill(); }

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(m_port); }

void RedisServer::stall() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGSTOP);
  }
}

void RedisServer::resume() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGCONT);
  }
}

void RedisServer::kill() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGKILL);
    int status = 0;
    ::waitpid(m_pid, &status, 0);
    m_pid = -1;
  }
}

std::string RedisServer::command(const std::vector<std::string>& args) const {
  return run_command(m_port, m_options.password, args);
}

}  // namespace kg::testing
