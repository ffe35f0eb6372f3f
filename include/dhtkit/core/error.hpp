/// @file
/// dhtkit error codes.
///
/// Everything on a network path reports failure as a std::error_code in the
/// dhtkit category rather than throwing: a malformed datagram or a full queue is
/// an ordinary event in a distributed system, not an exceptional one.
/// Exceptions are reserved for programmer errors at construction (an invalid
/// configuration struct).
///
/// @code
/// std::error_code ec = dhtkit::errc::message_too_large;
/// if (ec == dhtkit::errc::message_too_large) { /* refuse */ }
/// std::puts(ec.message().c_str());   // "message larger than the configured maximum"
/// @endcode
#pragma once

#include <string>
#include <system_error>

namespace dhtkit {

/// Why an operation failed: the error codes of the dhtkit std::error_category.
enum class errc {
  // Arguments and configuration
  invalid_argument = 1,  ///< an argument is outside its documented range
  empty_ring,            ///< a lookup on a ring with no nodes
  duplicate_node,        ///< adding a node that is already a member
  unknown_node,          ///< removing or addressing a node that is not a member

  // Wire codec: every way untrusted bytes can be wrong
  message_too_large,     ///< larger than the configured maximum message size
  truncated,             ///< fewer bytes than the envelope or a field announces
  bad_magic,             ///< the bytes are not a dhtkit envelope
  unsupported_version,   ///< a protocol version this build does not speak
  bad_checksum,          ///< the payload does not match its checksum
  unknown_message_type,  ///< a type tag no registered message has
  malformed_payload,     ///< the payload does not decode as its declared type
  limit_exceeded,        ///< a length or count inside the payload is over its bound

  // Transport
  unknown_peer,     ///< no route to the destination endpoint
  queue_full,       ///< the bounded send queue for this peer is full
  timed_out,        ///< an operation did not complete in its deadline
  shut_down,        ///< the transport or node has been closed
  invalid_address,  ///< an endpoint string that does not parse

  // Protocols
  quorum_not_reached,  ///< too few replicas answered before the deadline
  not_joined,          ///< the node has not joined (or has left) the group or ring
  lookup_failed,       ///< no live route to the key's owner within the hop and retry limits
  too_many_siblings,   ///< a write would keep more concurrent versions than the configured limit
  not_a_member,        ///< a message from, or an operation on, a node outside the membership

  // The DHT node (appended: the values above keep their numbers)
  name_in_use,         ///< another live node already claims this node's name (and so its id)
  not_ready,           ///< this node holds the range but its handoff has not completed: ask a previous holder
  placement_mismatch,  ///< the sender's placement disagrees with the receiver's (a range it does not hold)

  // Peer security (appended)
  unauthenticated,  ///< a sealed message no installed key opens (wrong key, tampered, truncated, plaintext)
};

namespace detail {

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dhtkit"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_argument:
        return "invalid argument";
      case errc::empty_ring:
        return "the ring has no nodes";
      case errc::duplicate_node:
        return "node is already a member";
      case errc::unknown_node:
        return "node is not a member";
      case errc::message_too_large:
        return "message larger than the configured maximum";
      case errc::truncated:
        return "message truncated";
      case errc::bad_magic:
        return "not a dhtkit message (bad magic)";
      case errc::unsupported_version:
        return "unsupported protocol version";
      case errc::bad_checksum:
        return "checksum mismatch";
      case errc::unknown_message_type:
        return "unknown message type";
      case errc::malformed_payload:
        return "malformed message payload";
      case errc::limit_exceeded:
        return "a length or count in the message exceeds its limit";
      case errc::unknown_peer:
        return "unknown peer";
      case errc::queue_full:
        return "send queue full";
      case errc::timed_out:
        return "operation timed out";
      case errc::shut_down:
        return "shut down";
      case errc::invalid_address:
        return "invalid address";
      case errc::quorum_not_reached:
        return "quorum not reached";
      case errc::not_joined:
        return "node has not joined";
      case errc::lookup_failed:
        return "lookup failed: no live route to the owner";
      case errc::too_many_siblings:
        return "too many concurrent versions (siblings)";
      case errc::not_a_member:
        return "not a member";
      case errc::name_in_use:
        return "another live node already uses this name";
      case errc::not_ready:
        return "range not ready: its handoff to this node has not completed";
      case errc::placement_mismatch:
        return "placement mismatch: the receiver does not hold that range";
      case errc::unauthenticated:
        return "unauthenticated: no installed key opens the message";
    }
    return "unknown dhtkit error " + std::to_string(value);
  }
};

}  // namespace detail

/// The category of dhtkit's error codes, named "dhtkit".
inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl instance;
  return instance;
}

/// An errc as a std::error_code (found by argument-dependent lookup).
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace dhtkit

template <>
struct std::is_error_code_enum<dhtkit::errc> : std::true_type {};
