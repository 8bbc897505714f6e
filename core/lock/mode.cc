#include "lock/mode.h"

#include <cctype>
#include <string>

#include "util/text.h"

namespace kg::lock {

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::Offline:
      return "offline";
    case Mode::ReadOnly:
      return "read_only";
    case Mode::Recache:
      return "recache";
    case Mode::Online:
      break;
  }
  return "online";
}

Expected<Mode, Failure> parse_mode(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  const size_t end = text.find_last_not_of(" \t\r\n");
  std::string word;
  if (begin != std::string_view::npos && end - begin < 32) {
    for (char c : text.substr(begin, end - begin + 1)) {
      word += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  for (Mode m : {Mode::Online, Mode::Offline, Mode::ReadOnly, Mode::Recache}) {
    if (!word.empty() && word == mode_name(m)) {
      return m;
    }
  }
  return fail("expected online, offline, read_only or recache, found '" + printable(text, 64) + "'");
}

bool may_generate(Mode mode) { return mode != Mode::Offline; }

bool may_store(Mode mode) { return mode == Mode::Online || mode == Mode::Recache; }

bool may_use_daemon(Mode mode) { return mode == Mode::Online; }

bool may_use_network(Mode mode) { return mode != Mode::Offline; }

}  // namespace kg::lock
