/// @file
/// What the DHT node core hands its driver: messages addressed to an
/// endpoint *and a lane*, the outcomes of client operations, membership and
/// ownership events, and status changes (joined, left).
///
/// Two lanes keep control traffic from waiting behind bulk data: SWIM's
/// probes and acks and small requests travel on the packet lane (UDP on real
/// sockets), values larger than a datagram and handoff streams on the stream
/// lane (TCP). A driver sends each message on the lane its address names.
///
/// @code
/// // auto out = core.take_outbox();
/// // for (auto& m : out.messages)
/// //   (m.to.via == dhtkit::lane::packet ? udp : tcp).send(m.to.endpoint, m.bytes);
/// // for (auto& p : out.puts) complete(p.id, p.error, p.acks, p.required);
/// dhtkit::lane_address<int> to{7, dhtkit::lane::stream};
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/node/placement.hpp"
#include "dhtkit/replication/requests.hpp"

namespace dhtkit {

/// Which of a node's two paths a message takes.
enum class lane : std::uint8_t {
  packet = 0,  ///< datagrams: SWIM, small requests and replies (UDP)
  stream = 1,  ///< a byte stream: large values, handoff chunks (TCP)
};

/// A peer's address on one lane: where a node core's message goes, or came from.
template <class Endpoint>
struct lane_address {
  Endpoint endpoint{};
  lane via = lane::packet;
  friend bool operator==(const lane_address&, const lane_address&) = default;
};

/// What happened to the cluster or to this node's share of it.
enum class node_event_kind : std::uint8_t {
  member_joined,      ///< a node became a member (or came back)
  member_suspect,     ///< a member stopped answering; it may yet refute
  member_alive,       ///< a suspect refuted
  member_dead,        ///< a member was declared dead (its ranges move after dead_member_grace)
  member_left,        ///< a member left gracefully
  member_conflict,    ///< a second node claims a member's name
  placement_changed,  ///< the placement was recomputed (version, fingerprint)
  range_gained,       ///< this node became a holder of a range (it fills by handoff)
  range_ready,        ///< a gained range's handoff completed: it serves reads
  range_lost,         ///< this node no longer holds a range (it hands it off, then drops it)
  range_dropped,      ///< a lost range was handed off and its data removed here
};

/// A node event, for the event callback (node_config has no filter: every event is reported).
struct node_event {
  node_event_kind kind = node_event_kind::member_joined;
  node_id member{};                     ///< member events: whom it is about
  std::string name{};                   ///< member events: the member's name, when known
  std::uint64_t placement_version = 0;  ///< placement_changed and range events
  std::uint64_t fingerprint = 0;        ///< placement_changed: equal on nodes that agree
  key_range range{};                    ///< range events
};

/// Where a node is in its life.
enum class node_state : std::uint8_t {
  idle,     ///< constructed, join() not called
  joining,  ///< join() called, not yet a member with a placement
  joined,   ///< serving
  leaving,  ///< leave() called: handing off its ranges
  left,     ///< gone (after leave(), or refused: see the status error)
};

/// A change of this node's own state, with why it failed if it did.
struct node_status {
  node_state state = node_state::idle;
  std::error_code error{};  ///< name_in_use, timed_out (a leave that could not hand everything off) ...
};

/// An application's message from another member (basic_node_core::send_application).
struct application_delivery {
  node_id from{};   ///< the member that sent it (checked: a live member, at its own address)
  bytes payload{};  ///< what it sent, as it sent it
};

/// Everything one call to a node core produced.
template <class Endpoint>
struct node_outbox : message_outbox<lane_address<Endpoint>> {
  std::vector<put_completion> puts{};  ///< outcomes of put() and erase(), by request id
  std::vector<get_completion> gets{};  ///< outcomes of get()
  std::vector<node_event> events{};
  std::vector<node_status> status{};
  std::vector<application_delivery> applications{};  ///< messages from other members' applications
  void clear() {
    this->messages.clear();
    puts.clear();
    gets.clear();
    events.clear();
    status.clear();
    applications.clear();
  }
  bool empty() const noexcept {
    return this->messages.empty() && puts.empty() && gets.empty() && events.empty() && status.empty() &&
           applications.empty();
  }
};

/// The name of an event kind, for logs.
inline std::string_view to_string(node_event_kind k) noexcept {
  switch (k) {
    case node_event_kind::member_joined:
      return "member_joined";
    case node_event_kind::member_suspect:
      return "member_suspect";
    case node_event_kind::member_alive:
      return "member_alive";
    case node_event_kind::member_dead:
      return "member_dead";
    case node_event_kind::member_left:
      return "member_left";
    case node_event_kind::member_conflict:
      return "member_conflict";
    case node_event_kind::placement_changed:
      return "placement_changed";
    case node_event_kind::range_gained:
      return "range_gained";
    case node_event_kind::range_ready:
      return "range_ready";
    case node_event_kind::range_lost:
      return "range_lost";
    case node_event_kind::range_dropped:
      return "range_dropped";
  }
  return "unknown";
}

/// The name of a node state, for logs.
inline std::string_view to_string(node_state s) noexcept {
  switch (s) {
    case node_state::idle:
      return "idle";
    case node_state::joining:
      return "joining";
    case node_state::joined:
      return "joined";
    case node_state::leaving:
      return "leaving";
    case node_state::left:
      return "left";
  }
  return "unknown";
}

}  // namespace dhtkit

/// Hashing a lane_address hashes its endpoint and lane.
template <class Endpoint>
struct std::hash<dhtkit::lane_address<Endpoint>> {
  std::size_t operator()(const dhtkit::lane_address<Endpoint>& a) const noexcept {
    return std::hash<Endpoint>{}(a.endpoint) * 31 + static_cast<std::size_t>(a.via);
  }
};
