// The TCP transport's counters: atomics, so tcp_transport::stats() can read
// them from any thread while the strand updates them. One field per member of
// tcp_transport_stats, which documents what each one counts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace dhtkit::detail::tcp {

struct counters {
  std::atomic<std::uint64_t> frames_sent{0}, frames_received{0}, dropped_queue_full{0},
      dropped_unreachable{0}, dropped_on_close{0}, connect_failures{0}, connect_timeouts{0},
      connections_opened{0}, oversize_frames{0}, bad_hellos{0}, refused_inbound{0}, refused_peer_limit{0},
      dropped_no_memory{0}, handshake_failures{0}, outbound_handshake_failures{0}, peer_name_mismatches{0},
      frames_refused_identity{0};
  std::atomic<std::uint64_t> inbound_buffer_bytes{0};  // a gauge, not a count
  // Keeps the gauge equal to the capacity of every inbound buffer.
  void resized(std::size_t before, std::size_t after) {
    if (after >= before) {
      inbound_buffer_bytes.fetch_add(after - before, std::memory_order_relaxed);
    } else {
      inbound_buffer_bytes.fetch_sub(before - after, std::memory_order_relaxed);
    }
  }
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

}  // namespace dhtkit::detail::tcp
