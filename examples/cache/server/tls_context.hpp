// dhtkit-cache's TLS for clients (-Z): the one OpenSSL context (an Asio
// ssl::context) that every client connection's TLS session is made from,
// built from memcached's -o ssl_* options (client_tls_options, options.hpp).
//
//   client_tls_options o{.enabled = true, .chain_cert = "server.pem", .key = "server.key"};
//   std::unique_ptr<client_tls> tls = make_client_tls(o);   // throws, naming the bad option or file
//   basic_connection<tls_transport> c(std::move(socket), ctx, shared, *tls);
//
// Loading happens once, at start: a missing or unreadable file, a key that is
// not the certificate's, or a cipher list OpenSSL does not know stops the
// server with a message (exit status 1) instead of failing every handshake.
//
// Choices, and why:
//   - no session cache and no TLS 1.3 tickets: memcached's default
//     (ssl_session_cache off), and a cache client keeps its connections open;
//   - renegotiation off: a client cannot make the server redo handshakes
//     (CPU) mid-connection;
//   - a client that closes without TLS's close_notify is an ordinary end of
//     input (most memcached clients just close the socket);
//   - OpenSSL's read and write buffers are released while a connection is
//     idle, so an idle TLS connection costs a few KB, as an idle plain one.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <asio/ssl/context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

#include "server/options.hpp"

namespace dhtkit_cache {

// What every TLS client connection shares.
struct client_tls {
  asio::ssl::context context{asio::ssl::context::tls_server};
  // A client that has not finished its handshake by then is closed (and
  // counted in ssl_handshake_errors), so silent or plaintext clients cannot
  // pin connection slots.
  std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(5);
};

namespace detail {

// The reason OpenSSL gave for the last failure, and its queue emptied.
inline std::string openssl_reason(const std::error_code& ec = {}) {
  std::string reason;
  if (const unsigned long e = ERR_peek_last_error(); e != 0) {
    const char* text = ERR_reason_error_string(e);
    reason = text != nullptr ? text : "OpenSSL error " + std::to_string(e);
  } else if (ec) {
    reason = ec.message();
  } else {
    reason = "unknown error";
  }
  ERR_clear_error();
  return reason;
}

// A clear message when a file cannot be opened at all, before OpenSSL's
// reasons (which say "system lib" for a missing file).
inline void check_readable(const std::string& option, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("-o " + option + "=" + path + ": " + std::strerror(errno));
  std::fclose(f);
}

inline int verify_flags(int mode) {
  // memcached's ssl_verify_mode values and what each asks of OpenSSL.
  switch (mode) {
    case 1:  // Request: a certificate is asked for and checked if given
      return SSL_VERIFY_PEER;
    case 2:  // Require: a client without one is refused
      return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    case 3:  // Once: Require, and not asked again on renegotiation
      return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE;
    default:  // 0, None
      return SSL_VERIFY_NONE;
  }
}

inline int protocol_version(int min_version) {
  switch (min_version) {
    case 0:
      return TLS1_VERSION;
    case 1:
      return TLS1_1_VERSION;
    case 3:
      return TLS1_3_VERSION;
    default:
      return TLS1_2_VERSION;
  }
}

}  // namespace detail

// Builds the context; std::runtime_error naming the option and the reason on failure.
inline std::unique_ptr<client_tls> make_client_tls(const client_tls_options& o) {
  using detail::openssl_reason;
  auto tls = std::make_unique<client_tls>();
  tls->handshake_timeout = std::chrono::seconds(o.handshake_timeout_s);
  SSL_CTX* ctx = tls->context.native_handle();
  ERR_clear_error();
  std::error_code ec;

  detail::check_readable("ssl_chain_cert", o.chain_cert);
  tls->context.use_certificate_chain_file(o.chain_cert, ec);
  if (ec)
    throw std::runtime_error("-o ssl_chain_cert=" + o.chain_cert +
                             ": not a PEM certificate chain: " + openssl_reason(ec));
  // Without ssl_key, the key is in the chain file (memcached's rule).
  const std::string key_option = o.key.empty() ? "ssl_chain_cert" : "ssl_key";
  const std::string& key = o.key.empty() ? o.chain_cert : o.key;
  detail::check_readable(key_option, key);
  tls->context.use_private_key_file(key, asio::ssl::context::pem, ec);
  if (ec)
    throw std::runtime_error("-o " + key_option + "=" + key +
                             ": not a PEM private key of the certificate: " + openssl_reason(ec));
  if (SSL_CTX_check_private_key(ctx) != 1)
    throw std::runtime_error("-o " + key_option + "=" + key +
                             ": the private key does not match the certificate: " + openssl_reason());

  if (!o.ca_cert.empty()) {
    detail::check_readable("ssl_ca_cert", o.ca_cert);
    tls->context.load_verify_file(o.ca_cert, ec);
    if (ec) throw std::runtime_error("-o ssl_ca_cert=" + o.ca_cert + ": " + openssl_reason(ec));
    // The CA names sent in the certificate request, so a client with several
    // certificates picks one this server accepts.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_cert.c_str());
    if (names == nullptr)
      throw std::runtime_error("-o ssl_ca_cert=" + o.ca_cert + ": no certificate in it: " + openssl_reason());
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  }
  SSL_CTX_set_verify(ctx, detail::verify_flags(o.verify_mode), nullptr);

  if (!o.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) != 1)
    throw std::runtime_error("-o ssl_ciphers=" + o.ciphers + ": " + openssl_reason());
  if (SSL_CTX_set_min_proto_version(ctx, detail::protocol_version(o.min_version)) != 1)
    throw std::runtime_error("-o ssl_min_version=" + std::to_string(o.min_version) + ": " + openssl_reason());

  long options = SSL_OP_NO_COMPRESSION;
#ifdef SSL_OP_NO_RENEGOTIATION
  options |= SSL_OP_NO_RENEGOTIATION;
#endif
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  options |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
  SSL_CTX_set_options(ctx, options);
  // Partial writes: SSL_write behaves as write_some (one record at a time);
  // the moving buffer: a retried write may come from a reallocated string.
  SSL_CTX_set_mode(
      ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  return tls;
}

}  // namespace dhtkit_cache
