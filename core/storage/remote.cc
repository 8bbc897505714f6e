// The remote setting (remote.h): "URL|attr|attr=value...", and the factory over the backends.
#include "storage/remote.h"

#include <charconv>
#include <cmath>
#include <system_error>
#include <vector>

namespace kg::storage {

namespace {

constexpr size_t k_max_setting_bytes = 4096;  // a remote setting longer than this is refused
constexpr double k_max_timeout_s = 3600;      // timeout= and connect-timeout= at most an hour

constexpr const char* k_known_attributes =
    "read-only, layout=webdav|bazel, bearer-token-file=PATH, timeout=SECONDS, connect-timeout=SECONDS";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// "remote: <message>", the prefix every parse error has.
Unexpected<Failure> bad(const std::string& message) { return fail("remote: " + message); }

// A number of seconds for attribute `name`: finite, > 0, at most k_max_timeout_s.
Expected<double, Failure> parse_seconds(std::string_view name, std::string_view value) {
  double v = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || !std::isfinite(v) ||
      v <= 0 || v > k_max_timeout_s) {
    return bad(std::string(name) + ": expected a number of seconds above 0 and at most 3600, found '" +
               std::string(value) + "'");
  }
  return v;
}

// The offset of the host in `url` (just after "://"), or npos.
size_t host_offset(std::string_view url) {
  const size_t scheme = url.find("://");
  return scheme == std::string_view::npos ? std::string_view::npos : scheme + 3;
}

}  // namespace

std::string redacted_url(const std::string& url) {
  const size_t host = host_offset(url);
  if (host == std::string::npos) {
    return url;
  }
  const size_t end = url.find_first_of("/?#", host);
  const std::string_view authority =
      std::string_view(url).substr(host, end == std::string::npos ? std::string::npos : end - host);
  const size_t at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return url;
  }
  return url.substr(0, host) + url.substr(host + at + 1);
}

Expected<RemoteSpec, Failure> parse_remote(std::string_view text) {
  if (text.size() > k_max_setting_bytes) {
    return bad("expected a URL with attributes of at most 4096 bytes, found " + std::to_string(text.size()) +
               " bytes");
  }
  for (const char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return bad("expected printable text, found a control character");
    }
  }
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t bar = text.find('|', start);
    parts.push_back(trim(text.substr(start, bar == std::string_view::npos ? text.npos : bar - start)));
    if (bar == std::string_view::npos) {
      break;
    }
    start = bar + 1;
  }

  RemoteSpec spec;
  spec.url = std::string(parts[0]);
  const std::string shown = redacted_url(spec.url);
  const size_t host = host_offset(spec.url);
  if (host != std::string::npos) {
    spec.scheme = spec.url.substr(0, host - 3);
  }
  if (spec.scheme != "http" && spec.scheme != "https" && spec.scheme != "redis") {
    return bad("expected a URL starting with http://, https:// or redis://, found '" + shown + "'");
  }
  const size_t authority_end = spec.url.find_first_of("/?#", host);
  std::string_view authority = std::string_view(spec.url).substr(
      host, authority_end == std::string::npos ? std::string::npos : authority_end - host);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  if (authority.empty() || authority.front() == ':') {
    return bad("expected a host after " + spec.scheme + "://, found '" + shown + "'");
  }
  if (spec.url.find(' ') != std::string::npos) {
    return bad("expected a URL without spaces, found '" + shown + "'");
  }

  bool seen_read_only = false, seen_layout = false, seen_token = false, seen_timeout = false,
       seen_connect = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    if (part.empty()) {
      return bad("expected an attribute after '|', found nothing (known: " + std::string(k_known_attributes) +
                 ")");
    }
    const size_t eq = part.find('=');
    const std::string_view name = trim(part.substr(0, eq));
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : trim(part.substr(eq + 1));
    const bool has_value = eq != std::string_view::npos;
    auto once = [&](bool& seen) -> Expected<void, Failure> {
      if (seen) {
        return bad("attribute " + std::string(name) + " given twice");
      }
      seen = true;
      return {};
    };
    if (name == "read-only") {
      KG_TRY(once(seen_read_only));
      if (!has_value || value == "true") {
        spec.read_only = true;
      } else if (value == "false") {
        spec.read_only = false;
      } else {
        return bad("read-only: expected no value, true or false, found '" + std::string(value) + "'");
      }
    } else if (name == "layout") {
      KG_TRY(once(seen_layout));
      if (spec.scheme == "redis") {
        return bad("layout= applies to http:// and https:// remotes only, found it on a redis:// one");
      }
      if (value != "webdav" && value != "bazel") {
        return bad("layout: expected webdav or bazel, found '" + std::string(value) + "'");
      }
      spec.layout = std::string(value);
    } else if (name == "bearer-token-file") {
      KG_TRY(once(seen_token));
      if (spec.scheme == "redis") {
        return bad(
            "bearer-token-file= applies to http:// and https:// remotes only, found it on a redis:// one");
      }
      if (value.empty()) {
        return bad("bearer-token-file: expected the path of a file holding the token, found nothing");
      }
      spec.bearer_token_file = std::string(value);
    } else if (name == "timeout") {
      KG_TRY(once(seen_timeout));
      auto seconds = parse_seconds(name, value);
      KG_TRY(seconds);
      spec.timeout_s = *seconds;
    } else if (name == "connect-timeout") {
      KG_TRY(once(seen_connect));
      auto seconds = parse_seconds(name, value);
      KG_TRY(seconds);
      spec.connect_timeout_s = *seconds;
    } else {
      return bad("unknown attribute '" + std::string(name) + "' (known: " + std::string(k_known_attributes) +
                 ")");
    }
  }
  return spec;
}

Expected<std::unique_ptr<Storage>, Failure> make_remote_storage(const RemoteSpec& spec) {
  if (spec.scheme == "http" || spec.scheme == "https") {
    return make_http_storage(spec);
  }
  if (spec.scheme == "redis") {
    return make_redis_storage(spec);
  }
  return fail("remote: expected an http://, https:// or redis:// remote, found scheme '" + spec.scheme + "'");
}

}  // namespace kg::storage
