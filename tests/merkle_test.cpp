// Merkle trees for anti-entropy: the header example, diff finds exactly the
// differing buckets, bad configurations are refused.
#include <cstdint>
#include <set>
#include <stdexcept>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/replication/merkle.hpp"
#include "support/catch.hpp"
#include "support/seeds.hpp"

TEST_CASE("merkle header example", "[merkle]") {
  dhtkit::merkle_config config;                                  // fanout 16, depth 2: 256 buckets
  dhtkit::merkle_tree a(config, /*begin=*/0, /*range_bits=*/0);  // the whole circle
  dhtkit::merkle_tree b(config, 0, 0);
  a.insert(/*position=*/0x1234000000000000, /*digest=*/77);
  b.insert(0x1234000000000000, 78);  // same key, another version
  std::vector<std::uint32_t> buckets = dhtkit::merkle_diff(a, b, /*max_buckets=*/8);
  // buckets == {a.bucket_of(0x1234000000000000)}
  REQUIRE(buckets == std::vector<std::uint32_t>{a.bucket_of(0x1234000000000000)});
  REQUIRE(a.buckets() == 256);
}

TEST_CASE("merkle diff finds exactly the differing buckets", "[merkle]") {
  for (std::uint64_t seed : dhtkit::test::seeds(50)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    const std::uint32_t range_bits = static_cast<std::uint32_t>(rng.below(4));
    const std::uint64_t begin = range_bits == 0 ? 0 : (rng.next() >> (64 - range_bits)) << (64 - range_bits);
    dhtkit::merkle_config config{static_cast<std::uint32_t>(1 + rng.below(4)),
                                 static_cast<std::uint32_t>(1 + rng.below(3))};
    dhtkit::merkle_tree a(config, begin, range_bits), b(config, begin, range_bits);
    std::set<std::uint32_t> expected;
    const std::uint64_t span =
        range_bits == 0 ? ~std::uint64_t{0} : (std::uint64_t{1} << (64 - range_bits)) - 1;
    for (int i = 0; i < 200; ++i) {
      const std::uint64_t pos = begin + (range_bits == 0 ? rng.next() : rng.below(span));
      const std::uint64_t d = rng.next() | 1;
      a.insert(pos, d);
      if (rng.below(10) == 0) {
        b.insert(pos, d + 1);
        expected.insert(a.bucket_of(pos));
      } else {
        b.insert(pos, d);
      }
    }
    const auto diff = dhtkit::merkle_diff(a, b, 1u << 16);
    REQUIRE(std::set<std::uint32_t>(diff.begin(), diff.end()) == expected);
    REQUIRE((a.root() == b.root()) == expected.empty());
    // A bound on the work: no more buckets than asked for.
    REQUIRE(dhtkit::merkle_diff(a, b, 1).size() == std::min<std::size_t>(1, expected.size()));
  }
}

TEST_CASE("merkle order of insertion does not matter and empty trees hash to 0", "[merkle]") {
  dhtkit::merkle_tree a({}, 0, 1), b({}, 0, 1);
  REQUIRE(a.root() == 0);
  a.insert(5, 1);
  a.insert(1ull << 60, 2);
  b.insert(1ull << 60, 2);
  b.insert(5, 1);
  REQUIRE(a.root() == b.root());
  REQUIRE(a.root() != 0);
  REQUIRE(a.hash(9, 0) == 0);         // out-of-range level
  REQUIRE(a.hash(1, 1u << 20) == 0);  // out-of-range index
}

TEST_CASE("merkle refuses bad shapes", "[merkle]") {
  REQUIRE_THROWS_AS(dhtkit::merkle_tree(dhtkit::merkle_config{0, 2}, 0, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(dhtkit::merkle_tree(dhtkit::merkle_config{4, 5}, 0, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(dhtkit::merkle_tree(dhtkit::merkle_config{8, 3}, 0, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(dhtkit::merkle_tree(dhtkit::merkle_config{}, 0, 48), std::invalid_argument);
  dhtkit::merkle_tree a(dhtkit::merkle_config{4, 2}, 0, 0), b(dhtkit::merkle_config{2, 2}, 0, 0);
  REQUIRE_THROWS_AS(dhtkit::merkle_diff(a, b, 4), std::invalid_argument);
}
