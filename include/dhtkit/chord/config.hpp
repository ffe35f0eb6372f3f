/// @file
/// Configuration of the Chord router (dhtkit/chord/router.hpp).
///
/// One plain struct with a comment on every default, and presets for where
/// the ring runs: lan() (the defaults), wan() and local() (fast, for loopback
/// and tests). basic_router validates it once, in its constructor
/// (std::invalid_argument naming the field).
///
/// @code
/// dhtkit::chord::router_config config = dhtkit::chord::router_config::wan();
/// config.expected_nodes = 256;  // r = 2 log2 256 = 16 successors
/// config.validate();            // throws std::invalid_argument if inconsistent
/// @endcode
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dhtkit/core/time.hpp"

namespace dhtkit::chord {

/// Bits of the identifier space: node ids and key hashes are 64-bit.
inline constexpr std::size_t identifier_bits = 64;

/// Configuration of basic_router: timers, timeouts and bounds, with presets.
struct router_config {
  /// r, the successor list length; 0 derives it from expected_nodes.
  std::size_t successor_list_length = 0;
  /// The ring size r is derived from when successor_list_length is 0:
  /// r = 2*ceil(log2 expected_nodes), clamped to [2, max_successor_list_length].
  std::size_t expected_nodes = 1024;
  /// Upper bound on r, and the longest list accepted from a peer (a longer
  /// one is rejected as hostile). 16 = 2 log2 N for N = 256.
  std::size_t max_successor_list_length = 16;
  /// How often stabilize runs (the paper's churn experiments use ~30 s; a LAN
  /// deployment wants faster repair). Each period is jittered by +-25 % so
  /// nodes do not stabilize in lockstep.
  duration stabilize_period = seconds(1);
  /// How often fix_fingers refreshes fingers_per_fix fingers that need a lookup
  /// (fingers inside (self, successor] are set without one).
  duration fix_fingers_period = seconds(1);
  std::size_t fingers_per_fix = 1;
  /// How often the predecessor is pinged; failure_threshold missed answers
  /// in a row make it dead.
  duration check_predecessor_period = seconds(1);
  /// Per-request (per-hop) timeout: a peer that has not answered by then is
  /// treated as dead by this node until it is heard from again.
  duration request_timeout = millis(500);
  /// Consecutive unanswered requests after which a peer is taken for dead
  /// (dropped from the successor list, fingers and predecessor). 2 rather
  /// than 1 so that one lost message does not cut a live link; stabilize
  /// retries its successor at once after a miss, so a dead successor still
  /// goes in 2 request timeouts. (A lookup skips an unanswering hop at once.)
  std::size_t failure_threshold = 2;
  /// Routing steps per lookup (each strictly closer to the key); 64 is far
  /// above the ~log2 N a converged ring needs.
  std::size_t max_hops = 64;
  /// Timed-out hops a lookup survives before it fails with lookup_failed.
  /// 16: right after half the ring crashes a lookup meets several dead hops,
  /// and a dead owner costs failure_threshold timeouts, and as many again for
  /// the redirects back to it while its successor still names it. A lookup
  /// that fails this way takes about 8.5 s at the default request_timeout.
  std::size_t max_timeouts_per_lookup = 16;
  /// Lookups in flight at once (client, finger and join lookups together);
  /// beyond, lookup() fails with limit_exceeded.
  std::size_t max_pending_lookups = 1024;
  /// Requests awaiting an answer at once; beyond, new ones are not sent.
  std::size_t max_pending_requests = 4096;
  /// Nodes a routing reply names (closest first): the fallbacks when the
  /// closest is dead.
  std::size_t lookup_candidates = 4;
  /// Candidate next hops a lookup remembers.
  std::size_t max_lookup_candidates = 32;
  /// Ask the claimed owner for its state before reporting it (see header).
  bool verify_owner = true;
  /// Peers remembered as dead (oldest forgotten first), and for how long: a
  /// peer wrongly taken for dead (lost messages) that never talks to this node
  /// again is usable again after dead_peer_ttl.
  std::size_t max_dead_peers = 1024;
  duration dead_peer_ttl = seconds(30);
  /// Messages kept in the outbox when the driver does not drain it; beyond,
  /// new ones are dropped and counted.
  std::size_t max_outbox_messages = 16384;
  /// Range events kept in the outbox when the driver does not drain them;
  /// beyond, the undrained ones are merged into their net change (the same
  /// final range, fewer steps). 64 is far more than one call produces.
  std::size_t max_pending_range_events = 64;

  /// Effective r.
  std::size_t r() const noexcept {
    if (successor_list_length != 0) return successor_list_length;
    std::size_t bits = 0;
    while (bits < 63 && (std::size_t{1} << bits) < expected_nodes) ++bits;
    return std::clamp<std::size_t>(2 * bits, 2, std::max<std::size_t>(2, max_successor_list_length));
  }

  /// The defaults: a LAN or one data centre (round trips well under 10 ms),
  /// where repair within a few seconds of a failure is worth one small message
  /// per node per period.
  static router_config lan() { return router_config{}; }

  /// Nodes spread over the Internet: round trips of 100-300 ms and more jitter,
  /// so a 500 ms request timeout would take slow peers for dead; periods
  /// stretched in proportion, towards the paper's 30 s, since maintenance
  /// traffic costs more there and churn is slower than on a LAN.
  static router_config wan() {
    router_config c;
    c.stabilize_period = seconds(5);          // 5x the LAN period
    c.fix_fingers_period = seconds(5);        // as stabilize
    c.check_predecessor_period = seconds(5);  // as stabilize
    c.request_timeout = seconds(2);           // several WAN round trips
    c.dead_peer_ttl = seconds(150);           // 30 stabilize periods, as on a LAN
    return c;
  }

  /// Loopback or one machine (tests, examples over real sockets): round trips
  /// well under a millisecond, so rings converge and failures are repaired in
  /// a fraction of a second and socket tests stay short.
  static router_config local() {
    router_config c;
    c.stabilize_period = millis(200);          // a ring of tens of nodes converges in a few seconds
    c.fix_fingers_period = millis(200);        // as stabilize
    c.check_predecessor_period = millis(200);  // as stabilize
    c.request_timeout = millis(100);           // far above a loopback round trip, below the periods
    c.dead_peer_ttl = seconds(6);              // 30 stabilize periods, as on a LAN
    return c;
  }

  /// Throws std::invalid_argument naming the first bad field; basic_router
  /// calls it in its constructor.
  void validate() const {
    const router_config& c = *this;
    auto fail = [](const std::string& why) {
      throw std::invalid_argument("dhtkit::chord::router_config: " + why);
    };
    if (c.max_successor_list_length < 1 || c.max_successor_list_length > 256)
      fail("max_successor_list_length must be in [1, 256]");
    if (c.successor_list_length > c.max_successor_list_length)
      fail("successor_list_length must be <= max_successor_list_length");
    if (c.successor_list_length == 0 && c.max_successor_list_length < 2)
      fail("a derived successor_list_length needs max_successor_list_length >= 2");
    if (c.expected_nodes < 1) fail("expected_nodes must be >= 1");
    // Durations are added to the current time: a day is far beyond any
    // sensible value and keeps now + duration from overflowing.
    const auto in_range = [](duration d) { return d > duration::zero() && d <= seconds(86400); };
    if (!in_range(c.stabilize_period)) fail("stabilize_period must be in (0, 24 h]");
    if (!in_range(c.fix_fingers_period)) fail("fix_fingers_period must be in (0, 24 h]");
    if (!in_range(c.check_predecessor_period)) fail("check_predecessor_period must be in (0, 24 h]");
    if (!in_range(c.request_timeout)) fail("request_timeout must be in (0, 24 h]");
    if (c.fingers_per_fix < 1 || c.fingers_per_fix > identifier_bits)
      fail("fingers_per_fix must be in [1, 64]");
    if (c.failure_threshold < 1 || c.failure_threshold > 100) fail("failure_threshold must be in [1, 100]");
    if (c.max_hops < 1 || c.max_hops > 1024) fail("max_hops must be in [1, 1024]");
    if (c.max_timeouts_per_lookup > 1024) fail("max_timeouts_per_lookup must be <= 1024");
    if (c.max_pending_lookups < 1) fail("max_pending_lookups must be >= 1");
    if (c.max_pending_requests < 4) fail("max_pending_requests must be >= 4");
    if (c.lookup_candidates < 1 || c.lookup_candidates > 64) fail("lookup_candidates must be in [1, 64]");
    if (c.max_lookup_candidates < c.lookup_candidates || c.max_lookup_candidates > 1024)
      fail("max_lookup_candidates must be in [lookup_candidates, 1024]");
    if (c.max_dead_peers < 1) fail("max_dead_peers must be >= 1");
    if (!in_range(c.dead_peer_ttl)) fail("dead_peer_ttl must be in (0, 24 h]");
    if (c.max_outbox_messages < 16) fail("max_outbox_messages must be >= 16");
    if (c.max_pending_range_events < 1) fail("max_pending_range_events must be >= 1");
  }
};

}  // namespace dhtkit::chord
