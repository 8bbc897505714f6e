#include "spec/printable.h"

#include "util/text.h"

namespace kg::spec {

std::string escape_nonprintable(std::string_view text) { return printable(text, text.size()); }

std::string quote_input(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return "'" + escape_nonprintable(text) + "'";
  }
  // Cut on a character boundary so that the cut does not itself produce escapes.
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  return "'" + escape_nonprintable(text.substr(0, cut)) + "...' (" + std::to_string(text.size()) + " bytes)";
}

}  // namespace kg::spec
