#include "util/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>

namespace kg::log {

Level parse_level(std::string_view s) {
  if (s == "error") {
    return Level::Error;
  }
  if (s == "info") {
    return Level::Info;
  }
  if (s == "debug") {
    return Level::Debug;
  }
  return Level::Warn;
}

namespace {

std::atomic<int>& level_storage() {
  static std::atomic<int> value{static_cast<int>(Level::Warn)};
  return value;
}

const char* level_name(Level level) {
  switch (level) {
    case Level::Error:
      return "error";
    case Level::Warn:
      return "warning";
    case Level::Info:
      return "info";
    case Level::Debug:
      return "debug";
  }
  return "?";
}

std::atomic<const char*> g_log_file_program{nullptr};

}  // namespace

Level level() { return static_cast<Level>(level_storage().load(std::memory_order_relaxed)); }

void set_level(Level level) { level_storage().store(static_cast<int>(level)); }

void write(Level level, const std::string& message) {
  std::string line;
  if (const char* program = g_log_file_program.load(std::memory_order_relaxed)) {
    timeval tv;
    ::gettimeofday(&tv, nullptr);
    std::tm tm;
    ::gmtime_r(&tv.tv_sec, &tm);
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000),
                  program, static_cast<int>(::getpid()));
    line = std::string(stamp) + level_name(level) + ": " + message + "\n";
  } else {
    line = std::string("kernelgen: ") + level_name(level) + ": " + message + "\n";
  }
  // One write so that lines from parallel build jobs do not interleave mid-line.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void use_log_file_format(const char* program) { g_log_file_program.store(program); }

}  // namespace kg::log
