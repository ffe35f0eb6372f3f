/// @file
/// The DHT node's configuration: one plain struct holding the configuration
/// of every protocol the node composes (SWIM, replication, Chord routing,
/// placement, handoff) and the node's own bounds, with presets.
///
/// Every bound says what happens when it is reached. validate() throws
/// std::invalid_argument naming the first bad field; the node calls it in its
/// constructor.
///
/// @code
/// auto cfg = dhtkit::node_config::lan();   // one data centre
/// cfg.name = "cache-1";                     // unique in the cluster: the node's id is derived from it
/// cfg.listen = "0.0.0.0:7946";              // UDP (probes, small messages) and TCP (values, handoff)
/// cfg.advertise = "10.0.0.1:7946";          // what peers dial; required when listen is a wildcard
/// cfg.seeds = {"10.0.0.2:7946"};
/// cfg.validate();
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dhtkit/chord/config.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/membership/config.hpp"
#include "dhtkit/node/placement.hpp"
#include "dhtkit/replication/config.hpp"
#include "dhtkit/transport/datagram_cipher.hpp"

namespace dhtkit {

class stream_security;  // transport/stream_security.hpp; only a pointer is held here

/// How ranges move between nodes when placement changes (node/handoff.hpp).
///
/// Memory bound: at most window x chunk_bytes in flight per session and
/// max_outbound_sessions sessions, so 2 x 4 x 64 KiB = 512 KiB per node by default.
struct handoff_config {
  duration scan_interval = millis(200);  ///< how often stored units are reconciled against placement
  std::size_t chunk_bytes = 64 * 1024;   ///< a chunk stops growing at this size (one key may exceed it alone)
  std::size_t chunk_keys = 1024;         ///< nor more keys than this
  std::uint32_t window = 4;              ///< unacknowledged chunks per session; the sender waits beyond it
  /// Handoff bytes per second, all sessions together (a token bucket); 0 is
  /// unlimited. 32 MiB/s leaves most of a 1 Gbit/s link to client traffic.
  std::uint64_t rate_bytes_per_second = 32ull * 1024 * 1024;
  duration chunk_timeout = seconds(2);  ///< an unacknowledged chunk is resent (go-back-N) after this
  std::uint32_t max_retries = 4;  ///< resends before the session is abandoned (retried after retry_backoff)
  duration retry_backoff = seconds(1);    ///< wait before offering an abandoned or refused unit again
  std::size_t max_outbound_sessions = 2;  ///< units streamed at once; the others wait their turn
  std::size_t max_inbound_sessions = 8;   ///< units received at once; more offers are refused (queue_full)
  /// A unit this node gained serves reads only when its handoff completed, or
  /// after this (all its sources dead: anti-entropy fills it then).
  duration not_ready_timeout = seconds(30);
  /// Writes landing behind a session's cursor are remembered (and sent before
  /// the final chunk); past this many the session starts again from the unit's start.
  std::size_t max_dirty_keys = 4096;
  std::size_t drop_batch = 512;  ///< keys removed per tick when a handed-off unit is dropped

  /// Throws std::invalid_argument naming the first bad field.
  void validate() const {
    auto fail = [](const char* what) {
      throw std::invalid_argument(std::string("dhtkit::handoff_config: ") + what);
    };
    const auto in_range = [](duration d) { return d > duration::zero() && d <= seconds(86400); };
    if (!in_range(scan_interval)) fail("scan_interval must be in (0, 24 h]");
    if (chunk_bytes < 1024 || chunk_bytes > 16 * 1024 * 1024) fail("chunk_bytes must be in [1 KiB, 16 MiB]");
    if (chunk_keys < 1 || chunk_keys > 65536) fail("chunk_keys must be in [1, 65536]");
    if (window < 1 || window > 64) fail("window must be in [1, 64]");
    if (!in_range(chunk_timeout)) fail("chunk_timeout must be in (0, 24 h]");
    if (max_retries > 100) fail("max_retries must be at most 100");
    if (!in_range(retry_backoff)) fail("retry_backoff must be in (0, 24 h]");
    if (max_outbound_sessions < 1 || max_outbound_sessions > 64)
      fail("max_outbound_sessions must be in [1, 64]");
    if (max_inbound_sessions < 1 || max_inbound_sessions > 1024)
      fail("max_inbound_sessions must be in [1, 1024]");
    if (!in_range(not_ready_timeout)) fail("not_ready_timeout must be in (0, 24 h]");
    if (max_dirty_keys < 1) fail("max_dirty_keys must be at least 1");
    if (drop_batch < 1) fail("drop_batch must be at least 1");
  }
};

/// Configuration of a DHT node (node/node.hpp, node/sim_node.hpp), with presets.
struct node_config {
  /// The node's name, unique in the cluster; its id is node_id::from_name(name).
  /// A second live node with the same name is refused (errc::name_in_use).
  std::string name;
  /// Where the node listens: UDP for the packet lane and TCP for the stream
  /// lane, on the same host and port. Port 0 picks free ports (the two may
  /// then differ: the stream port is advertised in the node's metadata).
  /// Ignored by the simulator node.
  std::string listen = "0.0.0.0:7946";
  /// The address peers reach this node at; empty means listen, which then
  /// must not be a wildcard. UDP's sender address is what peers check, so it
  /// must be the address packets leave from.
  std::string advertise;
  /// Members to join through (host:port); empty founds a new cluster.
  std::vector<std::string> seeds{};

  membership::swim_config membership = membership::swim_config::lan();  ///< who is in the cluster
  replica_config replication = replica_config::lan();                   ///< N/R/W = 3/2/2 and its timeouts
  chord::router_config chord = chord::router_config::lan();             ///< used by chord placement only
  placement_config placement{};  ///< n and list_length follow replication
  handoff_config handoff{};      ///< rebalancing

  /// Membership changes within this window become one placement change, so a
  /// burst of joins moves each range once.
  duration placement_settle = millis(100);
  /// A member declared dead keeps its place this long (writes go to
  /// fallbacks with hints meanwhile), so a restart does not move its ranges
  /// twice; then its ranges move to the next holders.
  duration dead_member_grace = seconds(10);
  /// join() fails with timed_out when no seed has answered by then (SWIM
  /// retries every membership.join_retry_interval meanwhile).
  duration join_timeout = seconds(30);
  /// A graceful leave hands off at most this long before it leaves anyway
  /// (the other replicas and anti-entropy still hold the data).
  duration leave_timeout = seconds(30);
  /// Client operations in progress at once; more fail at once with limit_exceeded.
  std::size_t max_pending_ops = 4096;
  /// Messages up to this size travel on the packet lane (UDP); larger ones,
  /// and every handoff chunk, on the stream lane (TCP). 1400 fits one datagram.
  std::size_t packet_max_message = 1400;
  /// Largest message on the stream lane, sent or accepted.
  std::size_t stream_max_message = 1024 * 1024;
  /// The stream lane's security: null (the default) is plain TCP, in the clear
  /// and unauthenticated (anyone who can reach the TCP port can send stream
  /// traffic as any member). dhtkit::tls_security::create(...)
  /// (security/tls.hpp, target dhtkit::security) is mutual TLS with the node's
  /// name bound to its certificate; opening the node throws
  /// std::invalid_argument when its certificate does not carry `name`.
  std::shared_ptr<::dhtkit::stream_security> stream_security = nullptr;
  /// For tests only, never on a network: everything on the stream lane, so a
  /// test can show what two lanes prevent (probes stuck behind bulk data).
  bool single_lane = false;
  /// Seals every datagram of the packet lane (SWIM gossip and small
  /// messages) with a shared key: dhtkit::keyring (dhtkit/security/keyring.hpp)
  /// or another datagram_cipher. A datagram that does not open is dropped and
  /// counted (node_stats::dropped.unauthenticated), so a process without the
  /// key can neither join nor forge gossip (it can replay captured datagrams:
  /// see keyring.hpp). Its overhead() comes out of
  /// packet_max_message: the node's packet-lane messages (SWIM's
  /// membership.max_message_size included) shrink by that much, and larger
  /// ones take the stream lane. The stream lane is not covered (that is TLS).
  /// Null, the default: the packet lane is plaintext, and anyone who can
  /// reach the UDP port can join the cluster. Ignored by the simulator node.
  std::shared_ptr<const datagram_cipher> packet_cipher{};

  /// One data centre: sub-millisecond round trips.
  static node_config lan() {
    node_config c;
    c.placement.n = c.replication.n;
    c.placement.list_length = c.replication.max_n;
    return c;
  }

  /// Nodes across regions: every timeout is a few wide-area round trips.
  static node_config wan() {
    node_config c;
    c.membership = membership::swim_config::wan();
    c.replication = replica_config::wan();
    c.chord = chord::router_config::wan();
    c.placement_settle = millis(500);   // a few gossip rounds at WAN latency
    c.dead_member_grace = seconds(30);  // a slow region is not a dead one
    c.leave_timeout = seconds(120);     // handoff across regions is slower
    c.handoff.chunk_timeout = seconds(5);
    c.handoff.scan_interval = seconds(1);
    c.placement.n = c.replication.n;
    c.placement.list_length = c.replication.max_n;
    return c;
  }

  /// One host, and tests: every period short so a scenario settles in a few
  /// seconds of simulated or real time.
  static node_config local() {
    node_config c;
    c.listen = "127.0.0.1:0";
    c.membership = membership::swim_config::local();
    c.replication = replica_config::local();
    c.chord = chord::router_config::local();
    c.placement_settle = millis(50);   // two gossip intervals
    c.dead_member_grace = seconds(1);  // a crash moves ranges after a second
    c.leave_timeout = seconds(10);     // local handoff is fast
    c.join_timeout = seconds(5);       // a local seed answers in milliseconds
    c.handoff.scan_interval = millis(100);
    c.handoff.chunk_timeout = millis(500);
    c.handoff.retry_backoff = millis(300);
    c.handoff.not_ready_timeout = seconds(5);
    c.placement.n = c.replication.n;
    c.placement.list_length = c.replication.max_n;
    return c;
  }

  /// Throws std::invalid_argument naming the first bad field (the nested
  /// configurations' own validate() included).
  void validate() const {
    auto fail = [](const std::string& what) { throw std::invalid_argument("dhtkit::node_config: " + what); };
    if (name.empty() || name.size() > 255) fail("name must be 1 to 255 bytes");
    membership.validate();
    replication.validate();
    chord.validate();
    placement.validate();
    handoff.validate();
    if (placement.n != replication.n) fail("placement.n must equal replication.n");
    if (placement.list_length < replication.max_n)
      fail("placement.list_length must be at least replication.max_n (a request may ask for max_n replicas)");
    const auto in_range = [](duration d) { return d >= duration::zero() && d <= seconds(86400); };
    if (!in_range(placement_settle)) fail("placement_settle must be in [0, 24 h]");
    if (!in_range(dead_member_grace)) fail("dead_member_grace must be in [0, 24 h]");
    if (!in_range(leave_timeout) || leave_timeout == duration::zero())
      fail("leave_timeout must be in (0, 24 h]");
    if (!in_range(join_timeout) || join_timeout == duration::zero())
      fail("join_timeout must be in (0, 24 h]");
    if (leave_timeout <= placement_settle)
      fail("leave_timeout must exceed placement_settle (the drain settles first)");
    if (max_pending_ops < 1) fail("max_pending_ops must be at least 1");
    if (packet_max_message < 512 || packet_max_message > 65507)
      fail("packet_max_message must be in [512, 65507] (a UDP datagram)");
    if (packet_cipher && packet_max_message < 512 + packet_cipher->overhead())
      fail("packet_max_message must leave 512 bytes for messages beside packet_cipher's overhead");
    if (membership.max_message_size > packet_max_message)
      fail("membership.max_message_size must not exceed packet_max_message (SWIM uses the packet lane)");
    if (stream_max_message < handoff.chunk_bytes + 4096)
      fail("stream_max_message must exceed handoff.chunk_bytes by 4 KiB (a chunk's framing)");
    if (stream_max_message < replication.max_value_size + replication.max_key_size + 4096)
      fail("stream_max_message must hold the largest value and key");
    if (replication.limits.max_message_size < stream_max_message)
      fail("replication.limits.max_message_size must be at least stream_max_message");
  }
};

}  // namespace dhtkit
