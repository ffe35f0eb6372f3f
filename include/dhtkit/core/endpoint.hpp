/// @file
/// Network endpoints: an IPv4 or IPv6 address and a port, as a plain value.
///
/// Protocol cores name peers by endpoint (the address a peer listens on), put
/// them in messages, sets and maps, and compare them; none of that should drag
/// Asio into a core, so this type has no Asio dependency. The socket
/// transports convert at their edge (transport/detail/asio_endpoint.hpp).
/// Only numeric addresses are accepted: name resolution is a blocking,
/// policy-laden job for the application, not for a value type.
///
/// @code
/// auto ep = dhtkit::endpoint::parse("127.0.0.1:7000");
/// if (!ep) return ep.error();                     // errc::invalid_address
/// std::string s = ep->to_string();                // "127.0.0.1:7000"
/// auto v6 = dhtkit::endpoint::parse("[::1]:7000");
/// std::unordered_set<dhtkit::endpoint> peers{*ep, dhtkit::endpoint::loopback_v4(7001)};
/// @endcode
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/result.hpp"

namespace dhtkit {

/// The address family of an endpoint.
enum class ip_family : std::uint8_t { v4 = 4, v6 = 6 };

/// An IPv4 or IPv6 address and a port, as a plain value: ordered, hashable and
/// serializable, with no Asio dependency (see endpoint.hpp).
struct endpoint {
  /// The family comes first so that all IPv4 endpoints order before IPv6 ones.
  ip_family family = ip_family::v4;
  /// Network byte order. An IPv4 address uses bytes [0, 4) and keeps the rest
  /// zero, so that defaulted comparison and hashing see one representation.
  std::array<std::uint8_t, 16> address{};
  std::uint16_t port = 0;

  friend constexpr auto operator<=>(const endpoint&, const endpoint&) = default;

  static constexpr endpoint v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                               std::uint16_t port) noexcept {
    endpoint ep;
    ep.family = ip_family::v4;
    ep.address[0] = a;
    ep.address[1] = b;
    ep.address[2] = c;
    ep.address[3] = d;
    ep.port = port;
    return ep;
  }

  static constexpr endpoint v6(const std::array<std::uint8_t, 16>& bytes, std::uint16_t port) noexcept {
    endpoint ep;
    ep.family = ip_family::v6;
    ep.address = bytes;
    ep.port = port;
    return ep;
  }

  static constexpr endpoint loopback_v4(std::uint16_t port) noexcept { return v4(127, 0, 0, 1, port); }
  static constexpr endpoint loopback_v6(std::uint16_t port) noexcept {
    std::array<std::uint8_t, 16> bytes{};
    bytes[15] = 1;
    return v6(bytes, port);
  }

  constexpr bool is_v4() const noexcept { return family == ip_family::v4; }
  constexpr bool is_v6() const noexcept { return family == ip_family::v6; }

  /// 0.0.0.0 or ::, i.e. "any address" when binding; never a peer's address.
  constexpr bool is_unspecified() const noexcept {
    const std::size_t n = is_v4() ? 4 : 16;
    for (std::size_t i = 0; i < n; ++i)
      if (address[i] != 0) return false;
    return true;
  }

  /// "a.b.c.d:port" or "[v6]:port"; IPv6 in RFC 5952 form (lowercase, longest
  /// run of zero groups compressed), so equal endpoints print identically.
  std::string to_string() const;

  /// Parses what to_string() prints, plus any valid IPv6 spelling (leading
  /// zeros in groups, uncompressed, an embedded dotted IPv4 tail). Rejects
  /// names, zone ids, IPv4 octets with leading zeros (ambiguous: octal to
  /// inet_aton), ports above 65535 and missing ports with errc::invalid_address.
  static result<endpoint> parse(std::string_view text) noexcept;

  /// cereal: family byte, 4 or 16 address bytes, port. Loading rejects an
  /// unknown family with an exception, which the codec turns into an error.
  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<std::uint8_t>(family));
    for (std::size_t i = 0; i < (is_v4() ? 4U : 16U); ++i) ar(address[i]);
    ar(port);
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint8_t f = 0;
    ar(f);
    if (f != 4 && f != 6) throw std::invalid_argument("dhtkit::endpoint: unknown address family on the wire");
    family = static_cast<ip_family>(f);
    address = {};
    for (std::size_t i = 0; i < (is_v4() ? 4U : 16U); ++i) ar(address[i]);
    ar(port);
  }
};

namespace detail::endpoint_impl {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A decimal number of 1..max_digits digits, no sign, no leading zero (except
// "0" itself), at most `limit`.
constexpr std::optional<std::uint32_t> parse_decimal(std::string_view s, std::size_t max_digits,
                                                     std::uint32_t limit) noexcept {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  std::uint32_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > limit) return std::nullopt;
  return v;
}

constexpr bool parse_v4(std::string_view s, std::uint8_t* out) noexcept {
  for (int i = 0; i < 4; ++i) {
    const std::size_t dot = s.find('.');
    const bool last = i == 3;
    if (last != (dot == std::string_view::npos)) return false;
    const auto octet = parse_decimal(last ? s : s.substr(0, dot), 3, 255);
    if (!octet) return false;
    out[i] = static_cast<std::uint8_t>(*octet);
    if (!last) s.remove_prefix(dot + 1);
  }
  return true;
}

constexpr bool parse_v6(std::string_view s, std::array<std::uint8_t, 16>& out) noexcept {
  std::array<std::uint16_t, 8> head{}, tail{};
  std::size_t nhead = 0, ntail = 0;
  bool compressed = false;
  if (s.starts_with("::")) {
    compressed = true;
    s.remove_prefix(2);
  } else if (s.starts_with(":")) {
    return false;
  }
  bool v4_tail = false;
  std::array<std::uint8_t, 4> v4{};
  while (!s.empty()) {
    const std::size_t colon = s.find(':');
    const std::string_view group = s.substr(0, colon);
    auto& groups = compressed ? tail : head;
    auto& n = compressed ? ntail : nhead;
    if (group.find('.') != std::string_view::npos) {
      // A dotted IPv4 tail is only allowed as the very last piece.
      if (colon != std::string_view::npos || !parse_v4(group, v4.data())) return false;
      v4_tail = true;
      s = {};
      break;
    }
    if (group.empty() || group.size() > 4 || nhead + ntail >= 8) return false;
    std::uint16_t v = 0;
    for (char c : group) {
      const int h = hex_value(c);
      if (h < 0) return false;
      v = static_cast<std::uint16_t>(v * 16 + h);
    }
    groups[n++] = v;
    if (colon == std::string_view::npos) {
      s = {};
    } else {
      s.remove_prefix(colon + 1);
      if (s.starts_with(":")) {
        if (compressed) return false;  // a second "::"
        compressed = true;
        s.remove_prefix(1);
      } else if (s.empty()) {
        return false;  // a trailing single ':'
      }
    }
  }
  const std::size_t used = nhead + ntail + (v4_tail ? 2 : 0);
  if (compressed ? used > 7 : used != 8) return false;
  std::array<std::uint16_t, 8> groups{};
  for (std::size_t i = 0; i < nhead; ++i) groups[i] = head[i];
  const std::size_t tail_start = 8 - ntail - (v4_tail ? 2 : 0);
  for (std::size_t i = 0; i < ntail; ++i) groups[tail_start + i] = tail[i];
  if (v4_tail) {
    groups[6] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
    groups[7] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
  }
  for (std::size_t i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(groups[i] >> 8);
    out[2 * i + 1] = static_cast<std::uint8_t>(groups[i] & 0xFF);
  }
  return true;
}

}  // namespace detail::endpoint_impl

inline result<endpoint> endpoint::parse(std::string_view text) noexcept {
  using namespace detail::endpoint_impl;
  endpoint ep;
  std::string_view port_text;
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1).size() < 2 || text[close + 1] != ':')
      return errc::invalid_address;
    ep.family = ip_family::v6;
    if (!parse_v6(text.substr(1, close - 1), ep.address)) return errc::invalid_address;
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return errc::invalid_address;
    ep.family = ip_family::v4;
    if (!parse_v4(text.substr(0, colon), ep.address.data())) return errc::invalid_address;
    port_text = text.substr(colon + 1);
  }
  const auto port = parse_decimal(port_text, 5, 65535);
  if (!port) return errc::invalid_address;
  ep.port = static_cast<std::uint16_t>(*port);
  return ep;
}

inline std::string endpoint::to_string() const {
  std::string s;
  if (is_v4()) {
    for (int i = 0; i < 4; ++i) {
      if (i) s += '.';
      s += std::to_string(address[static_cast<std::size_t>(i)]);
    }
  } else {
    std::array<std::uint16_t, 8> groups{};
    for (std::size_t i = 0; i < 8; ++i)
      groups[i] = static_cast<std::uint16_t>(address[2 * i] << 8 | address[2 * i + 1]);
    // RFC 5952 4.2: compress the longest run (of at least two) of zero
    // groups, the first one on a tie.
    std::size_t best_start = 8, best_len = 0;
    for (std::size_t i = 0; i < 8;) {
      if (groups[i] != 0) {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < 8 && groups[j] == 0) ++j;
      if (j - i > best_len && j - i >= 2) {
        best_start = i;
        best_len = j - i;
      }
      i = j;
    }
    static constexpr char digits[] = "0123456789abcdef";
    s += '[';
    for (std::size_t i = 0; i < 8; ++i) {
      if (i == best_start) {
        s += "::";
        i += best_len - 1;
        continue;
      }
      if (i != 0 && i != best_start + best_len) s += ':';
      bool started = false;
      for (int shift = 12; shift >= 0; shift -= 4) {
        const int d = (groups[i] >> shift) & 0xF;
        if (d != 0 || started || shift == 0) {
          s += digits[d];
          started = true;
        }
      }
    }
    s += ']';
  }
  s += ':';
  s += std::to_string(port);
  return s;
}

}  // namespace dhtkit

template <>
struct std::hash<dhtkit::endpoint> {
  std::size_t operator()(const dhtkit::endpoint& ep) const noexcept {
    std::uint64_t hi = 0, lo = 0;
    for (std::size_t i = 0; i < 8; ++i) hi = hi << 8 | ep.address[i];
    for (std::size_t i = 8; i < 16; ++i) lo = lo << 8 | ep.address[i];
    const std::uint64_t tag = static_cast<std::uint64_t>(ep.family) << 16 | ep.port;
    return static_cast<std::size_t>(dhtkit::mix64(hi ^ dhtkit::mix64(lo ^ dhtkit::mix64(tag))));
  }
};
