// A small value-or-error type for recoverable failures (C++20 has no std::expected).
//
//   Expected<Blob, Failure> r = store.get(key);
//   if (!r) { log(r.error().message); }
//
// KG_TRY(x) returns the error of an Expected expression from the enclosing function.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace kg {

template <typename E>
struct Unexpected {
  E value;
};

template <typename E>
Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return {std::forward<E>(e)};
}

template <typename T, typename E>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
  template <typename U>
  Expected(Unexpected<U> e) : m_v(std::in_place_index<1>, E(std::move(e.value))) {}

  bool has_value() const { return m_v.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(m_v); }
  const T& value() const& { assert(has_value()); return std::get<0>(m_v); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(m_v)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() & { assert(!has_value()); return std::get<1>(m_v); }
  const E& error() const& { assert(!has_value()); return std::get<1>(m_v); }

 private:
  std::variant<T, E> m_v;
};

// Expected<void, E>.
template <typename E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  template <typename U>
  Expected(Unexpected<U> e) : m_error(E(std::move(e.value))), m_ok(false) {}

  bool has_value() const { return m_ok; }
  explicit operator bool() const { return m_ok; }
  E& error() & { assert(!m_ok); return m_error; }
  const E& error() const& { assert(!m_ok); return m_error; }

 private:
  E m_error{};
  bool m_ok = true;
};

// A failure that a caller may report or recover from.
struct Failure {
  enum class Kind { Error, Timeout, NotFound };
  Kind kind = Kind::Error;
  std::string message;
};

inline Unexpected<Failure> fail(std::string message, Failure::Kind kind = Failure::Kind::Error) {
  return {Failure{kind, std::move(message)}};
}

}  // namespace kg

#define KG_TRY(expr)                                   \
  do {                                                 \
    auto&& kg_try_result_ = (expr);                    \
    if (!kg_try_result_) {                             \
      return ::kg::unexpected(kg_try_result_.error()); \
    }                                                  \
  } while (false)
