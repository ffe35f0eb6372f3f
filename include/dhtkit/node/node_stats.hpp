/// @file
/// The DHT node's counters and gauges (node.stats()): members by state,
/// placement, client operations and their latencies, handoff, repairs, hints,
/// and every message the node refused, by reason.
///
/// @code
/// // const dhtkit::node_stats& s = node.stats();
/// // std::printf("%llu alive, placement v%llu, %llu gets (p99 %.0f us)\n",
/// //             s.members_alive, s.placement_version, s.gets_ok, s.get_latency.quantile(0.99) / 1e3);
/// dhtkit::latency_histogram h;
/// h.record(dhtkit::micros(250));
/// double p50 = h.quantile(0.5);   // nanoseconds, within the bucket's 2^(1/4) resolution
/// @endcode
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"

namespace dhtkit {

/// A fixed-size latency histogram: 4 buckets per power of two from 1 us to
/// ~70 s (about 19 % resolution), so recording never allocates.
class latency_histogram {
 public:
  static constexpr std::size_t buckets = 4 * 27;

  void record(duration d) noexcept {
    ++counts_[bucket_of(d)];
    ++count_;
  }
  std::uint64_t count() const noexcept { return count_; }
  /// The q-quantile in nanoseconds (the upper edge of its bucket); 0 when empty.
  double quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank && counts_[i] != 0) return upper_edge(i);
    }
    return upper_edge(buckets - 1);
  }

 private:
  static double upper_edge(std::size_t i) noexcept {
    return 1000.0 * std::exp2(static_cast<double>(i + 1) / 4.0);
  }
  static std::size_t bucket_of(duration d) noexcept {
    const double us = static_cast<double>(d.count()) / 1000.0;
    if (us <= 1.0) return 0;
    const auto i = static_cast<std::size_t>(std::floor(std::log2(us) * 4.0));
    return i < buckets ? i : buckets - 1;
  }
  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t count_ = 0;
};

/// Why the node refused a message, one counter per reason.
struct node_drop_stats {
  std::uint64_t malformed = 0;     ///< not a valid envelope (size, magic, version, checksum, payload)
  std::uint64_t unknown_type = 0;  ///< a tag no component of this node speaks
  std::uint64_t not_a_member = 0;  ///< replication or handoff traffic from a node not in the membership
  std::uint64_t spoofed = 0;       ///< a sender id whose member lives at another address
  std::uint64_t not_held = 0;      ///< a handoff for a range this node does not hold
  std::uint64_t refused_by_core =
      0;                           ///< taken apart by a component and found invalid (its own stats say why)
  std::uint64_t unknown_peer = 0;  ///< a message for a node id with no known address (not sent)
  std::uint64_t oversized = 0;     ///< an outgoing message over stream_max_message (not sent)
  /// Datagrams node_config::packet_cipher did not open (no key of ours, altered,
  /// plaintext); counted by the packet lane of the Asio node, 0 in the simulator.
  std::uint64_t unauthenticated = 0;
};

/// The DHT node's counters (monotonic) and gauges (current values).
struct node_stats : message_stats {
  // membership (gauges)
  std::uint64_t members_alive = 0, members_suspect = 0, members_dead = 0, members_left = 0;
  std::uint64_t foreign_members = 0;  ///< SWIM members whose metadata is not a node's (ignored)
  // placement
  std::uint64_t placement_version = 0;      ///< gauge
  std::uint64_t placement_fingerprint = 0;  ///< gauge: equal on nodes that agree (one_hop)
  std::uint64_t placement_changes = 0;
  std::uint64_t ranges_held = 0;  ///< gauge: units this node holds
  // client operations
  std::uint64_t puts_ok = 0, puts_failed = 0, gets_ok = 0, gets_failed = 0;
  std::uint64_t ops_pending = 0;   ///< gauge
  std::uint64_t ops_rejected = 0;  ///< refused at once: not joined, leaving, max_pending_ops
  std::uint64_t ops_cancelled = 0;
  std::uint64_t lookups = 0;               ///< chord: owner lookups through the finger tables
  std::uint64_t lookup_disagreements = 0;  ///< chord: the router named another owner than the membership view
  latency_histogram put_latency{}, get_latency{};
  // handoff (from the handoff manager)
  std::uint64_t ranges_pending = 0;           ///< gauge: gained ranges not ready yet
  std::uint64_t ranges_outbound = 0;          ///< gauge: ranges being handed off from here
  std::uint64_t handoff_bytes_in_flight = 0;  ///< gauge: handoff chunks sent and not yet acknowledged
  std::uint64_t handoff_bytes_sent = 0, handoff_bytes_received = 0;
  std::uint64_t handoff_keys_sent = 0, handoff_keys_received = 0;
  std::uint64_t ranges_dropped = 0, keys_dropped = 0;
  // replication (from the replica)
  std::uint64_t read_repairs = 0, ae_keys_repaired = 0, hints_stored = 0, hints_handed_off = 0;
  std::uint64_t hints_pending = 0;  ///< gauge
  // application messages (send_application)
  std::uint64_t applications_sent = 0, applications_received = 0;
  // messages refused or not sent, by reason
  node_drop_stats dropped{};
};

}  // namespace dhtkit
