// dhtkit-cache's TLS transport (examples/cache/server/tls_transport.hpp) on a
// real loopback connection, against a blocking OpenSSL client on a thread:
// the handshake steps, a read smaller than a record (the rest stays inside
// OpenSSL, where the socket's readiness cannot show it), partial writes, the
// end of input, and a plaintext client refused. The certificate is made in
// memory at test time. tests/cache/tls_test.py runs the server end to end.
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/tls_context.hpp"
#include "server/tls_transport.hpp"

namespace {

using dhtkit_cache::tls_transport;
using tcp = asio::ip::tcp;

// A self-signed P-256 certificate and its key, installed in the server's context.
void install_self_signed(SSL_CTX* ctx) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  REQUIRE(key);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  REQUIRE(cert);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  REQUIRE(SSL_CTX_use_certificate(ctx, cert.get()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(ctx, key.get()) == 1);
}

// The server's context as make_client_tls leaves it (minus the files).
std::unique_ptr<dhtkit_cache::client_tls> server_tls() {
  auto tls = std::make_unique<dhtkit_cache::client_tls>();
  SSL_CTX* ctx = tls->context.native_handle();
  install_self_signed(ctx);
  SSL_CTX_set_mode(
      ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  return tls;
}

// A connected pair on loopback: the server's end (non-blocking, as a
// connection makes it) and the client's blocking file descriptor's socket.
struct socket_pair {
  asio::io_context io;
  tcp::socket server{io};
  tcp::socket client{io};
  socket_pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    server.non_blocking(true);
  }
};

// A blocking TLS client on the client socket (verification off: the test is the server's I/O).
struct tls_client {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_client_method()), &SSL_CTX_free};
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl{nullptr, &SSL_free};
  explicit tls_client(int fd) {
    ssl.reset(SSL_new(ctx.get()));
    SSL_set_fd(ssl.get(), fd);
  }
};

// Runs handshake steps on the server, waiting as each asks, until done or failed.
tls_transport::handshake_result server_handshake(asio::io_context& io, tls_transport& t, std::string& why) {
  for (int steps = 0; steps < 100; ++steps) {
    const auto r = t.handshake(why);
    if (r == tls_transport::handshake_result::done || r == tls_transport::handshake_result::failed) return r;
    bool woke = false;
    t.async_wait(r, [&woke](std::error_code) { woke = true; });
    io.restart();
    io.run_for(std::chrono::seconds(10));
    if (!woke) return tls_transport::handshake_result::failed;
  }
  return tls_transport::handshake_result::failed;
}

// True if async_wait_readable's handler runs within `within`.
// A wait still pending afterwards is cancelled, so it cannot fire later.
bool readable_within(asio::io_context& io, tls_transport& t, std::chrono::milliseconds within) {
  auto woke = std::make_shared<bool>(false);
  t.async_wait_readable([woke](std::error_code ec) { *woke = !ec; });
  io.restart();
  io.run_for(within);
  if (!*woke) {
    std::error_code ec;
    t.socket().cancel(ec);
    io.restart();
    io.poll();
  }
  return *woke;
}

}  // namespace

TEST_CASE("cache tls transport: bytes OpenSSL holds past a short read make the connection readable") {
  auto tls = server_tls();
  socket_pair p;
  tls_transport t(std::move(p.server), *tls);
  tls_client client(p.client.native_handle());
  std::thread connect([&] { SSL_connect(client.ssl.get()); });
  std::string why;
  const auto result = server_handshake(p.io, t, why);
  connect.join();
  REQUIRE(result == tls_transport::handshake_result::done);

  // One 10,000-byte record; the server reads 100 bytes of it.
  const std::string sent(10000, 'r');
  REQUIRE(SSL_write(client.ssl.get(), sent.data(), static_cast<int>(sent.size())) == 10000);
  REQUIRE(readable_within(p.io, t, std::chrono::seconds(10)));
  std::vector<char> buffer(20000);
  std::error_code ec;
  REQUIRE(t.read_some(buffer.data(), 100, ec) == 100);
  REQUIRE_FALSE(ec);
  // The socket has nothing more to read; OpenSSL holds the other 9,900 bytes.
  CHECK(readable_within(p.io, t, std::chrono::milliseconds(500)));
  // A larger buffer takes all of them, and the short read says "drained".
  CHECK(t.read_some(buffer.data(), buffer.size(), ec) == 9900);
  CHECK_FALSE(ec);
  CHECK(t.read_some(buffer.data(), buffer.size(), ec) == 0);
  CHECK(ec == asio::error::would_block);
  // Nothing anywhere now: not readable.
  CHECK_FALSE(readable_within(p.io, t, std::chrono::milliseconds(200)));

  // Writes: one record at a time (partial writes), all of it arriving in order.
  const std::string reply(100000, 'w');
  std::string got(reply.size(), '\0');
  std::thread reader([&] {
    std::size_t have = 0;
    while (have < got.size()) {
      const int n = SSL_read(client.ssl.get(), got.data() + have, static_cast<int>(got.size() - have));
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
    }
  });
  std::size_t written = 0;
  int writes = 0;
  while (written < reply.size() && writes < 10000) {
    const std::size_t n = t.write_some(reply.data() + written, reply.size() - written, ec);
    ++writes;
    if (ec == asio::error::would_block) {
      bool woke = false;
      t.async_wait_writable([&woke](std::error_code) { woke = true; });
      p.io.restart();
      p.io.run_for(std::chrono::seconds(10));
      REQUIRE(woke);
      continue;
    }
    REQUIRE_FALSE(ec);
    CHECK(n <= 16384);
    written += n;
  }
  reader.join();
  CHECK(written == reply.size());
  CHECK(got == reply);

  // The client's close_notify is the end of input.
  SSL_shutdown(client.ssl.get());
  REQUIRE(readable_within(p.io, t, std::chrono::seconds(10)));
  CHECK(t.read_some(buffer.data(), buffer.size(), ec) == 0);
  CHECK(ec == asio::error::eof);
  t.close();
}

TEST_CASE("cache tls transport: a plaintext client fails the handshake with a reason") {
  auto tls = server_tls();
  socket_pair p;
  tls_transport t(std::move(p.server), *tls);
  asio::write(p.client, asio::buffer(std::string("get foo\r\n")));
  std::string why;
  CHECK(server_handshake(p.io, t, why) == tls_transport::handshake_result::failed);
  CHECK_FALSE(why.empty());
  t.close();
}
