// Wire messages of the replication protocol (types 0x0300-0x03FF). Internal:
// the replica encodes and decodes them itself; drivers only move bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::detail::repl {

struct key_entry {
  std::string key;
  versioned_entry entry;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(key, entry);
  }
};

// Coordinator -> replica (a write, a read repair), or fallback -> owner (handoff).
struct replicate {
  static constexpr std::uint16_t wire_type = 0x0300;
  std::uint64_t request = 0;  // 0: no acknowledgement wanted (read repair)
  std::string key;
  versioned_entry entry;
  node_id hinted_for{};  // non-zero: the receiver stands in for this owner and keeps a hint
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, key, entry, hinted_for);
  }
};

struct replicate_ack {
  static constexpr std::uint16_t wire_type = 0x0301;
  std::uint64_t request = 0;
  std::uint16_t status = 0;  // 0 or a dhtkit::errc value
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, status);
  }
};

struct read_request {
  static constexpr std::uint16_t wire_type = 0x0302;
  std::uint64_t request = 0;
  std::string key;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, key);
  }
};

struct read_reply {
  static constexpr std::uint16_t wire_type = 0x0303;
  std::uint64_t request = 0;
  bool found = false;
  versioned_entry entry;
  std::uint16_t status = 0;  // 0, or errc::not_ready (then not found): ask a previous holder
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, found, entry, status);
  }
};

// A write received by a node that is not one of the key's replicas, passed to
// one that is: only a key's replicas number its writes.
struct forward_put {
  static constexpr std::uint16_t wire_type = 0x0304;
  std::uint64_t request = 0;
  std::string key;
  version_vector context;
  bytes value;
  bool tombstone = false;
  std::int64_t expires_at = 0;  // nanoseconds since the epoch of time_point
  std::uint32_t n = 0, w = 0;
  std::int64_t timeout = 0;  // nanoseconds
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, key, context, value, tombstone, expires_at, n, w, timeout);
  }
};

struct forward_reply {
  static constexpr std::uint16_t wire_type = 0x0305;
  std::uint64_t request = 0;
  std::uint16_t status = 0;
  std::uint32_t acks = 0;
  std::uint32_t required = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request, status, acks, required);
  }
};

// True replica -> forwarder: the forwarded put is numbered and stored here and
// its outcome will follow in a forward_reply; stop trying other replicas.
struct forward_accept {
  static constexpr std::uint16_t wire_type = 0x030A;
  std::uint64_t request = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(request);
  }
};

// Anti-entropy: initiator -> peer, hashes of some tree nodes of one level.
struct ae_hashes {
  static constexpr std::uint16_t wire_type = 0x0306;
  std::uint64_t session = 0;
  std::uint32_t range = 0;
  std::uint32_t level = 0;
  std::vector<std::uint32_t> index;
  std::vector<std::uint64_t> hash;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, range, level, index, hash);
  }
};

// Peer -> initiator: which of those differ.
struct ae_diff {
  static constexpr std::uint16_t wire_type = 0x0307;
  std::uint64_t session = 0;
  std::uint32_t range = 0;
  std::uint32_t level = 0;
  std::vector<std::uint32_t> differing;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, range, level, differing);
  }
};

// Initiator -> peer: its entries of differing buckets.
struct ae_push {
  static constexpr std::uint16_t wire_type = 0x0308;
  std::uint64_t session = 0;
  std::uint32_t range = 0;
  std::vector<std::uint32_t> buckets;
  std::vector<key_entry> entries;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, range, buckets, entries);
  }
};

// Peer -> initiator: its entries of those buckets, after merging the push.
struct ae_pull {
  static constexpr std::uint16_t wire_type = 0x0309;
  std::uint64_t session = 0;
  std::uint32_t range = 0;
  std::vector<key_entry> entries;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, range, entries);
  }
};

using codec = wire::codec<replicate, replicate_ack, read_request, read_reply, forward_put, forward_reply,
                          ae_hashes, ae_diff, ae_push, ae_pull, forward_accept>;

static_assert(
    wire::tags_within<replicate, replicate_ack, read_request, read_reply, forward_put, forward_reply,
                      ae_hashes, ae_diff, ae_push, ae_pull, forward_accept>(wire::tags::replication),
    "dhtkit replication: a message's wire tag is outside the replication range (wire_tags.hpp)");

}  // namespace dhtkit::detail::repl
