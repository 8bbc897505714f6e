// Frames of the kernelgen daemon protocol (docs/protocol.md §2): a 4-byte little-endian payload
// length, then the payload. Blocking reads and writes on a socket, with time limits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/expected.h"

namespace kg::protocol {

// Largest payload either side sends or accepts: 16 MiB.
inline constexpr uint32_t kMaxMessageBytes = uint32_t{16} << 20;

// Why a frame could not be read or written.
struct FrameError {
  enum class Kind {
    Closed,     // the peer closed the connection before the first byte of a frame (normal end)
    Truncated,  // the connection ended, or the rest-of-frame time ran out, inside a frame
    Empty,      // the length field is 0
    TooLarge,   // the length field exceeds the limit (the payload was not read)
    Timeout,    // no first byte within the idle time
    Io,         // any other socket error (message has the OS error)
  };
  Kind kind = Kind::Io;
  std::string message;
};

// The 4-byte header followed by `payload`. `payload.size()` must be ≤ kMaxMessageBytes.
std::string encode_frame(std::string_view payload);

// The length in a 4-byte header, checked against `max_bytes`. Errors: Empty, TooLarge.
Expected<uint32_t, FrameError> decode_frame_header(const unsigned char header[4],
                                                   uint32_t max_bytes = kMaxMessageBytes);

// Reads one frame from `fd` (a blocking or non-blocking stream socket) and returns its payload.
//   idle_ms  how long to wait for the first byte; -1: forever.
//   rest_ms  how long the rest of the frame may take once its first byte arrived; -1: forever.
// Errors: every FrameError kind. After any error other than Timeout the stream is out of step
// and must be closed.
Expected<std::string, FrameError> read_frame(int fd, int idle_ms, int rest_ms,
                                             uint32_t max_bytes = kMaxMessageBytes);

// Writes `payload` as one frame to `fd`; never raises SIGPIPE. Errors: Closed (the peer is gone),
// TooLarge (payload over kMaxMessageBytes; nothing written), Io (including a send timeout set
// with SO_SNDTIMEO).
Expected<void, FrameError> write_frame(int fd, std::string_view payload);

}  // namespace kg::protocol
