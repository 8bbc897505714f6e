#include "protocol/framing.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>

namespace kg::protocol {

namespace {

using Clock = std::chrono::steady_clock;

FrameError error(FrameError::Kind kind, std::string message) { return FrameError{kind, std::move(message)}; }

// Waits until `fd` is readable. Returns 1 readable, 0 timed out, -1 error (errno set).
int wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc >= 0 || errno != EINTR) {
      return rc;
    }
  }
}

// Milliseconds left until `deadline`, never negative; -1 when there is no deadline.
int remaining_ms(const Clock::time_point* deadline) {
  if (deadline == nullptr) {
    return -1;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Reads exactly `size` bytes. `started`: whether bytes of this frame were read before (an end of
// stream is then Truncated rather than Closed). `deadline` null: none (for the first byte the
// caller passes the idle deadline).
Expected<void, FrameError> read_exact(int fd, char* data, size_t size, bool started, int idle_ms,
                                      int rest_ms) {
  Clock::time_point rest_deadline;
  bool have_rest_deadline = false;
  size_t got = 0;
  while (got < size) {
    const bool in_frame = started || got > 0;
    int timeout = -1;
    if (!in_frame) {
      timeout = idle_ms;
    } else if (rest_ms >= 0) {
      if (!have_rest_deadline) {
        rest_deadline = Clock::now() + std::chrono::milliseconds(rest_ms);
        have_rest_deadline = true;
      }
      timeout = remaining_ms(&rest_deadline);
    }
    int ready = wait_readable(fd, timeout);
    if (ready < 0) {
      return unexpected(error(FrameError::Kind::Io, std::string("poll: ") + std::strerror(errno)));
    }
    if (ready == 0) {
      if (!in_frame) {
        return unexpected(
            error(FrameError::Kind::Timeout, "no message within " + std::to_string(idle_ms) + " ms"));
      }
      return unexpected(error(FrameError::Kind::Truncated, "the rest of a frame did not arrive within " +
                                                               std::to_string(rest_ms) + " ms"));
    }
    ssize_t n = ::recv(fd, data + got, size - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
      continue;
    }
    if (n < 0 && errno != ECONNRESET) {
      return unexpected(error(FrameError::Kind::Io, std::string("recv: ") + std::strerror(errno)));
    }
    // End of stream (or reset by the peer).
    if (in_frame) {
      return unexpected(error(FrameError::Kind::Truncated, "the connection ended inside a frame"));
    }
    return unexpected(error(FrameError::Kind::Closed, "the connection was closed"));
  }
  return {};
}

}  // namespace

std::string encode_frame(std::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(4 + payload.size());
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  out.append(payload);
  return out;
}

Expected<uint32_t, FrameError> decode_frame_header(const unsigned char header[4], uint32_t max_bytes) {
  const uint32_t n = uint32_t{header[0]} | (uint32_t{header[1]} << 8) | (uint32_t{header[2]} << 16) |
                     (uint32_t{header[3]} << 24);
  if (n == 0) {
    return unexpected(error(FrameError::Kind::Empty, "frame of length 0"));
  }
  if (n > max_bytes) {
    return unexpected(
        error(FrameError::Kind::TooLarge,
              "frame of " + std::to_string(n) + " bytes; the limit is " + std::to_string(max_bytes)));
  }
  return n;
}

Expected<std::string, FrameError> read_frame(int fd, int idle_ms, int rest_ms, uint32_t max_bytes) {
  unsigned char header[4];
  KG_TRY(read_exact(fd, reinterpret_cast<char*>(header), sizeof header, /*started=*/false, idle_ms, rest_ms));
  auto size = decode_frame_header(header, max_bytes);
  if (!size) {
    return unexpected(size.error());
  }
  // The buffer grows with what arrives, not with what the header claims: a peer that announces
  // 16 MiB and sends nothing costs one chunk, not 16 MiB (a flood of such connections would
  // otherwise reserve gigabytes). The rest-of-frame deadline covers the whole payload.
  constexpr size_t kChunk = size_t{64} << 10;
  const auto deadline = rest_ms >= 0 ? Clock::now() + std::chrono::milliseconds(rest_ms) : Clock::time_point::max();
  std::string payload;
  while (payload.size() < *size) {
    const size_t n = std::min(kChunk, *size - payload.size());
    const size_t at = payload.size();
    payload.resize(at + n);
    const int left = rest_ms >= 0 ? remaining_ms(&deadline) : -1;
    if (rest_ms >= 0 && left == 0) {
      return unexpected(error(FrameError::Kind::Truncated, "the rest of a frame did not arrive within " +
                                                               std::to_string(rest_ms) + " ms"));
    }
    KG_TRY(read_exact(fd, payload.data() + at, n, /*started=*/true, idle_ms, left));
  }
  return payload;
}

Expected<void, FrameError> write_frame(int fd, std::string_view payload) {
  if (payload.size() > kMaxMessageBytes) {
    return unexpected(error(FrameError::Kind::TooLarge, "message of " + std::to_string(payload.size()) +
                                                            " bytes; the limit is " +
                                                            std::to_string(kMaxMessageBytes)));
  }
  // One buffer, so that a small frame goes out in one send and readers never see a lone header.
  const std::string frame = encode_frame(payload);
  size_t sent = 0;
  while (sent < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      return unexpected(error(FrameError::Kind::Closed, "the peer closed the connection"));
    }
    return unexpected(error(FrameError::Kind::Io, std::string("send: ") + std::strerror(errno)));
  }
  return {};
}

}  // namespace kg::protocol
