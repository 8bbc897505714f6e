// A real nginx for the HTTP remote's tests and benchmark: Debian's /usr/sbin/nginx (or $KG_NGINX),
// run as the current user in one process (master_process off, daemon off) on 127.0.0.1 and a free
// port, with its configuration, logs, temporary files and data under a private directory.
//
//   location /        a WebDAV store: GET/HEAD serve <dir>/data, PUT/DELETE write it
//   location /auth/   the same files, but only with "Authorization: Bearer <token>" (else 401)
//   location /chunked/  the same files sent without a Content-Length (SSI on: chunked encoding)
//
// The server can be paused (SIGSTOP: it accepts connections, through the kernel, but never
// answers: a stalled remote), resumed, and killed (nothing listens any more).
#pragma once

#include <sys/types.h>

#include <string>

namespace kg::testing {

class NginxServer {
 public:
  // Starts nginx in `dir` (which must exist and be empty of nginx's names: nginx.conf, data/, ...);
  // `token` is what /auth/ requires. ok() says whether it came up; error() says why not (nginx
  // missing: how to install it; nginx failed: its error log).
  NginxServer(const std::string& dir, const std::string& token = "kg-test-token");
  // Resumes a paused server, stops it (SIGTERM) and waits for it.
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  bool ok() const { return m_pid > 0 && m_port > 0; }
  const std::string& error() const { return m_error; }
  int port() const { return m_port; }
  // http://127.0.0.1:PORT followed by `path` ("/kg").
  std::string url(const std::string& path = "") const;
  // Where the files under location / live: url("/a/b") is data_dir() + "/a/b".
  std::string data_dir() const { return m_dir + "/data"; }

  // SIGSTOP / SIGCONT.
  void pause();
  void resume();
  // SIGKILL and wait: connections are refused from then on.
  void kill();

 private:
  bool start_once(std::string& why);

  std::string m_dir;
  std::string m_token;
  std::string m_error;
  pid_t m_pid = -1;
  int m_port = 0;
  bool m_paused = false;
};

// The nginx binary the fixture runs: $KG_NGINX, else KG_NGINX (the build's), else /usr/sbin/nginx.
std::string nginx_path();

}  // namespace kg::testing
