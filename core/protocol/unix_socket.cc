#include "protocol/unix_socket.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/file.h"

namespace kg::protocol {

namespace {

Expected<sockaddr_un, Failure> address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return fail("socket path " + path + " is too long for a Unix socket");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}


}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset(other.release());
  }
  return *this;
}

int Fd::release() {
  int fd = m_fd;
  m_fd = -1;
  return fd;
}

void Fd::reset(int fd) {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  m_fd = fd;
}

Expected<Fd, Failure> listen_unix(const std::string& path, int backlog) {
  auto addr = address(path);
  if (!addr) {
    return unexpected(addr.error());
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return fail(os_error("cannot create a socket for", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(os_error("cannot remove the stale socket", path));
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    return fail(os_error("cannot bind the socket", path));
  }
  if (::listen(fd.get(), backlog) != 0) {
    return fail(os_error("cannot listen on the socket", path));
  }
  return fd;
}

Expected<Fd, Failure> connect_unix(const std::string& path) {
  auto addr = address(path);
  if (!addr) {
    return unexpected(addr.error());
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return fail(os_error("cannot create a socket for", path));
  }
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED) {
      return fail(os_error("nobody listens on", path), Failure::Kind::NotFound);
    }
    return fail(os_error("cannot connect to", path));
  }
  return fd;
}

void set_socket_timeouts(int fd, int send_ms, int recv_ms) {
  timeval send{send_ms / 1000, (send_ms % 1000) * 1000};
  timeval recv{recv_ms / 1000, (recv_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, sizeof send);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &recv, sizeof recv);
}

Expected<FileLock, Failure> FileLock::acquire(const std::string& path, bool wait) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) {
    return fail(os_error("cannot open the lock file", path));
  }
  int rc;
  do {
    rc = ::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK) {
      return fail("the lock " + path + " is held by another process", Failure::Kind::NotFound);
    }
    return fail(os_error("cannot lock", path));
  }
  return FileLock(std::move(fd));
}

}  // namespace kg::protocol
