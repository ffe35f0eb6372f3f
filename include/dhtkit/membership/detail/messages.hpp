// SWIM's wire messages (type tags 0x0200-0x02FF). Every message carries the
// sender's node_id in the envelope; addresses travel inside updates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::membership::detail {

// What a member's state is on the wire (member_state mirrors it).
enum class wire_state : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };
inline constexpr std::uint8_t max_wire_state = 3;

// One membership fact: "member id at address, incarnation i, is in state s,
// says from". Alive updates carry the member's metadata; the others carry it
// empty.
template <class Address>
struct member_update {
  node_id id{};
  Address address{};
  std::uint32_t incarnation = 0;
  std::uint8_t state = 0;
  node_id from{};  // who suspects / declares; the member itself for alive and left
  std::string metadata;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, address, incarnation, state, from, metadata);
  }
};

template <class Address>
struct ping {
  static constexpr std::uint16_t wire_type = 0x0200;
  std::uint64_t seq = 0;
  node_id target{};  // whom the sender means: a reused address does not ack for someone else
  std::vector<member_update<Address>> gossip;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, target, gossip);
  }
};

template <class Address>
struct ping_req {
  static constexpr std::uint16_t wire_type = 0x0201;
  std::uint64_t seq = 0;
  node_id target{};
  Address target_address{};
  std::vector<member_update<Address>> gossip;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, target, target_address, gossip);
  }
};

template <class Address>
struct ack {
  static constexpr std::uint16_t wire_type = 0x0202;
  std::uint64_t seq = 0;
  std::vector<member_update<Address>> gossip;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, gossip);
  }
};

struct nack {
  static constexpr std::uint16_t wire_type = 0x0203;
  std::uint64_t seq = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq);
  }
};

template <class Address>
struct gossip {
  static constexpr std::uint16_t wire_type = 0x0204;
  std::vector<member_update<Address>> updates;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(updates);
  }
};

// One datagram of a full-state exchange; state larger than a datagram is
// split into several. Only the first of a request asks for a reply.
template <class Address>
struct push_pull {
  static constexpr std::uint16_t wire_type = 0x0205;
  static constexpr std::uint8_t want_reply = 1;
  static constexpr std::uint8_t join = 2;
  std::uint8_t flags = 0;
  std::vector<member_update<Address>> members;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(flags, members);
  }
};

// The tags do not depend on the address type; any address instantiates them.
static_assert(
    wire::tags_within<ping<node_id>, ping_req<node_id>, ack<node_id>, nack, gossip<node_id>,
                      push_pull<node_id>>(wire::tags::membership),
    "dhtkit::membership: a SWIM message's wire tag lies outside the membership range (wire_tags.hpp)");

template <class Address>
using swim_codec =
    wire::codec<ping<Address>, ping_req<Address>, ack<Address>, nack, gossip<Address>, push_pull<Address>>;

// Encoded size (payload bytes, without the envelope header and the payload's
// one-byte byte-order marker) of any serializable value: what it adds to a
// message when appended to a vector.
template <class T>
std::size_t encoded_size(const T& value, std::vector<std::byte>& scratch) {
  scratch.clear();
  dhtkit::detail::bounded_output_archive ar(
      scratch, dhtkit::detail::archive_limits{UINT64_MAX, UINT64_MAX, SIZE_MAX, 64});
  ar(value);
  return scratch.size() - 1;
}

}  // namespace dhtkit::membership::detail
