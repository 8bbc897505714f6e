#include "storage/http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>

namespace kg::storage::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t k_max_head_bytes = 64 << 10;
constexpr size_t k_idle_connections = 16;

std::string base64(std::string_view in) {
  static constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {k_alphabet[(v >> 18) & 63], k_alphabet[(v >> 12) & 63], k_alphabet[(v >> 6) & 63], k_alphabet[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {k_alphabet[(v >> 18) & 63], k_alphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {k_alphabet[(v >> 18) & 63], k_alphabet[(v >> 12) & 63], k_alphabet[(v >> 6) & 63], '='};
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses a decimal (or, with `hex`, hexadecimal) size; false when it is not one or overflows.
bool parse_size(std::string_view s, bool hex, uint64_t& out) {
  if (s.empty() || s.size() > 16) {
    return false;
  }
  out = 0;
  for (const char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (hex && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (hex && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    out = out * (hex ? 16 : 10) + static_cast<uint64_t>(d);
  }
  return true;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// A failure of one attempt; `before_answer` when nothing of an answer had arrived (a reused
// connection the server had closed: the request may be sent again on a new one).
struct AttemptFailure {
  Failure failure;
  bool before_answer = false;
};

class Connection {
 public:
  explicit Connection(int fd) : m_fd(fd) {}
  ~Connection() { ::close(m_fd); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  int fd() const { return m_fd; }
  std::string buffered;  // bytes read past the last answer (none when the server behaves)

 private:
  int m_fd;
};

}  // namespace

Expected<PlainTarget, Failure> parse_plain_url(const std::string& url) {
  constexpr std::string_view scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return fail("not an http:// URL");
  }
  std::string_view rest = std::string_view(url).substr(scheme.size());
  const size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  PlainTarget t;
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    t.basic_auth = "Authorization: Basic " + base64(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return fail("'[' without ']' in the host");
    }
    t.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fail("expected ':port' after ']'");
      }
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    t.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
  } else {
    t.host = std::string(authority);
  }
  if (t.host.empty()) {
    return fail("no host");
  }
  const bool port_given = authority.size() > t.host.size() + (authority.front() == '[' ? 2 : 0);
  if (port_given && port.empty()) {
    return fail("empty port");
  }
  if (!port.empty()) {
    uint64_t p = 0;
    if (!parse_size(port, false, p) || p == 0 || p > 65535) {
      return fail("port '" + std::string(port) + "' is not a number from 1 to 65535");
    }
    t.port = std::to_string(p);
  }
  const bool v6 = t.host.find(':') != std::string::npos;
  t.host_header = "Host: " + (v6 ? "[" + t.host + "]" : t.host) + (port.empty() ? "" : ":" + t.port);
  t.path_prefix = std::string(path);
  while (!t.path_prefix.empty() && t.path_prefix.back() == '/') {
    t.path_prefix.pop_back();
  }
  return t;
}

struct PlainClient::Impl {
  PlainTarget target;
  double timeout_s;
  double connect_timeout_s;
  std::string fixed_headers;  // every request's header lines after the request line
  std::mutex mutex;           // guards idle
  std::vector<std::unique_ptr<Connection>> idle;

  // Milliseconds left until `deadline` (0 when past).
  static int left_ms(Clock::time_point deadline) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return ms > 0 ? static_cast<int>(ms) : 0;
  }

  Failure timed_out() const {
    return Failure{Failure::Kind::Timeout, "no answer within " + seconds_text(timeout_s) + " (the remote's timeout=)"};
  }

  Expected<std::unique_ptr<Connection>, Failure> connect() {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(connect_timeout_s));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(target.host.c_str(), target.port.c_str(), &hints, &found); rc != 0) {
      return fail("cannot resolve " + target.host + ": " + ::gai_strerror(rc), Failure::Kind::Timeout);
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
    std::string why = "no address";
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) {
        why = std::strerror(errno);
        continue;
      }
      auto conn = std::make_unique<Connection>(fd);
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, left_ms(deadline));
        if (rc == 0) {
          return fail("cannot connect to " + target.host + " port " + target.port + " within " +
                          seconds_text(connect_timeout_s) + " (the remote's connect-timeout=)",
                      Failure::Kind::Timeout);
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (rc > 0 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
          errno = err;
          rc = err == 0 ? 0 : -1;
        } else {
          rc = -1;
        }
      }
      if (rc != 0) {
        why = std::strerror(errno);
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return conn;
    }
    return fail("cannot connect to " + target.host + " port " + target.port + ": " + why, Failure::Kind::Timeout);
  }

  // Sends all of `data` by `deadline`.
  Expected<void, AttemptFailure> send_all(Connection& c, std::string_view data, Clock::time_point deadline) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::send(c.fd(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{c.fd(), POLLOUT, 0};
        if (::poll(&p, 1, left_ms(deadline)) <= 0) {
          return tl::make_unexpected(AttemptFailure{timed_out(), false});
        }
        continue;
      }
      return tl::make_unexpected(AttemptFailure{
          Failure{Failure::Kind::Timeout, std::string("sending failed: ") + std::strerror(errno)}, true});
    }
    return {};
  }

  // Reads more into c.buffered. Returns the number of bytes read; 0 at the end of the connection.
  Expected<size_t, AttemptFailure> read_some(Connection& c, Clock::time_point deadline, bool nothing_yet) {
    char buf[64 << 10];
    for (;;) {
      const ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
      if (n > 0) {
        c.buffered.append(buf, static_cast<size_t>(n));
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        return size_t{0};
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{c.fd(), POLLIN, 0};
        if (::poll(&p, 1, left_ms(deadline)) <= 0) {
          return tl::make_unexpected(AttemptFailure{timed_out(), false});
        }
        continue;
      }
      return tl::make_unexpected(AttemptFailure{
          Failure{Failure::Kind::Timeout, std::string("receiving failed: ") + std::strerror(errno)}, nothing_yet});
    }
  }

  static Unexpected<AttemptFailure> malformed(const std::string& why) {
    return tl::make_unexpected(AttemptFailure{Failure{Failure::Kind::Error, "malformed answer: " + why}, false});
  }

  // One request on `c`; `reusable` says whether `c` may serve another afterwards.
  Expected<PlainResponse, AttemptFailure> attempt(Connection& c, std::string_view method, const std::string& path,
                                                  std::string_view body, size_t max_body, bool& reusable) {
    reusable = false;
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    std::string head;
    head.reserve(256 + fixed_headers.size());
    head.append(method).append(" ").append(target.path_prefix).append("/").append(path).append(" HTTP/1.1\r\n");
    head += fixed_headers;
    if (method == "PUT") {
      head += "Content-Type: application/octet-stream\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    }
    head += "\r\n";
    if (body.size() < 16384 && method == "PUT") {
      head.append(body);  // one send for small bodies
      KG_TRY(send_all(c, head, deadline));
    } else {
      KG_TRY(send_all(c, head, deadline));
      if (method == "PUT") {
        KG_TRY(send_all(c, body, deadline));
      }
    }
    c.buffered.clear();
    PlainResponse r;
    size_t head_end;
    for (;;) {
      // Status line and headers; a 1xx answer is skipped.
      while ((head_end = c.buffered.find("\r\n\r\n")) == std::string::npos) {
        if (c.buffered.size() > k_max_head_bytes) {
          return malformed("headers over 64 KiB");
        }
        auto n = read_some(c, deadline, c.buffered.empty());
        KG_TRY(n);
        if (*n == 0) {
          return tl::make_unexpected(AttemptFailure{
              Failure{Failure::Kind::Timeout, "the server closed the connection without an answer"},
              c.buffered.empty()});
        }
      }
      const std::string_view status_line = std::string_view(c.buffered).substr(0, c.buffered.find("\r\n"));
      uint64_t status = 0;
      if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0 ||
          !parse_size(status_line.substr(9, 3), false, status)) {
        return malformed("status line '" + std::string(status_line.substr(0, 40)) + "'");
      }
      r.status = static_cast<long>(status);
      if (status >= 100 && status < 200) {
        c.buffered.erase(0, head_end + 4);
        continue;
      }
      break;
    }
    bool chunked = false, have_length = false, close = c.buffered.compare(0, 8, "HTTP/1.0") == 0;
    uint64_t length = 0;
    const std::string_view headers = std::string_view(c.buffered).substr(0, head_end + 2);
    for (size_t pos = headers.find("\r\n") + 2; pos < headers.size();) {
      const size_t eol = headers.find("\r\n", pos);
      const std::string_view line = headers.substr(pos, eol - pos);
      pos = eol + 2;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        continue;
      }
      const std::string name = lower(trim(line.substr(0, colon)));
      const std::string value = lower(trim(line.substr(colon + 1)));
      if (name == "content-length") {
        if (!parse_size(value, false, length)) {
          return malformed("Content-Length '" + value.substr(0, 40) + "'");
        }
        have_length = true;
      } else if (name == "transfer-encoding") {
        chunked = value.find("chunked") != std::string::npos;
      } else if (name == "connection") {
        if (value.find("close") != std::string::npos) {
          close = true;
        } else if (value.find("keep-alive") != std::string::npos) {
          close = false;
        }
      }
    }
    std::string rest = c.buffered.substr(head_end + 4);
    c.buffered.clear();
    if (method == "HEAD" || r.status == 204 || r.status == 304) {
      reusable = !close && rest.empty();
      return r;
    }
    if (chunked) {
      c.buffered = std::move(rest);
      for (;;) {
        size_t eol;
        while ((eol = c.buffered.find("\r\n")) == std::string::npos) {
          if (c.buffered.size() > 1024) {
            return malformed("a chunk size line over 1 KiB");
          }
          auto n = read_some(c, deadline, false);
          KG_TRY(n);
          if (*n == 0) {
            return malformed("the connection ended inside a chunked body");
          }
        }
        const std::string_view size_line = std::string_view(c.buffered).substr(0, eol);
        uint64_t size = 0;
        if (!parse_size(trim(size_line.substr(0, size_line.find(';'))), true, size)) {
          return malformed("chunk size '" + std::string(size_line.substr(0, 40)) + "'");
        }
        c.buffered.erase(0, eol + 2);
        if (size == 0) {
          // Trailers (none expected) up to the empty line.
          while (c.buffered.find("\r\n") == std::string::npos) {
            auto n = read_some(c, deadline, false);
            KG_TRY(n);
            if (*n == 0) {
              return malformed("the connection ended in the trailers");
            }
          }
          reusable = !close && c.buffered == "\r\n";
          c.buffered.clear();
          return r;
        }
        if (r.body.size() + size > max_body) {
          r.too_large = true;
          r.body.clear();
          return r;  // not reusable: the rest of the body is not read
        }
        while (c.buffered.size() < size + 2) {
          auto n = read_some(c, deadline, false);
          KG_TRY(n);
          if (*n == 0) {
            return malformed("the connection ended inside a chunk");
          }
        }
        r.body.append(c.buffered, 0, size);
        c.buffered.erase(0, size + 2);
      }
    }
    if (have_length) {
      if (length > max_body) {
        r.too_large = true;
        return r;
      }
      c.buffered = std::move(rest);
      while (c.buffered.size() < length) {
        auto n = read_some(c, deadline, false);
        KG_TRY(n);
        if (*n == 0) {
          return malformed("the connection ended inside the body");
        }
      }
      r.body = c.buffered.substr(0, length);
      reusable = !close && c.buffered.size() == length;
      c.buffered.clear();
      return r;
    }
    // To the end of the connection.
    c.buffered = std::move(rest);
    for (;;) {
      if (c.buffered.size() > max_body) {
        r.too_large = true;
        return r;
      }
      auto n = read_some(c, deadline, false);
      KG_TRY(n);
      if (*n == 0) {
        break;
      }
    }
    r.body = std::move(c.buffered);
    return r;
  }
};

PlainClient::PlainClient(PlainTarget target, double timeout_s, double connect_timeout_s,
                         std::vector<std::string> headers)
    : m_impl(std::make_unique<Impl>()) {
  m_impl->fixed_headers = target.host_header + "\r\nUser-Agent: kernelgen\r\nAccept: */*\r\n";
  if (!target.basic_auth.empty()) {
    m_impl->fixed_headers += target.basic_auth + "\r\n";
  }
  for (const std::string& h : headers) {
    m_impl->fixed_headers += h + "\r\n";
  }
  m_impl->target = std::move(target);
  m_impl->timeout_s = timeout_s;
  m_impl->connect_timeout_s = connect_timeout_s;
}

PlainClient::~PlainClient() = default;

Expected<PlainResponse, Failure> PlainClient::request(std::string_view method, const std::string& path,
                                                      std::string_view body, size_t max_body) {
  Impl& impl = *m_impl;
  std::unique_ptr<Connection> conn;
  {
    std::lock_guard lock(impl.mutex);
    if (!impl.idle.empty()) {
      conn = std::move(impl.idle.back());
      impl.idle.pop_back();
    }
  }
  bool reused = conn != nullptr;
  for (;;) {
    if (!conn) {
      auto fresh = impl.connect();
      if (!fresh) {
        return unexpected(fresh.error());
      }
      conn = std::move(*fresh);
    }
    bool reusable = false;
    auto r = impl.attempt(*conn, method, path, body, max_body, reusable);
    if (!r) {
      conn.reset();
      if (reused && r.error().before_answer) {
        reused = false;  // the server closed it while it was idle: once more, on a new one
        continue;
      }
      return unexpected(r.error().failure);
    }
    if (reusable) {
      std::lock_guard lock(impl.mutex);
      if (impl.idle.size() < k_idle_connections) {
        impl.idle.push_back(std::move(conn));
      }
    }
    return std::move(*r);
  }
}

}  // namespace kg::storage::http
