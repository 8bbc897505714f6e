#include "nginx_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

extern char** environ;

namespace kg::testing {

namespace {

constexpr int k_start_attempts = 5;       // a port taken between choosing and binding: try another
constexpr double k_start_timeout_s = 10;  // nginx listening, at most this long after the spawn

// A loopback port nothing listens on right now (the kernel's choice for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
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

bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string config(const std::string& dir, int port, const std::string& token) {
  std::ostringstream c;
  c << "daemon off;\n"
    << "master_process off;\n"
    << "worker_processes 1;\n"
    << "pid " << dir << "/nginx.pid;\n"
    << "error_log " << dir << "/error.log warn;\n"
    << "events { worker_connections 1024; }\n"
    << "http {\n"
    << "  access_log " << dir << "/access.log;\n"
    << "  default_type application/octet-stream;\n"
    << "  client_body_temp_path " << dir << "/tmp/body;\n"
    << "  proxy_temp_path " << dir << "/tmp/proxy;\n"
    << "  fastcgi_temp_path " << dir << "/tmp/fastcgi;\n"
    << "  uwsgi_temp_path " << dir << "/tmp/uwsgi;\n"
    << "  scgi_temp_path " << dir << "/tmp/scgi;\n"
    << "  keepalive_requests 100000;\n"
    << "  server {\n"
    << "    listen 127.0.0.1:" << port << ";\n"
    << "    root " << dir << "/data;\n"
    << "    client_max_body_size 100m;\n"
    << "    dav_methods PUT DELETE;\n"
    << "    create_full_put_path on;\n"
    << "    dav_access user:rw;\n"
    << "    location / { }\n"
    << "    location /chunked/ { ssi on; ssi_types *; }\n"
    << "    location /auth/ {\n"
    << "      if ($http_authorization != \"Bearer " << token << "\") { return 401; }\n"
    << "    }\n"
    << "  }\n"
    << "}\n";
  return c.str();
}

}  // namespace

std::string nginx_path() {
  const char* env = std::getenv("KG_NGINX");
  if (env != nullptr && *env != '\0') {
    return env;
  }
#ifdef KG_NGINX
  return KG_NGINX;
#else
  return "/usr/sbin/nginx";
#endif
}

NginxServer::NginxServer(const std::string& dir, const std::string& token) : m_dir(dir), m_token(token) {
  const std::string nginx = nginx_path();
  if (::access(nginx.c_str(), X_OK) != 0) {
    m_error = "nginx is not installed (no executable " + nginx +
              "): the HTTP remote's tests need it; install it with `apt-get install -y nginx` "
              "(scripts/install-deps.sh does) or point KG_NGINX at one";
    return;
  }
  for (const char* sub :
       {"/data", "/tmp", "/tmp/body", "/tmp/proxy", "/tmp/fastcgi", "/tmp/uwsgi", "/tmp/scgi"}) {
    ::mkdir((m_dir + sub).c_str(), 0700);
  }
  std::string why;
  for (int attempt = 0; attempt < k_start_attempts; ++attempt) {
    if (start_once(why)) {
      return;
    }
  }
  m_error = "nginx (" + nginx + ") did not start: " + why;
}

bool NginxServer::start_once(std::string& why) {
  const int port = free_port();
  if (port == 0) {
    why = "no free loopback port";
    return false;
  }
  const std::string conf = m_dir + "/nginx.conf";
  std::ofstream(conf) << config(m_dir, port, m_token);
  const std::string out = m_dir + "/nginx.out";
  std::string nginx = nginx_path();
  std::string p_flag = "-p", c_flag = "-c", e_flag = "-e", prefix = m_dir + "/",
              error_log = m_dir + "/error.log";
  std::vector<char*> argv = {
      nginx.data(),  p_flag.data(),    prefix.data(), c_flag.data(), const_cast<char*>(conf.c_str()),
      e_flag.data(), error_log.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, nginx.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    why = "cannot run it: " + std::string(std::strerror(rc));
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(k_start_timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      why = "it exited: " + read_all(out) + read_all(m_dir + "/error.log");
      return false;
    }
    if (accepts(port)) {
      m_pid = pid;
      m_port = port;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  why =
      "it did not listen on port " + std::to_string(port) + " within 10 s: " + read_all(m_dir + "/error.log");
  return false;
}

NginxServer::~NginxServer() {
  if (m_pid <= 0) {
    return;
  }
  resume();
  ::kill(m_pid, SIGTERM);
  ::waitpid(m_pid, nullptr, 0);
  m_pid = -1;
}

std::string NginxServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(m_port) + path;
}

void NginxServer::pause() {
  if (m_pid > 0 && !m_paused) {
    ::kill(m_pid, SIGSTOP);
    m_paused = true;
  }
}

void NginxServer::resume() {
  if (m_pid > 0 && m_paused) {
    ::kill(m_pid, SIGCONT);
    m_paused = false;
  }
}

void NginxServer::kill() {
  if (m_pid <= 0) {
    return;
  }
  ::kill(m_pid, SIGKILL);
  ::waitpid(m_pid, nullptr, 0);
  m_pid = -1;
  m_paused = false;
}

}  // namespace kg::testing
