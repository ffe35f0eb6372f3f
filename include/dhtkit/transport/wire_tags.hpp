/// @file
/// Which wire type tags belong to which protocol: the one registry.
///
/// Every envelope carries a 16-bit type tag (wire.hpp). A node runs several
/// protocols over one transport, and its dispatcher hands each envelope to the
/// core whose range holds the tag, so two protocols must never share a tag.
/// That used to hold by convention; here every protocol's range is declared
/// once, a static_assert proves the ranges disjoint, and each protocol's
/// message header checks at compile time that its tags lie in its range
/// (wire::tags_within). A new protocol takes a free range here.
///
/// @code
/// struct hello {
///   static constexpr std::uint16_t wire_type = 0x8001;   // an application's own range
///   template <class Archive> void serialize(Archive&) {}
/// };
/// static_assert(dhtkit::wire::tags_within<hello>(dhtkit::wire::tags::application));
/// @endcode
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dhtkit::wire {

/// The inclusive range [first, last] of type tags one protocol owns.
struct tag_range {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  std::string_view protocol{};

  constexpr bool contains(std::uint16_t tag) const noexcept { return first <= tag && tag <= last; }
  constexpr bool overlaps(const tag_range& other) const noexcept {
    return first <= other.last && other.first <= last;
  }
};

namespace tags {
// Tag 0 is never used: a zeroed header is not a message.
/// Examples in tests and documentation (the wire codec's own samples).
inline constexpr tag_range examples{0x0001, 0x00FF, "examples"};
inline constexpr tag_range chord{0x0100, 0x01FF, "chord"};
inline constexpr tag_range membership{0x0200, 0x02FF, "membership"};
inline constexpr tag_range replication{0x0300, 0x03FF, "replication"};
/// Reserved for the DHT node's own messages (handoff streams, client requests).
inline constexpr tag_range node{0x0400, 0x04FF, "node"};
/// Free for applications that run their own protocols beside dhtkit's.
inline constexpr tag_range application{0x8000, 0xFFFF, "application"};

inline constexpr std::array registered{examples, chord, membership, replication, node, application};
}  // namespace tags

/// True when no two of the ranges share a tag (and each is well formed).
template <std::size_t N>
constexpr bool disjoint(const std::array<tag_range, N>& ranges) noexcept {
  for (std::size_t i = 0; i < N; ++i) {
    if (ranges[i].first > ranges[i].last || ranges[i].first == 0) return false;
    for (std::size_t j = i + 1; j < N; ++j)
      if (ranges[i].overlaps(ranges[j])) return false;
  }
  return true;
}

static_assert(disjoint(tags::registered), "dhtkit wire: two protocols' tag ranges overlap");

/// True when every message type's wire_type lies in `range`.
template <class... Msgs>
constexpr bool tags_within(const tag_range& range) noexcept {
  return (range.contains(Msgs::wire_type) && ...);
}

}  // namespace dhtkit::wire
