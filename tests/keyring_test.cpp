// The packet lane's keyring (security/keyring.hpp) and its file format
// (security/keyring_file.hpp): sealed datagrams open with the right key only;
// any change to a sealed datagram, any truncation, garbage of every length
// and plaintext are refused; rotation step by step keeps old and new
// senders readable; the refusals say why. And the UDP transport with a
// keyring: sealed on the wire, counted when a datagram does not open.
#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dhtkit/security/keyring.hpp"
#include "dhtkit/security/keyring_file.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "support/asio_run.hpp"
#include "support/catch.hpp"

namespace {

using bytes = std::vector<std::byte>;

bytes key_of(std::uint8_t fill, std::size_t size = 32) {
  bytes k(size);
  for (std::size_t i = 0; i < size; ++i) k[i] = static_cast<std::byte>(fill + i * 7);
  return k;
}

bytes text(std::string_view s) {
  bytes b(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) b[i] = static_cast<std::byte>(s[i]);
  return b;
}

bytes seal(const dhtkit::keyring& r, const bytes& m) {
  bytes out;
  REQUIRE_FALSE(r.seal(m, out));
  return out;
}

// Opens `d` with `r`: the message, or nothing when it does not open (then
// the error must be unauthenticated).
std::optional<bytes> open(const dhtkit::keyring& r, const bytes& d) {
  bytes out;
  if (auto ec = r.open(d, out)) {
    CHECK(ec == dhtkit::errc::unauthenticated);
    CHECK(out.empty());
    return std::nullopt;
  }
  return out;
}

}  // namespace

TEST_CASE("keyring: a sealed datagram opens to the message, for every key size and message length") {
  for (std::size_t size : {16u, 24u, 32u}) {
    dhtkit::keyring r(key_of(1, size));
    for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 1371u}) {
      bytes m(n);
      for (std::size_t i = 0; i < n; ++i) m[i] = static_cast<std::byte>(i * 13);
      const bytes d = seal(r, m);
      CHECK(d.size() == n + r.overhead());
      CHECK(d[0] == std::byte{dhtkit::keyring::envelope_version});
      const auto back = open(r, d);
      REQUIRE(back);
      CHECK(*back == m);
    }
  }
}

TEST_CASE("keyring: the same message sealed twice differs (a fresh nonce each time)") {
  dhtkit::keyring r(key_of(1));
  const bytes m = text("ping");
  const bytes a = seal(r, m), b = seal(r, m);
  CHECK(a != b);
  CHECK(bytes(a.begin() + 1, a.begin() + 13) != bytes(b.begin() + 1, b.begin() + 13));
  // The plaintext does not appear in the datagram.
  CHECK(std::search(a.begin(), a.end(), m.begin(), m.end()) == a.end());
}

TEST_CASE("keyring: a datagram sealed with another key is refused") {
  dhtkit::keyring a(key_of(1)), b(key_of(2));
  dhtkit::keyring c(key_of(1, 16));  // another size, another cipher
  const bytes d = seal(a, text("join me"));
  CHECK_FALSE(open(b, d));
  CHECK_FALSE(open(c, d));
  CHECK(open(a, d));
}

TEST_CASE("keyring: flipping any bit of a sealed datagram makes it refused") {
  dhtkit::keyring r(key_of(3));
  const bytes d = seal(r, text("alive: node b, incarnation 7"));
  for (std::size_t i = 0; i < d.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      bytes t = d;
      t[i] ^= static_cast<std::byte>(1 << bit);
      INFO("byte " << i << " bit " << bit);
      CHECK_FALSE(open(r, t));
    }
  }
}

TEST_CASE("keyring: truncated, extended, empty, plaintext and random datagrams are refused") {
  dhtkit::keyring r(key_of(4));
  const bytes d = seal(r, text("suspect: node c"));
  for (std::size_t n = 0; n < d.size(); ++n) CHECK_FALSE(open(r, bytes(d.begin(), d.begin() + n)));
  bytes longer = d;
  longer.push_back(std::byte{0});
  CHECK_FALSE(open(r, longer));
  CHECK_FALSE(open(r, {}));
  CHECK_FALSE(open(r, text("DHTK plaintext envelope of a peer without the key")));
  const std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 2000; ++i) {
    bytes g(rng() % 200);
    for (auto& x : g) x = static_cast<std::byte>(rng());
    if (!g.empty() && rng() % 2) g[0] = std::byte{dhtkit::keyring::envelope_version};
    CHECK_FALSE(open(r, g));
  }
}

TEST_CASE("keyring: rotation steps keep every node readable at every step") {
  const bytes k1 = key_of(10), k2 = key_of(20);
  // Two nodes, rotated one after the other; at every point each opens what the other seals.
  dhtkit::keyring a(k1), b(k1);
  auto both_read = [&] {
    const bytes m = text("probe");
    return open(a, seal(b, m)) == std::optional<bytes>(m) && open(b, seal(a, m)) == std::optional<bytes>(m);
  };
  REQUIRE(both_read());
  // 1: install the new key everywhere (still sealing with k1).
  REQUIRE_FALSE(a.install(k2));
  CHECK(both_read());
  REQUIRE_FALSE(b.install(k2));
  CHECK(both_read());
  CHECK(a.size() == 2);
  // 2: make it primary everywhere.
  REQUIRE_FALSE(a.use(k2));
  CHECK(a.keys().front() == k2);
  CHECK(both_read());  // b opens k2 (installed), a still opens b's k1
  REQUIRE_FALSE(b.use(k2));
  CHECK(both_read());
  // 3: remove the old key everywhere.
  REQUIRE_FALSE(a.remove(k1));
  CHECK(both_read());
  REQUIRE_FALSE(b.remove(k1));
  CHECK(both_read());
  CHECK(a.keys() == std::vector<bytes>{k2});
  // The old key alone no longer gets in.
  dhtkit::keyring old(k1);
  CHECK_FALSE(open(a, seal(old, text("probe"))));
}

TEST_CASE("keyring: refusals say why and change nothing") {
  const bytes k1 = key_of(1), k2 = key_of(2);
  dhtkit::keyring r(k1);
  CHECK(r.remove(k1) == dhtkit::keyring_errc::removing_primary);
  CHECK(r.remove(k2) == dhtkit::keyring_errc::key_not_installed);
  CHECK(r.use(k2) == dhtkit::keyring_errc::key_not_installed);
  CHECK(r.install(key_of(1, 20)) == dhtkit::keyring_errc::bad_key_size);
  CHECK(r.install(bytes{}) == dhtkit::keyring_errc::bad_key_size);
  CHECK(r.replace({}) == dhtkit::keyring_errc::no_keys);
  CHECK(r.replace({k2, k2}) == dhtkit::keyring_errc::duplicate_key);
  CHECK(r.replace({k2, key_of(3, 8)}) == dhtkit::keyring_errc::bad_key_size);
  CHECK(r.keys() == std::vector<bytes>{k1});
  CHECK_FALSE(r.install(k1));  // already there: nothing changes
  CHECK(r.size() == 1);
  for (std::uint8_t i = 2; r.size() < dhtkit::keyring::max_keys; ++i) REQUIRE_FALSE(r.install(key_of(i)));
  CHECK(r.install(key_of(200)) == dhtkit::keyring_errc::too_many_keys);
  CHECK(r.size() == dhtkit::keyring::max_keys);
  CHECK(std::error_code(dhtkit::keyring_errc::removing_primary).message().find("primary") !=
        std::string::npos);
  CHECK_THROWS_AS(dhtkit::keyring(key_of(1, 31)), std::invalid_argument);
  CHECK_THROWS_AS(dhtkit::keyring(std::vector<bytes>{}), std::invalid_argument);
  // replace() is all or nothing, and the first key becomes primary.
  REQUIRE_FALSE(r.replace({k2, k1}));
  CHECK(r.keys() == std::vector<bytes>{k2, k1});
  CHECK(dhtkit::keyring::fingerprint(k1).size() == 8);
  CHECK(dhtkit::keyring::fingerprint(k1) != dhtkit::keyring::fingerprint(k2));
}

TEST_CASE("keyring file: keys in order, comments and blank lines skipped") {
  // 32 bytes of 0x00..0x1f and 16 bytes of 0xff, in base64.
  const std::string k32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  const std::string k16 = "/////////////////////w==";
  const auto f = dhtkit::parse_keyring_file("# primary first\n\n  " + k32 + "  \r\n" + k16 + "\n", "k.txt");
  INFO(f.error);
  REQUIRE(f.ok());
  REQUIRE(f.keys.size() == 2);
  CHECK(f.keys[0].size() == 32);
  CHECK(f.keys[0][31] == std::byte{0x1f});
  CHECK(f.keys[1] == bytes(16, std::byte{0xff}));
  dhtkit::keyring r(f.keys);
  CHECK(r.keys() == f.keys);
}

TEST_CASE("keyring file: bad lines are refused naming the line") {
  const std::string k32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  auto error = [](const std::string& t) { return dhtkit::parse_keyring_file(t, "k.txt").error; };
  CHECK(error(k32 + "\nnot*base64!\n") ==
        "k.txt: line 2: not a base64 key (one key per line, e.g. from head -c 32 "
        "/dev/urandom | base64)");
  CHECK(
      error("# c\n" + k32 + "\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n").find("line 3: not a base64") !=
      std::string::npos);  // missing padding
  CHECK(error("AAECAwQFBgc=\n").find("line 1: the key is 8 bytes") != std::string::npos);
  CHECK(error(k32 + "\n\n" + k32 + "\n").find("line 3: the same key as line 1") != std::string::npos);
  CHECK(error("# only a comment\n\n") == "k.txt: no key (the first key line is the primary key)");
  CHECK(error("") == "k.txt: no key (the first key line is the primary key)");
  CHECK(error("AA=A\n").find("line 1: not a base64") != std::string::npos);  // padding inside
  CHECK(error(std::string(dhtkit::keyring_file_max_bytes + 1, '#')).find("larger than") != std::string::npos);
  std::string many;
  for (int i = 0; i < 17; ++i) {
    bytes k(16, static_cast<std::byte>(i));
    // base64 of 16 equal bytes: build it through the decoder's inverse.
    unsigned char out[32];
    EVP_EncodeBlock(out, reinterpret_cast<const unsigned char*>(k.data()), 16);
    many += std::string(reinterpret_cast<char*>(out)) + "\n";
  }
  CHECK(error(many).find("line 17: more than 16 keys") != std::string::npos);
  const auto missing = dhtkit::read_keyring_file("/nonexistent/dhtkit/keys");
  CHECK_FALSE(missing.ok());
  CHECK(missing.error.find("/nonexistent/dhtkit/keys: cannot read") == 0);
}

TEST_CASE("udp transport with a keyring: datagrams are sealed on the wire and the wrong key is counted") {
  asio::io_context io;
  auto ring = std::make_shared<dhtkit::keyring>(key_of(7));
  auto other = std::make_shared<dhtkit::keyring>(key_of(8));
  dhtkit::udp_transport_config cfg;
  cfg.max_message_size = 200;
  cfg.cipher = ring;
  auto a = dhtkit::udp_transport::open(io.get_executor(), cfg);
  auto b = dhtkit::udp_transport::open(io.get_executor(), cfg);
  cfg.cipher = other;
  auto stranger = dhtkit::udp_transport::open(io.get_executor(), cfg);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(stranger);
  CHECK(a->max_message_size() == 200 - dhtkit::keyring::envelope_overhead);
  std::vector<bytes> got;
  b->set_receive_handler(
      [&](const dhtkit::endpoint&, std::span<const std::byte> m) { got.emplace_back(m.begin(), m.end()); });

  // Too large once sealed: refused at once.
  CHECK(a->send(b->local_endpoint(), bytes(a->max_message_size() + 1)) == dhtkit::errc::message_too_large);
  REQUIRE_FALSE(a->send(b->local_endpoint(), bytes(a->max_message_size(), std::byte{9})));
  REQUIRE_FALSE(a->send(b->local_endpoint(), text("hello")));
  REQUIRE(dhtkit::test::run_until(
      io, [&] { return got.size() == 2; }, std::chrono::seconds(5)));
  CHECK(got[0] == bytes(a->max_message_size(), std::byte{9}));
  CHECK(got[1] == text("hello"));

  // The wrong key, and a plaintext datagram from a raw socket: dropped, counted, never delivered.
  REQUIRE_FALSE(stranger->send(b->local_endpoint(), text("let me in")));
  asio::ip::udp::socket raw(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto to = asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), b->local_endpoint().port);
  raw.send_to(asio::buffer(std::string("plaintext")), to);
  raw.send_to(asio::buffer(std::string(1, '\x01')), to);  // the version byte alone
  REQUIRE(dhtkit::test::run_until(
      io, [&] { return b->stats().unauthenticated_received == 3; }, std::chrono::seconds(5)));
  CHECK(got.size() == 2);
  CHECK(b->stats().datagrams_received == 2);

  // Sent from another thread (sealed there): delivered too.
  std::thread t([&] { CHECK_FALSE(a->send(b->local_endpoint(), text("from a thread"))); });
  t.join();
  REQUIRE(dhtkit::test::run_until(
      io, [&] { return got.size() == 3; }, std::chrono::seconds(5)));
  CHECK(got[2] == text("from a thread"));
}
