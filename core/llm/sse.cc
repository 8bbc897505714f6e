#include "llm/sse.h"

namespace kg::llm {

bool SseParser::feed(std::string_view bytes, std::vector<SseEvent>& events) {
  if (!m_error.empty()) {
    return false;
  }
  size_t i = 0;
  while (i < bytes.size()) {
    const char c = bytes[i];
    if (m_after_cr && c == '\n') {  // the LF of a CRLF: the line ended at the CR
      m_after_cr = false;
      ++i;
      ++m_offset;
      m_line_offset = m_offset;
      continue;
    }
    m_after_cr = false;
    if (c == '\n' || c == '\r') {
      end_line(events);
      m_after_cr = c == '\r';
      ++i;
      ++m_offset;
      m_line_offset = m_offset;
      continue;
    }
    // Copy the run of ordinary bytes up to the next line break in one go.
    size_t j = i;
    while (j < bytes.size() && bytes[j] != '\n' && bytes[j] != '\r') {
      ++j;
    }
    if (m_line.size() + (j - i) > m_max_line_bytes) {
      m_error = "a line of the event stream at byte " + std::to_string(m_line_offset) + " is longer than " +
                std::to_string(m_max_line_bytes) + " bytes";
      return false;
    }
    m_line.append(bytes.data() + i, j - i);
    m_offset += j - i;
    i = j;
  }
  return true;
}

bool SseParser::finish(std::vector<SseEvent>& events) {
  if (!m_error.empty()) {
    return false;
  }
  if (!m_line.empty()) {
    end_line(events);
  }
  return true;
}

void SseParser::end_line(std::vector<SseEvent>& events) {
  std::string_view line(m_line);
  constexpr std::string_view k_data = "data:";
  if (line.substr(0, k_data.size()) == k_data) {
    line.remove_prefix(k_data.size());
    if (!line.empty() && line.front() == ' ') {
      line.remove_prefix(1);
    }
    events.push_back(SseEvent{std::string(line), m_line_offset});
  }
  // Comments (':'), blank lines and other fields carry nothing for a chat completion.
  m_line.clear();
}

}  // namespace kg::llm
