// What a DHT node tells the others about itself in its SWIM metadata: its
// name, its stream-lane endpoint (UDP and TCP need not share a port), its
// weight and whether it is draining (leaving gracefully). Encoded as a node
// message so it is checksummed and bounded like everything on the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::detail::node {

template <class Endpoint>
struct node_meta {
  static constexpr std::uint16_t wire_type = 0x04F0;
  static constexpr std::uint8_t draining_flag = 1;
  std::uint8_t version = 1;
  std::uint8_t flags = 0;
  std::uint16_t weight = 1;
  Endpoint stream{};
  std::string name{};

  bool draining() const noexcept { return (flags & draining_flag) != 0; }

  template <class Archive>
  void serialize(Archive& ar) {
    ar(version, flags, weight, stream, name);
  }
};
static_assert(wire::tags::node.contains(0x04F0));

inline wire_limits meta_limits() {
  wire_limits l;
  l.max_message_size = 512;  // swim_config::max_metadata_bytes' default
  l.max_string_size = 256;
  return l;
}

template <class Endpoint>
std::string encode_meta(const node_meta<Endpoint>& m, node_id self) {
  auto bytes = wire::encode(m, self, meta_limits());
  if (!bytes) return {};
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

// nullopt for metadata that is not a node's (a foreign SWIM member) or is malformed.
template <class Endpoint>
std::optional<node_meta<Endpoint>> decode_meta(std::string_view s) {
  auto m = wire::decode<node_meta<Endpoint>>(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()), s.size()), meta_limits());
  if (!m || m->version != 1 || m->name.empty()) return std::nullopt;
  return std::move(*m);
}

}  // namespace dhtkit::detail::node
