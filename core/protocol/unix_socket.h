// Unix stream sockets and file locks for the daemon and its client: small RAII wrappers over the
// system calls, every descriptor close-on-exec (a daemon started by a client must not inherit the
// client's locks or sockets).
#pragma once

#include <string>

#include "util/expected.h"

namespace kg::protocol {

// Owns a file descriptor; -1: none.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(Fd&& other) noexcept : m_fd(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return m_fd; }
  explicit operator bool() const { return m_fd >= 0; }
  int release();
  void reset(int fd = -1);

 private:
  int m_fd = -1;
};

// Binds and listens on `path`, removing a file already there first (the caller holds the daemon
// lock, so anything at `path` is a stale socket). Errors name the path and the OS error.
Expected<Fd, Failure> listen_unix(const std::string& path, int backlog);

// Connects to `path`. Errors: NotFound when nobody listens there (no file, or a stale socket:
// ENOENT, ECONNREFUSED); Error for anything else (the message names the path and the OS error).
Expected<Fd, Failure> connect_unix(const std::string& path);

// Sets send and receive time limits on a socket (0: none).
void set_socket_timeouts(int fd, int send_ms, int recv_ms);

// An flock(2) on a file, released on destruction (or when the process dies).
class FileLock {
 public:
  FileLock() = default;
  // Opens (creating, mode 0600) and locks `path` exclusively.
  //   wait  block until the lock is free; false: fail at once (NotFound kind) when it is held.
  // Errors: NotFound (held by someone else and !wait), Error (cannot open or lock; names the path).
  static Expected<FileLock, Failure> acquire(const std::string& path, bool wait);

  bool held() const { return static_cast<bool>(m_fd); }
  void release() { m_fd.reset(); }

 private:
  explicit FileLock(Fd fd) : m_fd(std::move(fd)) {}
  Fd m_fd;
};

}  // namespace kg::protocol
