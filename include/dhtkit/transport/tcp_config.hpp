/// @file
/// The TCP transport's configuration and counters.
///
/// Apart from asio_tcp.hpp so that the implementation (detail/tcp_impl.hpp),
/// which holds a config by value, compiles on its own; users include
/// asio_tcp.hpp, which includes this.
///
/// @code
/// dhtkit::tcp_transport_config cfg;
/// cfg.bind = dhtkit::endpoint::loopback_v4(7946);
/// cfg.max_message_size = 4 << 20;    // larger values: raise both ends
/// cfg.validate();                    // std::invalid_argument naming the field
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/time.hpp"

namespace dhtkit {

class stream_security;  // transport/stream_security.hpp; only a pointer is held here

/// What a full per-peer send queue does with one more frame.
enum class overflow_policy : std::uint8_t {
  reject,       ///< send() fails with errc::queue_full; queued frames are kept (newest lost)
  drop_oldest,  ///< the oldest frame not yet being written is discarded (oldest lost)
};

/// Configuration of a tcp_transport: addresses, queue and connection bounds.
struct tcp_transport_config {
  /// Upper bound for max_message_size (64 MiB).
  static constexpr std::size_t max_allowed_message_size = std::size_t{64} << 20;

  /// Where to listen. Port 0 picks an ephemeral port (see local_endpoint()).
  endpoint bind = endpoint::loopback_v4(0);
  /// What peers are told (hello) and local_endpoint() returns; needed when
  /// `bind` is a wildcard address. Unset: the bound address and port.
  std::optional<endpoint> advertise = std::nullopt;
  /// Largest message in either direction; 1 MiB. A frame over it drops the
  /// connection it came on. At most 64 MiB: one message is held whole in
  /// memory on both sides, and larger values belong in a stream, not a frame.
  /// Any value >= 1 works (the hello is not subject to it).
  std::size_t max_message_size = std::size_t{1} << 20;
  /// Per-peer send queue bound, in frames (1024) and in bytes (8 MiB); a frame
  /// over either bound is handled by `overflow`.
  std::size_t send_queue_frames = 1024;
  std::size_t send_queue_bytes = std::size_t{8} << 20;
  /// Reject by default: the caller learns about the loss at once.
  overflow_policy overflow = overflow_policy::reject;
  /// A connection attempt that has not completed by then counts as failed.
  duration connect_timeout = seconds(2);
  /// Reconnect delays double from backoff_initial up to backoff_max.
  duration backoff_initial = millis(20);
  duration backoff_max = seconds(2);
  /// Consecutive failures (connection attempts that fail or time out, and
  /// connections lost before a frame got through) before a peer's queued
  /// frames are dropped (the next send() starts over). 10 attempts with the
  /// defaults above give a peer about 10 s to come back.
  std::size_t max_connect_attempts = 10;
  /// An inbound connection that has not sent a valid hello by then is dropped.
  duration hello_timeout = seconds(5);
  /// Open inbound connections beyond this are refused (closed at once).
  std::size_t max_inbound_connections = 1024;
  /// Distinct peers with an outbound connection or queue; send() to one more
  /// fails with errc::limit_exceeded (counted as refused_peer_limit). Idle
  /// peers with no connection are forgotten.
  std::size_t max_peers = 4096;
  /// What connections run over: null (the default) is plain TCP, in the clear
  /// and unauthenticated; dhtkit::tls_security (security/tls.hpp, target
  /// dhtkit::security) is mutual TLS. Both ends must use the same kind.
  std::shared_ptr<stream_security> security = nullptr;
  /// With `security`: a handshake not done by then fails (counted, either
  /// side). 5 s: a handshake takes two round trips and some public-key work.
  duration handshake_timeout = seconds(5);

  void validate() const {
    auto fail = [](const char* what) {
      throw std::invalid_argument(std::string("dhtkit::tcp_transport_config: ") + what);
    };
    if (max_message_size == 0 || max_message_size > max_allowed_message_size)
      fail("max_message_size must be in [1, 64 MiB]");
    if (send_queue_frames == 0) fail("send_queue_frames must be at least 1");
    if (send_queue_bytes < max_message_size + 4)
      fail("send_queue_bytes must hold at least one maximal frame");
    if (connect_timeout <= duration::zero()) fail("connect_timeout must be positive");
    if (backoff_initial <= duration::zero() || backoff_max < backoff_initial)
      fail("backoff_initial must be positive and at most backoff_max");
    if (max_connect_attempts == 0) fail("max_connect_attempts must be at least 1");
    if (hello_timeout <= duration::zero()) fail("hello_timeout must be positive");
    if (handshake_timeout <= duration::zero()) fail("handshake_timeout must be positive");
    if (max_inbound_connections == 0) fail("max_inbound_connections must be at least 1");
    if (max_peers == 0) fail("max_peers must be at least 1");
    if (advertise && (advertise->port == 0 || advertise->is_unspecified()))
      fail("advertise must be a concrete address and port");
  }
};

/// The TCP transport's counters.
///
/// Counters, readable from any thread.
struct tcp_transport_stats {
  std::uint64_t frames_sent = 0;          ///< frames fully written to a connection
  std::uint64_t frames_received = 0;      ///< frames handed to the receive handler
  std::uint64_t dropped_queue_full = 0;   ///< refused or discarded by the overflow policy
  std::uint64_t dropped_unreachable = 0;  ///< dropped after max_connect_attempts failures
  std::uint64_t dropped_on_close = 0;     ///< still queued when the transport closed
  std::uint64_t connect_failures = 0;     ///< failed or timed-out connection attempts
  std::uint64_t connect_timeouts = 0;     ///< of those, attempts cut off by connect_timeout
  std::uint64_t connections_opened = 0;   ///< successful outbound connections
  std::uint64_t oversize_frames = 0;      ///< inbound connections dropped for a frame over the maximum
  std::uint64_t bad_hellos = 0;           ///< inbound connections dropped for a missing or malformed hello
  std::uint64_t refused_inbound = 0;      ///< inbound connections over max_inbound_connections
  std::uint64_t refused_peer_limit = 0;   ///< sends to one more peer than max_peers (posted ones are lost)
  /// inbound connections dropped because a read buffer could not grow
  std::uint64_t dropped_no_memory = 0;
  // With tcp_transport_config::security (all 0 without):
  /// inbound connections whose handshake failed or timed out (e.g. a peer
  /// without a certificate from the CA)
  std::uint64_t handshake_failures = 0;
  /// outbound connections whose handshake failed or timed out (the server's
  /// certificate was refused); also counted in connect_failures
  std::uint64_t outbound_handshake_failures = 0;
  /// outbound connections dropped because the server's identity is not the one
  /// the peer verifier expects at that endpoint; also in connect_failures
  std::uint64_t peer_name_mismatches = 0;
  /// inbound frames dropped because the peer verifier refused the connection's
  /// identity for the endpoint its hello claims (a peer speaking as another)
  std::uint64_t frames_refused_identity = 0;
  /// now: bytes allocated for the read buffers of inbound connections
  std::uint64_t inbound_buffer_bytes = 0;
};

}  // namespace dhtkit
