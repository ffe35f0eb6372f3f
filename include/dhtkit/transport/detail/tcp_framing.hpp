// The TCP transport's framing: a frame is a 4-byte little-endian length and
// then the bytes, and the first frame on every connection is a hello naming
// the sender's listening endpoint. Kept apart from the connection logic so the
// wire format can be read (and tested: make_hello, parse_hello) on its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/transport/detail/asio_endpoint.hpp"

namespace dhtkit::detail::tcp {

// Hello body: "DHTH", version 1, family (4 or 6), 16 address bytes, port (LE).
inline constexpr std::size_t hello_size = 24;
inline constexpr std::uint8_t hello_version = 1;

inline std::array<std::byte, 4 + hello_size> make_hello(const endpoint& self) {
  std::array<std::byte, 4 + hello_size> f{};
  store_le32(f.data(), hello_size);
  std::byte* b = f.data() + 4;
  b[0] = std::byte{'D'};
  b[1] = std::byte{'H'};
  b[2] = std::byte{'T'};
  b[3] = std::byte{'H'};
  b[4] = std::byte{hello_version};
  b[5] = static_cast<std::byte>(self.family);
  for (std::size_t i = 0; i < 16; ++i) b[6 + i] = static_cast<std::byte>(self.address[i]);
  b[22] = static_cast<std::byte>(self.port & 0xFF);
  b[23] = static_cast<std::byte>(self.port >> 8);
  return f;
}

// The sender's listening endpoint, or nothing if the hello is malformed. A
// wildcard address means "the address you see me connect from".
inline std::optional<endpoint> parse_hello(std::span<const std::byte> b, const endpoint& remote) {
  if (b.size() != hello_size) return std::nullopt;
  if (b[0] != std::byte{'D'} || b[1] != std::byte{'H'} || b[2] != std::byte{'T'} || b[3] != std::byte{'H'})
    return std::nullopt;
  if (b[4] != std::byte{hello_version}) return std::nullopt;
  const auto family = static_cast<std::uint8_t>(b[5]);
  if (family != 4 && family != 6) return std::nullopt;
  endpoint ep;
  ep.family = static_cast<ip_family>(family);
  for (std::size_t i = 0; i < 16; ++i) ep.address[i] = static_cast<std::uint8_t>(b[6 + i]);
  if (ep.is_v4()) {
    for (std::size_t i = 4; i < 16; ++i)
      if (ep.address[i] != 0) return std::nullopt;
  }
  ep.port =
      static_cast<std::uint16_t>(static_cast<std::uint8_t>(b[22]) | static_cast<std::uint8_t>(b[23]) << 8);
  if (ep.port == 0) return std::nullopt;
  if (ep.is_unspecified()) {
    const std::uint16_t port = ep.port;
    ep = remote;
    ep.port = port;
  }
  return ep;
}

using frame = std::vector<std::byte>;  // length prefix, then the message

}  // namespace dhtkit::detail::tcp
