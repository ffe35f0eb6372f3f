/// @file
/// Why a keyring (keyring.hpp) refused a change: the error codes of the
/// "dhtkit.keyring" std::error_category, each with a message an operator can
/// act on.
///
/// @code
/// std::error_code ec = dhtkit::keyring_errc::removing_primary;
/// std::puts(ec.message().c_str());  // "cannot remove the primary key: make another key primary first"
/// @endcode
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace dhtkit {

/// Why a keyring refused a key or a change.
enum class keyring_errc {
  no_keys = 1,        ///< a keyring needs at least one key (its primary)
  too_many_keys,      ///< more than keyring::max_keys
  bad_key_size,       ///< a key that is not 16, 24 or 32 bytes
  duplicate_key,      ///< the same key twice in one list
  key_not_installed,  ///< use() or remove() of a key the keyring does not hold
  removing_primary,   ///< remove() of the primary key
  crypto_failed,      ///< OpenSSL failed (no randomness, no memory): nothing was sealed
};

namespace detail {
class keyring_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dhtkit.keyring"; }
  std::string message(int value) const override {
    switch (static_cast<keyring_errc>(value)) {
      case keyring_errc::no_keys:
        return "a keyring needs at least one key";
      case keyring_errc::too_many_keys:
        return "too many keys (a keyring holds at most 16)";
      case keyring_errc::bad_key_size:
        return "a key must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256)";
      case keyring_errc::duplicate_key:
        return "the same key is given twice";
      case keyring_errc::key_not_installed:
        return "the key is not installed";
      case keyring_errc::removing_primary:
        return "cannot remove the primary key: make another key primary first";
      case keyring_errc::crypto_failed:
        return "OpenSSL failed to seal the datagram";
    }
    return "unknown keyring error " + std::to_string(value);
  }
};
}  // namespace detail

/// The category of keyring_errc, named "dhtkit.keyring".
inline const std::error_category& keyring_category() noexcept {
  static const detail::keyring_category_impl instance;
  return instance;
}

/// A keyring_errc as a std::error_code (found by argument-dependent lookup).
inline std::error_code make_error_code(keyring_errc e) noexcept {
  return {static_cast<int>(e), keyring_category()};
}

}  // namespace dhtkit

template <>
struct std::is_error_code_enum<dhtkit::keyring_errc> : std::true_type {};
