/// @file
/// Mutual TLS for the TCP transport and the node's stream lane, on Asio's SSL
/// support and OpenSSL (link dhtkit::security; dhtkit::dhtkit never needs
/// OpenSSL).
///
/// tls_security is a stream_security (transport/stream_security.hpp): put it
/// in tcp_transport_config::security, or node_config::stream_security for a
/// node, and every stream-lane connection runs over TLS 1.3 with both ends
/// presenting a certificate that chains to the CA file. A certificate's names
/// are its DNS subject alternative names, or its subject common name when it
/// has no subject alternative name at all (RFC 6125); names are compared byte for byte (no wildcards, no case
/// folding). A node refuses to start unless its own certificate carries its name, and binds every peer's
/// certificate to the member it speaks for: see node/node.hpp ("Security") for what is verified on which
/// side.
///
/// create() checks everything it can before a connection exists, so a
/// misconfigured node fails at start with a message rather than at its first
/// handshake: the files load, the key matches the certificate, the
/// certificate chains to the CA and may serve as both TLS client and server
/// (if it has an extended key usage, it must list both serverAuth and
/// clientAuth), and it names someone.
///
/// Session tickets and resumption are off: connections are long-lived, so
/// resumption would save little, and every connection then proves its
/// certificate afresh.
///
/// @code
/// auto cfg = dhtkit::node_config::lan();
/// cfg.name = "cache-1";   // a name in cache-1.crt (SAN DNS:cache-1)
/// cfg.stream_security = dhtkit::tls_security::create({"cache-1.crt", "cache-1.key", "ca.crt"});
/// // throws std::invalid_argument naming the file and the problem
/// @endcode
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dhtkit/transport/stream_security.hpp"

namespace dhtkit {

/// Where mutual TLS finds its credentials: PEM files, read once by create().
struct tls_config {
  /// This side's certificate, then any intermediate certificates.
  std::string certificate_chain_file;
  /// The certificate's private key, unencrypted (no passphrase prompt).
  std::string private_key_file;
  /// The CA certificate(s) a peer's certificate must chain to.
  std::string ca_file;
};

namespace detail::tls {

// Every error OpenSSL queued on this thread, oldest first, and the queue cleared.
inline std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out.append(out.empty() ? "" : "; ").append(buf);
  }
  return out;
}

// A name as a node name: 1 to 255 bytes, no NUL (a NUL would let a
// certificate for "a\0b" pass for "a" in C string comparisons elsewhere).
inline void add_name(peer_identity& id, const unsigned char* data, int length) {
  if (data == nullptr || length <= 0 || length > 255) return;
  const auto* begin = reinterpret_cast<const char*>(data);
  if (std::memchr(begin, 0, static_cast<std::size_t>(length)) != nullptr) return;
  id.names.emplace_back(begin, static_cast<std::size_t>(length));
}

// The certificate's DNS subject alternative names, or its common names when it has no
// subject alternative name at all.
inline peer_identity identity_of(X509* cert) {
  peer_identity id;
  if (cert == nullptr) return id;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type == GEN_DNS)
        add_name(id, ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    // RFC 6125: a certificate with subject alternative names is named by
    // them alone, even when none is a DNS name; the common name is a
    // fallback only for certificates without any.
    return id;
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
    if (n >= 0) add_name(id, utf8, n);
    OPENSSL_free(utf8);
  }
  return id;
}

// The peer's certificate once the handshake is done (owned by the session).
inline X509* peer_certificate(SSL* ssl) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  return SSL_get0_peer_certificate(ssl);
#else
  X509* cert = SSL_get_peer_certificate(ssl);
  if (cert != nullptr) X509_free(cert);  // the session keeps its own reference
  return cert;
#endif
}

// One connection: an ssl::stream over the socket. Every operation holds the
// stream (and through it the context) alive until it completes.
class stream final : public secure_stream, public std::enable_shared_from_this<stream> {
 public:
  stream(asio::ip::tcp::socket socket, asio::ssl::context& ctx, stream_role role,
         std::shared_ptr<const void> keep_context)
      : keep_context_(std::move(keep_context)), ssl_(std::move(socket), ctx), role_(role) {}

  void async_handshake(handshake_handler done) override {
    const auto type =
        role_ == stream_role::client ? asio::ssl::stream_base::client : asio::ssl::stream_base::server;
    ssl_.async_handshake(type, [self = shared_from_this(), done = std::move(done)](std::error_code ec) {
      if (!ec) {
        self->peer_ = identity_of(peer_certificate(self->ssl_.native_handle()));
        // Verified by the CA, yet naming no one: nothing could be bound to it.
        if (self->peer_.names.empty()) ec = std::make_error_code(std::errc::permission_denied);
      }
      done(ec);
    });
  }

  void async_read_some(asio::mutable_buffer buffer, io_handler done) override {
    ssl_.async_read_some(
        buffer, [self = shared_from_this(), done = std::move(done)](std::error_code ec, std::size_t n) {
          // After our half-close the peer closes TCP without a close_notify of
          // its own: that is the end of stream the transport waits for. Frames are
          // self-delimiting, so a truncation anywhere else is caught by the
          // framing (and costs no more than a reset would).
          if (ec == asio::ssl::error::stream_truncated && self->sent_end_) ec = asio::error::eof;
          done(ec, n);
        });
  }

  void async_write_some(std::span<const asio::const_buffer> buffers, io_handler done) override {
    // One TLS record's worth of the front of `buffers`, copied: a gather of
    // many small frames becomes one record, not one per frame, and the
    // frames need not outlive this call.
    out_.clear();
    for (const auto& b : buffers) {
      const std::size_t take = std::min(b.size(), record_bytes - out_.size());
      const auto* p = static_cast<const std::byte*>(b.data());
      out_.insert(out_.end(), p, p + take);
      if (out_.size() == record_bytes) break;
    }
    ssl_.async_write_some(asio::buffer(out_), [self = shared_from_this(), done = std::move(done)](
                                                  std::error_code ec, std::size_t n) { done(ec, n); });
  }

  void shutdown_send() override {
    // A TCP half-close, no close_notify: sending one is an SSL_shutdown,
    // which also wants to read while the transport's own read is pending.
    std::error_code ignored;
    ssl_.lowest_layer().shutdown(asio::socket_base::shutdown_send, ignored);
    sent_end_ = true;
  }

  void close() override {
    std::error_code ignored;
    ssl_.lowest_layer().close(ignored);
  }

  const peer_identity& peer() const override { return peer_; }

 private:
  static constexpr std::size_t record_bytes = 16 * 1024;  // TLS's largest plaintext record

  std::shared_ptr<const void> keep_context_;  // before ssl_: outlives it
  asio::ssl::stream<asio::ip::tcp::socket> ssl_;
  stream_role role_;
  peer_identity peer_;
  std::vector<std::byte> out_;
  bool sent_end_ = false;
};

}  // namespace detail::tls

/// Mutual TLS for the stream lane (see tls.hpp).
class tls_security final : public stream_security, public std::enable_shared_from_this<tls_security> {
  struct private_tag {};

 public:
  /// Loads and checks the files (see tls.hpp). Throws std::invalid_argument
  /// naming the file and what is wrong with it.
  static std::shared_ptr<tls_security> create(const tls_config& cfg) {
    return std::make_shared<tls_security>(private_tag{}, cfg);
  }

  tls_security(private_tag, const tls_config& cfg) : ctx_(asio::ssl::context::tls) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("dhtkit::tls_security: " + what); };
    if (cfg.certificate_chain_file.empty() || cfg.private_key_file.empty() || cfg.ca_file.empty())
      fail("the certificate chain, private key and CA files are all required");
    SSL_CTX* ctx = ctx_.native_handle();
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) fail("TLS 1.3 is not available");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    std::error_code ec;
    auto load = [&](const char* what, const std::string& file) {
      if (ec)
        fail(std::string(what) + " " + file + ": " + ec.message() + in_parens(detail::tls::openssl_errors()));
    };
    ctx_.use_certificate_chain_file(cfg.certificate_chain_file, ec);
    load("cannot load the certificate chain", cfg.certificate_chain_file);
    ctx_.use_private_key_file(cfg.private_key_file, asio::ssl::context::pem, ec);
    load("cannot load the private key", cfg.private_key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
      fail("the private key " + cfg.private_key_file + " does not belong to the certificate " +
           cfg.certificate_chain_file);
    ctx_.load_verify_file(cfg.ca_file, ec);
    load("cannot load the CA file", cfg.ca_file);
    ctx_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    load("cannot set the verify mode for", cfg.ca_file);

    X509* own = SSL_CTX_get0_certificate(ctx);
    for (const int purpose : {X509_PURPOSE_SSL_SERVER, X509_PURPOSE_SSL_CLIENT}) {
      if (const std::string why = verify_own(own, purpose); !why.empty())
        fail("the certificate " + cfg.certificate_chain_file + " does not verify against " + cfg.ca_file +
             " as a TLS " + (purpose == X509_PURPOSE_SSL_SERVER ? "server" : "client") + ": " + why);
    }
    local_ = detail::tls::identity_of(own);
    if (local_.names.empty())
      fail("the certificate " + cfg.certificate_chain_file +
           " names no one (no DNS subject alternative name, or no common name without any)");
  }

  std::shared_ptr<secure_stream> wrap(asio::ip::tcp::socket socket, stream_role role) override {
    return std::make_shared<detail::tls::stream>(std::move(socket), ctx_, role, shared_from_this());
  }

  const peer_identity& local_identity() const override { return local_; }

 private:
  static std::string in_parens(const std::string& s) { return s.empty() ? "" : " (" + s + ")"; }

  // Empty when `cert` (with the chain's intermediates) verifies against the
  // CA store for `purpose`, else why not.
  std::string verify_own(X509* cert, int purpose) {
    SSL_CTX* ctx = ctx_.native_handle();
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    X509_STORE_CTX* v = X509_STORE_CTX_new();
    if (v == nullptr) return "out of memory";
    std::string why;
    if (X509_STORE_CTX_init(v, SSL_CTX_get_cert_store(ctx), cert, chain) != 1) {
      why = "cannot verify" + in_parens(detail::tls::openssl_errors());
    } else {
      X509_STORE_CTX_set_purpose(v, purpose);
      if (X509_verify_cert(v) != 1) why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(v));
    }
    X509_STORE_CTX_free(v);
    ERR_clear_error();
    return why;
  }

  asio::ssl::context ctx_;
  peer_identity local_;
};

}  // namespace dhtkit
