#include "progress.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "protocol/request_check.h"
#include "util/log.h"

namespace kg::cli {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kQuietFor = std::chrono::seconds(1);
constexpr auto kPlainEvery = std::chrono::seconds(30);

void write_stderr(const std::string& s) {
  ssize_t ignored = ::write(STDERR_FILENO, s.data(), s.size());
  (void)ignored;
}

}  // namespace

bool ProgressDisplay::interactive() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && (term == nullptr || std::strcmp(term, "dumb") != 0) &&
         std::getenv("MAKELEVEL") == nullptr && log::level() < log::Level::Debug;
}

ProgressDisplay::ProgressDisplay(std::string what)
    : m_what(std::move(what)), m_interactive(interactive()), m_start(Clock::now()), m_last_line(m_start) {}

void ProgressDisplay::update(const protocol::Progress& progress) {
  // Text from the daemon goes to a terminal: control bytes escaped.
  m_stage = printable(progress.stage);
  m_message = printable(progress.message.empty() ? progress.stage : progress.message);
  show();
}

void ProgressDisplay::tick() { show(); }

void ProgressDisplay::show() {
  if (m_stage.empty()) {
    return;
  }
  const auto now = Clock::now();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - m_start).count();
  if (m_interactive) {
    line("kernelgen: " + m_what + ": " + m_message + " (" + std::to_string(seconds) + " s)");
    return;
  }
  if (now - m_start < kQuietFor) {
    return;
  }
  // The closed loop's stages say something new with every event (a round's verdicts, a new best):
  // each of their messages gets a line; other stages get one line per stage.
  const bool loop_stage = m_stage == "baseline" || m_stage == "round" || m_stage == "loop";
  if (m_stage != m_printed_stage || (loop_stage && m_message != m_printed_message)) {
    write_stderr("kernelgen: " + m_what + ": " + m_message + "\n");
    m_printed_stage = m_stage;
    m_printed_message = m_message;
    m_last_line = now;
  } else if (now - m_last_line >= kPlainEvery) {
    write_stderr("kernelgen: " + m_what + ": still " + m_stage + " (" + std::to_string(seconds) + " s)\n");
    m_last_line = now;
  }
}

void ProgressDisplay::line(const std::string& text) {
  write_stderr("\r\033[K" + text);
  m_line_open = true;
}

void ProgressDisplay::finish() {
  if (m_line_open) {
    write_stderr("\r\033[K");
    m_line_open = false;
  }
}

}  // namespace kg::cli
