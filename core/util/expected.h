// Recoverable failures as values: tl::expected (Debian's libexpected-dev), as ccache does.
//
//   Expected<Blob, Failure> r = store.get(key);
//   if (!r) { log(r.error().message); }
//
// KG_TRY(x) returns the error of an Expected expression from the enclosing function. Exceptions
// are for fatal errors only, caught in main(); a job never lets one out.
#pragma once

#include <tl/expected.hpp>

#include <string>
#include <type_traits>
#include <utility>

namespace kg {

template <typename T, typename E>
using Expected = tl::expected<T, E>;

template <typename E>
using Unexpected = tl::unexpected<E>;

// The error side of an Expected: `return unexpected(failure);`.
template <typename E>
Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return tl::make_unexpected(std::forward<E>(e));
}

// A failure that a caller may report or recover from.
struct Failure {
  enum class Kind {
    Error,     // the operation failed; the message says why
    Timeout,   // it did not finish in time (a remote, a child process)
    NotFound,  // what was asked for is not there (a cache miss)
  };
  Kind kind = Kind::Error;
  std::string message;
};

inline Unexpected<Failure> fail(std::string message, Failure::Kind kind = Failure::Kind::Error) {
  return tl::make_unexpected(Failure{kind, std::move(message)});
}

}  // namespace kg

#define KG_TRY(expr)                                   \
  do {                                                 \
    auto&& kg_try_result_ = (expr);                    \
    if (!kg_try_result_) {                             \
      return ::kg::unexpected(kg_try_result_.error()); \
    }                                                  \
  } while (false)
