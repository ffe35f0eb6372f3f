// How a client connection moves its bytes under -Z: a TLS session (OpenSSL)
// over the non-blocking TCP socket, with the members plain_transport has, so
// basic_connection<tls_transport> runs the same code as a plain connection.
//
//   tls_transport t(std::move(socket), tls);           // tls: client_tls (tls_context.hpp)
//   switch (t.handshake(why)) { ... }                  // until done, waiting as it says
//   std::size_t n = t.read_some(buffer, size, ec);     // decrypted bytes; would_block when none
//
// Why OpenSSL's SSL object on the socket and not asio::ssl::stream: a
// connection is a reactor (connection.hpp): it waits for readiness, then
// reads and writes without blocking into buffers it does not keep while
// idle. asio::ssl::stream's synchronous calls assume a blocking socket (on a
// non-blocking one a partly written record would be lost), and its
// asynchronous ones need a read buffer per connection held for as long as
// the connection waits, plus two record buffers of its own. SSL_read and
// SSL_write on the socket do what memcached does with TLS: they say which
// readiness they need (read or write, either may want either), and OpenSSL
// frees its buffers while the connection is idle. The context, certificates
// and verification are Asio's ssl::context (tls_context.hpp).
//
// Readiness: decrypted bytes OpenSSL already holds (a record larger than the
// caller's buffer) make the socket look idle, so async_wait_readable
// completes at once while SSL_pending says there are some.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "server/tls_context.hpp"

namespace dhtkit_cache {

class tls_transport {
 public:
  static constexpr bool handshakes = true;

  enum class handshake_result { done, want_read, want_write, failed };

  tls_transport(asio::ip::tcp::socket socket, client_tls& tls)
      : socket_(std::move(socket)), ssl_(SSL_new(tls.context.native_handle())), tls_(tls) {
    if (!ssl_) throw std::runtime_error("cannot make a TLS session: " + detail::openssl_reason());
    if (SSL_set_fd(ssl_.get(), socket_.native_handle()) != 1)
      throw std::runtime_error("cannot make a TLS session: " + detail::openssl_reason());
    SSL_set_accept_state(ssl_.get());
  }

  asio::ip::tcp::socket& socket() { return socket_; }
  std::chrono::steady_clock::duration handshake_timeout() const { return tls_.handshake_timeout; }

  // One step of the server's handshake on the non-blocking socket; on
  // failure `why` says what went wrong (for the log).
  handshake_result handshake(std::string& why) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
      handshake_done_ = true;
      return handshake_result::done;
    }
    const int error = SSL_get_error(ssl_.get(), r);
    if (error == SSL_ERROR_WANT_READ) return handshake_result::want_read;
    if (error == SSL_ERROR_WANT_WRITE) return handshake_result::want_write;
    fatal_ = true;
    if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
      why = errno != 0 ? std::strerror(errno) : "the client closed the connection";
    else if (error == SSL_ERROR_ZERO_RETURN)
      why = "the client closed the connection";
    else
      why = detail::openssl_reason();
    ERR_clear_error();
    return handshake_result::failed;
  }

  // Fills data as far as decrypted bytes are available now (several records
  // if need be), so that a short read means "nothing more for now", as on a
  // plain socket.
  std::size_t read_some(char* data, std::size_t size, std::error_code& ec) {
    ec.clear();
    if (deferred_error_) {
      ec = deferred_error_;
      return 0;
    }
    std::size_t total = 0;
    while (total < size) {
      ERR_clear_error();
      errno = 0;
      std::size_t n = 0;
      const int r = SSL_read_ex(ssl_.get(), data + total, size - total, &n);
      if (r == 1) {
        total += n;
        continue;
      }
      std::error_code e = map_error(r, read_wants_);
      // Bytes first; the error (an end or a failure) on the next call.
      if (total > 0) {
        if (e != asio::error::would_block) deferred_error_ = e;
        return total;
      }
      ec = e;
      return 0;
    }
    return total;
  }

  std::size_t write_some(const char* data, std::size_t size, std::error_code& ec) {
    ec.clear();
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_write_ex(ssl_.get(), data, size, &n);
    if (r == 1) return n;
    ec = map_error(r, write_wants_);
    return 0;
  }

  template <class Handler>
  void async_wait_readable(Handler&& handler) {
    if (SSL_pending(ssl_.get()) > 0 || deferred_error_) {
      asio::post(socket_.get_executor(),
                 [h = std::forward<Handler>(handler)]() mutable { std::move(h)(std::error_code{}); });
      return;
    }
    socket_.async_wait(read_wants_, std::forward<Handler>(handler));
  }

  template <class Handler>
  void async_wait_writable(Handler&& handler) {
    socket_.async_wait(write_wants_, std::forward<Handler>(handler));
  }

  // During the handshake: wait for what handshake() asked.
  template <class Handler>
  void async_wait(handshake_result want, Handler&& handler) {
    socket_.async_wait(want == handshake_result::want_write ? asio::ip::tcp::socket::wait_write
                                                            : asio::ip::tcp::socket::wait_read,
                       std::forward<Handler>(handler));
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    // close_notify, if the socket takes it now; never waited for.
    if (handshake_done_ && !fatal_) {
      ERR_clear_error();
      (void)SSL_shutdown(ssl_.get());
      ERR_clear_error();
    }
    std::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  struct ssl_deleter {
    void operator()(SSL* s) const { SSL_free(s); }
  };

  // An SSL_read/SSL_write failure as an error code; for would_block, which
  // readiness the retry needs goes to `wants`.
  std::error_code map_error(int r, asio::ip::tcp::socket::wait_type& wants) {
    const int error = SSL_get_error(ssl_.get(), r);
    switch (error) {
      case SSL_ERROR_WANT_READ:
        wants = asio::ip::tcp::socket::wait_read;
        return asio::error::would_block;
      case SSL_ERROR_WANT_WRITE:
        wants = asio::ip::tcp::socket::wait_write;
        return asio::error::would_block;
      case SSL_ERROR_ZERO_RETURN:  // close_notify, or a bare close (SSL_OP_IGNORE_UNEXPECTED_EOF)
        return asio::error::eof;
      case SSL_ERROR_SYSCALL:
        fatal_ = true;
        if (ERR_peek_error() == 0 && errno != 0) return {errno, std::system_category()};
        if (ERR_peek_error() == 0) return asio::error::eof;
        [[fallthrough]];
      default: {
        fatal_ = true;
        const auto e = static_cast<int>(ERR_get_error());
        ERR_clear_error();
        return {e, asio::error::get_ssl_category()};
      }
    }
  }

  asio::ip::tcp::socket socket_;
  std::unique_ptr<SSL, ssl_deleter> ssl_;
  const client_tls& tls_;
  std::error_code deferred_error_;
  asio::ip::tcp::socket::wait_type read_wants_ = asio::ip::tcp::socket::wait_read;
  asio::ip::tcp::socket::wait_type write_wants_ = asio::ip::tcp::socket::wait_write;
  bool handshake_done_ = false;
  bool fatal_ = false;  // after a fatal error OpenSSL forbids SSL_shutdown
  bool closed_ = false;
};

}  // namespace dhtkit_cache
