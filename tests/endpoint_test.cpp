// dhtkit::endpoint: parsing, formatting, ordering, hashing, serialization.
#include <cereal/archives/portable_binary.hpp>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>

#include "dhtkit/core/endpoint.hpp"
#include "support/catch.hpp"
#include "support/seeds.hpp"

TEST_CASE("endpoint header example", "[endpoint]") {
  auto run = []() -> std::error_code {
    auto ep = dhtkit::endpoint::parse("127.0.0.1:7000");
    if (!ep) return ep.error();       // errc::invalid_address
    std::string s = ep->to_string();  // "127.0.0.1:7000"
    auto v6 = dhtkit::endpoint::parse("[::1]:7000");
    std::unordered_set<dhtkit::endpoint> peers{*ep, dhtkit::endpoint::loopback_v4(7001)};
    CHECK(s == "127.0.0.1:7000");
    CHECK(v6);
    CHECK(peers.size() == 2);
    return {};
  };
  CHECK(!run());
}

TEST_CASE("endpoint parses and prints IPv4", "[endpoint]") {
  const auto ep = dhtkit::endpoint::parse("10.1.255.0:65535");
  REQUIRE(ep);
  CHECK(ep->is_v4());
  CHECK(*ep == dhtkit::endpoint::v4(10, 1, 255, 0, 65535));
  CHECK(ep->to_string() == "10.1.255.0:65535");
  CHECK(dhtkit::endpoint::parse("0.0.0.0:0")->is_unspecified());
  CHECK(dhtkit::endpoint::loopback_v4(7000).to_string() == "127.0.0.1:7000");
}

TEST_CASE("endpoint parses IPv6 spellings and prints RFC 5952 form", "[endpoint]") {
  struct row {
    const char* in;
    const char* out;
  };
  const row rows[] = {
      {"[::1]:7000", "[::1]:7000"},
      {"[::]:1", "[::]:1"},
      {"[0:0:0:0:0:0:0:1]:80", "[::1]:80"},
      {"[2001:DB8:0:0:0:0:2:1]:80", "[2001:db8::2:1]:80"},
      {"[2001:db8:0:1:1:1:1:1]:80", "[2001:db8:0:1:1:1:1:1]:80"},  // a single zero group stays
      {"[2001:0:0:1:0:0:0:1]:80", "[2001:0:0:1::1]:80"},           // the longest run wins
      {"[2001:db8:0:0:1:0:0:1]:80", "[2001:db8::1:0:0:1]:80"},     // the first of equal runs wins
      {"[fe80::]:9", "[fe80::]:9"},
      {"[0001:0002::00ff]:9", "[1:2::ff]:9"},
      {"[::ffff:192.0.2.1]:9", "[::ffff:c000:201]:9"},
      {"[1:2:3:4:5:6:7:8]:9", "[1:2:3:4:5:6:7:8]:9"},
      {"[1:2:3:4:5:6:1.2.3.4]:9", "[1:2:3:4:5:6:102:304]:9"},
  };
  for (const auto& r : rows) {
    INFO(r.in);
    const auto ep = dhtkit::endpoint::parse(r.in);
    REQUIRE(ep);
    CHECK(ep->is_v6());
    CHECK(ep->to_string() == r.out);
    // The canonical form parses back to the same value.
    const auto again = dhtkit::endpoint::parse(ep->to_string());
    REQUIRE(again);
    CHECK(*again == *ep);
  }
  CHECK(*dhtkit::endpoint::parse("[::1]:5") == dhtkit::endpoint::loopback_v6(5));
}

TEST_CASE("endpoint rejects malformed strings", "[endpoint]") {
  const char* bad[] = {
      "",
      ":",
      "127.0.0.1",        // missing port
      "127.0.0.1:",       // empty port
      "127.0.0.1:65536",  // port too large
      "127.0.0.1:99999999999",
      "127.0.0.1:-1",
      "127.0.0.1:+1",
      "127.0.0.1:08",  // leading zero in port
      "127.0.0.1:7000 ",
      " 127.0.0.1:7000",
      "256.0.0.1:1",  // octet too large
      "1.2.3:1",      // too few octets
      "1.2.3.4.5:1",  // too many
      "1..3.4:1",
      "01.2.3.4:1",  // leading zero: octal to some parsers
      "1.2.3.0x4:1",
      "a.b.c.d:1",
      "localhost:80",  // names are not resolved
      "::1:80",        // IPv6 needs brackets
      "[::1]",         // missing port
      "[::1]:",
      "[::1]80",
      "[::1:80",
      "[]:80",
      "[:::]:80",
      "[1::2::3]:80",  // two "::"
      "[1:2:3:4:5:6:7:8:9]:80",
      "[1:2:3:4:5:6:7]:80",     // too few groups, no "::"
      "[1:2:3:4::5:6:7:8]:80",  // "::" must stand for at least one group
      "[12345::]:80",           // group too long
      "[g::1]:80",
      "[:1::]:80",
      "[1::2:]:80",
      "[::1.2.3.4.5]:80",
      "[::1.2.3.4:5]:80",   // IPv4 tail not last
      "[fe80::1%eth0]:80",  // zone ids are not supported
      "garbage",
  };
  for (const char* s : bad) {
    INFO('"' << s << '"');
    const auto ep = dhtkit::endpoint::parse(s);
    CHECK_FALSE(ep);
    CHECK(ep.error() == dhtkit::errc::invalid_address);
  }
}

TEST_CASE("random endpoints round-trip through text and cereal", "[endpoint]") {
  for (std::uint64_t seed : dhtkit::test::seeds(50)) {
    DHTKIT_SEED_SCOPE(seed);
    std::mt19937_64 rng(seed);
    dhtkit::endpoint ep;
    if (rng() % 2) {
      ep = dhtkit::endpoint::v4(static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                                static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                                static_cast<std::uint16_t>(rng()));
    } else {
      std::array<std::uint8_t, 16> bytes{};
      // Mostly zeros, so compression paths are exercised.
      for (auto& b : bytes) b = rng() % 3 == 0 ? static_cast<std::uint8_t>(rng()) : 0;
      ep = dhtkit::endpoint::v6(bytes, static_cast<std::uint16_t>(rng()));
    }
    const auto parsed = dhtkit::endpoint::parse(ep.to_string());
    REQUIRE(parsed);
    CHECK(*parsed == ep);

    std::stringstream ss;
    {
      cereal::PortableBinaryOutputArchive out(ss);
      out(ep);
    }
    dhtkit::endpoint loaded;
    {
      cereal::PortableBinaryInputArchive in(ss);
      in(loaded);
    }
    CHECK(loaded == ep);
  }
}

TEST_CASE("endpoint loading rejects an unknown family", "[endpoint]") {
  std::stringstream ss;
  {
    cereal::PortableBinaryOutputArchive out(ss);
    out(std::uint8_t{5}, std::uint8_t{1}, std::uint8_t{2}, std::uint8_t{3}, std::uint8_t{4},
        std::uint16_t{80});
  }
  cereal::PortableBinaryInputArchive in(ss);
  dhtkit::endpoint ep;
  CHECK_THROWS_AS(in(ep), std::invalid_argument);
}

TEST_CASE("endpoints order v4 before v6 and hash consistently", "[endpoint]") {
  const auto a = dhtkit::endpoint::v4(10, 0, 0, 1, 80);
  const auto b = dhtkit::endpoint::v4(10, 0, 0, 1, 81);
  const auto c = dhtkit::endpoint::v4(10, 0, 0, 2, 1);
  const auto d = dhtkit::endpoint::loopback_v6(1);
  CHECK(a < b);
  CHECK(b < c);
  CHECK(c < d);
  CHECK(std::hash<dhtkit::endpoint>{}(a) ==
        std::hash<dhtkit::endpoint>{}(dhtkit::endpoint::v4(10, 0, 0, 1, 80)));
  std::unordered_set<dhtkit::endpoint> set{a, b, c, d, a};
  CHECK(set.size() == 4);
  CHECK_FALSE(dhtkit::endpoint::v4(0, 0, 0, 0, 1).port == 0);
  CHECK(dhtkit::endpoint::v4(0, 0, 0, 0, 1).is_unspecified());
  CHECK_FALSE(a.is_unspecified());
}
