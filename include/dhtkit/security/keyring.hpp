/// @file
/// A keyring for the packet lane: AES-GCM authenticated encryption of every
/// datagram with a shared key, and key rotation without downtime, as
/// memberlist's keyring does. One key is primary: it seals everything sent.
/// Every installed key (the primary and up to max_keys - 1 others) is tried
/// when opening, so a cluster rotates by steps that never leave two nodes
/// unable to read each other:
///
///   1. install the new key on every node;
///   2. once all have it, make it primary (use) on every node;
///   3. once all seal with it, remove the old key everywhere.
///
/// Keys are 16, 24 or 32 random bytes (AES-128, -192, -256). A sealed
/// datagram is: a version byte (1), a 12-byte nonce drawn fresh from
/// OpenSSL's RAND_bytes for every datagram, the ciphertext, and the 16-byte
/// GCM tag, which also authenticates the version byte. A random 96-bit nonce
/// stays safe for about 2^32 datagrams per key; rotate well before that (a
/// node gossiping a few hundred datagrams a second takes months).
///
/// What it does not stop: replay. A sealed datagram carries no counter or
/// time, and its source address is not sealed, so whoever can capture one
/// can send it again, from any address (memberlist's keyring has the same
/// limit). A replayed message is one a member did send; SWIM and the
/// replica tolerate duplicates, but a replayed ping makes its target answer
/// the address it came from.
///
/// Threading: every member may be called from any thread, also while the
/// node seals and opens with the keyring on its own strand: a mutex guards
/// the current key set, which is immutable and shared; seal() and open()
/// hold the mutex only to take a reference to it. A change applies to the
/// next datagram sealed or opened.
///
/// Needs OpenSSL: link dhtkit::security. The core library (dhtkit::dhtkit)
/// sees only the datagram_cipher interface.
///
/// @code
/// // head -c 32 /dev/urandom | base64  makes a key; keyring_file.hpp reads a file of them.
/// std::vector<std::byte> k1(32, std::byte{1}), k2(32, std::byte{2});
/// auto ring = std::make_shared<dhtkit::keyring>(k1);  // throws std::invalid_argument on a bad key
/// dhtkit::node_config cfg = dhtkit::node_config::lan();
/// cfg.packet_cipher = ring;                            // every node of the cluster holds the same keys
/// // later, while the node runs, on every node in turn:
/// std::error_code ec = ring->install(k2);              // step 1
/// ec = ring->use(k2);                                  // step 2
/// ec = ring->remove(k1);                               // step 3
/// @endcode
#pragma once

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/security/keyring_error.hpp"
#include "dhtkit/transport/datagram_cipher.hpp"

namespace dhtkit {

namespace detail::keyring {

struct ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, ctx_free>;

inline const EVP_CIPHER* aes_gcm(std::size_t key_size) noexcept {
  switch (key_size) {
    case 16:
      return EVP_aes_128_gcm();
    case 24:
      return EVP_aes_192_gcm();
    case 32:
      return EVP_aes_256_gcm();
    default:
      return nullptr;
  }
}

inline const unsigned char* u8(const std::byte* p) noexcept {
  return reinterpret_cast<const unsigned char*>(p);
}
inline unsigned char* u8(std::byte* p) noexcept { return reinterpret_cast<unsigned char*>(p); }

// One immutable set of keys, primary first; wiped when the last reference goes.
struct key_set {
  std::vector<std::vector<std::byte>> keys;
  key_set() = default;
  explicit key_set(std::vector<std::vector<std::byte>> k) : keys(std::move(k)) {}
  key_set(const key_set&) = delete;
  key_set& operator=(const key_set&) = delete;
  ~key_set() {
    for (auto& k : keys) OPENSSL_cleanse(k.data(), k.size());
  }
};

}  // namespace detail::keyring

/// AES-GCM datagram cipher with a primary key and further accepted keys
/// (see keyring.hpp).
class keyring final : public datagram_cipher {
 public:
  using key_type = std::vector<std::byte>;

  /// At most this many keys at once: opening a datagram tries each, so the
  /// cost of a forged one is bounded.
  static constexpr std::size_t max_keys = 16;
  static constexpr std::uint8_t envelope_version = 1;
  static constexpr std::size_t nonce_size = 12;
  static constexpr std::size_t tag_size = 16;
  /// What seal() adds: the version byte, the nonce and the tag.
  static constexpr std::size_t envelope_overhead = 1 + nonce_size + tag_size;

  /// A keyring whose only key, the primary, is `primary`. Throws
  /// std::invalid_argument when it is not 16, 24 or 32 bytes.
  explicit keyring(std::span<const std::byte> primary) : keyring(std::vector<key_type>{to_key(primary)}) {}

  /// A keyring of `keys`, the first primary. Throws std::invalid_argument
  /// naming the problem (see check()).
  explicit keyring(std::vector<key_type> keys) {
    if (std::error_code ec = check(keys)) throw std::invalid_argument("dhtkit::keyring: " + ec.message());
    set_ = std::make_shared<const detail::keyring::key_set>(std::move(keys));
  }

  keyring(const keyring&) = delete;
  keyring& operator=(const keyring&) = delete;

  /// {} when `keys` can make a keyring (the first becoming primary), else
  /// why not: keyring_errc::no_keys, too_many_keys, bad_key_size, duplicate_key.
  static std::error_code check(const std::vector<key_type>& keys) {
    if (keys.empty()) return keyring_errc::no_keys;
    if (keys.size() > max_keys) return keyring_errc::too_many_keys;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!detail::keyring::aes_gcm(keys[i].size())) return keyring_errc::bad_key_size;
      for (std::size_t j = 0; j < i; ++j)
        if (keys[j] == keys[i]) return keyring_errc::duplicate_key;
    }
    return {};
  }

  /// Adds `key` as accepted when opening (step 1 of a rotation). Installing
  /// an installed key changes nothing. bad_key_size, too_many_keys.
  std::error_code install(std::span<const std::byte> key) {
    if (!detail::keyring::aes_gcm(key.size())) return keyring_errc::bad_key_size;
    std::lock_guard lock(mutex_);
    if (find(*set_, key) != npos) return {};
    if (set_->keys.size() >= max_keys) return keyring_errc::too_many_keys;
    auto keys = set_->keys;
    keys.push_back(to_key(key));
    set_ = std::make_shared<const detail::keyring::key_set>(std::move(keys));
    return {};
  }

  /// Makes the installed `key` primary: it seals from the next datagram on
  /// (step 2). key_not_installed when it is not installed.
  std::error_code use(std::span<const std::byte> key) {
    std::lock_guard lock(mutex_);
    const std::size_t i = find(*set_, key);
    if (i == npos) return keyring_errc::key_not_installed;
    if (i == 0) return {};
    auto keys = set_->keys;
    std::rotate(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(i),
                keys.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    set_ = std::make_shared<const detail::keyring::key_set>(std::move(keys));
    return {};
  }

  /// Stops accepting `key` (step 3). removing_primary for the primary key
  /// (make another primary first); key_not_installed.
  std::error_code remove(std::span<const std::byte> key) {
    std::lock_guard lock(mutex_);
    const std::size_t i = find(*set_, key);
    if (i == npos) return keyring_errc::key_not_installed;
    if (i == 0) return keyring_errc::removing_primary;
    auto keys = set_->keys;
    keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(i));
    set_ = std::make_shared<const detail::keyring::key_set>(std::move(keys));
    return {};
  }

  /// Replaces every key at once with `keys`, the first primary (a keyring
  /// file read again). On an error (as check()) the keys in use stay.
  std::error_code replace(std::vector<key_type> keys) {
    if (std::error_code ec = check(keys)) return ec;
    auto set = std::make_shared<const detail::keyring::key_set>(std::move(keys));
    std::lock_guard lock(mutex_);
    set_ = std::move(set);
    return {};
  }

  /// A copy of the installed keys, the primary first.
  std::vector<key_type> keys() const { return snapshot()->keys; }
  /// How many keys are installed.
  std::size_t size() const { return snapshot()->keys.size(); }

  /// A short public name for a key (the first 4 bytes of its SHA-256, in
  /// hex) to tell keys apart in logs without showing them.
  static std::string fingerprint(std::span<const std::byte> key) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int n = 0;
    if (EVP_Digest(key.data(), key.size(), digest.data(), &n, EVP_sha256(), nullptr) != 1 || n < 4)
      return "?";
    static constexpr char hex[] = "0123456789abcdef";
    std::string s;
    for (unsigned i = 0; i < 4; ++i) {
      s += hex[digest[i] >> 4];
      s += hex[digest[i] & 15];
    }
    return s;
  }

  std::size_t overhead() const noexcept override { return envelope_overhead; }

  std::error_code seal(std::span<const std::byte> message, std::vector<std::byte>& sealed) const override {
    using detail::keyring::u8;
    if (message.size() > static_cast<std::size_t>(INT_MAX) - envelope_overhead)
      return errc::message_too_large;
    const auto set = snapshot();
    const key_type& key = set->keys.front();
    sealed.resize(message.size() + envelope_overhead);
    std::byte* out = sealed.data();
    out[0] = std::byte{envelope_version};
    if (RAND_bytes(u8(out + 1), static_cast<int>(nonce_size)) != 1) return keyring_errc::crypto_failed;
    detail::keyring::ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    const bool ok =
        ctx &&
        EVP_EncryptInit_ex(ctx.get(), detail::keyring::aes_gcm(key.size()), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce_size), nullptr) == 1 &&
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, u8(key.data()), u8(out + 1)) == 1 &&
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, u8(out), 1) == 1 &&  // the version byte, authenticated
        (message.empty() || EVP_EncryptUpdate(ctx.get(), u8(out + 1 + nonce_size), &len, u8(message.data()),
                                              static_cast<int>(message.size())) == 1) &&
        EVP_EncryptFinal_ex(ctx.get(), u8(out + 1 + nonce_size + message.size()), &len) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size),
                            u8(out + 1 + nonce_size + message.size())) == 1;
    if (!ok) {
      sealed.clear();
      return keyring_errc::crypto_failed;
    }
    return {};
  }

  std::error_code open(std::span<const std::byte> sealed, std::vector<std::byte>& message) const override {
    message.clear();
    if (sealed.size() < envelope_overhead || sealed.size() > static_cast<std::size_t>(INT_MAX))
      return errc::unauthenticated;
    if (sealed[0] != std::byte{envelope_version}) return errc::unauthenticated;
    const auto set = snapshot();
    for (const key_type& key : set->keys)
      if (open_with(key, sealed, message)) return {};
    message.clear();
    return errc::unauthenticated;
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  static key_type to_key(std::span<const std::byte> k) { return key_type(k.begin(), k.end()); }

  static std::size_t find(const detail::keyring::key_set& set, std::span<const std::byte> key) {
    for (std::size_t i = 0; i < set.keys.size(); ++i)
      if (std::equal(set.keys[i].begin(), set.keys[i].end(), key.begin(), key.end())) return i;
    return npos;
  }

  std::shared_ptr<const detail::keyring::key_set> snapshot() const {
    std::lock_guard lock(mutex_);
    return set_;
  }

  // True when `key` opens `sealed` (its tag checks); `message` then holds the plaintext.
  static bool open_with(const key_type& key, std::span<const std::byte> sealed,
                        std::vector<std::byte>& message) {
    using detail::keyring::u8;
    const std::size_t n = sealed.size() - envelope_overhead;
    message.resize(n);
    // GCM's tag is set from a copy: the ctrl call takes a non-const pointer.
    std::array<unsigned char, tag_size> tag{};
    std::copy_n(u8(sealed.data() + 1 + nonce_size + n), tag_size, tag.begin());
    detail::keyring::ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    return ctx &&
           EVP_DecryptInit_ex(ctx.get(), detail::keyring::aes_gcm(key.size()), nullptr, nullptr, nullptr) ==
               1 &&
           EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce_size), nullptr) ==
               1 &&
           EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, u8(key.data()), u8(sealed.data() + 1)) == 1 &&
           EVP_DecryptUpdate(ctx.get(), nullptr, &len, u8(sealed.data()), 1) == 1 &&
           (n == 0 || EVP_DecryptUpdate(ctx.get(), u8(message.data()), &len,
                                        u8(sealed.data() + 1 + nonce_size), static_cast<int>(n)) == 1) &&
           EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size), tag.data()) ==
               1 &&
           EVP_DecryptFinal_ex(ctx.get(), u8(message.data() + n), &len) == 1;
  }

  mutable std::mutex mutex_;
  std::shared_ptr<const detail::keyring::key_set> set_;
};

}  // namespace dhtkit
