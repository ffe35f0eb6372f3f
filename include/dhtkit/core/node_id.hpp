/// @file
/// Node identity.
///
/// A node_id is a 64-bit name in the same space as key hashes, so Chord can place
/// nodes and keys on one circle and the ring can name its members compactly.
/// Derive it from something stable about the node (its advertised address or a
/// configured name) so a restarted node comes back as itself:
///
/// @code
/// auto id = dhtkit::node_id::from_name("cache-3.example:11211");
/// std::unordered_set<dhtkit::node_id> seen{id};
/// std::string s = id.to_string();   // 16 hex digits
/// @endcode
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "dhtkit/core/hash.hpp"

namespace dhtkit {

/// A node's identity: a 64-bit name in the same space as key hashes.
struct node_id {
  std::uint64_t value = 0;

  /// The id a stable name gives: its XXH64, the same on every node.
  static constexpr node_id from_name(std::string_view name) noexcept { return node_id{xxh64(name)}; }

  friend constexpr auto operator<=>(const node_id&, const node_id&) = default;

  /// 16 lowercase hex digits.
  std::string to_string() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i) s[static_cast<std::size_t>(15 - i)] = digits[(value >> (4 * i)) & 0xF];
    return s;
  }

  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
};

}  // namespace dhtkit

template <>
struct std::hash<dhtkit::node_id> {
  std::size_t operator()(const dhtkit::node_id& id) const noexcept {
    return static_cast<std::size_t>(dhtkit::mix64(id.value));
  }
};
