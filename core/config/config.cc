#include "config/config.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "spec/names.h"
#include "util/file.h"
#include "util/text.h"

namespace kg::config {

namespace {

// Longest config file read (a config file is a few lines; anything larger is not one).
constexpr size_t kMaxConfigFileBytes = 1 << 20;
// Longest value accepted for any setting.
constexpr size_t kMaxValueBytes = 4096;

const std::vector<SettingInfo> kSettings = {
    {"cache_dir", Kind::Path,
     "kernel cache directory (default $XDG_CACHE_HOME/kernelgen, else ~/.cache/kernelgen)"},
    {"compile_jobs", Kind::Count, "nvcc compiles the closed loop runs at once (0: the number of CPUs)"},
    {"daemon", Kind::Path, "the kernelgend that kernelgen starts (default: beside kernelgen)"},
    {"daemon_silence_timeout", Kind::Seconds,
     "seconds the client waits for any message from the daemon before it gives up (it sends one "
     "every 5 s while it works)"},
    {"daemon_timeout", Kind::Seconds, "seconds the client waits for a daemon's answer in all (0: no limit)"},
    {"idle_timeout", Kind::Seconds, "seconds a daemon waits without work before it exits (0: never)"},
    {"jobs", Kind::Count, "generation jobs a daemon runs at once (0: the number of CPUs)"},
    {"llm_api_key", Kind::Secret,
     "API key for the LLM endpoint (sent as a bearer token; never logged, stored or shown); prefer "
     "llm_api_key_file"},
    {"llm_api_key_file", Kind::Path, "file whose first line is the LLM endpoint's API key"},
    {"llm_budget", Kind::Duration,
     "time the closed loop may spend on one kernel: seconds or 90s, 15m, 1h (default 15m; 0: template only)"},
    {"llm_jobs", Kind::Count, "LLM requests a daemon has in flight at once, over all jobs (0: no bound)"},
    {"llm_max_tokens", Kind::Count, "max_tokens of each LLM request (0: the server's default)"},
    {"llm_model", Kind::String, "model name sent to the LLM endpoint (default deepseek-reasoner)"},
    {"llm_patience", Kind::Count, "rounds without a faster kernel before the loop stops (0: no limit)"},
    {"llm_retries", Kind::Count, "further attempts of an LLM request after 429, 5xx, timeouts or broken streams"},
    {"llm_rounds", Kind::Count, "most rounds of the closed loop (0: no limit but the budget)"},
    {"llm_samples", Kind::Count, "candidates asked of the model per round, in parallel (default 8)"},
    {"llm_stall_timeout", Kind::Seconds, "longest silence between two streamed chunks of an LLM answer"},
    {"llm_temperature", Kind::Number, "sampling temperature (default 0.6, DeepSeek-R1's recommendation)"},
    {"llm_timeout", Kind::Seconds, "longest one LLM request may take, first byte to last"},
    {"llm_url", Kind::String,
     "OpenAI-compatible endpoint, a base URL ending in /v1 (e.g. https://api.deepseek.com/v1); empty: no "
     "LLM, the template kernels stand"},
    {"log", Kind::LogLevel, "error | warn | info | debug (the daemon's log defaults to info)"},
    {"mode", Kind::String,
     "online | offline (cache hits only: no generation, daemon, network or LLM) | read_only (a miss is "
     "generated in process and not stored) | recache (regenerate and replace cached kernels)"},
    {"max_size", Kind::Size,
     "the local cache's limit: beyond it the kernels used longest ago are evicted (5G; K, M, G, T; 0: no limit)"},
    {"no_daemon", Kind::Bool, "generate in the kernelgen process instead of asking kernelgend"},
    {"nvcc", Kind::Path, "nvcc used by the verifier (default: $CUDACXX, nvcc on PATH, /usr/local/cuda/bin/nvcc)"},
    {"prebuilt", Kind::String,
     "prebuilt bundles read as a read-only tier after the local cache: FILE[:FILE...] (kernelgen cache export)"},
    {"remote", Kind::String,
     "the team's shared cache: http(s)://host[:port]/path or redis://[:password@]host[:port][/db], with "
     "|read-only, |layout=bazel, |bearer-token-file=PATH, |timeout=S attributes (docs/design.md §7)"},
    {"runner", Kind::Path, "the verifier's GPU runner (default: kg_verify_runner beside kernelgen)"},
    {"runtime_dir", Kind::Path,
     "where daemons keep sockets, locks and logs (default $XDG_RUNTIME_DIR/kernelgen, else "
     "/tmp/kernelgen-<uid>)"},
    {"verify_dir", Kind::Path, "verifier work directory: compiled objects, run directories (default <cache_dir>/verify)"},
    {"verify_no_netns", Kind::Bool, "run the verifier's runner without a private network namespace"},
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) {
    return "";
  }
  const size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

const SettingInfo* find_setting(std::string_view key) {
  for (const SettingInfo& s : kSettings) {
    if (key == s.key) {
      return &s;
    }
  }
  return nullptr;
}

std::vector<std::string> setting_keys() {
  std::vector<std::string> keys;
  for (const SettingInfo& s : kSettings) {
    keys.emplace_back(s.key);
  }
  return keys;
}

bool parse_seconds(std::string_view text, double& out) {
  if (text.empty() || text.size() > 24) {
    return false;
  }
  const auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size() && out >= 0 && out <= 1e9;
}

bool parse_count(std::string_view text, int64_t& out) {
  if (text.empty() || text.size() > 18) {
    return false;
  }
  const auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size() && out >= 0;
}

// Checks `text` against the setting's kind; the error says what was expected.
Expected<void, Failure> check_value(const SettingInfo& s, const std::string& text) {
  if (text.size() > kMaxValueBytes) {
    return fail("expected a value of at most " + std::to_string(kMaxValueBytes) + " bytes for " + s.key +
                ", found " + std::to_string(text.size()));
  }
  if (text.find('\0') != std::string::npos) {
    return fail(std::string("expected text without NUL bytes for ") + s.key);
  }
  int64_t n = 0;
  double seconds = 0;
  switch (s.kind) {
    case Kind::String:
    case Kind::Path:
      return {};
    case Kind::Bool:
      if (!parse_bool(text)) {
        return fail(std::string("expected true or false for ") + s.key + ", found '" + printable(text) +
                    "'");
      }
      return {};
    case Kind::Seconds:
      if (!parse_seconds(text, seconds)) {
        return fail(std::string("expected a non-negative number of seconds for ") + s.key + ", found '" +
                    printable(text) + "'");
      }
      return {};
    case Kind::Count:
      if (!parse_count(text, n)) {
        return fail(std::string("expected a non-negative whole number for ") + s.key + ", found '" +
                    printable(text) + "'");
      }
      return {};
    case Kind::Number:
      if (!parse_seconds(text, seconds)) {
        return fail(std::string("expected a non-negative number for ") + s.key + ", found '" + printable(text) +
                    "'");
      }
      return {};
    case Kind::Duration:
      if (!parse_duration(text)) {
        return fail(std::string("expected a duration for ") + s.key +
                    " (seconds, or a number with s, m or h: 90s, 15m, 1h), found '" + printable(text) + "'");
      }
      return {};
    case Kind::Secret:
      return {};
    case Kind::Size:
      if (!parse_size(text)) {
        return fail(std::string("expected a size for ") + s.key + " (bytes, or a number with K, M, G or T: 5G, 512M), found '" +
                    printable(text) + "'");
      }
      return {};
    case Kind::LogLevel: {
      const std::string l = lower(text);
      if (l != "error" && l != "warn" && l != "warning" && l != "info" && l != "debug") {
        return fail(std::string("expected one of error, warn, info, debug for ") + s.key + ", found '" +
                    printable(text) + "'");
      }
      return {};
    }
  }
  return {};
}

std::string home_dir(const Environment& env) {
  if (auto h = lookup(env, "HOME"); h && !h->empty()) {
    return *h;
  }
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return "/";
}

std::map<std::string, std::string> defaults(const Environment& env) {
  std::map<std::string, std::string> d;
  if (auto xdg = lookup(env, "XDG_CACHE_HOME"); xdg && !xdg->empty() && (*xdg)[0] == '/') {
    d["cache_dir"] = *xdg + "/kernelgen";
  } else {
    d["cache_dir"] = home_dir(env) + "/.cache/kernelgen";
  }
  if (auto xdg = lookup(env, "XDG_RUNTIME_DIR"); xdg && !xdg->empty() && (*xdg)[0] == '/') {
    d["runtime_dir"] = *xdg + "/kernelgen";
  } else {
    d["runtime_dir"] = "/tmp/kernelgen-" + std::to_string(::geteuid());
  }
  d["idle_timeout"] = "600";
  d["daemon_timeout"] = "7200";
  d["daemon_silence_timeout"] = "60";
  d["jobs"] = "0";
  d["log"] = "warn";
  d["mode"] = "online";
  d["no_daemon"] = "false";
  d["verify_no_netns"] = "false";
  d["compile_jobs"] = "0";
  d["max_size"] = "5G";
  d["llm_budget"] = "15m";
  d["llm_jobs"] = "16";
  d["llm_max_tokens"] = "0";
  d["llm_model"] = "deepseek-reasoner";
  d["llm_patience"] = "4";
  d["llm_retries"] = "4";
  d["llm_rounds"] = "0";
  d["llm_samples"] = "8";
  d["llm_stall_timeout"] = "120";
  d["llm_temperature"] = "0.6";
  d["llm_timeout"] = "900";
  return d;
}

// The config file to read: $KERNELGEN_CONFIG, else $XDG_CONFIG_HOME/kernelgen/kernelgen.conf.
std::string config_path(const Environment& env) {
  if (auto f = lookup(env, "KERNELGEN_CONFIG"); f && !f->empty()) {
    return *f;
  }
  if (auto xdg = lookup(env, "XDG_CONFIG_HOME"); xdg && !xdg->empty() && (*xdg)[0] == '/') {
    return *xdg + "/kernelgen/kernelgen.conf";
  }
  return home_dir(env) + "/.config/kernelgen/kernelgen.conf";
}

}  // namespace

Environment environment_from(const char* const* envp) {
  Environment env;
  for (const char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) {
      continue;
    }
    env.emplace(std::string(*e, eq), std::string(eq + 1));
  }
  return env;
}

std::optional<std::string> lookup(const Environment& env, const std::string& name) {
  const auto it = env.find(name);
  if (it == env.end()) {
    return std::nullopt;
  }
  return it->second;
}

const char* origin_name(Origin origin) {
  switch (origin) {
    case Origin::ConfigFile:
      return "config file";
    case Origin::Environment:
      return "environment";
    case Origin::CommandLine:
      return "command line";
    case Origin::Default:
      break;
  }
  return "default";
}

const std::vector<SettingInfo>& settings() { return kSettings; }

std::string env_name(std::string_view key) {
  std::string s = "KERNELGEN_";
  for (char c : key) {
    s += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string l = lower(trim(text));
  if (l == "1" || l == "true" || l == "yes" || l == "on") {
    return true;
  }
  if (l.empty() || l == "0" || l == "false" || l == "no" || l == "off") {
    return false;
  }
  return std::nullopt;
}

Expected<Config, Failure> Config::load(const Environment& env, const std::map<std::string, std::string>& command_line) {
  Config c;
  c.m_env = env;
  const auto d = defaults(env);
  for (const SettingInfo& s : kSettings) {
    Value v;
    if (auto it = d.find(s.key); it != d.end()) {
      v.text = it->second;
    }
    c.m_values.emplace(s.key, std::move(v));
  }

  // Config file.
  c.m_file = config_path(env);
  struct ::stat st;
  if (::stat(c.m_file.c_str(), &st) == 0) {
    c.m_file_found = true;
    if (st.st_size > static_cast<off_t>(kMaxConfigFileBytes)) {
      return fail(c.m_file + ": expected a config file of at most 1 MiB, found " + std::to_string(st.st_size) +
                  " bytes");
    }
    auto text = read_file(c.m_file);
    if (!text) {
      return fail("cannot read the config file: " + text.error().message);
    }
    std::istringstream lines(*text);
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
      ++n;
      const std::string where = c.m_file + ":" + std::to_string(n);
      const std::string t = trim(line);
      if (t.empty() || t[0] == '#') {
        continue;
      }
      const size_t eq = t.find('=');
      if (eq == std::string::npos) {
        return fail(where + ": expected 'key = value', found '" + printable(t) + "'");
      }
      const std::string key = trim(t.substr(0, eq));
      const SettingInfo* s = find_setting(key);
      if (s == nullptr) {
        std::string hint = spec::did_you_mean(key, setting_keys());
        return fail(where + ": unknown setting '" + printable(key) + "'" +
                    (hint.empty() ? " (`kernelgen config show` lists them)" : hint));
      }
      const std::string value = trim(t.substr(eq + 1));
      if (auto ok = check_value(*s, value); !ok) {
        return fail(where + ": " + ok.error().message);
      }
      c.m_values[key] = Value{value, Origin::ConfigFile, where};
    }
  } else if (errno != ENOENT && errno != ENOTDIR) {
    return fail("cannot read the config file " + c.m_file + ": " + std::strerror(errno));
  }

  // Environment.
  for (const SettingInfo& s : kSettings) {
    const std::string name = env_name(s.key);
    auto v = lookup(env, name);
    if (!v) {
      continue;
    }
    // An empty variable means "unset" for paths (as KERNELGEN_CACHE_DIR= always did).
    if (v->empty() && s.kind == Kind::Path) {
      continue;
    }
    if (auto ok = check_value(s, *v); !ok) {
      return fail(name + ": " + ok.error().message);
    }
    c.m_values[s.key] = Value{*v, Origin::Environment, name};
  }

  // Command line.
  for (const auto& [key, v] : command_line) {
    const SettingInfo* s = find_setting(key);
    if (s == nullptr) {
      return fail("internal error: unknown setting '" + key + "' from the command line");
    }
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (auto ok = check_value(*s, v); !ok) {
      return fail(flag + ": " + ok.error().message);
    }
    c.m_values[key] = Value{v, Origin::CommandLine, flag};
  }
  return c;
}

const Value& Config::value(std::string_view key) const {
  const auto it = m_values.find(key);
  if (it == m_values.end()) {
    std::fprintf(stderr, "kernelgen: internal error: unknown setting '%.*s'\n", static_cast<int>(key.size()),
                 key.data());
    std::abort();
  }
  return it->second;
}

bool Config::flag(std::string_view key) const { return parse_bool(text(key)).value_or(false); }

int64_t Config::milliseconds(std::string_view key) const {
  double s = 0;
  return parse_seconds(text(key), s) ? static_cast<int64_t>(s * 1000) : 0;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  uint64_t value = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (r.ec != std::errc() || r.ptr == text.data()) {
    return std::nullopt;
  }
  std::string unit(r.ptr, text.data() + text.size());
  unit.erase(0, unit.find_first_not_of(" \t") == std::string::npos ? unit.size() : unit.find_first_not_of(" \t"));
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  if (unit.size() > 1 && (unit.ends_with("ib") || unit.ends_with("b"))) {
    unit = unit.substr(0, unit.find('i') != std::string::npos ? unit.find('i') : unit.size() - 1);
  }
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else if (unit == "k") {
    shift = 10;
  } else if (unit == "m") {
    shift = 20;
  } else if (unit == "g") {
    shift = 30;
  } else if (unit == "t") {
    shift = 40;
  } else {
    return std::nullopt;
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) {
    return std::nullopt;
  }
  return value << shift;
}

double Config::real(std::string_view key) const {
  const std::string& t = text(key);
  double s = 0;
  if (parse_seconds(t, s)) {
    return s;
  }
  return parse_duration(t).value_or(0);
}

std::optional<double> parse_duration(std::string_view text) {
  const std::string t = lower(trim(text));
  size_t digits = 0;
  while (digits < t.size() && (std::isdigit(static_cast<unsigned char>(t[digits])) || t[digits] == '.')) {
    ++digits;
  }
  double value = 0;
  if (!parse_seconds(std::string_view(t).substr(0, digits), value)) {
    return std::nullopt;
  }
  const std::string unit = trim(std::string_view(t).substr(digits));
  double scale = 0;
  if (unit.empty() || unit == "s" || unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds") {
    scale = 1;
  } else if (unit == "m" || unit == "min" || unit == "mins" || unit == "minute" || unit == "minutes") {
    scale = 60;
  } else if (unit == "h" || unit == "hour" || unit == "hours") {
    scale = 3600;
  } else {
    return std::nullopt;
  }
  const double seconds = value * scale;
  if (seconds > 1e7) {
    return std::nullopt;
  }
  return seconds;
}

int64_t Config::number(std::string_view key) const {
  int64_t n = 0;
  return parse_count(text(key), n) ? n : 0;
}

namespace {

// What `config show` prints for a value: a secret only says whether it is set.
std::string shown(const SettingInfo& s, const Value& v) {
  if (s.kind == Kind::Secret) {
    return v.text.empty() ? "" : "(set, hidden)";
  }
  return printable(v.text);
}

}  // namespace

std::string Config::show() const {
  std::ostringstream os;
  os << "config file: " << m_file << (m_file_found ? "" : " (not found)") << "\n";
  for (const SettingInfo& s : kSettings) {
    const Value& v = value(s.key);
    std::string origin = std::string("(") + origin_name(v.origin);
    if (!v.source.empty()) {
      origin += ": " + v.source;
    }
    origin += ")";
    os << origin << " " << s.key << " = " << shown(s, v) << "\n";
  }
  return os.str();
}

std::string Config::show_json() const {
  nlohmann::json j;
  j["config_file"] = m_file;
  j["config_file_found"] = m_file_found;
  nlohmann::json list = nlohmann::json::array();
  for (const SettingInfo& s : kSettings) {
    const Value& v = value(s.key);
    list.push_back({{"key", s.key},
                    {"value", s.kind == Kind::Secret ? shown(s, v) : v.text},
                    {"origin", origin_name(v.origin)},
                    {"source", v.source},
                    {"env", env_name(s.key)},
                    {"description", s.description}});
  }
  j["settings"] = list;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace kg::config
