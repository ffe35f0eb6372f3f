// One client connection: bytes from the socket into a protocol `session`, the
// session's replies back to the socket.
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
//     (the client does not read), nothing more is read, so the output never
//     grows past what one process() call appends (the session stops at
//     max_output and says output_full). A large output buffer is given back
//     once written. An idle connection keeps at most 16 KiB in each of its
//     input, value and output buffers (parser_limits::retained_capacity,
//     keep_output_capacity).
//   - With --idle-timeout, a connection that moved no byte either way for that
//     long is closed (a client that stops reading its replies included).
// Fairness: one readiness event reads at most max_reads_per_event times before
// the connection waits its turn again, so a pipelining client cannot starve
// the others on its thread (memcached's -R).
#pragma once

#include <algorithm>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "protocol/session.hpp"
#include "server/log.hpp"

namespace dhtkit_cache {

// What the connections of one worker thread share.
struct worker_shared {
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);
  // Per-command counters and latencies; this worker's thread is their only
  // writer. Measured only with --metrics-port (measure_commands).
  command_metrics metrics;
  bool measure_commands = false;
};

class connection : public std::enable_shared_from_this<connection> {
 public:
  static constexpr std::size_t max_output = 1 << 20;             // session's output bound per process()
  static constexpr std::size_t keep_output_capacity = 16 << 10;  // larger buffers are freed once written
  static constexpr int max_reads_per_event = 4;

  connection(asio::ip::tcp::socket socket, server_context& ctx, worker_shared& shared)
      : socket_(std::move(socket)),
        ctx_(ctx),
        shared_(shared),
        session_(ctx, max_output, {}, shared.measure_commands ? &shared.metrics : nullptr),
        idle_timer_(socket_.get_executor()) {
    // Counted here and uncounted in the destructor, so the count cannot drift
    // whatever fails in between.
    ctx_.counters.curr_connections.fetch_add(1, std::memory_order_relaxed);
    ctx_.counters.total_connections.fetch_add(1, std::memory_order_relaxed);
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  ~connection() {
    ctx_.counters.curr_connections.fetch_sub(1, std::memory_order_relaxed);
    log_line(ctx_.verbosity, log_level::debug, "connection %s closed", peer_.c_str());
  }

  // Call on the connection's executor (the accepting thread posts it there).
  void start() {
    std::error_code ec;
    socket_.non_blocking(true, ec);
    if (!ec) socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    const auto remote = socket_.remote_endpoint(ec);
    if (!ec) peer_ = remote.address().to_string() + ":" + std::to_string(remote.port());
    log_line(ctx_.verbosity, log_level::debug, "connection %s opened", peer_.c_str());
    last_activity_ = std::chrono::steady_clock::now();
    if (ctx_.settings.idle_timeout_s > 0) arm_idle_timer(std::chrono::seconds(ctx_.settings.idle_timeout_s));
    read_some();
  }

  // Closes now (on the connection's executor); pending handlers then find it closed.
  void close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    idle_timer_.cancel();
  }

 private:
  void wait_readable() {
    socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this()](std::error_code ec) {
      if (ec || self->closed_) return self->close();
      self->read_some();
    });
  }

  void wait_writable() {
    socket_.async_wait(asio::ip::tcp::socket::wait_write, [self = shared_from_this()](std::error_code ec) {
      if (ec || self->closed_) return self->close();
      if (self->flush()) self->after_flush();
    });
  }

  // Reads what is there (non-blocking), runs the session, writes its replies.
  void read_some() {
    auto& buffer = shared_.read_buffer;
    for (int reads = 0; reads < max_reads_per_event && !closed_; ++reads) {
      const std::size_t room = std::min(session_.input_room(), buffer.size());
      if (room == 0) {
        // The session takes no more input yet has no reply to give: it should
        // never happen; closing beats waiting forever.
        log_line(ctx_.verbosity, log_level::warning, "connection %s: input full, closing", peer_.c_str());
        return close();
      }
      std::error_code ec;
      const std::size_t n = socket_.read_some(asio::buffer(buffer.data(), room), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) return wait_readable();
      if (ec) return close();  // end of stream or a reset
      ctx_.counters.bytes_read.fetch_add(n, std::memory_order_relaxed);
      last_activity_ = std::chrono::steady_clock::now();
      session_.receive(std::string_view(buffer.data(), n));
      status_ = session_status::output_full;
      if (!run_session()) return;  // waiting to write, or closed
      // A short read means the socket is drained: wait instead of a read that
      // would only say would_block.
      if (n < room) return wait_readable();
    }
    if (!closed_) wait_readable();
  }

  // Runs the session while it has work; true when it needs input again.
  bool run_session() {
    while (status_ == session_status::output_full) {
      status_ = session_.process(out_);
      if (!flush()) return false;
    }
    if (status_ == session_status::close) {
      close();
      return false;
    }
    return true;
  }

  // Writes out_ as far as the socket takes it; true once all of it is written.
  // Otherwise a wait for writability is pending (or the connection closed).
  bool flush() {
    while (out_offset_ < out_.size()) {
      std::error_code ec;
      const std::size_t n =
          socket_.write_some(asio::buffer(out_.data() + out_offset_, out_.size() - out_offset_), ec);
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

  // A pending write finished: carry on where the session left off.
  void after_flush() {
    if (!run_session()) return;
    read_some();
  }

  void arm_idle_timer(std::chrono::steady_clock::duration after) {
    idle_timer_.expires_after(after);
    idle_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
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

  asio::ip::tcp::socket socket_;
  server_context& ctx_;
  worker_shared& shared_;
  session session_;
  session_status status_ = session_status::need_input;
  std::string out_;
  std::size_t out_offset_ = 0;
  asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_{};
  std::string peer_ = "?";
  bool closed_ = false;
};

}  // namespace dhtkit_cache
