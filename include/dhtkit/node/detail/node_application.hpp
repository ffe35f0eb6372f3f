// An application's message carried by the node between members (tag 0x04E0):
// opaque bytes the node routes by member id, on the stream lane (node_lanes.hpp),
// and delivers only from a live member at its own address (the sender check
// every replication message passes). The node never looks inside.
#pragma once

#include <cstdint>

#include "dhtkit/node/detail/node_lanes.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::detail::node {

struct application_message {
  static constexpr std::uint16_t wire_type = 0x04E0;
  bytes payload{};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(payload);
  }
};
static_assert(wire::tags::node.contains(application_message::wire_type));
static_assert(application_message::wire_type == application_tag);

}  // namespace dhtkit::detail::node
