// The TCP transport's per-connection state: out_peer (our connection to a
// peer, with its send queue and reconnect state) and in_conn (a connection a
// peer opened to us, with its read buffer), and the bounds on how much each
// writes or buffers at a time. Plain data: the logic that drives them is in
// tcp_impl.hpp.
#pragma once

#include <array>
#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/transport/detail/tcp_framing.hpp"
#include "dhtkit/transport/stream_security.hpp"

namespace dhtkit::detail::tcp {

using strand_type = asio::strand<asio::any_io_executor>;

struct out_peer {
  out_peer(const strand_type& s, const endpoint& to) : to(to), socket(s), timer(s) {}
  enum class state { idle, connecting, handshaking, connected, backoff, draining };

  endpoint to;
  asio::ip::tcp::socket socket;  // without security; with it, moved into `secure` once connected
  std::shared_ptr<secure_stream> secure;
  asio::steady_timer timer;
  state st = state::idle;
  std::deque<frame> queue;  // frames with their length prefix
  std::size_t queued_bytes = 0;
  std::size_t in_flight = 0;  // frames at the front of `queue` being written now
  bool writing = false;
  bool hello_pending = false;    // the hello goes first on every new connection
  bool unconfirmed = false;      // this connection carried frames the peer may not have read
  std::uint64_t generation = 0;  // bumped on teardown so stale completions do nothing
  std::size_t failures = 0;
  duration backoff{};
  std::array<std::byte, 1> probe{};
  std::vector<asio::const_buffer> gather;
  std::size_t gather_next = 0;  // with security: the first buffer of `gather` not fully written
};

struct in_conn {
  in_conn(asio::ip::tcp::socket s, const strand_type& strand) : socket(std::move(s)), timer(strand) {}
  asio::ip::tcp::socket socket;  // without security; with it, moved into `secure`
  std::shared_ptr<secure_stream> secure;
  asio::steady_timer timer;  // handshake timeout, then hello timeout
  endpoint remote;
  std::optional<endpoint> from;  // set by the hello
  std::vector<std::byte> buf;
  std::size_t begin = 0, end = 0;
  bool open = true;
  bool handshaken = false;  // with security: the handshake completed
  // With security: a read into `buf` is pending. A TLS read may still decrypt
  // into the buffer after close() when its ciphertext had already arrived, so
  // `buf` is released by that read's completion, not by drop().
  bool reading = false;
};

// Frames written per gather write: enough to amortize the system call, small
// enough that drop_oldest still has room to act while a write is in flight.
inline constexpr std::size_t max_gather_frames = 64;
inline constexpr std::size_t max_gather_bytes = 256 * 1024;
// Bytes asked of one write system call inside a gather write (Asio's own default).
inline constexpr std::size_t default_write_chunk = 64 * 1024;
// Inbound read buffer kept between frames, and the least a full buffer grows by;
// it grows (doubling) up to a maximal frame only as that frame's bytes arrive.
inline constexpr std::size_t read_buffer_size = 64 * 1024;
// A grown buffer is kept for the next large frame unless it is over this, so
// a stream of 64 KiB messages does not reallocate per message while an idle
// connection never holds more than this.
inline constexpr std::size_t shrink_above = 256 * 1024;

}  // namespace dhtkit::detail::tcp
