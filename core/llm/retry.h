// When to retry a chat completion and how long to wait first (docs/design.md §5). Pure functions:
// the endpoint sleeps, these only compute, so tests need no clock.
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <string_view>

namespace kg::llm {

struct BackoffSettings {
  double backoff_s = 1;       // the base of the first retry's wait
  double max_backoff_s = 60;  // the cap of any one wait, a Retry-After included
};

// The wait before retry number `retry` (0 for the first retry): "equal jitter", half of
// min(max_backoff_s, backoff_s * 2^retry) plus a uniform draw from `rng` of up to the other half,
// so waits grow but concurrent callers spread out. A Retry-After header value (`retry_after`:
// delta-seconds, or an HTTP date read against `now`) replaces it, capped at max_backoff_s; a date in
// the past gives 0. An empty or unreadable header is ignored. Returns seconds, >= 0.
double retry_wait(int retry, std::string_view retry_after, const BackoffSettings& settings, std::mt19937_64& rng,
                  std::chrono::system_clock::time_point now);

// A Retry-After value in seconds from `now`: "120", or an IMF-fixdate such as
// "Sun, 06 Nov 1994 08:49:37 GMT" (also the obsolete RFC 850 and asctime forms). nullopt when it
// is neither. Dates in the past give a negative value.
std::optional<double> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

// Whether an HTTP status is worth another attempt: 408, 409 (conflicting concurrent request), 425,
// 429 and 5xx. Other statuses (400, 401, 403, 404, 422, …) fail the same way again.
bool retryable_status(long status);

}  // namespace kg::llm
