// Wire messages of the handoff protocol (node tags 0x0400-0x0404). Internal:
// the handoff manager encodes and decodes them; the node only routes them
// (chunks on the stream lane, the rest on the packet lane).
//
// Positions: a chunk covers [from_pos, through_pos] (inclusive, inside the
// unit) and carries every key stored at those positions. A cursor
// (covered_until, resume_from) is the first position not yet covered; a
// unit's end means everything.
#pragma once

#include <cstdint>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/replication/detail/messages.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::detail::handoff {

using key_entry = dhtkit::detail::repl::key_entry;

enum class reply_status : std::uint8_t { accept = 0, have = 1, refuse = 2 };

// Sender -> new holder: "I have [begin, end) for you". `generation` names the
// sender's tracking of the unit: a receiver resumes only a cursor of the same
// generation (a new one means the sender lost or restarted its dirty set).
struct offer {
  static constexpr std::uint16_t wire_type = 0x0400;
  std::uint64_t session = 0;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t generation = 0;
  // 0: nothing to send, the offer completes at once. Otherwise non-zero, not
  // a count: counting would cost a visit of the whole unit per offer.
  std::uint64_t keys = 0;
  std::uint64_t bytes = 0;  // reserved (0)
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, begin, end, generation, keys, bytes);
  }
};

struct reply {
  static constexpr std::uint16_t wire_type = 0x0401;
  std::uint64_t session = 0;
  std::uint8_t status = 0;        // reply_status
  std::uint16_t reason = 0;       // errc, with refuse
  std::uint64_t resume_from = 0;  // with accept: first position the receiver still needs
  std::uint16_t credit = 0;       // chunks the receiver takes unacknowledged
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, status, reason, resume_from, credit);
  }
};

struct chunk {
  static constexpr std::uint16_t wire_type = 0x0402;
  std::uint64_t session = 0;
  std::uint32_t seq = 0;
  std::uint64_t from_pos = 0;
  std::uint64_t through_pos = 0;
  bool final = false;  // no entries: everything was sent; the receiver completes on it
  std::vector<key_entry> entries;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, seq, from_pos, through_pos, final, entries);
  }
};

struct ack {
  static constexpr std::uint16_t wire_type = 0x0403;
  std::uint64_t session = 0;
  std::uint32_t seq = 0;
  std::uint64_t covered_until = 0;
  bool complete = false;
  std::uint16_t status = 0;  // 0, or the errc that stopped the session (a merge the store refused)
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, seq, covered_until, complete, status);
  }
};

struct cancel {
  static constexpr std::uint16_t wire_type = 0x0404;
  std::uint64_t session = 0;
  std::uint16_t reason = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(session, reason);
  }
};

using codec = wire::codec<offer, reply, chunk, ack, cancel>;

static_assert(wire::tags_within<offer, reply, chunk, ack, cancel>(wire::tags::node),
              "dhtkit handoff: a message's wire tag is outside the node range (wire_tags.hpp)");

// An upper bound of key_entry's encoded size (portable binary: 8-byte lengths
// and counts), so a chunk is cut before it outgrows chunk_bytes without
// encoding each entry twice.
inline std::size_t entry_wire_size(std::size_t key_size, const versioned_entry& e) noexcept {
  std::size_t n = 8 + key_size + 8 + 16 * e.context().size() + 8;
  for (const versioned_value& v : e.siblings()) n += 16 + 8 + v.value.size() + 1 + 8;
  return n;
}

inline constexpr std::size_t chunk_overhead = 64;  // chunk's fixed fields and the envelope

}  // namespace dhtkit::detail::handoff
