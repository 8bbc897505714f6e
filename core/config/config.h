// KernelGen's configuration (docs/design.md §7), read in one place and passed down, as ccache does:
//
//   command line  >  environment (KERNELGEN_<KEY>)  >  config file  >  defaults
//
// The config file is $KERNELGEN_CONFIG when set, else $XDG_CONFIG_HOME/kernelgen/kernelgen.conf
// (XDG_CONFIG_HOME defaulting to ~/.config); a missing file is no error. Its lines are
// `key = value`; `#` starts a comment line; blank lines are ignored; keys are the setting names
// below (`cache_dir = /srv/kernels`). Every setting has one environment variable: KERNELGEN_ and
// its key in capitals (KERNELGEN_CACHE_DIR).
//
// Library code never reads the environment: main() snapshots it (Environment) and builds a
// Config; whatever a part needs (a directory, the nvcc path, the PATH to search) it receives as a
// value. `kernelgen config show` prints every setting with where its value came from.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.h"

namespace kg::config {

// A snapshot of the process environment (name → value), taken once by main().
using Environment = std::map<std::string, std::string>;

// Reads `envp` (environ). Entries without '=' are skipped.
Environment environment_from(const char* const* envp);

// The value of `name` in `env`, or nullopt when unset. Empty values count as set.
std::optional<std::string> lookup(const Environment& env, const std::string& name);

// Where a setting's value came from, in precedence order (later wins).
enum class Origin { Default, ConfigFile, Environment, CommandLine };

// "default", "config file", "environment", "command line".
const char* origin_name(Origin origin);

enum class Kind {
  String,   // any text
  Path,     // a file or directory; "" means the documented default
  Bool,     // true/false, 1/0, yes/no, on/off (any case)
  Seconds,  // a non-negative number of seconds, fractions allowed ("1.5")
  Count,    // a non-negative integer
  LogLevel, // error | warn | info | debug
  Number,   // a non-negative decimal number ("0.6")
  Duration, // seconds, or a number with a unit: "900", "90s", "15m", "1.5h"
  Secret,   // any text, never shown: `config show` says only whether it is set
  Size      // bytes, or a number with K, M, G or T (powers of 1024): "5G", "512M"
};

// One setting: its key (config file), kind, and what it means.
struct SettingInfo {
  const char* key;
  Kind kind;
  const char* description;
};

// Every setting, sorted by key.
const std::vector<SettingInfo>& settings();

// KERNELGEN_ + the key in capitals.
std::string env_name(std::string_view key);

struct Value {
  std::string text;                // as given ("" with Origin::Default and no default text)
  Origin origin = Origin::Default;
  std::string source;              // "<file>:3", "KERNELGEN_LOG", "--cache-dir" (flag: key with -), ""
};

class Config {
 public:
  // Builds the configuration: defaults (some derived from `env`: HOME, XDG_CACHE_HOME,
  // XDG_RUNTIME_DIR), then the config file, then KERNELGEN_* variables of `env`, then
  // `command_line` (key → value, from flags). Every value is checked against its kind.
  // Errors (Error kind): the config file exists but cannot be read; a line that is not
  // `key = value`, an unknown key (with a suggestion), or a bad value — each as
  // "<file>:<line>: ..." / "KERNELGEN_X: ..." / "--flag-name: ...", saying what was expected.
  static Expected<Config, Failure> load(const Environment& env,
                                        const std::map<std::string, std::string>& command_line = {});

  // The value of `key` (a key of settings(); anything else is a programming error: aborts).
  const Value& value(std::string_view key) const;
  const std::string& text(std::string_view key) const { return value(key).text; }
  bool flag(std::string_view key) const;
  int64_t number(std::string_view key) const;
  // A Seconds setting in milliseconds.
  int64_t milliseconds(std::string_view key) const;
  // A Seconds, Number or Duration setting as a number (seconds for Duration).
  double real(std::string_view key) const;

  // Typed accessors for what several parts need.
  const std::string& cache_dir() const { return text("cache_dir"); }
  const std::string& runtime_dir() const { return text("runtime_dir"); }

  // The config file consulted ("" when none could be named) and whether it existed.
  const std::string& config_file() const { return m_file; }
  bool config_file_found() const { return m_file_found; }

  // The environment the configuration was built from (for the PATH a program is searched in,
  // and for what a child process inherits).
  const Environment& environment() const { return m_env; }

  // Human form for `kernelgen config show`: one `(origin) key = value` line per setting.
  std::string show() const;
  // The same as a JSON object {"config_file", "settings": [{key, value, origin, source}]}.
  std::string show_json() const;

 private:
  Environment m_env;
  std::map<std::string, Value, std::less<>> m_values;
  std::string m_file;
  bool m_file_found = false;
};

// "900", "90s", "15m", "15min", "1.5h" (and "0") as seconds; nullopt for anything else or a
// negative or absurd (> 10^7 s) value.
std::optional<double> parse_duration(std::string_view text);

// "5G", "512M", "100k", "1073741824" (bytes; K, M, G, T as powers of 1024, with an optional B or
// iB); nullopt for anything else.
std::optional<uint64_t> parse_size(std::string_view text);

// "true"/"1"/"yes"/"on" → true, "false"/"0"/"no"/"off"/"" → false (any case); nullopt otherwise.
std::optional<bool> parse_bool(std::string_view text);

}  // namespace kg::config
