// Core vocabulary: the key hash, node ids, error codes, result.
#include <string>
#include <unordered_set>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "support/catch.hpp"

TEST_CASE("xxh64 matches the reference implementation", "[core][hash]") {
  // Expected values printed by the reference implementation's CLI
  // (`printf '%s' "$s" | xxhsum -H64`, xxHash 0.8.1); they also appear in
  // xxHash's and python-xxhash's documentation.
  CHECK(dhtkit::xxh64("") == 0xEF46DB3751D8E999ULL);
  CHECK(dhtkit::xxh64("a") == 0xD24EC4F1A98C6E5BULL);
  CHECK(dhtkit::xxh64("abc") == 0x44BC2CF5AD770999ULL);
  CHECK(dhtkit::xxh64("Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1ULL);
  // 42 bytes: exercises the 32-byte stripe loop, the 8-byte and single-byte tails.
  CHECK(dhtkit::xxh64("0123456789abcdef0123456789abcdef0123456789") == 0xA76190C3ACF08A1CULL);
  // 100 bytes (i * 7 + 3 for i in 0..99): several stripes and a 4-byte tail.
  std::string bytes;
  for (int i = 0; i < 100; ++i) bytes.push_back(static_cast<char>(i * 7 + 3));
  CHECK(dhtkit::xxh64(bytes) == 0xA61F8D4C170FE531ULL);
  // A non-zero seed (same reference implementation, XXH64 with seed 0x9E3779B185EBCA8D).
  CHECK(dhtkit::xxh64("abc", 0x9E3779B185EBCA8DULL) == 0x7E49C9D7E85A4AB6ULL);
}

TEST_CASE("xxh64 is usable at compile time and as the default key hash", "[core][hash]") {
  static_assert(dhtkit::xxh64("abc") == 0x44BC2CF5AD770999ULL);
  static_assert(dhtkit::key_hash<dhtkit::default_key_hash>);
  CHECK(dhtkit::default_key_hash{}("abc") == dhtkit::xxh64("abc"));
  CHECK(dhtkit::xxh64_hash{7}("abc") == dhtkit::xxh64("abc", 7));
}

TEST_CASE("node ids are stable, ordered and hashable", "[core]") {
  const auto a = dhtkit::node_id::from_name("a");
  CHECK(a.value == 0xD24EC4F1A98C6E5BULL);
  CHECK(a.to_string() == "d24ec4f1a98c6e5b");
  CHECK(dhtkit::node_id{1} < dhtkit::node_id{2});
  std::unordered_set<dhtkit::node_id> set{a, a, dhtkit::node_id{1}};
  CHECK(set.size() == 2);
}

TEST_CASE("error codes carry the dhtkit category and a message", "[core][error]") {
  std::error_code ec = dhtkit::errc::queue_full;
  CHECK(ec.category().name() == std::string("dhtkit"));
  CHECK(ec.message() == "send queue full");
  CHECK(ec == dhtkit::errc::queue_full);
  CHECK(ec != dhtkit::errc::timed_out);
  CHECK(dhtkit::make_error_code(static_cast<dhtkit::errc>(999)).message().find("999") != std::string::npos);
}

TEST_CASE("result holds a value or an error", "[core][result]") {
  dhtkit::result<int> ok = 5;
  REQUIRE(ok);
  CHECK(*ok == 5);
  CHECK(!ok.error());
  dhtkit::result<int> bad = dhtkit::errc::timed_out;
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == dhtkit::errc::timed_out);
  CHECK_THROWS_AS(bad.value(), std::system_error);
}

TEST_CASE("time helpers", "[core][time]") {
  const dhtkit::time_point t0{};
  CHECK((t0 + dhtkit::millis(1500)) - t0 == dhtkit::seconds(1) + dhtkit::micros(500000));
  dhtkit::steady_clock_source clock;
  const auto a = clock.now();
  CHECK(clock.now() >= a);
}

TEST_CASE("dereferencing a temporary result moves the value out", "[core][result]") {
  // `for (auto& x : *f())` must not bind to a destroyed temporary.
  auto make = [] {
    return dhtkit::result<std::vector<std::string>>(std::vector<std::string>{"a", "b", "c"});
  };
  std::string joined;
  for (const auto& s : *make()) joined += s;
  CHECK(joined == "abc");
  CHECK(make().value().size() == 3);
}

TEST_CASE("the hash.hpp and node_id.hpp header examples compile and run", "[core][example]") {
  static_assert(dhtkit::key_hash<dhtkit::xxh64_hash>);
  std::uint64_t pos = dhtkit::xxh64_hash{}("user:42");
  constexpr auto h = dhtkit::xxh64("abc");  // usable at compile time
  CHECK(pos == dhtkit::xxh64("user:42"));
  CHECK(h == 0x44BC2CF5AD770999ULL);

  auto id = dhtkit::node_id::from_name("cache-3.example:11211");
  std::unordered_set<dhtkit::node_id> seen{id};
  std::string s = id.to_string();  // 16 hex digits
  CHECK(s.size() == 16);
  CHECK(seen.count(id) == 1);
}
