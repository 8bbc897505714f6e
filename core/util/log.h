// Minimal leveled logging to stderr. Levels: error, warn (default), info, debug; main() sets the
// level from the configuration (the `log` setting, KERNELGEN_LOG).
//
//   KG_LOG_DEBUG("cache hit for " << key);
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace kg::log {

enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// The active level (Warn until set_level).
Level level();
// "error", "info", "debug" → that level; anything else (including "warn") → Warn.
Level parse_level(std::string_view text);
// Overrides the level (tests, --verbose).
void set_level(Level level);
// Writes "kernelgen: <level>: <message>\n" to stderr in one write(2).
void write(Level level, const std::string& message);
// Log-file format for a long-running program: every line then starts with
// "<UTC time with milliseconds> <program>[<pid>] <level>: " instead of "kernelgen: <level>: ".
void use_log_file_format(const char* program);

}  // namespace kg::log

#define KG_LOG_AT(lvl, expr)                  \
  do {                                        \
    if (::kg::log::level() >= (lvl)) {        \
      std::ostringstream kg_log_os_;          \
      kg_log_os_ << expr;                     \
      ::kg::log::write((lvl), kg_log_os_.str()); \
    }                                         \
  } while (false)

#define KG_LOG_ERROR(expr) KG_LOG_AT(::kg::log::Level::Error, expr)
#define KG_LOG_WARN(expr) KG_LOG_AT(::kg::log::Level::Warn, expr)
#define KG_LOG_INFO(expr) KG_LOG_AT(::kg::log::Level::Info, expr)
#define KG_LOG_DEBUG(expr) KG_LOG_AT(::kg::log::Level::Debug, expr)
