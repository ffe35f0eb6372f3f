// Conversions between dhtkit::endpoint and Asio's address/endpoint types, and
// the little-endian helpers the socket transports share. Internal to the Asio
// transports; protocol cores never see Asio.
#pragma once

#include <asio/error.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "dhtkit/core/endpoint.hpp"

namespace dhtkit::detail {

inline asio::ip::address to_asio_address(const endpoint& ep) {
  if (ep.is_v4()) {
    return asio::ip::address_v4(
        asio::ip::address_v4::bytes_type{ep.address[0], ep.address[1], ep.address[2], ep.address[3]});
  }
  asio::ip::address_v6::bytes_type bytes{};
  for (std::size_t i = 0; i < 16; ++i) bytes[i] = ep.address[i];
  return asio::ip::address_v6(bytes);
}

template <class Protocol>
asio::ip::basic_endpoint<Protocol> to_asio(const endpoint& ep) {
  return {to_asio_address(ep), ep.port};
}

// An IPv4 endpoint as a dual-stack IPv6 socket addresses it (::ffff:a.b.c.d).
template <class Protocol>
asio::ip::basic_endpoint<Protocol> to_asio_v4_mapped(const endpoint& ep) {
  return {asio::ip::make_address_v6(asio::ip::v4_mapped, to_asio_address(ep).to_v4()), ep.port};
}

// A v4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
// peer) becomes the plain IPv4 endpoint, so one peer has one name.
inline endpoint from_asio_address(const asio::ip::address& a, std::uint16_t port) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return from_asio_address(asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()), port);
  }
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return endpoint::v4(b[0], b[1], b[2], b[3], port);
  }
  const auto b = a.to_v6().to_bytes();
  std::array<std::uint8_t, 16> bytes{};
  for (std::size_t i = 0; i < 16; ++i) bytes[i] = b[i];
  return endpoint::v6(bytes, port);
}

template <class Protocol>
endpoint from_asio(const asio::ip::basic_endpoint<Protocol>& ep) {
  return from_asio_address(ep.address(), ep.port());
}

// Asio's standalone system category does not map its codes to std::errc
// conditions; the OS's own category does, so `ec == std::errc::address_in_use`
// works for callers.
inline std::error_code portable_error(std::error_code ec) {
  if (ec.category() == asio::error::get_system_category()) return {ec.value(), std::system_category()};
  return ec;
}

inline void store_le32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}

inline std::uint32_t load_le32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint32_t>(p[i]);
  return v;
}

}  // namespace dhtkit::detail
