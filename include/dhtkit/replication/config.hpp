/// @file
/// The replica's configuration: quorum sizes, timeouts, anti-entropy and
/// tombstone-collection periods, and the bounds that hold untrusted input.
///
/// A plain struct with a comment on every default. dhtkit::replica validates
/// it in its constructor (validate() throws std::invalid_argument naming the
/// field); the presets say what each setting is for.
///
/// @code
/// dhtkit::replica_config config = dhtkit::replica_config::lan();  // N/R/W = 3/2/2
/// config.strict_quorum = true;  // with R + W > N a read sees every acknowledged write
/// config.validate();            // throws if inconsistent
/// @endcode
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dhtkit/core/time.hpp"
#include "dhtkit/replication/detail/messages.hpp"
#include "dhtkit/replication/merkle.hpp"
#include "dhtkit/transport/wire.hpp"

namespace dhtkit {

/// Configuration of a replica: N, R and W, timeouts, anti-entropy and bounds, with presets.
struct replica_config {
  std::uint32_t n = 3;  ///< replicas per key (Dynamo's typical N)
  std::uint32_t r = 2;  ///< replies a get waits for
  std::uint32_t w = 2;  ///< acknowledgements a put waits for (the coordinator's own write counts)
  /// Per-request N may not exceed this (it also bounds how far a ring walk goes).
  std::uint32_t max_n = 7;
  /// Only the true preference list counts (no fallbacks, no hints): with R + W > N
  /// every read sees every write acknowledged before it began.
  bool strict_quorum = false;
  duration request_timeout = millis(500);   ///< a put or get fails after this, saying how many replied
  duration replica_timeout = millis(100);   ///< a silent replica is retried / replaced after this
  duration suspect_period = seconds(1);     ///< a replica that timed out is skipped this long
  std::uint32_t max_fallbacks = 3;          ///< extra ring nodes a sloppy request may try
  std::size_t max_pending = 4096;           ///< requests in progress at once; more fail with limit_exceeded
  std::size_t max_key_size = 1024;          ///< bytes
  std::size_t max_value_size = 256 * 1024;  ///< bytes
  bool read_repair = true;                  ///< push the merged version to stale replicas after a get
  duration hint_max_age = seconds(60);      ///< a hint not handed off by then is dropped (<= tombstone_grace)
  duration handoff_interval = millis(200);  ///< how often hints are offered to their owners
  std::size_t handoff_batch = 32;           ///< hints offered per interval
  duration anti_entropy_interval = millis(200);  ///< one exchange per interval
  std::uint32_t ae_range_bits = 3;               ///< 2^3 = 8 slices of the ring, one Merkle tree each
  merkle_config merkle{};                        ///< 16-ary, 256 buckets per slice
  std::size_t ae_max_descend = 8;                ///< differing nodes descended into per level
  std::size_t ae_max_buckets = 16;               ///< buckets exchanged per round
  std::size_t ae_max_keys = 256;                 ///< entries sent each way per round
  duration ae_session_timeout = millis(500);     ///< an unanswered exchange is abandoned after this
  duration tombstone_grace = seconds(120);       ///< after all replicas hold a tombstone, keep it this long
  duration marker_ttl = seconds(120);            ///< then keep the bare causal context this long
  wire_limits limits{};                          ///< message size and count bounds
  /// Messages waiting in the outbox for the driver; beyond it new ones are
  /// dropped and counted (outbox_dropped), as if lost: every exchange is
  /// retried or repeated. A driver that drains after each call never gets near it.
  std::size_t max_outbox_messages = 16384;

  /// The defaults: one data centre, round trips of a millisecond or less, so a
  /// replica that has not answered in 100 ms is slow or gone.
  static replica_config lan() { return replica_config{}; }

  /// Replicas across regions: round trips of 100-300 ms, so every timeout is a
  /// few round trips (Cassandra's cross-DC write timeout is 2 s), suspicions last
  /// longer (a slow link is not a dead node), and the periodic exchanges run
  /// less often because each one costs a wide-area round trip or more.
  static replica_config wan() {
    replica_config c;
    c.request_timeout = seconds(2);        // several WAN round trips, room for one retry
    c.replica_timeout = millis(600);       // two to six WAN round trips
    c.suspect_period = seconds(5);         // five times the LAN value, as the timeouts
    c.handoff_interval = seconds(1);       // one offer round per second: each costs a round trip
    c.anti_entropy_interval = seconds(1);  // likewise
    c.ae_session_timeout = seconds(3);     // a Merkle descent is a few round trips
    c.hint_max_age = seconds(120);         // outages across regions last longer; <= tombstone_grace
    c.tombstone_grace = seconds(300);      // anti-entropy is slower, so confirmation takes longer
    c.marker_ttl = seconds(300);           // as tombstone_grace
    return c;
  }

  /// Loopback or one host, and tests: every period short so a scenario settles
  /// in a second or two of (simulated or real) time, while the timeouts stay
  /// well above a loopback round trip.
  static replica_config local() {
    replica_config c;
    c.request_timeout = millis(300);        // loopback answers in well under a millisecond
    c.replica_timeout = millis(60);         // five times below request_timeout: room for retries
    c.suspect_period = millis(500);         // a crashed peer is skipped for half a second
    c.handoff_interval = millis(100);       // hints go back fast after a restart
    c.anti_entropy_interval = millis(100);  // ten exchanges a second
    c.hint_max_age = seconds(5);            // short outages only; <= tombstone_grace
    c.tombstone_grace = seconds(5);         // collection visible within a test
    c.marker_ttl = seconds(3);              // likewise
    c.ae_range_bits = 2;                    // 4 slices: small stores, fewer rounds to cover the ring
    return c;
  }

  /// Throws std::invalid_argument naming the first inconsistent field.
  void validate() const {
    auto fail = [](const char* what) {
      throw std::invalid_argument(std::string("dhtkit::replica_config: ") + what);
    };
    if (max_n < 1 || max_n > 64) fail("max_n must be in [1, 64]");
    if (n < 1 || n > max_n) fail("n must be in [1, max_n]");
    if (r < 1 || r > n) fail("r must be in [1, n]");
    if (w < 1 || w > n) fail("w must be in [1, n]");
    // Durations are added to the current time: a day is far beyond any
    // sensible value and keeps now + duration from overflowing.
    const auto in_range = [](duration d) { return d > duration::zero() && d <= seconds(86400); };
    if (!in_range(request_timeout)) fail("request_timeout must be in (0, 24 h]");
    if (!in_range(replica_timeout)) fail("replica_timeout must be in (0, 24 h]");
    if (suspect_period < duration::zero() || suspect_period > seconds(86400))
      fail("suspect_period must be in [0, 24 h]");
    if (max_fallbacks > 64) fail("max_fallbacks must be at most 64");
    if (max_pending == 0) fail("max_pending must be at least 1");
    if (max_outbox_messages == 0) fail("max_outbox_messages must be at least 1");
    if (max_key_size == 0) fail("max_key_size must be at least 1");
    if (!in_range(handoff_interval)) fail("handoff_interval must be in (0, 24 h]");
    if (!in_range(anti_entropy_interval)) fail("anti_entropy_interval must be in (0, 24 h]");
    if (!in_range(ae_session_timeout)) fail("ae_session_timeout must be in (0, 24 h]");
    if (handoff_batch == 0) fail("handoff_batch must be at least 1");
    if (ae_range_bits > 16) fail("ae_range_bits must be at most 16");
    if (ae_max_descend == 0) fail("ae_max_descend must be at least 1");
    if (ae_max_buckets == 0) fail("ae_max_buckets must be at least 1");
    if (ae_max_keys == 0) fail("ae_max_keys must be at least 1");
    if (!in_range(hint_max_age)) fail("hint_max_age must be in (0, 24 h]");
    if (hint_max_age > tombstone_grace)
      fail("hint_max_age must not exceed tombstone_grace (a hint could resurrect a collected delete)");
    if (tombstone_grace > seconds(86400)) fail("tombstone_grace must be at most 24 h");
    if (marker_ttl < duration::zero() || marker_ttl > seconds(86400)) fail("marker_ttl must be in [0, 24 h]");
    (void)merkle_tree(merkle, 0, ae_range_bits);         // validates the tree shape
    (void)wire::codec<detail::repl::replicate>(limits);  // validates the limits
  }
};

}  // namespace dhtkit
