// Mutual TLS on the stream lane (security/tls.hpp over
// transport/stream_security.hpp), on real sockets on 127.0.0.1: first the TCP
// transport alone (a message over TLS, both identities seen; a plain client,
// a silent one and a certificate from another CA refused within the handshake
// timeout and counted; the transport conformance checks every transport
// passes), then tls_security's own checks, then DHT nodes: two
// TLS nodes replicate a value too large for a datagram, a node with a
// certificate from another CA cannot deliver stream traffic or receive
// replicas, and a certificate whose name differs from the member it speaks
// for is refused both ways. Certificates are made at test time
// (support/test_certificates.hpp). Every wait is bounded and ends when its
// event happened.
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dhtkit/node/node.hpp"
#include "dhtkit/security/tls.hpp"
#include "dhtkit/transport/asio_tcp.hpp"
#include "support/asio_run.hpp"
#include "support/catch.hpp"
#include "support/node_poll.hpp"
#include "support/test_certificates.hpp"
#include "support/transport_conformance.hpp"

namespace {

using namespace std::chrono_literals;
using dhtkit::test::run_until;

std::vector<std::byte> bytes_of(std::size_t n, char fill) {
  return std::vector<std::byte>(n, static_cast<std::byte>(fill));
}

dhtkit::tcp_transport_config tls_transport(const dhtkit::tls_config& c) {
  dhtkit::tcp_transport_config cfg;
  cfg.security = dhtkit::tls_security::create(c);
  return cfg;
}

// One CA for the cluster, another that no node trusts, and certificates.
struct certificates {
  dhtkit::test::pki pki;
  dhtkit::test::pki::authority_files ca = pki.authority("cluster-ca");
  dhtkit::test::pki::authority_files other_ca = pki.authority("other-ca");
  dhtkit::test::pki::node_files a = pki.issue(ca, "a");
  dhtkit::test::pki::node_files b = pki.issue(ca, "b");
  dhtkit::test::pki::node_files c = pki.issue(ca, "c");
  // Its own name, from a CA the cluster does not trust. It trusts both CAs,
  // so it can check the cluster's servers: the refusals are the cluster's.
  dhtkit::test::pki::node_files x = [this] {
    auto f = pki.issue(other_ca, "x");
    f.config.ca_file = (pki.dir() / "both-cas.pem").string();
    std::ofstream(f.config.ca_file) << std::ifstream(other_ca.cert_file).rdbuf()
                                    << std::ifstream(ca.cert_file).rdbuf();
    return f;
  }();
};

}  // namespace

// ---- the TCP transport over TLS ----------------------------------------------

TEST_CASE("tls transport: a message crosses mutual TLS and each side sees the other's certificate names") {
  certificates certs;
  asio::io_context io;
  auto server = dhtkit::tcp_transport::open(io.get_executor(), tls_transport(certs.a.config));
  auto client = dhtkit::tcp_transport::open(io.get_executor(), tls_transport(certs.b.config));
  REQUIRE(server.has_value());
  REQUIRE(client.has_value());
  std::vector<std::string> server_saw, client_saw;
  server->set_peer_verifier([&](const dhtkit::endpoint&, const dhtkit::peer_identity& who) {
    server_saw = who.names;
    return true;
  });
  client->set_peer_verifier([&](const dhtkit::endpoint& at, const dhtkit::peer_identity& who) {
    CHECK(at == server->local_endpoint());
    client_saw = who.names;
    return true;
  });
  std::vector<std::byte> got;
  std::optional<dhtkit::endpoint> from;
  server->set_receive_handler([&](const dhtkit::endpoint& f, std::span<const std::byte> m) {
    from = f;
    got.assign(m.begin(), m.end());
  });
  // Larger than one TLS record: the secure write loop goes round.
  const auto message = bytes_of(100 * 1024, 'm');
  REQUIRE_FALSE(client->send(server->local_endpoint(), message));
  REQUIRE(run_until(
      io, [&] { return !got.empty(); }, 10s));
  CHECK(got == message);
  CHECK(*from == client->local_endpoint());
  CHECK(server_saw == std::vector<std::string>{"b"});
  CHECK(client_saw == std::vector<std::string>{"a"});
  CHECK(server->stats().handshake_failures == 0);
  CHECK(client->stats().outbound_handshake_failures == 0);

  // Graceful shutdown over TLS: the half-close and the peer's close still end it cleanly.
  std::optional<std::error_code> shut;
  REQUIRE_FALSE(client->send(server->local_endpoint(), bytes_of(10, 'z')));
  client->shutdown(5s, [&](std::error_code ec) { shut = ec; });
  REQUIRE(run_until(
      io, [&] { return shut.has_value(); }, 10s));
  CHECK_FALSE(*shut);
  CHECK(server->stats().frames_received == 2);
}

TEST_CASE("tls transport: a plain client and a silent connection are refused within the handshake timeout") {
  certificates certs;
  asio::io_context io;
  auto cfg = tls_transport(certs.a.config);
  cfg.handshake_timeout = 300ms;
  auto server = dhtkit::tcp_transport::open(io.get_executor(), cfg);
  REQUIRE(server.has_value());
  std::size_t delivered = 0;
  server->set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte>) { ++delivered; });

  // A plain TCP transport: its hello is not a TLS ClientHello.
  auto plain = dhtkit::tcp_transport::open(io.get_executor(), {});
  REQUIRE(plain.has_value());
  REQUIRE_FALSE(plain->send(server->local_endpoint(), bytes_of(64, 'p')));
  REQUIRE(run_until(
      io, [&] { return server->stats().handshake_failures >= 1; }, 5s));

  // A connection that says nothing is cut off by handshake_timeout.
  asio::ip::tcp::socket silent(io);
  silent.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->local_endpoint().port));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(run_until(
      io, [&] { return server->stats().handshake_failures >= 2; }, 5s));
  CHECK(std::chrono::steady_clock::now() - start >= 250ms);
  CHECK(delivered == 0);
  CHECK(server->stats().frames_received == 0);
  CHECK(server->stats().inbound_buffer_bytes == 0);  // nothing held for the refused connections
}

TEST_CASE("tls transport: certificates from another CA are refused by servers and by clients") {
  certificates certs;
  asio::io_context io;
  auto server = dhtkit::tcp_transport::open(io.get_executor(), tls_transport(certs.a.config));
  auto stranger = dhtkit::tcp_transport::open(io.get_executor(), tls_transport(certs.x.config));
  REQUIRE(server.has_value());
  REQUIRE(stranger.has_value());
  std::size_t delivered = 0;
  server->set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte>) { ++delivered; });
  stranger->set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte>) { ++delivered; });

  // The stranger dials the cluster's server: the server refuses its certificate.
  REQUIRE_FALSE(stranger->send(server->local_endpoint(), bytes_of(64, 's')));
  REQUIRE(run_until(
      io, [&] { return server->stats().handshake_failures >= 1; }, 5s));
  // The cluster's node dials the stranger: it refuses the stranger's server certificate.
  REQUIRE_FALSE(server->send(stranger->local_endpoint(), bytes_of(64, 'c')));
  REQUIRE(run_until(
      io, [&] { return server->stats().outbound_handshake_failures >= 1; }, 5s));
  io.run_for(100ms);  // the stranger's retries, if any, are refused too
  CHECK(delivered == 0);
  CHECK(server->stats().frames_received == 0);
  CHECK(stranger->stats().frames_received == 0);
}

namespace {

// The transport contract every transport keeps, over TLS: both transports
// hold certificate "a" (no verifier: the contract is about delivery).
struct tls_fixture {
  using transport_type = dhtkit::tcp_transport;
  using endpoint_type = dhtkit::endpoint;

  static const dhtkit::tls_config& credentials() {
    static certificates certs;  // the directory goes at exit; the files are read by create()
    return certs.a.config;
  }
  static dhtkit::tcp_transport_config config() {
    auto cfg = tls_transport(credentials());
    cfg.backoff_initial = dhtkit::millis(5);  // the restart check waits on reconnects
    cfg.backoff_max = dhtkit::millis(100);
    cfg.max_connect_attempts = 40;
    return cfg;
  }

  tls_fixture() {
    a_.emplace(dhtkit::tcp_transport::open(io.get_executor(), config()).value());
    b_.emplace(dhtkit::tcp_transport::open(io.get_executor(), config()).value());
    b_endpoint = b_->local_endpoint();
  }
  dhtkit::tcp_transport& a() { return *a_; }
  dhtkit::tcp_transport& b() { return *b_; }
  dhtkit::endpoint unreachable() {
    asio::io_context scratch;
    asio::ip::tcp::socket s(scratch, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return dhtkit::endpoint::loopback_v4(s.local_endpoint().port());
  }
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds bound) {
    return dhtkit::test::run_until(io, done, bound);
  }
  void stop_b() { b_->close(); }
  void restart_b() {
    auto cfg = config();
    cfg.bind = b_endpoint;
    b_.reset();
    b_.emplace(dhtkit::tcp_transport::open(io.get_executor(), cfg).value());
  }

  asio::io_context io;  // first: outlives the transports
  std::optional<dhtkit::tcp_transport> a_, b_;
  dhtkit::endpoint b_endpoint;
};
static_assert(dhtkit::test::conformance::transport_fixture<tls_fixture>);

}  // namespace

DHTKIT_TRANSPORT_CONFORMANCE_TESTS(tls_fixture, "tls transport", "[transport][tls][conformance]")

// ---- tls_security's checks at start ------------------------------------------

TEST_CASE(
    "tls security: create names the file and the problem, and a node refuses a certificate without its "
    "name") {
  certificates certs;
  auto message_of = [](const dhtkit::tls_config& c) {
    try {
      (void)dhtkit::tls_security::create(c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  auto cfg = certs.a.config;
  CHECK(message_of(cfg) == "(accepted)");
  CHECK(dhtkit::tls_security::create(cfg)->local_identity().names == std::vector<std::string>{"a"});

  cfg.certificate_chain_file = (certs.pki.dir() / "missing.pem").string();
  CHECK_THAT(message_of(cfg), Catch::Contains("missing.pem"));
  cfg = certs.a.config;
  cfg.private_key_file = certs.b.config.private_key_file;
  CHECK_THAT(message_of(cfg), Catch::Contains("b.key") && Catch::Contains("mismatch"));
  cfg = certs.a.config;
  cfg.ca_file = certs.other_ca.cert_file;
  CHECK_THAT(message_of(cfg), Catch::Contains("does not verify against"));
  cfg = certs.a.config;
  cfg.ca_file.clear();
  CHECK_THAT(message_of(cfg), Catch::Contains("all required"));

  // The common name stands in when there is no DNS subject alternative name.
  auto cn_only = certs.pki.issue(certs.ca, "cn-only", "none");
  CHECK(dhtkit::tls_security::create(cn_only.config)->local_identity().names ==
        std::vector<std::string>{"cn-only"});
  // With DNS names, the common name is not one of the names.
  auto two = certs.pki.issue(certs.ca, "common", "DNS:d1,DNS:d2", "two");
  CHECK(dhtkit::tls_security::create(two.config)->local_identity().names ==
        std::vector<std::string>{"d1", "d2"});

  asio::io_context io;
  auto node_cfg = dhtkit::node_config::local();
  node_cfg.name = "m";
  node_cfg.stream_security = dhtkit::tls_security::create(certs.c.config);
  std::string why;
  try {
    dhtkit::node n(io.get_executor(), node_cfg);
  } catch (const std::invalid_argument& e) {
    why = e.what();
  }
  CHECK_THAT(why, Catch::Contains("\"m\" is not a name of the stream lane's certificate (it names c)"));
}

// ---- DHT nodes over TLS --------------------------------------------------------

namespace {

dhtkit::node_config tls_node_config(const std::string& name,
                                    std::shared_ptr<dhtkit::stream_security> security,
                                    std::vector<std::string> seeds = {}) {
  auto cfg = dhtkit::node_config::local();
  cfg.name = name;
  cfg.seeds = std::move(seeds);
  cfg.stream_security = std::move(security);
  // Room for a first connection's handshake on a loaded machine.
  cfg.replication.replica_timeout = 500ms;
  cfg.replication.request_timeout = 2s;
  return cfg;
}

// A stream_security that claims a name its certificate does not carry: what
// a modified binary holding another node's valid certificate would do.
class renamed_security final : public dhtkit::stream_security {
 public:
  renamed_security(std::shared_ptr<dhtkit::stream_security> inner, std::string claimed)
      : inner_(std::move(inner)) {
    claimed_.names = {std::move(claimed)};
  }
  std::shared_ptr<dhtkit::secure_stream> wrap(asio::ip::tcp::socket s, dhtkit::stream_role role) override {
    return inner_->wrap(std::move(s), role);
  }
  const dhtkit::peer_identity& local_identity() const override { return claimed_; }

 private:
  std::shared_ptr<dhtkit::stream_security> inner_;
  dhtkit::peer_identity claimed_;
};

bool join(asio::io_context& io, dhtkit::node& n) {
  std::optional<std::error_code> done;
  n.async_join([&](std::error_code ec) { done = ec; });
  return run_until(
             io, [&] { return done.has_value(); }, 10s) &&
         !*done;
}

// Waits (10 s at most) until a's and b's stream counter `field`, summed,
// exceeds `above`: either of the two may be the one a refused peer reached.
bool sum_exceeds(asio::io_context& io, const dhtkit::node& a, const dhtkit::node& b,
                 std::uint64_t dhtkit::tcp_transport_stats::*field, std::uint64_t above) {
  return run_until(
      io, [&] { return a.stream_transport_stats().*field + b.stream_transport_stats().*field > above; }, 10s);
}

// Every node sees `alive` live members. The bound is generous: a member that
// joined through a can take b several seconds of gossip to learn of (seen up
// to 7 s on a loaded 2-core machine; gossip is UDP, TLS plays no part).
bool see_alive(asio::io_context& io, const std::vector<dhtkit::node*>& nodes, std::uint64_t alive) {
  return dhtkit::test::stats_until(io, nodes, 30s, 2s, [&](const std::vector<dhtkit::node_stats>& s) {
    return std::all_of(s.begin(), s.end(), [&](const auto& x) { return x.members_alive == alive; });
  });
}

// Nodes a and b, each with its own certificate from the cluster CA, both
// joined (b through a). `seed` is a's packet endpoint, for the nodes a test adds.
struct joined_pair {
  certificates certs;
  asio::io_context io;
  dhtkit::node a{io.get_executor(), tls_node_config("a", dhtkit::tls_security::create(certs.a.config))};
  const std::vector<std::string> seed{a.packet_endpoint().to_string()};
  dhtkit::node b{io.get_executor(), tls_node_config("b", dhtkit::tls_security::create(certs.b.config), seed)};

  joined_pair() {
    REQUIRE(join(io, a));
    REQUIRE(join(io, b));
  }
};

std::error_code put(asio::io_context& io, dhtkit::node& n, const std::string& key,
                    const std::vector<std::byte>& v, dhtkit::put_result* out = nullptr) {
  std::optional<std::error_code> done;
  n.async_put(key, v, {}, [&](std::error_code ec, dhtkit::put_result r) {
    done = ec;
    if (out) *out = r;
  });
  REQUIRE(run_until(
      io, [&] { return done.has_value(); }, 10s));
  return *done;
}

std::optional<dhtkit::get_result> get(asio::io_context& io, dhtkit::node& n, const std::string& key,
                                      std::uint32_t r) {
  std::optional<std::error_code> done;
  dhtkit::get_result got;
  dhtkit::request_options o;
  o.r = r;
  n.async_get(key, o, [&](std::error_code ec, dhtkit::get_result res) {
    done = ec;
    got = std::move(res);
  });
  REQUIRE(run_until(
      io, [&] { return done.has_value(); }, 10s));
  if (*done) return std::nullopt;
  return got;
}

}  // namespace

TEST_CASE_METHOD(
    joined_pair,
    "tls node: two nodes join and replicate a value larger than a datagram over the TLS stream lane") {
  REQUIRE(see_alive(io, {&a, &b}, 2));

  const auto value = bytes_of(8 * 1024, 'v');  // > packet_max_message (1400): the stream lane
  REQUIRE(value.size() > dhtkit::node_config::local().packet_max_message);
  dhtkit::put_result r;
  const auto ec = put(io, a, "big", value, &r);
  INFO(r.describe(ec));
  REQUIRE_FALSE(ec);
  CHECK(r.acks == 2);
  auto got = get(io, b, "big", 2);
  REQUIRE(got.has_value());
  REQUIRE(got->siblings.size() == 1);
  CHECK(got->siblings[0].value == value);
  CHECK(got->replies == 2);

  // b took the replica on the stream lane.
  CHECK(b.stream_transport_stats().frames_received >= 1);
  CHECK(a.stream_transport_stats().frames_sent >= 1);
  for (dhtkit::node* n : {&a, &b}) {
    const auto s = n->stream_transport_stats();
    CHECK(s.handshake_failures == 0);
    CHECK(s.outbound_handshake_failures == 0);
    CHECK(s.peer_name_mismatches == 0);
    CHECK(s.frames_refused_identity == 0);
  }
}

TEST_CASE_METHOD(
    joined_pair,
    "tls node: a node with a certificate from another CA cannot deliver stream messages or get data") {
  // Gossip is the packet lane's (keyring) business: without a keyring x
  // joins the membership. What TLS keeps from it is the stream lane.
  dhtkit::node x(io.get_executor(), tls_node_config("x", dhtkit::tls_security::create(certs.x.config), seed));
  REQUIRE(join(io, x));
  REQUIRE(see_alive(io, {&a, &b, &x}, 3));

  // x coordinates a large write: no replica but its own takes it.
  const auto value = bytes_of(8 * 1024, 'x');
  CHECK(put(io, x, "from-x", value));
  REQUIRE(sum_exceeds(io, a, b, &dhtkit::tcp_transport_stats::handshake_failures, 0));
  auto seen = get(io, a, "from-x", 2);  // a and b answer; x's large reply cannot reach a
  REQUIRE(seen.has_value());
  CHECK(seen->siblings.empty());

  // a coordinates a large write: it reaches b, never x.
  CHECK_FALSE(put(io, a, "from-a", bytes_of(8 * 1024, 'a')));
  REQUIRE(sum_exceeds(io, a, b, &dhtkit::tcp_transport_stats::outbound_handshake_failures, 0));
  CHECK(x.stream_transport_stats().frames_received == 0);
  CHECK(a.stream_transport_stats().frames_refused_identity == 0);
}

TEST_CASE_METHOD(joined_pair,
                 "tls node: a valid certificate whose name is not the member's is refused both ways") {
  REQUIRE(see_alive(io, {&a, &b}, 2));

  // Speaking as member b from elsewhere: a transport whose hello names b's
  // stream endpoint. With c's certificate its frame is refused; with b's own
  // it reaches the node, which counts the bytes (no envelope) as malformed --
  // something b's real traffic never is.
  auto impostor = [&](const dhtkit::tls_config& c) {
    auto cfg = tls_transport(c);
    cfg.advertise = b.stream_endpoint();
    return dhtkit::tcp_transport::open(io.get_executor(), cfg);
  };
  auto malformed = [&] {
    std::optional<std::uint64_t> n;
    a.async_stats([&](dhtkit::node_stats s) { n = s.dropped.malformed; });
    REQUIRE(run_until(
        io, [&] { return n.has_value(); }, 5s));
    return *n;
  };
  const auto malformed_before = malformed();
  const auto refused_before = a.stream_transport_stats().frames_refused_identity;
  REQUIRE(refused_before == 0);  // a and b carry their own names
  auto as_c = impostor(certs.c.config);
  REQUIRE(as_c.has_value());
  REQUIRE_FALSE(as_c->send(a.stream_endpoint(), bytes_of(32, 'i')));
  REQUIRE(run_until(
      io, [&] { return a.stream_transport_stats().frames_refused_identity > refused_before; }, 10s));
  CHECK(malformed() == malformed_before);
  auto as_b = impostor(certs.b.config);
  REQUIRE(as_b.has_value());
  REQUIRE_FALSE(as_b->send(a.stream_endpoint(), bytes_of(32, 'i')));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (malformed() == malformed_before && std::chrono::steady_clock::now() < deadline) io.run_for(20ms);
  CHECK(malformed() == malformed_before + 1);
  CHECK(a.stream_transport_stats().frames_refused_identity == refused_before + 1);

  // Member "m" presenting c's valid certificate.
  const auto refused_so_far = a.stream_transport_stats().frames_refused_identity;
  auto lying = std::make_shared<renamed_security>(dhtkit::tls_security::create(certs.c.config), "m");
  dhtkit::node m(io.get_executor(), tls_node_config("m", lying, seed));
  REQUIRE(join(io, m));
  REQUIRE(see_alive(io, {&a, &b, &m}, 3));

  CHECK(put(io, m, "from-m", bytes_of(8 * 1024, 'm')));
  REQUIRE(sum_exceeds(io, a, b, &dhtkit::tcp_transport_stats::frames_refused_identity, refused_so_far));
  CHECK_FALSE(put(io, a, "from-a", bytes_of(8 * 1024, 'a')));
  REQUIRE(sum_exceeds(io, a, b, &dhtkit::tcp_transport_stats::peer_name_mismatches, 0));
  CHECK(m.stream_transport_stats().frames_received == 0);
  CHECK(a.stream_transport_stats().handshake_failures == 0);  // the certificate itself is valid
}
