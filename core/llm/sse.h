// Server-sent events (text/event-stream) read incrementally, as an OpenAI-compatible server
// streams a chat completion: bytes arrive in chunks cut at any byte, and every `data:` line is one
// event.
//
// Lines end in LF, CRLF or a lone CR. Lines starting with ':' are comments (keep-alives) and are
// skipped, as are blank lines and the fields `event:`, `id:` and `retry:`. A `data:` line's payload
// is the text after the colon with one leading space removed. Chat completion servers put one
// JSON object (or `[DONE]`) on each `data:` line, so each line is delivered on its own rather than
// joined with the next one until a blank line as a general SSE client would.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kg::llm {

// One `data:` payload and the byte offset of its line in the stream (0-based, for messages).
struct SseEvent {
  std::string data;
  size_t offset = 0;
};

class SseParser {
 public:
  // `max_line_bytes`: the longest line accepted; a longer one makes feed() fail.
  explicit SseParser(size_t max_line_bytes = 16 << 20) : m_max_line_bytes(max_line_bytes) {}

  // Reads `bytes`, the next part of the stream, and appends each `data:` payload it completes to
  // `events`. Returns false (and reads nothing more, ever) once a line is longer than
  // max_line_bytes; error() then says so.
  bool feed(std::string_view bytes, std::vector<SseEvent>& events);

  // The end of the stream: a last line without a line break is delivered like any other.
  // Returns false as feed() does.
  bool finish(std::vector<SseEvent>& events);

  // Bytes read so far.
  size_t offset() const { return m_offset; }
  // Why feed() or finish() returned false ("" when they did not).
  const std::string& error() const { return m_error; }

 private:
  void end_line(std::vector<SseEvent>& events);

  size_t m_max_line_bytes;
  std::string m_line;          // the current, unfinished line
  size_t m_line_offset = 0;    // where it starts
  size_t m_offset = 0;         // bytes read
  bool m_after_cr = false;     // the last byte was a CR (an LF right after it ends nothing)
  std::string m_error;
};

}  // namespace kg::llm
