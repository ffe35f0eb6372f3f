/// @file
/// A dhtkit transport over UDP, on Asio: one datagram per message, for gossip
/// (SWIM probes, membership deltas) where a lost message is cheaper than a
/// connection and every message fits a datagram.
///
/// Messages are limited to max_message_size (default 1400 bytes: fits an
/// Ethernet MTU with room for IP/UDP headers and tunnels, so datagrams are not
/// fragmented). send() refuses a larger one with errc::message_too_large; the
/// receive buffer is one byte larger than the limit, so an oversized datagram
/// from the network is recognised (not silently truncated) and dropped.
///
/// With a cipher (udp_transport_config::cipher, e.g. dhtkit::keyring), every
/// datagram is sealed in send() and opened before the receive handler sees
/// it; one that does not open is dropped and counted
/// (udp_transport_stats::unauthenticated_received). max_message_size is then
/// the sealed datagram's limit, and a message may be cipher->overhead() bytes
/// smaller (max_message_size() says how large).
/// The `from` endpoint is the datagram's source address, which is the sender's
/// bound endpoint: a udp_transport sends from the socket it receives on.
/// Bound to the IPv6 wildcard [::], the socket is dual-stack (IPV6_V6ONLY is
/// turned off where the system allows): IPv4 peers arrive as plain IPv4
/// endpoints and send() reaches them through their v4-mapped address. Bound to
/// any other IPv6 address it reaches only IPv6 peers, and an IPv4 socket only
/// IPv4 peers (send() fails with errc::unknown_peer at once).
///
/// Threading: everything runs on one strand of the executor given to open();
/// there is no mutex. send() and stats() may be called from any thread. On the
/// strand, send() writes the datagram to the socket at once (no copy) when the
/// socket can take it, and otherwise queues a copy in a bounded queue
/// (send_queue_datagrams; beyond it errc::queue_full); from another thread it
/// copies the datagram and posts it to the strand, where an overflow is only
/// counted; at most send_queue_datagrams such copies are in transit to the
/// strand at once (beyond it errc::queue_full), so a thread sending faster
/// than the strand runs cannot grow memory without limit. set_receive_handler() and close() must be called on
/// the strand or while no thread runs the executor. close() drops queued datagrams (counted). A receive
/// handler may call send() and close(), and may replace itself.
///
/// @code
/// asio::io_context io;
/// auto a = dhtkit::udp_transport::open(io.get_executor(), {});
/// auto b = dhtkit::udp_transport::open(io.get_executor(), {});
/// b->set_receive_handler([](const dhtkit::endpoint& from, std::span<const std::byte> msg) {
///   std::printf("%zu bytes from %s\n", msg.size(), from.to_string().c_str());
/// });
/// const std::byte ping[] = {std::byte{1}};
/// std::error_code ec = a->send(b->local_endpoint(), ping);
/// io.run_for(std::chrono::milliseconds(100));
/// @endcode
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/transport/datagram_cipher.hpp"
#include "dhtkit/transport/detail/asio_endpoint.hpp"
#include "dhtkit/transport/detail/callback_slot.hpp"
#include "dhtkit/transport/transport.hpp"

namespace dhtkit {

/// Configuration of a udp_transport.
struct udp_transport_config {
  /// Where to bind; also the source address of every datagram sent. Port 0
  /// picks an ephemeral port (see local_endpoint()). [::] is dual-stack.
  endpoint bind = endpoint::loopback_v4(0);
  /// Largest datagram payload accepted by send() and delivered on receive;
  /// 1400 bytes keeps datagrams under a 1500-byte MTU. At most 65507 (the IPv4
  /// UDP limit).
  std::size_t max_message_size = 1400;
  /// Datagrams waiting for the socket to become writable; beyond it send()
  /// fails with errc::queue_full (a kernel buffer full of datagrams already
  /// means the network cannot keep up).
  std::size_t send_queue_datagrams = 1024;
  /// SO_RCVBUF / SO_SNDBUF request in bytes; 0 keeps the system default. A
  /// larger receive buffer loses fewer datagrams in bursts.
  std::size_t socket_buffer_bytes = 0;
  /// Seals every datagram sent and opens every one received (see the file's
  /// comment). Null, the default: datagrams travel in clear, and the
  /// receive handler gets whatever anyone sent to the port.
  std::shared_ptr<const datagram_cipher> cipher{};

  void validate() const {
    auto fail = [](const char* what) {
      throw std::invalid_argument(std::string("dhtkit::udp_transport_config: ") + what);
    };
    if (max_message_size == 0 || max_message_size > 65507) fail("max_message_size must be in [1, 65507]");
    if (send_queue_datagrams == 0) fail("send_queue_datagrams must be at least 1");
    if (socket_buffer_bytes > (std::size_t{1} << 30)) fail("socket_buffer_bytes must be at most 1 GiB");
    if (cipher && cipher->overhead() >= max_message_size)
      fail("max_message_size must exceed the cipher's overhead (a sealed datagram holds the message too)");
  }

  /// The largest message send() takes: max_message_size less what the
  /// cipher adds to each datagram.
  std::size_t max_payload_size() const noexcept {
    return cipher ? max_message_size - cipher->overhead() : max_message_size;
  }
};

/// The UDP transport's counters.
///
/// Counters, readable from any thread.
struct udp_transport_stats {
  std::uint64_t datagrams_sent = 0;      ///< handed to the kernel
  std::uint64_t datagrams_received = 0;  ///< handed to the receive handler
  std::uint64_t dropped_queue_full = 0;  ///< refused because the send queue was full
  std::uint64_t send_errors = 0;  ///< the kernel refused a datagram (e.g. no route), or the cipher failed
  std::uint64_t oversize_received = 0;  ///< inbound datagrams over max_message_size, dropped
  std::uint64_t dropped_on_close = 0;   ///< still queued when the transport closed
  /// Inbound datagrams the cipher did not open (wrong key, altered, cut
  /// short, plaintext), dropped; always 0 without a cipher.
  std::uint64_t unauthenticated_received = 0;
};

namespace detail::udp {

using strand_type = asio::strand<asio::any_io_executor>;

struct counters {
  std::atomic<std::uint64_t> datagrams_sent{0}, datagrams_received{0}, dropped_queue_full{0}, send_errors{0},
      oversize_received{0}, dropped_on_close{0}, unauthenticated_received{0};
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

struct pending {
  asio::ip::udp::endpoint to;
  std::vector<std::byte> bytes;
};

class impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor ex, udp_transport_config cfg)
      : cfg_(std::move(cfg)), strand_(asio::make_strand(ex)), socket_(strand_) {}

  std::error_code bind() {
    std::error_code ec;
    const auto ep = to_asio<asio::ip::udp>(cfg_.bind);
    socket_.open(ep.protocol(), ec);
    if (!ec && cfg_.bind.is_v6() && cfg_.bind.is_unspecified()) {
      // Best effort: where the system forbids it, IPv4 peers are simply unreachable.
      std::error_code ignored;
      socket_.set_option(asio::ip::v6_only(false), ignored);
    }
    if (!ec && cfg_.socket_buffer_bytes != 0) {
      const int size = static_cast<int>(cfg_.socket_buffer_bytes);
      // Best effort: the kernel caps these at its configured maximum.
      std::error_code ignored;
      socket_.set_option(asio::socket_base::receive_buffer_size(size), ignored);
      socket_.set_option(asio::socket_base::send_buffer_size(size), ignored);
    }
    if (!ec) socket_.bind(ep, ec);
    if (!ec) socket_.non_blocking(true, ec);
    if (ec) return portable_error(ec);
    local_ = from_asio(socket_.local_endpoint(ec));
    if (ec) return ec;
    buf_.resize(cfg_.max_message_size + 1);
    return {};
  }

  void start() { receive(); }

  const udp_transport_config& config() const noexcept { return cfg_; }
  const endpoint& local() const noexcept { return local_; }
  const strand_type& strand() const noexcept { return strand_; }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Off the strand: reserve a place for one posted copy; end_post() gives it back.
  bool begin_post() {
    if (posted_.fetch_add(1) >= cfg_.send_queue_datagrams) {
      end_post();
      counters::bump(stats_.dropped_queue_full);
      return false;
    }
    return true;
  }
  void end_post() noexcept { posted_.fetch_sub(1); }
  counters& stats() noexcept { return stats_; }
  void set_handler(basic_receive_handler<endpoint> h) { handler_.set(std::move(h)); }

  // On the strand.
  std::error_code send_now(const asio::ip::udp::endpoint& to, std::span<const std::byte> msg) {
    if (closed()) return errc::shut_down;
    if (queue_.empty()) {
      std::error_code ec;
      socket_.send_to(asio::buffer(msg.data(), msg.size()), to, 0, ec);
      if (!ec) {
        counters::bump(stats_.datagrams_sent);
        return {};
      }
      if (ec != asio::error::would_block && ec != asio::error::try_again) {
        counters::bump(stats_.send_errors);
        return {};  // like a datagram lost on the way: the contract allows it
      }
    }
    return enqueue(pending{to, std::vector<std::byte>(msg.begin(), msg.end())});
  }

  std::error_code enqueue(pending p) {
    if (closed()) return errc::shut_down;
    if (queue_.size() >= cfg_.send_queue_datagrams) {
      counters::bump(stats_.dropped_queue_full);
      return errc::queue_full;
    }
    queue_.push_back(std::move(p));
    if (queue_.size() == 1 && !flushing_) {
      // Something may already have freed up the socket; otherwise wait for it.
      flush();
    }
    return {};
  }

  void close() {
    if (closed_.exchange(true, std::memory_order_acq_rel)) return;
    counters::bump(stats_.dropped_on_close, queue_.size());
    queue_.clear();
    std::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void flush() {
    while (!queue_.empty()) {
      std::error_code ec;
      socket_.send_to(asio::buffer(queue_.front().bytes), queue_.front().to, 0, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        flushing_ = true;
        socket_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](std::error_code wec) {
          self->flushing_ = false;
          if (!wec && !self->closed()) self->flush();
        });
        return;
      }
      counters::bump(ec ? stats_.send_errors : stats_.datagrams_sent);
      queue_.pop_front();
    }
  }

  void receive() {
    socket_.async_receive_from(asio::buffer(buf_), sender_,
                               [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                 if (self->closed()) return;
                                 if (ec == asio::error::operation_aborted) return;
                                 // Other errors (an ICMP "port unreachable" reported on a later receive,
                                 // ...) concern one datagram, not the socket: keep receiving.
                                 if (!ec) self->deliver(n);
                                 if (!self->closed()) self->receive();
                               });
  }

  void deliver(std::size_t n) {
    if (n > cfg_.max_message_size) {
      counters::bump(stats_.oversize_received);
      return;
    }
    std::span<const std::byte> message(buf_.data(), n);
    if (cfg_.cipher) {
      // Before anything parses it: a datagram from outside the keyring is
      // not even counted as received.
      if (cfg_.cipher->open(message, opened_)) {
        counters::bump(stats_.unauthenticated_received);
        return;
      }
      message = opened_;
    }
    counters::bump(stats_.datagrams_received);
    handler_.call(from_asio(sender_), message);
  }

  udp_transport_config cfg_;
  strand_type strand_;
  asio::ip::udp::socket socket_;
  endpoint local_;
  std::vector<std::byte> buf_;
  std::vector<std::byte> opened_;  // buf_'s datagram opened by the cipher; reused
  asio::ip::udp::endpoint sender_;
  dhtkit::detail::callback_slot<void(const endpoint&, std::span<const std::byte>)> handler_;
  std::deque<pending> queue_;
  bool flushing_ = false;
  std::atomic<bool> closed_{false};     // read by send() on any thread
  std::atomic<std::size_t> posted_{0};  // copies posted by send() off the strand, not yet taken
  counters stats_;
};

}  // namespace detail::udp

/// A dhtkit::transport over UDP on Asio: one datagram per message (see asio_udp.hpp).
class udp_transport {
 public:
  using endpoint_type = endpoint;

  /// Binds; the error if that fails. Throws std::invalid_argument for an
  /// invalid configuration.
  static result<udp_transport> open(asio::any_io_executor ex, udp_transport_config cfg = {}) {
    cfg.validate();
    auto p = std::make_shared<detail::udp::impl>(std::move(ex), std::move(cfg));
    if (std::error_code ec = p->bind()) return ec;
    p->start();
    return udp_transport(std::move(p));
  }

  udp_transport(udp_transport&&) noexcept = default;
  udp_transport& operator=(udp_transport&& other) noexcept {
    if (this != &other) {
      close();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  udp_transport(const udp_transport&) = delete;
  udp_transport& operator=(const udp_transport&) = delete;
  ~udp_transport() { close(); }

  endpoint local_endpoint() const { return impl_ ? impl_->local() : endpoint{}; }
  /// The largest message send() takes (with a cipher, its overhead less
  /// than config().max_message_size, the datagram's limit).
  std::size_t max_message_size() const { return impl_ ? impl_->config().max_payload_size() : 0; }
  /// Precondition for config() and get_executor(): the transport has not been
  /// moved from (every other member is safe on a moved-from transport).
  const udp_transport_config& config() const {
    assert(impl_ && "config() on a moved-from udp_transport");
    return impl_->config();
  }
  detail::udp::strand_type get_executor() const {
    assert(impl_ && "get_executor() on a moved-from udp_transport");
    return impl_->strand();
  }

  std::error_code send(const endpoint& to, std::span<const std::byte> message) {
    if (!impl_ || impl_->closed()) return errc::shut_down;
    if (message.size() > impl_->config().max_payload_size()) return errc::message_too_large;
    if (to.port == 0 || to.is_unspecified()) return errc::unknown_peer;
    const endpoint& local = impl_->local();
    asio::ip::udp::endpoint dest;
    if (to.family == local.family) {
      dest = detail::to_asio<asio::ip::udp>(to);
    } else if (local.is_v6() && local.is_unspecified()) {
      // A dual-stack socket: an IPv4 peer (as from_asio names it) is reached
      // through its v4-mapped address.
      dest = detail::to_asio_v4_mapped<asio::ip::udp>(to);
    } else {
      // An IPv4 socket cannot reach an IPv6 peer, nor a socket bound to one
      // IPv6 address an IPv4 peer: known at once.
      return errc::unknown_peer;
    }
    std::vector<std::byte> sealed;
    if (const auto& cipher = impl_->config().cipher) {
      // Sealed here, on the caller's thread: the cipher synchronizes itself,
      // and the strand does not pay for another thread's encryption.
      if (std::error_code ec = cipher->seal(message, sealed)) {
        detail::udp::counters::bump(impl_->stats().send_errors);
        return ec;
      }
      message = sealed;
    }
    if (impl_->strand().running_in_this_thread()) return impl_->send_now(dest, message);
    if (!impl_->begin_post()) return errc::queue_full;
    // If the copy or the post throws (std::bad_alloc), give the place back.
    struct undo_post {
      detail::udp::impl* p;
      ~undo_post() {
        if (p) p->end_post();
      }
    } guard{impl_.get()};
    detail::udp::pending d{
        dest, sealed.empty() ? std::vector<std::byte>(message.begin(), message.end()) : std::move(sealed)};
    asio::post(impl_->strand(), [p = impl_, d = std::move(d)]() mutable {
      p->end_post();
      (void)p->enqueue(std::move(d));
    });
    guard.p = nullptr;
    return {};
  }

  void set_receive_handler(basic_receive_handler<endpoint> handler) {
    if (impl_) impl_->set_handler(std::move(handler));
  }

  void close() {
    if (impl_) impl_->close();
  }

  udp_transport_stats stats() const {
    udp_transport_stats s;
    if (!impl_) return s;
    auto& c = impl_->stats();
    auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.datagrams_sent = get(c.datagrams_sent);
    s.datagrams_received = get(c.datagrams_received);
    s.dropped_queue_full = get(c.dropped_queue_full);
    s.send_errors = get(c.send_errors);
    s.oversize_received = get(c.oversize_received);
    s.dropped_on_close = get(c.dropped_on_close);
    s.unauthenticated_received = get(c.unauthenticated_received);
    return s;
  }

 private:
  explicit udp_transport(std::shared_ptr<detail::udp::impl> p) : impl_(std::move(p)) {}
  std::shared_ptr<detail::udp::impl> impl_;
};

static_assert(transport<udp_transport>);

}  // namespace dhtkit
