// How a client connection moves its bytes when it is plain TCP: the socket
// itself. A connection (connection.hpp) is a template on its transport, so
// this path calls the socket directly, with no virtual call and nothing in
// between; TLS (tls_transport.hpp) has the same members.
//
//   plain_transport t(std::move(socket));
//   std::error_code ec;
//   std::size_t n = t.read_some(buffer, size, ec);     // non-blocking once the connection started
//   if (ec == asio::error::would_block) t.async_wait_readable(handler);
//
// The members a transport has (what connection.hpp calls):
//   socket()                       the TCP socket (options, peer address, executor)
//   read_some(data, size, ec)      reads what is there; would_block when nothing is
//   write_some(data, size, ec)     writes what the socket takes; would_block when nothing
//   async_wait_readable(h)         h(ec) once read_some may make progress
//   async_wait_writable(h)         h(ec) once write_some may make progress
//   close()                        shuts the connection down; idempotent
//   handshakes                     true when start must run handshake() first
#pragma once

#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <system_error>
#include <utility>

namespace dhtkit_cache {

class plain_transport {
 public:
  static constexpr bool handshakes = false;

  explicit plain_transport(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}

  asio::ip::tcp::socket& socket() { return socket_; }

  std::size_t read_some(char* data, std::size_t size, std::error_code& ec) {
    return socket_.read_some(asio::buffer(data, size), ec);
  }

  std::size_t write_some(const char* data, std::size_t size, std::error_code& ec) {
    return socket_.write_some(asio::buffer(data, size), ec);
  }

  template <class Handler>
  void async_wait_readable(Handler&& handler) {
    socket_.async_wait(asio::ip::tcp::socket::wait_read, std::forward<Handler>(handler));
  }

  template <class Handler>
  void async_wait_writable(Handler&& handler) {
    socket_.async_wait(asio::ip::tcp::socket::wait_write, std::forward<Handler>(handler));
  }

  void close() {
    std::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  asio::ip::tcp::socket socket_;
};

}  // namespace dhtkit_cache
