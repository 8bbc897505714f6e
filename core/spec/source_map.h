// Positions inside YAML scalars: maps a byte offset in a scalar's *value* (after YAML removed
// quotes, escapes, block indentation and line folding) back to the line and column in the file,
// so that an error inside `score_mod: |` points at the character the user typed.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "spec/ast.h"

namespace kg::spec {

// Byte offset in a text → 1-based line and column (columns count bytes).
class LineIndex {
 public:
  explicit LineIndex(std::string_view text);
  SourcePos at(size_t offset) const;

 private:
  std::vector<size_t> m_line_starts;  // offset of the first byte of each line
};

class ScalarSourceMap {
 public:
  // Every offset maps to `start` advanced by the offset along one line: for values that never
  // came from a file (tests, or a caller-built string).
  static ScalarSourceMap single_line(SourcePos start, std::string_view value);

  // `file_text` is the whole YAML text, `node_offset` the scalar node's Mark().pos (its first
  // byte: the quote, the `|`/`>` indicator or the first character of a plain scalar) and
  // `value` the scalar's value. Handles plain, single- and double-quoted and block scalars,
  // on one or several lines. Characters YAML synthesised (folded line breaks, escapes) map to
  // the nearest source character.
  static ScalarSourceMap build(std::string_view file_text, const LineIndex& lines, size_t node_offset,
                               std::string_view value);

  // Position of value byte `offset`. Offsets at or past the end map to the column just after the
  // last non-blank character ("end of expression").
  SourcePos at(size_t offset) const;

 private:
  std::vector<SourcePos> m_pos;  // one per value byte
  SourcePos m_end;
};

}  // namespace kg::spec
