/// @file
/// An authenticated cipher for datagrams: what the UDP transport (and so the
/// node's packet lane, which carries SWIM gossip) seals every datagram with
/// before it leaves, and opens every datagram with before anything reads it.
/// A datagram that does not open (sealed with another key, altered on the
/// way, cut short, or not sealed at all) never reaches a protocol: the
/// transport drops it and counts it.
///
/// This is only the interface, so the core library needs no cryptography
/// library. The implementation dhtkit ships is dhtkit::keyring
/// (dhtkit/security/keyring.hpp, the dhtkit::security target, OpenSSL):
/// AES-GCM with a primary key that seals and further keys that are accepted
/// when opening, for rotation without downtime.
///
/// Threading: seal() and open() may be called from any thread at the same
/// time, also while an implementation's keys change; an implementation
/// synchronizes itself. overhead() never changes over a cipher's life.
///
/// @code
/// // std::shared_ptr<dhtkit::keyring> ring = ...;   // dhtkit/security/keyring.hpp
/// // auto cfg = dhtkit::node_config::lan();
/// // cfg.packet_cipher = ring;                       // null (the default): gossip in clear
/// struct null_cipher final : dhtkit::datagram_cipher {  // the shape of an implementation
///   std::size_t overhead() const noexcept override { return 0; }
///   std::error_code seal(std::span<const std::byte> m, std::vector<std::byte>& out) const override {
///     out.assign(m.begin(), m.end());
///     return {};
///   }
///   std::error_code open(std::span<const std::byte> d, std::vector<std::byte>& out) const override {
///     out.assign(d.begin(), d.end());
///     return {};
///   }
/// };
/// @endcode
#pragma once

#include <cstddef>
#include <span>
#include <system_error>
#include <vector>

namespace dhtkit {

/// Seals and opens datagrams (see datagram_cipher.hpp).
class datagram_cipher {
 public:
  virtual ~datagram_cipher() = default;

  /// Bytes a sealed datagram has beyond its message: seal() of n bytes makes
  /// n + overhead() bytes. The same for the cipher's whole life, so a
  /// transport can budget its datagram size once.
  virtual std::size_t overhead() const noexcept = 0;

  /// Seals `message` into `sealed` (its previous contents replaced). An
  /// error only when the cipher cannot work at all (its cryptography library
  /// failed); nothing is to be sent then.
  virtual std::error_code seal(std::span<const std::byte> message, std::vector<std::byte>& sealed) const = 0;

  /// Opens a datagram from the network into `message` (replaced). Any input
  /// is allowed, of any length: what does not open is
  /// errc::unauthenticated, never an exception or a crash.
  virtual std::error_code open(std::span<const std::byte> sealed, std::vector<std::byte>& message) const = 0;

 protected:
  datagram_cipher() = default;
  datagram_cipher(const datagram_cipher&) = default;
  datagram_cipher& operator=(const datagram_cipher&) = default;
};

}  // namespace dhtkit
