#include "protocol/framing.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace kg::protocol {
namespace {

// A connected pair of Unix stream sockets, closed on destruction.
struct SocketPair {
  int a = -1, b = -1;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      std::abort();
    }
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    close_a();
    close_b();
  }
  void close_a() {
    if (a >= 0) ::close(a);
    a = -1;
  }
  void close_b() {
    if (b >= 0) ::close(b);
    b = -1;
  }
  void raw(const std::string& bytes) {
    ASSERT_EQ(::write(a, bytes.data(), bytes.size()), (ssize_t)bytes.size());
  }
};

// A bare frame header announcing `n` bytes.
std::string header(uint32_t n) {
  return std::string{static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                     static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
}

TEST(Framing, HeaderIsLittleEndianLength) {
  std::string f = encode_frame("abc");
  ASSERT_EQ(f.size(), 7u);
  EXPECT_EQ(f.substr(0, 4), std::string("\x03\x00\x00\x00", 4));
  EXPECT_EQ(f.substr(4), "abc");
  const unsigned char h[4] = {0x00, 0x01, 0x00, 0x00};
  auto n = decode_frame_header(h);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 256u);
}

TEST(Framing, HeaderLimits) {
  const unsigned char zero[4] = {0, 0, 0, 0};
  auto e = decode_frame_header(zero);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().kind, FrameError::Kind::Empty);
  const unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
  e = decode_frame_header(huge);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().kind, FrameError::Kind::TooLarge);
  EXPECT_NE(e.error().message.find("4294967295"), std::string::npos);
  const unsigned char max[4] = {0x00, 0x00, 0x00, 0x01};  // exactly 16 MiB
  EXPECT_TRUE(decode_frame_header(max));
  EXPECT_FALSE(decode_frame_header(max, 1000));
}

TEST(Framing, RoundTripOverASocket) {
  SocketPair s;
  ASSERT_TRUE(write_frame(s.a, "{\"type\":\"status\"}"));
  ASSERT_TRUE(write_frame(s.a, "second"));
  auto one = read_frame(s.b, 1000, 1000);
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, "{\"type\":\"status\"}");
  auto two = read_frame(s.b, 1000, 1000);
  ASSERT_TRUE(two);
  EXPECT_EQ(*two, "second");
}

TEST(Framing, LargeFrameAcrossManyReads) {
  SocketPair s;
  std::string big(3 << 20, 'x');
  std::thread writer([&] { ASSERT_TRUE(write_frame(s.a, big)); });
  auto got = read_frame(s.b, 5000, 5000);
  writer.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), big.size());
}

TEST(Framing, CleanCloseIsClosed) {
  SocketPair s;
  s.close_a();
  auto r = read_frame(s.b, 1000, 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FrameError::Kind::Closed);
}

TEST(Framing, CloseInsideHeaderOrPayloadIsTruncated) {
  {
    SocketPair s;
    s.raw(std::string("\x05\x00", 2));
    s.close_a();
    auto r = read_frame(s.b, 1000, 1000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, FrameError::Kind::Truncated);
  }
  {
    SocketPair s;
    s.raw(encode_frame("hello").substr(0, 6));
    s.close_a();
    auto r = read_frame(s.b, 1000, 1000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, FrameError::Kind::Truncated);
  }
}

TEST(Framing, OversizedAndEmptyFramesAreRejectedWithoutReadingThePayload) {
  SocketPair s;
  s.raw(header(kMaxMessageBytes + 1));
  auto r = read_frame(s.b, 1000, 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FrameError::Kind::TooLarge);
  SocketPair t;
  t.raw(header(0));
  r = read_frame(t.b, 1000, 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FrameError::Kind::Empty);
}

TEST(Framing, IdleTimeoutAndStalledFrame) {
  SocketPair s;
  auto r = read_frame(s.b, 50, 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FrameError::Kind::Timeout);
  // The stream is still usable after an idle timeout.
  ASSERT_TRUE(write_frame(s.a, "late"));
  auto late = read_frame(s.b, 1000, 1000);
  ASSERT_TRUE(late);
  EXPECT_EQ(*late, "late");
  // A frame that starts and stalls times out as truncated.
  s.raw(encode_frame("stalled").substr(0, 5));
  r = read_frame(s.b, 1000, 50);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, FrameError::Kind::Truncated);
}

TEST(Framing, WriteToAClosedPeerIsClosedNotSigpipe) {
  SocketPair s;
  s.close_b();
  auto w = write_frame(s.a, "anyone?");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().kind, FrameError::Kind::Closed);
}

TEST(Framing, WriteRefusesOversizedPayload) {
  SocketPair s;
  auto w = write_frame(s.a, std::string(kMaxMessageBytes + 1, 'x'));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().kind, FrameError::Kind::TooLarge);
}

// Payloads longer than the read chunk arrive whole; a peer that announces the maximum and sends a
// little is a truncation, not a 16 MiB allocation that waits.
TEST(Framing, LargePayloadsAndShortOnesThatClaimTheMaximum) {
  SocketPair p;
  std::string big(300'000, 'x');
  for (size_t i = 0; i < big.size(); i += 997) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  std::thread writer([&] { ASSERT_TRUE(write_frame(p.a, big)); });
  auto got = read_frame(p.b, 5000, 5000);
  writer.join();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, big);

  p.raw(header(kMaxMessageBytes) + "only a few bytes");
  p.close_a();
  auto short_frame = read_frame(p.b, 5000, 5000);
  ASSERT_FALSE(short_frame);
  EXPECT_EQ(short_frame.error().kind, FrameError::Kind::Truncated);
}

}  // namespace
}  // namespace kg::protocol
