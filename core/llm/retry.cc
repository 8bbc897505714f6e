#include "llm/retry.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

namespace kg::llm {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

std::optional<double> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty() || value.size() > 64) {
    return std::nullopt;
  }
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) {
      return 1e9;  // absurdly far; the cap applies
    }
    return static_cast<double>(std::stol(std::string(value)));
  }
  // HTTP dates (RFC 9110 §5.6.7): IMF-fixdate, RFC 850, asctime. All in GMT.
  const std::string text(value);
  struct tm tm {};
  const char* formats[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
  for (const char* format : formats) {
    tm = {};
    const char* end = ::strptime(text.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') {
      const time_t at = ::timegm(&tm);
      if (at == static_cast<time_t>(-1)) {
        return std::nullopt;
      }
      const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
      return static_cast<double>(at) - now_s;
    }
  }
  return std::nullopt;
}

double retry_wait(int retry, std::string_view retry_after, const BackoffSettings& settings, std::mt19937_64& rng,
                  std::chrono::system_clock::time_point now) {
  const double cap = std::max(0.0, settings.max_backoff_s);
  if (const std::optional<double> header = parse_retry_after(retry_after, now)) {
    return std::clamp(*header, 0.0, cap);
  }
  const double exponent = std::clamp(retry, 0, 60);
  const double full = std::min(cap, std::max(0.0, settings.backoff_s) * std::pow(2.0, exponent));
  std::uniform_real_distribution<double> jitter(0.0, full / 2);
  return full / 2 + jitter(rng);
}

bool retryable_status(long status) {
  return status == 408 || status == 409 || status == 425 || status == 429 || (status >= 500 && status <= 599);
}

}  // namespace kg::llm
