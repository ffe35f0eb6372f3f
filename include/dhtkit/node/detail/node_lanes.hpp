// Which lane a node message takes. Control must never queue behind bulk
// data: SWIM always takes the packet lane (its messages are cut to datagram
// size), as do small replication and handoff control messages; anything that
// does not fit a datagram, and every handoff chunk, takes the stream lane.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dhtkit/node/node_outbox.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::detail::node {

inline constexpr std::uint16_t handoff_chunk_tag = 0x0402;
// Applications' messages (send_application) take the stream lane whatever
// their size: a request/reply protocol on top wants them in order, and not
// lost to a burst of control datagrams filling the packet lane's queue.
inline constexpr std::uint16_t application_tag = 0x04E0;

constexpr lane lane_for(std::uint16_t tag, std::size_t size, std::size_t packet_max_message,
                        bool single_lane) noexcept {
  if (single_lane) return lane::stream;
  if (wire::tags::membership.contains(tag)) return lane::packet;
  if (tag == handoff_chunk_tag || tag == application_tag) return lane::stream;
  return size <= packet_max_message ? lane::packet : lane::stream;
}

}  // namespace dhtkit::detail::node
