// The TCP transport's implementation, behind dhtkit::tcp_transport (see
// asio_tcp.hpp for the behaviour it promises): listening, outbound connections
// with their queues, reconnects and backoff ("outbound"), inbound connections
// and frame parsing ("inbound"), and the graceful shutdown that ties them
// together. Everything runs on one strand.
//
// With tcp_transport_config::security set, every connection is wrapped in a
// secure_stream (stream_security.hpp) once TCP is up: the outbound side
// handshakes, asks the peer verifier whether the server's identity belongs at
// the endpoint it dialed, and only then writes its hello; the inbound side
// handshakes before it reads the hello, and asks the verifier about every
// frame (the member at an endpoint may change while a connection lasts).
// Without it the sockets are used directly, as before: no indirection.
//
// One class rather than an outbound and an inbound file: both halves share the
// strand, the closed/shutdown state and the counters, and call into each
// other (close() drops both, the shutdown checks both), so splitting it would
// take out-of-class definitions or base classes calling back into impl.
#pragma once

#include <algorithm>
#include <array>
#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/transport/detail/asio_endpoint.hpp"
#include "dhtkit/transport/detail/callback_slot.hpp"
#include "dhtkit/transport/detail/tcp_counters.hpp"
#include "dhtkit/transport/detail/tcp_framing.hpp"
#include "dhtkit/transport/detail/tcp_peers.hpp"
#include "dhtkit/transport/stream_security.hpp"
#include "dhtkit/transport/tcp_config.hpp"
#include "dhtkit/transport/transport.hpp"

namespace dhtkit::detail::tcp {

class impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor ex, tcp_transport_config cfg)
      : cfg_(std::move(cfg)),
        strand_(asio::make_strand(ex)),
        acceptor_(strand_),
        shutdown_timer_(strand_),
        accept_retry_(strand_) {}

  std::error_code listen() {
    std::error_code ec;
    const auto ep = to_asio<asio::ip::tcp>(cfg_.bind);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return portable_error(ec);
    const auto bound = from_asio(acceptor_.local_endpoint(ec));
    if (ec) return ec;
    local_ = cfg_.advertise ? *cfg_.advertise : bound;
    hello_ = make_hello(local_);
    return {};
  }

  void start() { accept(); }

  const tcp_transport_config& config() const noexcept { return cfg_; }
  const endpoint& local() const noexcept { return local_; }
  const strand_type& strand() const noexcept { return strand_; }
  bool closing() const noexcept { return closing_.load(std::memory_order_acquire); }
  counters& stats() noexcept { return stats_; }

  void set_handler(basic_receive_handler<endpoint> h) { handler_.set(std::move(h)); }
  void set_verifier(peer_verifier v) { verifier_ = std::move(v); }

  // send() from another thread: count the frame as in transit *before*
  // checking for shutdown, so shutdown() (which sets closing_ first and then
  // looks at the count) either sees the frame coming or send() sees the
  // shutdown. Both are sequentially consistent. The bytes in transit (copies
  // posted, not yet queued by the strand) are bounded by send_queue_bytes, or
  // a thread sending faster than the strand runs would grow memory without
  // limit: beyond it, errc::queue_full (counted as dropped_queue_full).
  std::error_code begin_post(std::size_t bytes) {
    posted_.fetch_add(1);
    posted_bytes_.fetch_add(bytes);
    if (closing_.load()) {
      cancel_post(bytes);
      return errc::shut_down;
    }
    if (posted_bytes_.load() > cfg_.send_queue_bytes) {
      cancel_post(bytes);
      counters::bump(stats_.dropped_queue_full);
      return errc::queue_full;
    }
    return {};
  }

  // Undoes begin_post() (shutdown seen, over the bound, or the copy or the
  // post threw). The strand may have read the count in between and seen a
  // frame in transit, so the last one out makes it look again -- or a
  // graceful shutdown would wait for its bound.
  void cancel_post(std::size_t bytes) noexcept {
    posted_bytes_.fetch_sub(bytes);
    if (posted_.fetch_sub(1) == 1 && closing_.load()) {
      try {
        asio::post(strand_, [self = shared_from_this()] { self->transit_done(); });
      } catch (...) {
        // No memory to post even this: the shutdown bound still ends the wait.
      }
    }
  }

  // On the strand: the posted half of send().
  void finish_post(const endpoint& to, frame f) {
    posted_bytes_.fetch_sub(f.size());
    const bool last = posted_.fetch_sub(1) == 1;
    const std::error_code ec = enqueue(to, std::move(f));
    if (ec == errc::shut_down) counters::bump(stats_.dropped_on_close);
    if (ec && shutdown_done_) lossy_ = true;  // send() accepted it; it will not be written
    if (last) {
      transit_done();
    } else {
      check_shutdown();
    }
  }

  // On the strand, when the count of frames in transit may have reached zero:
  // idle connections can now be half-closed, and the shutdown may be over.
  void transit_done() {
    if (closed_) return;
    if (shutdown_done_) {
      std::vector<peer_ptr> all;
      for (auto& [ep, p] : peers_) all.push_back(p);
      for (auto& p : all) pump(p);
    }
    check_shutdown();
  }

  // On the strand.
  std::error_code enqueue(const endpoint& to, frame f) {
    if (closed_) return errc::shut_down;
    auto it = peers_.find(to);
    if (it == peers_.end()) {
      if (peers_.size() >= cfg_.max_peers) {
        counters::bump(stats_.refused_peer_limit);
        return errc::limit_exceeded;
      }
      it = peers_.emplace(to, std::make_shared<out_peer>(strand_, to)).first;
      it->second->backoff = cfg_.backoff_initial;
    }
    out_peer& p = *it->second;
    auto over = [&] {
      return p.queue.size() + 1 > cfg_.send_queue_frames || p.queued_bytes + f.size() > cfg_.send_queue_bytes;
    };
    if (over()) {
      if (cfg_.overflow == overflow_policy::reject) {
        counters::bump(stats_.dropped_queue_full);
        return errc::queue_full;
      }
      while (over() && p.queue.size() > p.in_flight) {
        const auto victim = p.queue.begin() + static_cast<std::ptrdiff_t>(p.in_flight);
        p.queued_bytes -= victim->size();
        p.queue.erase(victim);
        counters::bump(stats_.dropped_queue_full);
      }
      if (over()) {  // everything left is being written right now
        counters::bump(stats_.dropped_queue_full);
        return errc::queue_full;
      }
    }
    p.queued_bytes += f.size();
    p.queue.push_back(std::move(f));
    if (p.st == out_peer::state::idle) {
      connect(it->second);
    } else if (p.st == out_peer::state::connected) {
      pump(it->second);
    }
    return {};
  }

  void shutdown(duration bound, std::function<void(std::error_code)> done) {
    if (closed_ || shutdown_done_) {
      if (done) asio::post(strand_, [done = std::move(done)] { done(errc::shut_down); });
      return;
    }
    closing_.store(true);
    shutdown_done_ = std::move(done);
    if (!shutdown_done_) shutdown_done_ = [](std::error_code) {};
    std::error_code ignored;
    acceptor_.close(ignored);
    shutdown_timer_.expires_after(bound);
    shutdown_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->finish_shutdown(errc::timed_out);
    });
    std::vector<std::shared_ptr<out_peer>> all;
    for (auto& [to, p] : peers_) all.push_back(p);
    for (auto& p : all) {
      if (p->st == out_peer::state::connected) {
        pump(p);
      } else if (p->queue.empty() && p->st == out_peer::state::idle) {
        retire(p);
      }
    }
    check_shutdown();
  }

  void close() {
    closing_.store(true, std::memory_order_release);
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    acceptor_.close(ignored);
    shutdown_timer_.cancel();
    accept_retry_.cancel();
    for (auto& [to, p] : peers_) {
      counters::bump(stats_.dropped_on_close, p->queue.size());
      teardown(*p);
      p->queue.clear();
      p->queued_bytes = 0;
    }
    peers_.clear();
    for (auto& c : inbound_) drop(*c);
    inbound_.clear();
    if (shutdown_done_) {
      auto done = std::move(shutdown_done_);
      shutdown_done_ = nullptr;
      asio::post(strand_, [done = std::move(done)] { done(errc::shut_down); });
    }
  }

 private:
  using peer_ptr = std::shared_ptr<out_peer>;
  using conn_ptr = std::shared_ptr<in_conn>;

  // ---- outbound ----

  void connect(const peer_ptr& p) {
    teardown(*p);
    p->st = out_peer::state::connecting;
    const std::uint64_t gen = p->generation;
    p->timer.expires_after(cfg_.connect_timeout);
    p->timer.async_wait([self = shared_from_this(), p, gen](std::error_code ec) {
      // Closing the socket makes the pending connect complete with an error.
      if (!ec && p->generation == gen && p->st == out_peer::state::connecting) {
        counters::bump(self->stats_.connect_timeouts);
        std::error_code ignored;
        p->socket.close(ignored);
      }
    });
    p->socket.async_connect(to_asio<asio::ip::tcp>(p->to),
                            [self = shared_from_this(), p, gen](std::error_code ec) {
                              if (self->closed_ || p->generation != gen) return;
                              p->timer.cancel();
                              if (ec) {
                                self->connection_failed(p, false);
                                return;
                              }
                              std::error_code ignored;
                              p->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
                              if (self->cfg_.security) {
                                self->handshake(p);
                              } else {
                                self->connected(p);
                              }
                            });
  }

  void connected(const peer_ptr& p) {
    p->st = out_peer::state::connected;
    p->hello_pending = true;
    counters::bump(stats_.connections_opened);
    watch(p);
    pump(p);
  }

  // With security: the client side of the handshake, bounded by
  // handshake_timeout, then the server's identity checked against the
  // endpoint dialed. A failure is a failed connection attempt (backoff,
  // max_connect_attempts), so a peer that cannot authenticate is not hammered.
  void handshake(const peer_ptr& p) {
    try {
      p->secure = cfg_.security->wrap(std::move(p->socket), stream_role::client);
    } catch (const std::exception&) {
      p->secure = nullptr;  // e.g. no memory for the session
    }
    if (!p->secure) {
      counters::bump(stats_.outbound_handshake_failures);
      connection_failed(p, false);
      return;
    }
    p->st = out_peer::state::handshaking;
    const std::uint64_t gen = p->generation;
    p->timer.expires_after(cfg_.handshake_timeout);
    p->timer.async_wait([p, gen](std::error_code ec) {
      // Closing makes the pending handshake complete with an error.
      if (!ec && p->generation == gen && p->st == out_peer::state::handshaking) p->secure->close();
    });
    p->secure->async_handshake([self = shared_from_this(), p, gen](std::error_code ec) {
      if (self->closed_ || p->generation != gen) return;
      p->timer.cancel();
      if (ec) {
        counters::bump(self->stats_.outbound_handshake_failures);
        self->connection_failed(p, false);
        return;
      }
      if (self->verifier_ && !self->verifier_(p->to, p->secure->peer())) {
        counters::bump(self->stats_.peer_name_mismatches);
        self->connection_failed(p, false);
        return;
      }
      self->connected(p);
    });
  }

  // Peers never write on a connection they accepted, so a read on an outbound
  // socket completes only when the peer closes it (or breaks the protocol).
  void watch(const peer_ptr& p) {
    const std::uint64_t gen = p->generation;
    auto done = [self = shared_from_this(), p, gen](std::error_code ec, std::size_t n) {
      if (self->closed_ || p->generation != gen) return;
      if (p->st == out_peer::state::draining && ec == asio::error::eof && n == 0) {
        // A clean end of stream after our half-close: the peer read
        // everything we wrote and closed. (A reset or stray bytes prove
        // nothing: they go through connection_failed.)
        self->teardown(*p);
        self->retire(p);
        self->check_shutdown();
        return;
      }
      self->connection_failed(p, true);
    };
    if (p->secure) {
      p->secure->async_read_some(asio::buffer(p->probe), std::move(done));
    } else {
      p->socket.async_read_some(asio::buffer(p->probe), std::move(done));
    }
  }

  void pump(const peer_ptr& p) {
    if (p->st != out_peer::state::connected || p->writing) return;
    if (p->queue.empty() && !p->hello_pending) {
      if (shutdown_done_ && posted_.load() == 0) {
        // Graceful shutdown: half-close and wait for the peer to close its side.
        if (p->secure) {
          p->secure->shutdown_send();
        } else {
          std::error_code ignored;
          p->socket.shutdown(asio::socket_base::shutdown_send, ignored);
        }
        p->st = out_peer::state::draining;
      }
      return;
    }
    p->gather.clear();
    std::size_t bytes = 0;
    if (p->hello_pending) {
      p->gather.push_back(asio::buffer(hello_));
      bytes += hello_.size();
    }
    std::size_t n = 0;
    while (n < p->queue.size() && n < max_gather_frames &&
           (n == 0 || bytes + p->queue[n].size() <= max_gather_bytes)) {
      p->gather.push_back(asio::buffer(p->queue[n]));
      bytes += p->queue[n].size();
      ++n;
    }
    p->in_flight = n;
    p->writing = true;
    const std::uint64_t gen = p->generation;
    if (p->secure) {
      p->gather_next = 0;
      secure_write(p, gen);
      return;
    }
    // The completion condition runs before every partial write: once the
    // connection has been torn down (and maybe the same socket object reopened
    // for the next one, in the same handler), the rest of this write must not
    // go out on the new connection ahead of its hello.
    asio::async_write(
        p->socket, p->gather,
        [p, gen](const std::error_code& ec, std::size_t) -> std::size_t {
          return ec || p->generation != gen ? 0 : default_write_chunk;
        },
        [self = shared_from_this(), p, gen](std::error_code ec, std::size_t) {
          if (self->closed_ || p->generation != gen) return;
          self->written(p, ec);
        });
  }

  // With security: async_write over the secure stream, which writes some of
  // the front of `gather` per call (a TLS record); the generation check
  // between calls plays the completion condition's part above.
  void secure_write(const peer_ptr& p, std::uint64_t gen) {
    const auto rest = std::span<const asio::const_buffer>(p->gather).subspan(p->gather_next);
    p->secure->async_write_some(rest, [self = shared_from_this(), p, gen](std::error_code ec, std::size_t n) {
      if (self->closed_ || p->generation != gen) return;
      if (ec) {
        self->written(p, ec);
        return;
      }
      while (p->gather_next < p->gather.size()) {
        asio::const_buffer& b = p->gather[p->gather_next];
        const std::size_t k = std::min(n, b.size());
        b += k;
        n -= k;
        if (b.size() != 0) break;
        ++p->gather_next;
      }
      if (p->gather_next == p->gather.size()) {
        self->written(p, {});
      } else {
        self->secure_write(p, gen);
      }
    });
  }

  // A gather write is over (`ec`: it failed part way).
  void written(const peer_ptr& p, std::error_code ec) {
    p->writing = false;
    if (ec) {
      connection_failed(p, true);
      return;
    }
    p->hello_pending = false;
    if (p->in_flight > 0) {
      // Progress: only now is the peer known to be healthy. (Resetting on
      // connect would let a peer that accepts and closes at once make us
      // reconnect in a tight loop.)
      p->failures = 0;
      p->backoff = cfg_.backoff_initial;
      p->unconfirmed = true;
    }
    for (std::size_t i = 0; i < p->in_flight; ++i) {
      p->queued_bytes -= p->queue.front().size();
      p->queue.pop_front();
    }
    counters::bump(stats_.frames_sent, p->in_flight);
    p->in_flight = 0;
    pump(p);
  }

  // Closes the connection; frames stay queued (including any that were being
  // written: they are written again on the next connection).
  void teardown(out_peer& p) {
    ++p.generation;
    std::error_code ignored;
    p.socket.close(ignored);
    if (p.secure) {
      p.secure->close();  // it lives on until its pending operations complete
      p.secure.reset();
    }
    p.timer.cancel();
    p.writing = false;
    p.in_flight = 0;
    p.hello_pending = false;
    p.unconfirmed = false;
    p.st = out_peer::state::idle;
  }

  // Every failure counts towards max_connect_attempts, including a connection
  // lost before it carried any frame; only a completed write resets the count.
  void connection_failed(const peer_ptr& p, bool was_connected) {
    // During a graceful shutdown, frames this connection carried may be lost.
    if (shutdown_done_ && p->unconfirmed) lossy_ = true;
    teardown(*p);
    ++p->failures;
    if (!was_connected) counters::bump(stats_.connect_failures);
    if (p->queue.empty()) {
      retire(p);
      check_shutdown();
      return;
    }
    if (p->failures >= cfg_.max_connect_attempts) {
      if (shutdown_done_) lossy_ = true;
      counters::bump(stats_.dropped_unreachable, p->queue.size());
      p->queue.clear();
      p->queued_bytes = 0;
      retire(p);
      check_shutdown();
      return;
    }
    if (was_connected && p->failures == 1) {  // a working connection broke: try again at once
      connect(p);
      return;
    }
    p->st = out_peer::state::backoff;
    const std::uint64_t gen = p->generation;
    p->timer.expires_after(p->backoff);
    p->backoff = std::min(p->backoff * 2, cfg_.backoff_max);
    p->timer.async_wait([self = shared_from_this(), p, gen](std::error_code ec) {
      if (ec || self->closed_ || p->generation != gen) return;
      self->connect(p);
    });
  }

  void retire(const peer_ptr& p) {
    auto it = peers_.find(p->to);
    if (it != peers_.end() && it->second == p) peers_.erase(it);
  }

  void check_shutdown() {
    if (shutdown_done_ && !closed_ && peers_.empty() && posted_.load() == 0)
      finish_shutdown(lossy_ ? std::make_error_code(std::errc::connection_reset) : std::error_code{});
  }

  void finish_shutdown(std::error_code ec) {
    if (closed_ || !shutdown_done_) return;
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    close();
    done(ec);
  }

  // ---- inbound ----

  void accept() {
    acceptor_.async_accept([self = shared_from_this()](std::error_code ec, asio::ip::tcp::socket s) {
      if (self->closed_ || self->closing()) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // E.g. out of file descriptors: try again a little later rather than spin.
        self->accept_retry_.expires_after(millis(50));
        self->accept_retry_.async_wait([self](std::error_code wec) {
          if (!wec && !self->closed_) self->accept();
        });
        return;
      }
      if (self->inbound_.size() >= self->cfg_.max_inbound_connections) {
        counters::bump(self->stats_.refused_inbound);
        std::error_code ignored;
        s.close(ignored);
      } else {
        self->start_inbound(std::move(s));
      }
      self->accept();
    });
  }

  void start_inbound(asio::ip::tcp::socket s) {
    auto c = std::make_shared<in_conn>(std::move(s), strand_);
    std::error_code ec;
    const auto remote = c->socket.remote_endpoint(ec);
    if (ec) return;
    c->remote = from_asio(remote);
    if (!resize_buffer(*c, std::min(read_buffer_size, std::max(cfg_.max_message_size, hello_size) + 4))) {
      counters::bump(stats_.dropped_no_memory);
      return;  // the socket closes with `c`
    }
    inbound_.insert(c);
    if (cfg_.security) {
      inbound_handshake(c);
      return;
    }
    expect_hello(c);
    read(c);
  }

  void expect_hello(const conn_ptr& c) {
    c->timer.expires_after(cfg_.hello_timeout);
    c->timer.async_wait([self = shared_from_this(), c](std::error_code tec) {
      if (!tec && c->open && !c->from) {
        counters::bump(self->stats_.bad_hellos);
        self->drop(*c);
        self->inbound_.erase(c);
      }
    });
  }

  // With security: the server side of the handshake, bounded by
  // handshake_timeout; then the hello, bounded by hello_timeout. The
  // connection counts against max_inbound_connections meanwhile.
  void inbound_handshake(const conn_ptr& c) {
    try {
      c->secure = cfg_.security->wrap(std::move(c->socket), stream_role::server);
    } catch (const std::exception&) {
      c->secure = nullptr;
    }
    if (!c->secure) {
      reject(*c, stats_.handshake_failures);
      return;
    }
    c->timer.expires_after(cfg_.handshake_timeout);
    c->timer.async_wait([self = shared_from_this(), c](std::error_code tec) {
      if (!tec && c->open && !c->handshaken) {
        counters::bump(self->stats_.handshake_failures);
        self->drop(*c);
        self->inbound_.erase(c);
      }
    });
    c->secure->async_handshake([self = shared_from_this(), c](std::error_code ec) {
      if (!c->open || self->closed_) return;
      if (ec) {
        counters::bump(self->stats_.handshake_failures);
        self->drop(*c);
        self->inbound_.erase(c);
        return;
      }
      c->handshaken = true;
      self->expect_hello(c);
      self->read(c);
    });
  }

  void read(const conn_ptr& c) {
    if (c->end == c->buf.size()) {
      // The buffer ends in an incomplete frame: make room at the front first.
      std::memmove(c->buf.data(), c->buf.data() + c->begin, c->end - c->begin);
      c->end -= c->begin;
      c->begin = 0;
      if (c->end == c->buf.size() && !grow(*c)) {
        reject(*c, stats_.dropped_no_memory);
        return;
      }
    }
    auto done = [self = shared_from_this(), c](std::error_code ec, std::size_t n) {
      c->reading = false;
      if (!c->open || self->closed_) {
        self->release_buffer(*c);  // drop() left it to this read (secure streams)
        return;
      }
      if (ec) {  // EOF or error: the peer is gone or done
        self->drop(*c);
        self->inbound_.erase(c);
        return;
      }
      c->end += n;
      if (self->parse(*c)) self->read(c);
    };
    const asio::mutable_buffer into(c->buf.data() + c->end, c->buf.size() - c->end);
    if (c->secure) {
      c->reading = true;
      c->secure->async_read_some(into, std::move(done));
    } else {
      c->socket.async_read_some(into, std::move(done));
    }
  }

  // Delivers every complete frame in the buffer; false if the connection was dropped.
  bool parse(in_conn& c) {
    while (c.end - c.begin >= 4) {
      const std::size_t len = load_le32(c.buf.data() + c.begin);
      if (!c.from && len != hello_size) return reject(c, stats_.bad_hellos);
      if (c.from && len > cfg_.max_message_size) return reject(c, stats_.oversize_frames);
      // Incomplete: read() makes room when the buffer is full.
      if (c.end - c.begin - 4 < len) return true;
      const std::span<const std::byte> body(c.buf.data() + c.begin + 4, len);
      c.begin += 4 + len;
      if (!c.from) {
        c.from = parse_hello(body, c.remote);
        if (!c.from) return reject(c, stats_.bad_hellos);
        c.timer.cancel();
        continue;
      }
      if (c.secure && verifier_ && !verifier_(*c.from, c.secure->peer())) {
        counters::bump(stats_.frames_refused_identity);
        continue;
      }
      counters::bump(stats_.frames_received);
      handler_.call(*c.from, body);
      if (closed_ || !c.open) return false;
    }
    if (c.begin == c.end) {
      c.begin = c.end = 0;
      if (c.buf.capacity() > shrink_above) {
        const std::size_t before = c.buf.capacity();
        c.buf.resize(read_buffer_size);
        c.buf.shrink_to_fit();
        stats_.resized(before, c.buf.capacity());
      }
    }
    return true;
  }

  bool reject(in_conn& c, std::atomic<std::uint64_t>& counter) {
    counters::bump(counter);
    drop(c);
    for (auto it = inbound_.begin(); it != inbound_.end(); ++it) {
      if (it->get() == &c) {
        inbound_.erase(it);
        break;
      }
    }
    return false;
  }

  void drop(in_conn& c) {
    c.open = false;
    std::error_code ignored;
    c.socket.close(ignored);  // no read into `buf` can run after this
    if (c.secure) c.secure->close();
    c.timer.cancel();
    if (!c.reading) release_buffer(c);
  }

  void release_buffer(in_conn& c) {
    const std::size_t before = c.buf.capacity();
    std::vector<std::byte>().swap(c.buf);
    c.begin = c.end = 0;
    stats_.resized(before, 0);
  }

  // Called with a full buffer that starts with an incomplete frame (parse()
  // consumed every complete one). Grows to at most that frame's size, by at
  // least a read chunk and at most doubling: memory follows the bytes that
  // arrived, not the length the peer announced.
  bool grow(in_conn& c) {
    std::size_t want = c.buf.size() + read_buffer_size;
    if (c.end >= 4) want = 4 + static_cast<std::size_t>(load_le32(c.buf.data()));
    return resize_buffer(c, std::min(want, std::max(2 * c.buf.size(), c.end + read_buffer_size)));
  }

  // False if the memory is not there (the connection is then dropped rather
  // than letting std::bad_alloc escape the executor).
  bool resize_buffer(in_conn& c, std::size_t n) {
    const std::size_t before = c.buf.capacity();
    try {
      c.buf.resize(n);
    } catch (const std::bad_alloc&) {
      return false;
    }
    stats_.resized(before, c.buf.capacity());
    return true;
  }

  tcp_transport_config cfg_;
  strand_type strand_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer shutdown_timer_;
  asio::steady_timer accept_retry_;
  endpoint local_;
  std::array<std::byte, 4 + hello_size> hello_{};
  dhtkit::detail::callback_slot<void(const endpoint&, std::span<const std::byte>)> handler_;
  peer_verifier verifier_;  // with security: whose identity may speak for an endpoint
  std::unordered_map<endpoint, peer_ptr> peers_;
  std::unordered_set<conn_ptr> inbound_;
  std::function<void(std::error_code)> shutdown_done_;
  std::atomic<bool> closing_{false};          // read by send() on any thread
  std::atomic<std::size_t> posted_{0};        // frames accepted by send() off the strand, not yet queued
  std::atomic<std::size_t> posted_bytes_{0};  // and their bytes, length prefixes included
  bool closed_ = false;
  bool lossy_ = false;  // a frame may have been lost during the graceful shutdown
  counters stats_;
};

}  // namespace dhtkit::detail::tcp
