/// @file
/// A value or a std::error_code, for functions on network paths that must not
/// throw (C++20 has no std::expected yet).
///
/// @code
/// dhtkit::result<dhtkit::endpoint> ep = dhtkit::endpoint::parse("127.0.0.1:7000");
/// if (!ep) return ep.error();
/// use(*ep);
/// @endcode
#pragma once

#include <cassert>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "dhtkit/core/error.hpp"

namespace dhtkit {

/// A value of type T, or the non-zero std::error_code that says why there is none.
template <class T>
class [[nodiscard]] result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::error_code>,
                "dhtkit::result<std::error_code> is ambiguous: return a plain std::error_code instead");

 public:
  using value_type = T;

  result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(std::error_code ec) : state_(std::in_place_index<1>, ec) {      // NOLINT: implicit by design
    assert(ec && "a result holding an error must hold a non-zero error_code");
  }
  result(errc e) : result(make_error_code(e)) {}  // NOLINT: implicit by design

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// Accessing the value of a failed result is a programmer error: it throws
  /// rather than reading garbage.
  T& value() & { return check(), std::get<0>(state_); }
  const T& value() const& { return check(), std::get<0>(state_); }
  /// On a temporary result the value is moved out rather than referenced, so
  /// `for (auto& n : *ring.preference_list(key, 3))` does not dangle.
  T value() && { return check(), std::get<0>(std::move(state_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; an empty std::error_code when the result holds a value.
  std::error_code error() const noexcept { return has_value() ? std::error_code{} : std::get<1>(state_); }

 private:
  void check() const {
    if (!has_value()) throw std::system_error(std::get<1>(state_));
  }

  std::variant<T, std::error_code> state_;
};

}  // namespace dhtkit
