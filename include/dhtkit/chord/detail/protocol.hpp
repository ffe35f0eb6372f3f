// Chord internals: arithmetic on the 2^64 identifier circle and the wire
// messages (type tags 0x0100-0x01FF, wire::tags::chord). Not part of the API; the router
// (dhtkit/chord/router.hpp) is the only user, tests use it to forge messages.
#pragma once

#include <cstdint>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::chord {

// A node as Chord knows it: its position on the circle and where to reach it.
template <class Address>
struct peer {
  node_id id{};
  Address address{};

  friend bool operator==(const peer&, const peer&) = default;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, address);
  }
};

namespace detail {

// Clockwise distance from a to b on the 2^64 circle (unsigned wrap-around is
// exactly the modular arithmetic Chord needs).
constexpr std::uint64_t distance(std::uint64_t a, std::uint64_t b) noexcept { return b - a; }

// x in the open arc (a, b) going clockwise. With a == b the arc is the whole
// circle except a, which is what a one-node ring needs.
constexpr bool in_open(std::uint64_t x, std::uint64_t a, std::uint64_t b) noexcept {
  if (a == b) return x != a;
  return distance(a, x) != 0 && distance(a, x) < distance(a, b);
}

// x in the half-open arc (a, b]. With a == b the arc is the whole circle.
constexpr bool in_half_open(std::uint64_t x, std::uint64_t a, std::uint64_t b) noexcept {
  if (a == b) return true;
  return distance(a, x) != 0 && distance(a, x) <= distance(a, b);
}

// ---- messages --------------------------------------------------------------
// The sender's node_id travels in the wire envelope; a message carries the
// sender's advertised address only where the receiver must remember it (a
// source address seen by a transport may be an ephemeral port).

// "Tell me your predecessor and successor list": stabilize, check_predecessor,
// the liveness check of a would-be successor and the owner check of a lookup.
struct state_request {
  static constexpr std::uint16_t wire_type = 0x0100;
  std::uint64_t request = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request);
  }
};

template <class Address>
struct state_reply {
  static constexpr std::uint16_t wire_type = 0x0101;
  std::uint64_t request = 0;
  bool has_predecessor = false;
  peer<Address> predecessor{};
  std::vector<peer<Address>> successors;  // clockwise from the sender, never the sender
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, has_predecessor, predecessor, successors);
  }
};

// Zave's rectify: "I believe I am your predecessor".
template <class Address>
struct rectify {
  static constexpr std::uint16_t wire_type = 0x0102;
  peer<Address> self{};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(self);
  }
};

// One step of an iterative lookup.
struct find_request {
  static constexpr std::uint16_t wire_type = 0x0103;
  std::uint64_t request = 0;
  std::uint64_t key = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, key);
  }
};

// done: `nodes` is the sender's successor list, the key is owned by nodes[0]
// (or by the sender itself when it is alone and nodes == {sender}).
// !done: `nodes` are the sender's closest predecessors of the key, closest
// first; `successors` is the sender's successor list when the key lies
// within it (else empty): the fallback if the key's predecessor is dead.
template <class Address>
struct find_reply {
  static constexpr std::uint16_t wire_type = 0x0104;
  std::uint64_t request = 0;
  bool done = false;
  std::vector<peer<Address>> nodes;
  std::vector<peer<Address>> successors;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, done, nodes, successors);
  }
};

// A voluntary leave, sent to both neighbours.
template <class Address>
struct leave_notice {
  static constexpr std::uint16_t wire_type = 0x0105;
  peer<Address> self{};
  bool has_predecessor = false;
  peer<Address> predecessor{};
  std::vector<peer<Address>> successors;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(self, has_predecessor, predecessor, successors);
  }
};

// Every tag within Chord's registered range (the address type does not
// change a tag; any one will do to name the templates).
static_assert(
    wire::tags_within<state_request, state_reply<std::uint64_t>, rectify<std::uint64_t>, find_request,
                      find_reply<std::uint64_t>, leave_notice<std::uint64_t>>(wire::tags::chord),
    "dhtkit::chord: a message's wire_type lies outside wire::tags::chord");

}  // namespace detail
}  // namespace dhtkit::chord
