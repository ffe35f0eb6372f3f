// The Asio node's two lanes: a UDP socket (packet lane) and a TCP listener
// (stream lane), opened from node_config's listen and advertise addresses,
// and the endpoints the core is told it has.
#pragma once

#include <algorithm>
#include <asio/any_io_executor.hpp>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/node/config.hpp"
#include "dhtkit/transport/asio_tcp.hpp"
#include "dhtkit/transport/asio_udp.hpp"

namespace dhtkit::detail::node {

struct asio_lanes {
  udp_transport packet;
  tcp_transport stream;
  endpoint packet_endpoint{};  // what peers send datagrams to (and what they see as our source)
  endpoint stream_endpoint{};  // what peers dial; the core advertises it in its SWIM metadata
};

// Numeric addresses only ("10.0.0.2:7946", "[::1]:7946"): a name would need a
// resolver on the constructing thread, and the address a node is known by
// must be the one its datagrams come from anyway.
inline result<std::vector<endpoint>> parse_seeds(const std::vector<std::string>& seeds) {
  std::vector<endpoint> out;
  out.reserve(seeds.size());
  for (const auto& s : seeds) {
    auto ep = endpoint::parse(s);
    if (!ep || ep->port == 0 || ep->is_unspecified()) return errc::invalid_address;
    out.push_back(*ep);
  }
  return out;
}

// Binds UDP and TCP on listen's host and port (port 0: each gets its own
// ephemeral port). The packet endpoint is advertise (its port 0 meaning the
// bound UDP port), else the bound UDP address, which must then not be a
// wildcard. The stream endpoint has the packet endpoint's host and the bound
// TCP port. With a fixed port the TCP hello names that endpoint; with port 0
// and a wildcard it names the wildcard, which peers read as the address the
// connection comes from.
inline result<asio_lanes> open_lanes(const asio::any_io_executor& ex, const node_config& cfg) {
  const auto listen = endpoint::parse(cfg.listen);
  if (!listen) return errc::invalid_address;
  std::optional<endpoint> advertise;
  if (!cfg.advertise.empty()) {
    auto a = endpoint::parse(cfg.advertise);
    if (!a || a->is_unspecified()) return errc::invalid_address;
    advertise = *a;
  } else if (listen->is_unspecified()) {
    return errc::invalid_address;  // peers could not be told where this node is
  }

  udp_transport_config ucfg;
  ucfg.bind = *listen;
  ucfg.max_message_size = cfg.packet_max_message;
  ucfg.cipher = cfg.packet_cipher;
  auto udp = udp_transport::open(ex, ucfg);
  if (!udp) return udp.error();

  endpoint packet_ep = advertise ? *advertise : udp->local_endpoint();
  if (packet_ep.port == 0) packet_ep.port = udp->local_endpoint().port;

  // A node whose certificate does not carry its name would have every stream
  // message refused by its peers: refuse it here, with the reason.
  if (cfg.stream_security && !cfg.stream_security->local_identity().has_name(cfg.name))
    throw std::invalid_argument("dhtkit::node_config: name \"" + cfg.name +
                                "\" is not a name of the stream lane's certificate (it names " +
                                cfg.stream_security->local_identity().describe() + ")");

  tcp_transport_config tcfg;
  tcfg.bind = *listen;
  tcfg.security = cfg.stream_security;
  tcfg.max_message_size = cfg.stream_max_message;
  tcfg.send_queue_bytes = std::max(tcfg.send_queue_bytes, cfg.stream_max_message + 4);
  if (listen->port != 0 && (advertise || listen->is_unspecified())) {
    endpoint a = packet_ep;
    a.port = listen->port;
    tcfg.advertise = a;
  }
  auto tcp = tcp_transport::open(ex, tcfg);
  if (!tcp) return tcp.error();

  endpoint stream_ep = packet_ep;
  stream_ep.port = tcp->local_endpoint().port;
  return asio_lanes{std::move(*udp), std::move(*tcp), packet_ep, stream_ep};
}

// The configuration the core runs with. A packet cipher makes every datagram
// its overhead() larger, and packet_max_message bounds the datagram on the
// wire (what fits the MTU), so the core's packet-lane budget shrinks by the
// overhead: SWIM cuts its messages to it, and the core sends anything larger
// on the stream lane (node_lanes.hpp), so no message is lost to the cipher.
inline node_config core_config(node_config cfg) {
  if (cfg.packet_cipher) {
    cfg.packet_max_message -= cfg.packet_cipher->overhead();  // validate(): at least 512 remain
    cfg.membership.max_message_size = std::min(cfg.membership.max_message_size, cfg.packet_max_message);
  }
  return cfg;
}

}  // namespace dhtkit::detail::node
