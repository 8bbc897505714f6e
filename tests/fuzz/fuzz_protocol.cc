// Fuzz target: the daemon protocol decoder (core/protocol/protocol.h, framing.h).
//
// Each input is used twice: as one message (parse_request and parse_response), and as a byte
// stream of frames read with read_frame from a socket, each payload parsed both ways. Messages that
// parse must re-encode to text that parses again to the same encoding (encode is a fixed point after
// one round). A crash, an uncaught exception or a sanitizer report is a finding.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/framing.h"
#include "protocol/protocol.h"

namespace {

using namespace kg::protocol;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_protocol: %s\n", what.c_str());
  std::abort();
}

// Largest input fed as a stream: fits an AF_UNIX socket buffer, so one write never blocks.
constexpr size_t kMaxStreamBytes = 64 * 1024;
// Largest frame accepted while fuzzing: large enough for every seed, small enough that a header
// claiming more than the input holds does not allocate 16 MiB per run.
constexpr uint32_t kFuzzMaxFrame = 1 << 20;

void parse_message(std::string_view payload) {
  if (auto request = parse_request(payload)) {
    const std::string once = encode(*request);
    auto again = parse_request(once);
    if (!again || encode(*again) != once) {
      finding("request does not survive encode/parse: " + once);
    }
  }
  if (auto response = parse_response(payload)) {
    const std::string once = encode(*response);
    auto again = parse_response(once);
    if (!again || encode(*again) != once) {
      finding("response does not survive encode/parse: " + once);
    }
  }
}

void read_frames(std::string_view bytes) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    finding("socketpair failed");
  }
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::send(fds[1], bytes.data() + written, bytes.size() - written, MSG_NOSIGNAL);
    if (n <= 0) {
      break;
    }
    written += static_cast<size_t>(n);
  }
  ::shutdown(fds[1], SHUT_WR);
  // Every frame is already there: read_frame never waits, it reads to the end of the stream.
  for (int frames = 0; frames < 1000; ++frames) {
    auto payload = read_frame(fds[0], 1000, 1000, kFuzzMaxFrame);
    if (!payload) {
      break;
    }
    if (payload->empty() || payload->size() > kFuzzMaxFrame) {
      finding("read_frame returned a payload of " + std::to_string(payload->size()) + " bytes");
    }
    parse_message(*payload);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  parse_message(bytes);
  if (size >= 4) {
    (void)decode_frame_header(data);
    (void)decode_frame_header(data, 16);
  }
  read_frames(bytes.substr(0, std::min(bytes.size(), kMaxStreamBytes)));
  return 0;
}
