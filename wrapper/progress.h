// Showing a daemon job's progress to a person or a build log.
//
//   terminal  one line, rewritten in place ("\r") with the stage and the seconds so far, erased
//             when the job ends;
//   otherwise (a pipe: Ninja, CI logs; or under make, whose parallel jobs share the terminal)
//             plain lines, and only for jobs that take a while: the stage once the job has run for
//             a second, then a line every 30 s, so fast generations stay silent in build output.
#pragma once

#include <chrono>
#include <string>

#include "protocol/protocol.h"

namespace kg::cli {

class ProgressDisplay {
 public:
  // `what`: the subject of every line (the spec name). Writes to stderr.
  explicit ProgressDisplay(std::string what);
  ~ProgressDisplay() { finish(); }

  // A progress event arrived.
  void update(const protocol::Progress& progress);
  // Time passed without an event (call about every 250 ms).
  void tick();
  // Erases the updating line (terminal mode); idempotent.
  void finish();

  // True when stderr is a terminal that this process has to itself.
  static bool interactive();

 private:
  void show();
  void line(const std::string& text);

  const std::string m_what;
  const bool m_interactive;
  const std::chrono::steady_clock::time_point m_start;
  std::string m_stage;
  std::string m_message;
  std::string m_printed_stage;  // plain mode: the last stage written
  std::string m_printed_message;  // plain mode: the last message written
  std::chrono::steady_clock::time_point m_last_line;
  bool m_line_open = false;  // terminal mode: a line is on screen
};

}  // namespace kg::cli
