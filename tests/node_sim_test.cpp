// The DHT node on the simulator: scenarios over many seeds, with both
// placements (one_hop and Chord), checked by tests/support/node_cluster.hpp's
// invariants A-D. A failing seed prints its replay command.
#include <string>

#include "dhtkit/node/sim_node.hpp"
#include "support/catch.hpp"
#include "support/node_cluster.hpp"
#include "support/seeds.hpp"

using namespace dhtkit;
using dhtkit::test::node_cluster;
using dhtkit::test::node_scenario;
using dhtkit::test::node_scenario_config;

namespace {

// 6 seeds x 4 scenarios x 2 placements: 48 seeded runs in the default suite;
// the [.long] case runs 2,000 (DHTKIT_SEEDS changes either).
constexpr std::uint64_t default_seeds = 6;

template <class P>
void report(node_cluster<P>& c) {
  const auto& r = c.result();
  INFO("acked writes " << r.writes_acked << ", failed " << r.writes_failed << ", reads " << r.reads
                       << ", failed " << r.reads_failed << ", keys moved " << r.keys_moved);
  for (const auto& v : r.violations) FAIL_CHECK(v);
  CHECK(r.violations.empty());
  CHECK(r.writes_acked > 20);  // the workload really ran
}

template <class P>
void grow(std::uint64_t seed, bool lossy) {
  node_scenario_config sc;
  sc.seed = seed;
  sc.lossy = lossy;
  node_cluster<P> c(sc);
  for (int i = 0; i < 3; ++i) c.add_node();
  REQUIRE(c.settle(seconds(10)));
  c.start_clients(seconds(20));
  for (int i = 3; i < 9; ++i) {
    c.net().run_for(seconds(2) + millis(static_cast<std::int64_t>(seed % 500)));
    c.add_node();
  }
  c.net().run_for(seconds(8));
  c.finish();
  report(c);
}

template <class P>
void leaves(std::uint64_t seed) {
  node_scenario_config sc;
  sc.seed = seed;
  node_cluster<P> c(sc);
  for (int i = 0; i < 7; ++i) c.add_node();
  REQUIRE(c.settle(seconds(10)));
  c.start_clients(seconds(20));
  c.net().run_for(seconds(3));
  for (std::size_t victim : {2u, 5u, 6u}) {
    (void)c.node(victim).leave();
    const bool left = c.net().run_until(c.net().now() + seconds(15),
                                        [&] { return c.node(victim).core().state() == node_state::left; });
    CHECK(left);
    // A leaver hands everything off before it goes.
    CHECK(c.node(victim).store().stats().keys == 0);
  }
  c.net().run_for(seconds(5));
  c.finish();
  report(c);
}

template <class P>
void crashes(std::uint64_t seed) {
  node_scenario_config sc;
  sc.seed = seed;
  node_cluster<P> c(sc);
  for (int i = 0; i < 6; ++i) c.add_node();
  REQUIRE(c.settle(seconds(10)));
  c.start_clients(seconds(24));
  random_engine rng(mix64(seed + 7));
  // One node down at a time (N - W = 1), with time to repair between: a
  // restart keeps its disk or loses it.
  for (int round = 0; round < 3; ++round) {
    c.net().run_for(seconds(2));
    const std::size_t victim = 1 + rng.below(5);
    c.crash(victim);
    c.net().run_for(millis(500) +
                    seconds(static_cast<std::int64_t>(rng.below(4))));  // within or past the grace
    c.restart(victim, rng.below(2) == 0);
    c.net().run_for(seconds(5));
  }
  c.net().run_for(seconds(6));
  c.finish();
  report(c);
}

template <class P>
void partitions(std::uint64_t seed) {
  node_scenario_config sc;
  sc.seed = seed;
  sc.lossy = true;
  node_cluster<P> c(sc);
  for (int i = 0; i < 5; ++i) c.add_node();
  REQUIRE(c.settle(seconds(15)));
  c.start_clients(seconds(20));
  random_engine rng(mix64(seed + 11));
  for (int round = 0; round < 2; ++round) {
    c.net().run_for(seconds(3));
    const std::size_t victim = rng.below(5);
    c.net().isolate(c.node(victim).packet_endpoint());
    c.net().isolate(c.node(victim).stream_endpoint());
    c.net().run_for(seconds(1) + seconds(static_cast<std::int64_t>(rng.below(4))));
    c.net().heal_all();
    c.net().run_for(seconds(4));
  }
  c.finish();
  report(c);
}

}  // namespace

TEMPLATE_TEST_CASE("node: grow from 3 to 9 under writes", "[node][sim]", one_hop, chord_placement) {
  for (std::uint64_t seed : test::seeds(default_seeds)) {
    DHTKIT_SEED_SCOPE(seed);
    grow<TestType>(seed, false);
  }
}

TEMPLATE_TEST_CASE("node: graceful leaves from 7 to 4", "[node][sim]", one_hop, chord_placement) {
  for (std::uint64_t seed : test::seeds(default_seeds)) {
    DHTKIT_SEED_SCOPE(seed);
    leaves<TestType>(seed);
  }
}

TEMPLATE_TEST_CASE("node: crashes and restarts with and without state", "[node][sim]", one_hop,
                   chord_placement) {
  for (std::uint64_t seed : test::seeds(default_seeds)) {
    DHTKIT_SEED_SCOPE(seed);
    crashes<TestType>(seed);
  }
}

TEMPLATE_TEST_CASE("node: partitions and lossy links", "[node][sim]", one_hop, chord_placement) {
  for (std::uint64_t seed : test::seeds(default_seeds)) {
    DHTKIT_SEED_SCOPE(seed);
    partitions<TestType>(seed);
  }
}

TEMPLATE_TEST_CASE("node: long randomized scenarios", "[node][sim][.long]", one_hop, chord_placement) {
  for (std::uint64_t seed : test::seeds(2000)) {
    DHTKIT_SEED_SCOPE(seed);
    switch (seed % 4) {
      case 0:
        grow<TestType>(seed, seed % 8 == 0);
        break;
      case 1:
        leaves<TestType>(seed);
        break;
      case 2:
        crashes<TestType>(seed);
        break;
      default:
        partitions<TestType>(seed);
        break;
    }
  }
}
