/// @file
/// What the TCP transport (asio_tcp.hpp) runs its connections over when they
/// must be authenticated: an abstract, type-erased secured byte stream, so that
/// dhtkit::dhtkit compiles and links without OpenSSL while dhtkit::security
/// (security/tls.hpp: mutual TLS) supplies the implementation.
///
/// Why virtual functions here, when transports are concepts: the choice of
/// security is made at run time (a node started with or without certificates)
/// and must not change any class's layout or template arguments, and one
/// indirect call per read or write is nothing next to the cipher behind it.
/// With no security configured (tcp_transport_config::security null, the
/// default) the transport uses its sockets directly and none of this runs.
///
/// The contract an implementation keeps:
/// - wrap() takes a connected socket and returns a stream owning it. The
///   transport calls async_handshake() once, then at most one read and one
///   write at a time. Completions run on the socket's executor (the
///   transport's strand).
/// - A stream keeps itself alive while an operation is pending (hold a
///   shared_ptr to itself in the handler): the transport may drop its pointer
///   right after close(), and the operation then completes with an error.
/// - After shutdown_send(), an end of stream from the peer is reported as
///   asio::error::eof, as a plain socket reports it, so the transport's
///   graceful shutdown (half-close, wait for the peer to close) works the same.
/// - peer() names who the other side proved to be (for TLS: the names of its
///   certificate); the transport asks its peer verifier (set_peer_verifier) if
///   that identity may speak for, or be spoken to at, an endpoint.
///
/// @code
/// // A node over mutual TLS (dhtkit::security; see security/tls.hpp):
/// // auto cfg = dhtkit::node_config::lan();
/// // cfg.name = "cache-1";   // must be a name in cache-1.crt
/// // cfg.stream_security = dhtkit::tls_security::create({"cache-1.crt", "cache-1.key", "ca.crt"});
/// dhtkit::peer_identity who;
/// who.names = {"cache-1"};
/// bool ok = who.has_name("cache-1");   // exact, byte for byte: no wildcards, no case folding
/// @endcode
#pragma once

#include <algorithm>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "dhtkit/core/endpoint.hpp"

namespace dhtkit {

/// Who the other end of a secured connection proved to be.
struct peer_identity {
  /// The names its credentials carry (TLS: the certificate's DNS subject
  /// alternative names, or its common name when it has none).
  std::vector<std::string> names{};

  /// True when `name` is one of names, compared byte for byte: a node's id is
  /// the hash of its exact name, so "Cache-1" does not stand for "cache-1", and
  /// a wildcard in a certificate stands for nothing but itself.
  bool has_name(std::string_view name) const {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n == name; });
  }
  /// The names separated by commas, for messages.
  std::string describe() const {
    std::string s;
    for (const auto& n : names) s.append(s.empty() ? "" : ", ").append(n);
    return s.empty() ? "(no name)" : s;
  }
};

/// Which side of the handshake a stream takes.
enum class stream_role : std::uint8_t {
  client,  ///< the side that connected
  server,  ///< the side that accepted
};

/// One secured connection (see stream_security.hpp for the contract).
class secure_stream {
 public:
  using io_handler = std::function<void(std::error_code, std::size_t)>;
  using handshake_handler = std::function<void(std::error_code)>;

  virtual ~secure_stream() = default;

  /// Authenticates both ends; peer() is valid once it completed without error.
  virtual void async_handshake(handshake_handler done) = 0;
  /// Reads at least one byte into `buffer` (valid until `done` runs).
  virtual void async_read_some(asio::mutable_buffer buffer, io_handler done) = 0;
  /// Writes at least one byte from the front of `buffers` (valid until
  /// `done` runs); `done` gets how many were written.
  virtual void async_write_some(std::span<const asio::const_buffer> buffers, io_handler done) = 0;
  /// Ends the sending direction (the peer reads an end of stream).
  virtual void shutdown_send() = 0;
  /// Closes the connection; pending operations complete with an error.
  virtual void close() = 0;
  /// Who the peer proved to be (empty before the handshake completed).
  virtual const peer_identity& peer() const = 0;
};

/// Makes secured streams out of connected sockets: one object per transport
/// (or per node), shared by all its connections.
class stream_security {
 public:
  virtual ~stream_security() = default;

  /// Takes over a connected socket.
  virtual std::shared_ptr<secure_stream> wrap(asio::ip::tcp::socket socket, stream_role role) = 0;
  /// The identity this side proves to its peers: a node checks its own name
  /// is in it before it starts.
  virtual const peer_identity& local_identity() const = 0;
};

/// Decides whether a peer that proved `identity` may speak for, or be spoken
/// to at, the transport endpoint `at`. Runs on the transport's strand.
using peer_verifier = std::function<bool(const endpoint& at, const peer_identity& identity)>;

}  // namespace dhtkit
