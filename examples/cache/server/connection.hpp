// One client connection: bytes from the socket into a protocol `session`, the
// session's replies back to the socket.
//
//   auto c = std::make_shared<connection>(std::move(socket), ctx, shared);
//   asio::post(worker_io, [c] { c->start(); });
//
// Transport: basic_connection is a template on how bytes move, the socket
// itself (plain_transport; `connection`) or TLS over it (tls_transport, with
// -Z), so the plain path has no indirection at all. A TLS connection first
// runs its handshake, bounded in time (client_tls::handshake_timeout); one
// that fails or times out is counted (ssl_handshake_errors) and closed.
// Everything after the handshake is the same code for both.
//
// Threading: a connection belongs to one worker's io_context, which exactly one
// thread runs (see server.hpp), so its handlers never run concurrently and it
// needs no strand and no lock.
//
// Memory: what an idle or slow client can pin is bounded.
//   - Reads wait for readiness (async_wait) and then read into the worker's
//     one read buffer, shared by every connection of that thread, straight
//     into the session (whose own input buffer is bounded: input_room()); an
//     idle connection holds no read buffer, as in memcached.
//   - A connection is read-process-write: while replies wait to be written
//     (the client does not read), nothing more is read or processed, so the
//     output never grows past what one process() call appends (the session
//     stops at max_output and says output_full). A large output buffer is
//     given back once written.
//   - In a cluster, a request the session defers (session_status::deferred)
//     takes a reply slot and goes to the cluster; replies are written in
//     request order, so replies after a slot still waiting are held. At most
//     max_in_flight requests wait per connection, and once the held replies
//     reach max_output nothing more is processed (nor read) until replies
//     come back: what a connection holds is then bounded by max_output, plus
//     one process() call's output, plus max_in_flight replies of one item each. An idle connection keeps at
//     most 16 KiB in each of its input, value and output buffers (parser_limits::retained_capacity,
//     keep_output_capacity).
//   - With --idle-timeout, a connection that moved no byte either way for that
//     long is closed (a client that stops reading its replies included).
//   - --request-timeout (30 s by default) closes a connection whose request
//     is still incomplete that long after the server began waiting for its
//     rest: a client trickling a byte a second (slowloris) moves bytes, so the
//     idle timeout never fires, but it cannot hold a slot past this bound. The
//     clock starts when the server waits to read with part of a request
//     buffered, and starts again after the server waited to write (then the
//     client, not the server, was the one waiting).
// Fairness: one readiness event reads at most max_reads_per_event times before
// the connection waits its turn again, so a pipelining client cannot starve
// the others on its thread (memcached's -R).
#pragma once

#include <algorithm>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "protocol/session.hpp"
#include "server/log.hpp"
#include "server/plain_transport.hpp"

namespace dhtkit_cache {

// What the connections of one worker thread share.
struct worker_shared {
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);
  // Per-command counters and latencies; this worker's thread is their only
  // writer. Measured only with --metrics-port (measure_commands).
  command_metrics metrics;
  bool measure_commands = false;
};

template <class Transport>
class basic_connection : public std::enable_shared_from_this<basic_connection<Transport>> {
 public:
  static constexpr std::size_t max_output = 1 << 20;             // session's output bound per process()
  static constexpr std::size_t keep_output_capacity = 16 << 10;  // larger buffers are freed once written
  static constexpr int max_reads_per_event = 4;
  static constexpr std::size_t max_in_flight = 128;  // deferred requests waiting for the cluster

  // transport_args: what the transport needs beside the socket (TLS: its client_tls).
  template <class... TransportArgs>
  basic_connection(asio::ip::tcp::socket socket, server_context& ctx, worker_shared& shared,
                   TransportArgs&&... transport_args)
      : transport_(std::move(socket), std::forward<TransportArgs>(transport_args)...),
        executor_(transport_.socket().get_executor()),
        ctx_(ctx),
        shared_(shared),
        session_(ctx, max_output, {}, shared.measure_commands ? &shared.metrics : nullptr),
        idle_timer_(transport_.socket().get_executor()),
        request_timer_(transport_.socket().get_executor()) {
    // Counted here and uncounted in the destructor, so the count cannot drift
    // whatever fails in between.
    ctx_.counters.curr_connections.fetch_add(1, std::memory_order_relaxed);
    ctx_.counters.total_connections.fetch_add(1, std::memory_order_relaxed);
  }

  basic_connection(const basic_connection&) = delete;
  basic_connection& operator=(const basic_connection&) = delete;

  ~basic_connection() {
    ctx_.counters.curr_connections.fetch_sub(1, std::memory_order_relaxed);
    log_line(ctx_.verbosity, log_level::debug, "connection %s closed", peer_.c_str());
  }

  // Call on the connection's executor (the accepting thread posts it there).
  void start() {
    auto& socket = transport_.socket();
    std::error_code ec;
    socket.non_blocking(true, ec);
    if (!ec) socket.set_option(asio::ip::tcp::no_delay(true), ec);
    const auto remote = socket.remote_endpoint(ec);
    if (!ec) peer_ = remote.address().to_string() + ":" + std::to_string(remote.port());
    log_line(ctx_.verbosity, log_level::debug, "connection %s opened", peer_.c_str());
    last_activity_ = std::chrono::steady_clock::now();
    if constexpr (Transport::handshakes) {
      handshaking_ = true;
      arm_handshake_timer();
      handshake();
    } else {
      begin();
    }
  }

  // Closes now (on the connection's executor); pending handlers then find it closed.
  void close() {
    if (closed_) return;
    closed_ = true;
    transport_.close();
    idle_timer_.cancel();
    request_timer_.cancel();
    slots_.clear();
  }

 private:
  // A reply in request order: bytes ready to write, or a deferred request's
  // reply still to come.
  struct reply_slot {
    std::string bytes{};
    bool ready = false;
    bool strip_end = false;  // a multiget key's reply: its END is the session's
    bool noreply = false;    // the client asked for no reply
  };

  // The session's first read, once the connection is established.
  void begin() {
    if (ctx_.settings.idle_timeout_s > 0) arm_idle_timer(std::chrono::seconds(ctx_.settings.idle_timeout_s));
    reads_left_ = max_reads_per_event;
    pump();
  }

  // TLS: handshake steps until done, each waiting for the readiness it asked for.
  void handshake() {
    std::string why;
    const auto step = transport_.handshake(why);
    switch (step) {
      case Transport::handshake_result::done:
        handshaking_ = false;
        idle_timer_.cancel();  // the handshake deadline; begin() arms the idle timeout
        last_activity_ = std::chrono::steady_clock::now();
        log_line(ctx_.verbosity, log_level::debug, "connection %s: TLS established", peer_.c_str());
        return begin();
      case Transport::handshake_result::failed:
        return handshake_failed(why.c_str());
      case Transport::handshake_result::want_read:
      case Transport::handshake_result::want_write:
        break;
    }
    transport_.async_wait(step, [self = this->shared_from_this()](std::error_code ec) {
      if (self->closed_) return;
      if (ec) return self->close();
      self->handshake();
    });
  }

  void arm_handshake_timer() {
    idle_timer_.expires_after(transport_.handshake_timeout());
    idle_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
      if (ec || self->closed_ || !self->handshaking_) return;
      self->handshake_failed("no TLS handshake in time");
    });
  }

  void handshake_failed(const char* why) {
    ctx_.counters.ssl_handshake_errors.fetch_add(1, std::memory_order_relaxed);
    log_line(ctx_.verbosity, log_level::warning, "connection %s: TLS handshake failed: %s", peer_.c_str(),
             why);
    close();
  }

  void wait_readable() {
    read_armed_ = true;
    transport_.async_wait_readable([self = this->shared_from_this()](std::error_code ec) {
      self->read_armed_ = false;
      if (ec || self->closed_) return self->close();
      self->reads_left_ = max_reads_per_event;
      self->pump();
    });
  }

  void wait_writable() {
    write_armed_ = true;
    partial_since_.reset();  // the server waits for the client to read: not the client's delay
    transport_.async_wait_writable([self = this->shared_from_this()](std::error_code ec) {
      self->write_armed_ = false;
      if (ec || self->closed_) return self->close();
      self->pump();
    });
  }

  // Everything a connection does, after any event (readable, writable, a
  // deferred reply back): write what is ready, run the session while it has
  // work and the bounds allow, read when it needs input.
  void pump() {
    while (!closed_) {
      if (!flush()) return;  // a write is pending (or the connection closed)
      // flush_all is a barrier, as on one memcached that runs a connection's
      // commands in order: it goes out once every earlier request has its
      // reply, and nothing after it goes out before its own reply.
      if (barrier_) return;
      if (status_ == session_status::close) {
        // quit or shutdown: after the replies still due are written.
        if (slots_.empty()) close();
        return;
      }
      if (status_ != session_status::need_input) {
        // Resumed by complete() once replies come back.
        if (waiting_ >= max_in_flight || held_bytes_ >= max_output) return;
        run_session_once();
        continue;
      }
      if (eof_) {
        // The client sent all it will (it may still read): its last
        // replies go out before the connection closes.
        if (slots_.empty()) close();
        return;
      }
      track_partial_request();
      if (read_armed_) return;
      if (reads_left_ == 0) return wait_readable();
      if (!read_once()) return;
    }
  }

  // One process() call; its output and a deferred request take their places.
  void run_session_once() {
    if (slots_.empty()) {
      status_ = session_.process(out_);  // out_ is empty here: flush() wrote it all
    } else {
      std::string more;
      status_ = session_.process(more);
      if (!more.empty()) {
        if (!slots_.back().ready) slots_.push_back(reply_slot{{}, true, false, false});
        held_bytes_ += more.size();
        slots_.back().bytes.append(more);
      }
    }
    if (status_ == session_status::deferred) dispatch(session_.take_deferred());
  }

  void dispatch(deferred_request request) {
    if (ctx_.cluster == nullptr) return close();  // cannot happen: only a cluster session defers
    const std::uint64_t seq = first_seq_ + slots_.size();
    slots_.push_back(reply_slot{{}, false, request.strip_end, request.noreply});
    if (request.what == deferred_request::kind::flush_all) {
      barrier_ = true;
      barrier_seq_ = seq;
      if (waiting_ > 0) {
        held_flush_ = std::move(request);  // sent by complete() when the last earlier reply is in
        return;
      }
    }
    send(std::move(request), seq);
  }

  void send(deferred_request request, std::uint64_t seq) {
    ++waiting_;
    // done may run on any thread, even before dispatch returns: the reply is
    // posted back to this connection's thread, which owns the slots.
    ctx_.cluster->dispatch(std::move(request), [self = this->shared_from_this(), seq](std::string reply) {
      asio::post(self->executor_,
                 [self, seq, reply = std::move(reply)]() mutable { self->complete(seq, std::move(reply)); });
    });
  }

  void complete(std::uint64_t seq, std::string reply) {
    if (closed_) return;  // the client left: the reply has nowhere to go
    reply_slot& slot = slots_[static_cast<std::size_t>(seq - first_seq_)];
    constexpr std::string_view end = "END\r\n";
    if (slot.noreply) reply.clear();
    if (slot.strip_end && std::string_view(reply).ends_with(end)) reply.resize(reply.size() - end.size());
    slot.bytes = std::move(reply);
    slot.ready = true;
    held_bytes_ += slot.bytes.size();
    --waiting_;
    if (barrier_ && seq == barrier_seq_) barrier_ = false;
    if (held_flush_ && waiting_ == 0) {
      deferred_request flush = std::move(*held_flush_);
      held_flush_.reset();
      send(std::move(flush), barrier_seq_);
    }
    pump();
  }

  // Reads what is there (non-blocking) into the session. False: nothing to
  // do until an event (a wait is armed, or the connection closed).
  bool read_once() {
    auto& buffer = shared_.read_buffer;
    const std::size_t room = std::min(session_.input_room(), buffer.size());
    if (room == 0) {
      // The session takes no more input yet has no reply to give: it should
      // never happen; closing beats waiting forever.
      log_line(ctx_.verbosity, log_level::warning, "connection %s: input full, closing", peer_.c_str());
      close();
      return false;
    }
    std::error_code ec;
    const std::size_t n = transport_.read_some(buffer.data(), room, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      wait_readable();
      return false;
    }
    if (ec == asio::error::eof) {
      eof_ = true;
      return true;
    }
    if (ec) {
      close();  // a reset
      return false;
    }
    ctx_.counters.bytes_read.fetch_add(n, std::memory_order_relaxed);
    last_activity_ = std::chrono::steady_clock::now();
    session_.receive(std::string_view(buffer.data(), n));
    status_ = session_status::output_full;  // i.e. process() has work
    // A short read means the socket is drained: wait instead of a read that
    // would only say would_block. A full one reads again, up to the fairness bound.
    reads_left_ = n < room ? 0 : reads_left_ - 1;
    return true;
  }

  // Writes the ready replies as far as the socket takes them; true once all
  // of them are written (up to the first reply still to come). Otherwise a
  // wait for writability is pending (or the connection closed).
  bool flush() {
    if (write_armed_) return false;
    while (!slots_.empty() && slots_.front().ready) {
      held_bytes_ -= slots_.front().bytes.size();
      if (out_.empty()) {
        out_.swap(slots_.front().bytes);
      } else {
        out_.append(slots_.front().bytes);
      }
      slots_.pop_front();
      ++first_seq_;
    }
    while (out_offset_ < out_.size()) {
      std::error_code ec;
      const std::size_t n = transport_.write_some(out_.data() + out_offset_, out_.size() - out_offset_, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        wait_writable();
        return false;
      }
      if (ec) {
        close();
        return false;
      }
      out_offset_ += n;
      ctx_.counters.bytes_written.fetch_add(n, std::memory_order_relaxed);
      last_activity_ = std::chrono::steady_clock::now();
    }
    out_.clear();
    out_offset_ = 0;
    if (out_.capacity() > keep_output_capacity) std::string().swap(out_);
    return true;
  }

  // The server is about to wait for input: a request begun and not whole
  // starts (or keeps) the --request-timeout clock; a request boundary stops it.
  void track_partial_request() {
    if (!session_.mid_request()) {
      partial_since_.reset();
      return;
    }
    if (partial_since_ || ctx_.settings.request_timeout_s == 0) return;
    partial_since_ = std::chrono::steady_clock::now();
    if (!request_timer_armed_) arm_request_timer(std::chrono::seconds(ctx_.settings.request_timeout_s));
  }

  // One timer per connection, armed only while a request is partial; a wake-up
  // for a clock restarted since re-arms for what is left.
  void arm_request_timer(std::chrono::steady_clock::duration after) {
    request_timer_armed_ = true;
    request_timer_.expires_after(after);
    request_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
      self->request_timer_armed_ = false;
      if (ec || self->closed_ || !self->partial_since_) return;
      const auto timeout = std::chrono::seconds(self->ctx_.settings.request_timeout_s);
      const auto waited = std::chrono::steady_clock::now() - *self->partial_since_;
      if (waited >= timeout) {
        log_line(self->ctx_.verbosity, log_level::warning,
                 "connection %s: a request incomplete after %zu s (--request-timeout), closing",
                 self->peer_.c_str(), self->ctx_.settings.request_timeout_s);
        return self->close();
      }
      self->arm_request_timer(timeout - waited);
    });
  }

  void arm_idle_timer(std::chrono::steady_clock::duration after) {
    idle_timer_.expires_after(after);
    idle_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
      if (ec || self->closed_) return;
      const auto timeout = std::chrono::seconds(self->ctx_.settings.idle_timeout_s);
      const auto idle = std::chrono::steady_clock::now() - self->last_activity_;
      if (idle >= timeout) {
        log_line(self->ctx_.verbosity, log_level::warning, "connection %s idle for %zu s, closing",
                 self->peer_.c_str(), self->ctx_.settings.idle_timeout_s);
        return self->close();
      }
      self->arm_idle_timer(timeout - idle);
    });
  }

  Transport transport_;
  const asio::any_io_executor executor_;  // never changes: read by done() on any thread
  server_context& ctx_;
  worker_shared& shared_;
  session session_;
  session_status status_ = session_status::need_input;
  std::string out_;
  std::size_t out_offset_ = 0;
  std::deque<reply_slot> slots_;                // replies after out_, in request order
  std::uint64_t first_seq_ = 0;                 // the sequence number of slots_.front()
  std::size_t waiting_ = 0;                     // slots whose reply is still to come
  bool barrier_ = false;                        // a flush_all is out (or held): nothing after it goes out yet
  std::uint64_t barrier_seq_ = 0;               // its slot
  std::optional<deferred_request> held_flush_;  // a flush_all waiting for the earlier replies
  std::size_t held_bytes_ = 0;                  // bytes of the ready slots
  int reads_left_ = 0;                          // reads this readiness event may still do
  bool read_armed_ = false;
  bool write_armed_ = false;
  asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_{};
  asio::steady_timer request_timer_;
  bool request_timer_armed_ = false;
  // Since when the server has been waiting for the rest of a partial request.
  std::optional<std::chrono::steady_clock::time_point> partial_since_;
  std::string peer_ = "?";
  bool eof_ = false;  // the client shut down its side: no more requests
  bool closed_ = false;
  bool handshaking_ = false;  // TLS: the handshake is not done yet
};

// A plain TCP client connection.
using connection = basic_connection<plain_transport>;

}  // namespace dhtkit_cache
