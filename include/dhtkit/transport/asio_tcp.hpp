/// @file
/// A dhtkit transport over TCP, on Asio: for messages that must not be cut to
/// datagram size (replication, anti-entropy, large values).
///
/// Each message travels as one frame: a 4-byte little-endian length, then the
/// bytes. A transport listens on one socket and keeps one outbound connection
/// per peer, reused for every message to that peer; messages from a peer arrive
/// on the connection the peer opened. The first frame on every connection is a
/// hello naming the sender's listening endpoint, so the receive handler's
/// `from` is where the peer can be reached, not its ephemeral source port.
/// Nothing is trusted from the wire: a length over max_message_size drops the
/// connection before any of its body is buffered, and a malformed or missing
/// hello drops it too. A frame's buffer grows with the bytes that actually
/// arrive (doubling), never to the length the header announces, so a peer that
/// announces large frames and stalls pins little memory; an allocation that
/// fails drops that connection (counted) instead of escaping io_context::run. The hello names a peer; it does
/// not authenticate it (a wildcard address in it stands for the address the connection comes from).
///
/// Security: by default connections are plain TCP, in the clear, and the
/// hello is taken on trust. With tcp_transport_config::security (a
/// stream_security, e.g. dhtkit::tls_security from security/tls.hpp) every
/// connection is first secured and both ends authenticated (mutual TLS), within
/// handshake_timeout; failures are counted (handshake_failures inbound,
/// outbound_handshake_failures). A peer verifier (set_peer_verifier) then binds
/// identities to endpoints: an outbound connection is used only when the
/// server's identity is the one expected at the endpoint dialed
/// (peer_name_mismatches otherwise), and an inbound frame is delivered only
/// when the connection's identity may speak for the endpoint its hello names
/// (frames_refused_identity otherwise). Without a verifier any identity the
/// security accepts (for TLS: any certificate from the CA) is taken.
///
/// Outbound frames wait in a bounded per-peer queue while a connection is made
/// (with a connect timeout) or re-made (with exponential backoff). When the
/// queue is full, `overflow_policy::reject` makes send() fail with
/// errc::queue_full and `overflow_policy::drop_oldest` discards the oldest
/// frame not yet being written; both are counted in stats(). After
/// max_connect_attempts consecutive failures the queued frames for that peer
/// are dropped (counted as dropped_unreachable), so a dead peer cannot hold
/// memory forever. A frame whose write fails is kept and written again on the
/// next connection, so a message may arrive twice -- allowed by the transport
/// contract.
///
/// Threading: all state lives on one strand of the executor given to open(),
/// so there is no mutex anywhere. send() and stats() may be called from any
/// thread: on the strand (e.g. from the receive handler) send() acts at once
/// and returns every error, including queue_full; from another thread it checks
/// what it can (closed, size, address), copies the message and posts it to the
/// strand, and a queue overflow or max_peers found there is only counted in
/// stats(). Copies posted but not yet taken by the strand are bounded too: over
/// send_queue_bytes of them in total, send() fails with errc::queue_full.
/// set_receive_handler(), shutdown() and close() must be called on the strand
/// or while no thread runs the executor (e.g. between io_context::run calls).
/// A receive handler may call send() and close(), and may replace itself.
///
/// Shutdown: close() is immediate and drops whatever is still queued (counted
/// as dropped_on_close). shutdown(bound, done) is graceful: send() returns
/// errc::shut_down from then on, every frame already accepted is written, each
/// outbound connection is half-closed and the transport waits until the peer has
/// read to the end and closed its side (a clean end of stream, nothing else) --
/// so every frame send() accepted has been read by the peer process -- then
/// closes and calls done({}). If instead some frame may have been lost while it
/// drained (a connection that had carried frames broke or was reset, a peer
/// wrote bytes of its own, frames were dropped as unreachable, or a posted send
/// found its queue full or max_peers reached), it still finishes the other
/// peers and then calls done(std::errc::connection_reset). Frames lost on a
/// connection that broke before shutdown() was called are not covered (they
/// were already counted or retried). Messages from peers keep arriving while it
/// drains. If `bound` passes first it closes anyway and calls
/// done(errc::timed_out). Outbound connections are otherwise
/// kept open until the peer closes them or the transport closes (at most
/// max_peers of them); there is no idle timeout.
///
/// @code
/// asio::io_context io;
/// auto server = dhtkit::tcp_transport::open(io.get_executor(), {});
/// auto client = dhtkit::tcp_transport::open(io.get_executor(), {});
/// server->set_receive_handler([](const dhtkit::endpoint& from, std::span<const std::byte> msg) {
///   std::printf("%zu bytes from %s\n", msg.size(), from.to_string().c_str());
/// });
/// const std::byte hi[] = {std::byte{'h'}, std::byte{'i'}};
/// std::error_code ec = client->send(server->local_endpoint(), hi);
/// io.run_for(std::chrono::milliseconds(100));
/// @endcode
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/transport/detail/asio_endpoint.hpp"
#include "dhtkit/transport/detail/tcp_impl.hpp"
#include "dhtkit/transport/stream_security.hpp"
#include "dhtkit/transport/tcp_config.hpp"
#include "dhtkit/transport/transport.hpp"

namespace dhtkit {

/// A dhtkit::transport over TCP on Asio: length-prefixed frames on per-peer
/// connections (see asio_tcp.hpp).
class tcp_transport {
 public:
  using endpoint_type = endpoint;

  /// Binds and listens; the error if that fails (address in use, ...).
  /// Throws std::invalid_argument for an invalid configuration.
  static result<tcp_transport> open(asio::any_io_executor ex, tcp_transport_config cfg = {}) {
    cfg.validate();
    auto p = std::make_shared<detail::tcp::impl>(std::move(ex), std::move(cfg));
    if (std::error_code ec = p->listen()) return ec;
    p->start();
    return tcp_transport(std::move(p));
  }

  tcp_transport(tcp_transport&&) noexcept = default;
  tcp_transport& operator=(tcp_transport&& other) noexcept {
    if (this != &other) {
      close();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  tcp_transport(const tcp_transport&) = delete;
  tcp_transport& operator=(const tcp_transport&) = delete;
  /// Closes (see the threading rule for close()). Pending completions keep the
  /// internals alive until they have run; the handler is never called again.
  ~tcp_transport() { close(); }

  endpoint local_endpoint() const { return impl_ ? impl_->local() : endpoint{}; }
  std::size_t max_message_size() const { return impl_ ? impl_->config().max_message_size : 0; }
  /// Precondition for config() and get_executor(): the transport has not been
  /// moved from (every other member is safe on a moved-from transport).
  const tcp_transport_config& config() const {
    assert(impl_ && "config() on a moved-from tcp_transport");
    return impl_->config();
  }
  /// The strand everything runs on: post work here to call send() with full
  /// error reporting, or close()/shutdown() from another thread.
  detail::tcp::strand_type get_executor() const {
    assert(impl_ && "get_executor() on a moved-from tcp_transport");
    return impl_->strand();
  }

  std::error_code send(const endpoint& to, std::span<const std::byte> message) {
    if (!impl_ || impl_->closing()) return errc::shut_down;
    if (message.size() > impl_->config().max_message_size) return errc::message_too_large;
    if (to.port == 0 || to.is_unspecified()) return errc::unknown_peer;
    const std::size_t bytes = 4 + message.size();
    auto make_frame = [&] {
      detail::tcp::frame f(bytes);
      detail::store_le32(f.data(), static_cast<std::uint32_t>(message.size()));
      if (!message.empty()) std::memcpy(f.data() + 4, message.data(), message.size());
      return f;
    };
    if (impl_->strand().running_in_this_thread()) return impl_->enqueue(to, make_frame());
    // Counted (and bounded) before the copy is made.
    if (std::error_code ec = impl_->begin_post(bytes)) return ec;
    // If the copy or the post throws (std::bad_alloc), the frame never reaches
    // the strand: take it out of the in-transit count, or a graceful shutdown
    // would wait for it.
    struct undo_post {
      detail::tcp::impl* p;
      std::size_t bytes;
      ~undo_post() {
        if (p) p->cancel_post(bytes);
      }
    } guard{impl_.get(), bytes};
    detail::tcp::frame f = make_frame();
    asio::post(impl_->strand(),
               [p = impl_, to, f = std::move(f)]() mutable { p->finish_post(to, std::move(f)); });
    guard.p = nullptr;
    return {};
  }

  void set_receive_handler(basic_receive_handler<endpoint> handler) {
    if (impl_) impl_->set_handler(std::move(handler));
  }

  /// With tcp_transport_config::security: who may be reached at, and speak
  /// for, an endpoint (see the header comment). Same threading rule as
  /// set_receive_handler(); called on the strand.
  void set_peer_verifier(peer_verifier verifier) {
    if (impl_) impl_->set_verifier(std::move(verifier));
  }

  /// Graceful: see the header comment. `done` runs on the strand.
  void shutdown(duration bound, std::function<void(std::error_code)> done = {}) {
    if (impl_) {
      impl_->shutdown(bound, std::move(done));
    } else if (done) {
      done(errc::shut_down);
    }
  }

  /// Immediate: queued frames are dropped (counted). Idempotent.
  void close() {
    if (impl_) impl_->close();
  }

  tcp_transport_stats stats() const {
    tcp_transport_stats s;
    if (!impl_) return s;
    auto& c = impl_->stats();
    auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.frames_sent = get(c.frames_sent);
    s.frames_received = get(c.frames_received);
    s.dropped_queue_full = get(c.dropped_queue_full);
    s.dropped_unreachable = get(c.dropped_unreachable);
    s.dropped_on_close = get(c.dropped_on_close);
    s.connect_failures = get(c.connect_failures);
    s.connect_timeouts = get(c.connect_timeouts);
    s.connections_opened = get(c.connections_opened);
    s.oversize_frames = get(c.oversize_frames);
    s.bad_hellos = get(c.bad_hellos);
    s.refused_inbound = get(c.refused_inbound);
    s.refused_peer_limit = get(c.refused_peer_limit);
    s.dropped_no_memory = get(c.dropped_no_memory);
    s.handshake_failures = get(c.handshake_failures);
    s.outbound_handshake_failures = get(c.outbound_handshake_failures);
    s.peer_name_mismatches = get(c.peer_name_mismatches);
    s.frames_refused_identity = get(c.frames_refused_identity);
    s.inbound_buffer_bytes = get(c.inbound_buffer_bytes);
    return s;
  }

 private:
  explicit tcp_transport(std::shared_ptr<detail::tcp::impl> p) : impl_(std::move(p)) {}
  std::shared_ptr<detail::tcp::impl> impl_;
};

static_assert(transport<tcp_transport>);

}  // namespace dhtkit
