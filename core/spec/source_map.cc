#include "spec/source_map.h"

#include <algorithm>

namespace kg::spec {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

SourcePos next_col(SourcePos p) { return {p.line, p.col + 1}; }

}  // namespace

LineIndex::LineIndex(std::string_view text) {
  m_line_starts.push_back(0);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      m_line_starts.push_back(i + 1);
    }
  }
}

SourcePos LineIndex::at(size_t offset) const {
  const auto it = std::upper_bound(m_line_starts.begin(), m_line_starts.end(), offset);
  const size_t line = static_cast<size_t>(it - m_line_starts.begin());  // >= 1
  return {static_cast<int>(line), static_cast<int>(offset - m_line_starts[line - 1]) + 1};
}

ScalarSourceMap ScalarSourceMap::single_line(SourcePos start, std::string_view value) {
  ScalarSourceMap map;
  for (size_t i = 0; i < value.size(); ++i) {
    map.m_pos.push_back({start.line, start.col + static_cast<int>(i)});
  }
  size_t end = value.size();
  while (end > 0 && is_blank(value[end - 1])) {
    --end;
  }
  map.m_end = {start.line, start.col + static_cast<int>(end)};
  return map;
}

ScalarSourceMap ScalarSourceMap::build(std::string_view text, const LineIndex& lines, size_t node_offset,
                                       std::string_view value) {
  ScalarSourceMap map;
  size_t src = std::min(node_offset, text.size());
  bool quoted = false;
  if (src < text.size()) {
    const char first = text[src];
    if (first == '|' || first == '>') {
      // Block scalar: the value starts on the line after the header (`|-`, `|2`, `| # note`).
      while (src < text.size() && text[src] != '\n') {
        ++src;
      }
    } else if (first == '\'' || first == '"') {
      quoted = true;
      ++src;
    }
  }
  // Greedy alignment: each value byte is found at or after the current source byte, skipping
  // what YAML removed (indentation, line breaks, quote and escape characters).
  auto skippable = [&](char c) { return is_blank(c) || (quoted && (c == '\\' || c == '\'' || c == '"')); };
  for (const char c : value) {
    if (is_blank(c)) {
      // A value blank may be a folded line break: map it where the source stands.
      map.m_pos.push_back(lines.at(src));
      if (src < text.size() && text[src] == c) {
        ++src;
      }
      continue;
    }
    size_t probe = src;
    while (probe < text.size() && text[probe] != c && skippable(text[probe])) {
      ++probe;
    }
    if (probe < text.size() && text[probe] == c) {
      map.m_pos.push_back(lines.at(probe));
      src = probe + 1;
    } else {
      map.m_pos.push_back(lines.at(src));  // synthesised by an escape: no exact source byte
      // What was skipped is behind every later value byte too: never scan it again (a long run of
      // blanks before many escapes would make the alignment quadratic).
      src = probe;
    }
  }
  size_t end = value.size();
  while (end > 0 && is_blank(value[end - 1])) {
    --end;
  }
  map.m_end = end == 0 ? lines.at(src) : next_col(map.m_pos[end - 1]);
  return map;
}

SourcePos ScalarSourceMap::at(size_t offset) const { return offset < m_pos.size() ? m_pos[offset] : m_end; }

}  // namespace kg::spec
