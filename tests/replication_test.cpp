// Replication: dotted version vector sets, storage, the replica core (header
// examples, quorum outcomes, bad input) and the seeded fault scenarios that
// check the five correctness properties (see support/replication_cluster.hpp).
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/replication/coordinator.hpp"
#include "dhtkit/replication/storage.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "support/catch.hpp"
#include "support/replication_cluster.hpp"
#include "support/seeds.hpp"

namespace {

std::error_code dvv_example() {
  using value = dhtkit::dotted_value<std::string>;
  dhtkit::dotted_version_vector_set<value> a;  // empty: no write seen
  dhtkit::version_vector seen;                 // a client that read nothing
  if (auto ec = a.update(seen, value{{dhtkit::node_id{1}, 1}, "x"})) return ec;
  if (auto ec = a.update(seen, value{{dhtkit::node_id{1}, 2}, "y"})) return ec;  // same context: a sibling
  // a.siblings().size() == 2
  REQUIRE(a.siblings().size() == 2);
  dhtkit::dotted_version_vector_set<value> b;
  if (auto ec = b.update(a.context(), value{{dhtkit::node_id{2}, 1}, "x+y"})) return ec;  // read both
  if (auto ec = a.sync(b)) return ec;  // replicas exchange state
  // a.siblings().size() == 1: "x+y" superseded both
  REQUIRE(a.siblings().size() == 1);
  REQUIRE(a.siblings()[0].payload == "x+y");
  return {};
}

}  // namespace

TEST_CASE("dotted version vector header example", "[replication][dvv]") { REQUIRE(!dvv_example()); }

TEST_CASE("dvv: same-context writes through one coordinator both survive", "[replication][dvv]") {
  // The case a per-server vector clock gets wrong: the second write's clock
  // would dominate the first and drop it.
  using value = dhtkit::dotted_value<int>;
  dhtkit::dotted_version_vector_set<value> s, other;
  const dhtkit::version_vector ctx = s.context();
  REQUIRE(!s.update(ctx, value{{dhtkit::node_id{9}, 1}, 1}));
  REQUIRE(!s.update(ctx, value{{dhtkit::node_id{9}, 2}, 2}));
  REQUIRE(s.siblings().size() == 2);
  // A reused dot is refused.
  REQUIRE(s.update(ctx, value{{dhtkit::node_id{9}, 2}, 3}) == dhtkit::errc::invalid_argument);
  // sync is commutative and idempotent.
  REQUIRE(!other.update({}, value{{dhtkit::node_id{4}, 1}, 7}));
  auto ab = s, ba = other;
  REQUIRE(!ab.sync(other));
  REQUIRE(!ba.sync(s));
  REQUIRE(ab == ba);
  REQUIRE(ab.siblings().size() == 3);
  auto again = ab;
  REQUIRE(!again.sync(ab));
  REQUIRE(again == ab);
  REQUIRE(!ab.would_change(ab));
}

TEST_CASE("versioned_value header example", "[replication]") {
  dhtkit::versioned_value v;
  v.version = dhtkit::dot{dhtkit::node_id{7}, 42};  // the 42nd write numbered by node 7
  v.value = dhtkit::to_bytes("hello");
  v.expires_at = dhtkit::time_point{} + dhtkit::seconds(60);
  bool live = v.live(dhtkit::time_point{} + dhtkit::seconds(1));  // true: not deleted, not expired
  REQUIRE(live);
  REQUIRE(!v.live(dhtkit::time_point{} + dhtkit::seconds(60)));
}

TEST_CASE("storage header example and limits", "[replication][storage]") {
  dhtkit::memory_storage store;  // memory_storage_config{} defaults
  dhtkit::versioned_value v;
  v.version = dhtkit::dot{dhtkit::node_id{1}, store.next_counter()};
  v.value = dhtkit::to_bytes("hello");
  auto written = store.put("greeting", dhtkit::version_vector{}, v);   // result<versioned_entry>
  std::optional<dhtkit::versioned_entry> got = store.get("greeting");  // one sibling
  auto deleted =
      store.erase("greeting", got->context(), dhtkit::dot{dhtkit::node_id{1}, store.next_counter()});
  // store.get("greeting")->siblings(): one tombstone
  REQUIRE(written);
  REQUIRE(deleted);
  REQUIRE(store.get("greeting")->siblings().size() == 1);
  REQUIRE(store.get("greeting")->siblings()[0].tombstone);

  dhtkit::memory_storage small(dhtkit::memory_storage_config{2, 100});
  auto put = [&](std::uint64_t c) {
    dhtkit::versioned_value x;
    x.version = dhtkit::dot{dhtkit::node_id{1}, c};
    return small.put("k", dhtkit::version_vector{}, x);
  };
  REQUIRE(put(1));
  REQUIRE(put(2));
  REQUIRE(put(3).error() == dhtkit::errc::too_many_siblings);
  REQUIRE(small.get("k")->siblings().size() == 2);
  REQUIRE(small.stats().rejected_siblings == 1);
  REQUIRE_THROWS_AS(dhtkit::memory_storage(dhtkit::memory_storage_config{0, 1}), std::invalid_argument);

  // Range iteration wraps and visits each key once.
  std::size_t seen = 0;
  for (int i = 0; i < 20; ++i) {
    dhtkit::versioned_value x;
    x.version = dhtkit::dot{dhtkit::node_id{1}, store.next_counter()};
    REQUIRE(store.put("key" + std::to_string(i), {}, x));
  }
  store.for_each_in_range(1ull << 63, 1ull << 63,
                          [&](std::string_view, const dhtkit::versioned_entry&) { ++seen; });
  REQUIRE(seen == 21);
  std::size_t low = 0, high = 0;
  store.for_each_in_range(0, 1ull << 63, [&](std::string_view, const dhtkit::versioned_entry&) { ++low; });
  store.for_each_in_range(1ull << 63, 0, [&](std::string_view, const dhtkit::versioned_entry&) { ++high; });
  REQUIRE(low + high == 21);
}

std::error_code coordinator_example() {
  dhtkit::ring<dhtkit::node_id> ring;
  for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
  dhtkit::memory_storage store;   // durable state: survives a restart
  dhtkit::hint_store hints;       // durable too
  dhtkit::replica_config config;  // N/R/W = 3/2/2
  dhtkit::replica<> node(dhtkit::node_id{1}, config, ring, store, hints);
  dhtkit::time_point now{};
  auto op = node.put("cart:7", dhtkit::to_bytes("milk"), dhtkit::version_vector{}, now);
  for (auto& m : node.outbox().messages) (void)m;  // a driver sends m.payload to m.to
  node.outbox().messages.clear();
  node.tick(now + dhtkit::seconds(1));  // no replies: the deadline passes
  // node.outbox().puts[0]: id == op, error == errc::quorum_not_reached, acks == 1, required == 2
  REQUIRE(node.outbox().puts.size() == 1);
  REQUIRE(node.outbox().puts[0].id == op);
  REQUIRE(node.outbox().puts[0].error == dhtkit::errc::quorum_not_reached);
  REQUIRE(node.outbox().puts[0].acks == 1);
  REQUIRE(node.outbox().puts[0].required == 2);
  REQUIRE(node.outbox().puts[0].describe() == "quorum not reached: 1 of 2 required replicas acknowledged");
  return {};
}

TEST_CASE("coordinator header example", "[replication]") { REQUIRE(!coordinator_example()); }

TEST_CASE("replica refuses bad configurations and bad requests", "[replication]") {
  dhtkit::ring<dhtkit::node_id> ring;
  for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
  dhtkit::memory_storage store;
  dhtkit::hint_store hints;
  auto make = [&](dhtkit::replica_config c) {
    return dhtkit::replica<>(dhtkit::node_id{1}, c, ring, store, hints);
  };
  dhtkit::replica_config bad;
  bad.r = 4;
  REQUIRE_THROWS_AS(make(bad), std::invalid_argument);
  bad = {};
  bad.hint_max_age = bad.tombstone_grace + dhtkit::seconds(1);
  REQUIRE_THROWS_AS(make(bad), std::invalid_argument);
  bad = {};
  bad.merkle.depth = 0;
  REQUIRE_THROWS_AS(make(bad), std::invalid_argument);
  REQUIRE_THROWS_AS(dhtkit::replica<>(dhtkit::node_id{99}, {}, ring, store, hints), std::invalid_argument);

  auto node = make({});
  dhtkit::request_options too_big;
  too_big.w = 4;
  node.put("k", {}, {}, {}, too_big);
  node.get("", {});
  REQUIRE(node.outbox().puts.at(0).error == dhtkit::errc::invalid_argument);
  REQUIRE(node.outbox().gets.at(0).error == dhtkit::errc::invalid_argument);
  REQUIRE(node.outbox().messages.empty());

  // Garbage and forged input is counted and ignored, never a crash.
  const std::vector<std::byte> junk(40, std::byte{0x44});
  node.receive(dhtkit::node_id{2}, junk, {});
  dhtkit::detail::repl::codec codec;
  dhtkit::detail::repl::ae_hashes hashes{1, 9999, 0, {0}, {1}};  // range out of bounds
  node.receive(dhtkit::node_id{2}, *codec.encode(hashes, dhtkit::node_id{2}), {});
  dhtkit::detail::repl::ae_hashes uneven{1, 0, 0, {0, 1}, {1}};
  node.receive(dhtkit::node_id{2}, *codec.encode(uneven, dhtkit::node_id{2}), {});
  dhtkit::detail::repl::replicate not_owner{5, "", {}, {}};  // empty key
  node.receive(dhtkit::node_id{2}, *codec.encode(not_owner, dhtkit::node_id{2}), {});
  node.receive(dhtkit::node_id{3}, *codec.encode(not_owner, dhtkit::node_id{2}), {});  // sender mismatch
  REQUIRE(node.stats().rejected == 5);
  dhtkit::detail::repl::forward_put fwd;
  fwd.request = 1;
  fwd.key = "k";
  fwd.n = 3;
  fwd.w = 9;  // w > n
  fwd.timeout = 1000000;
  node.receive(dhtkit::node_id{2}, *codec.encode(fwd, dhtkit::node_id{2}), {});
  REQUIRE(node.stats().rejected == 6);
  REQUIRE(store.stats().keys == 0);
}

TEST_CASE("a five-node cluster without faults: writes, reads, a delete, convergence", "[replication]") {
  dhtkit::test::scenario_config c;
  c.faults = false;
  c.nodes = 5;
  c.workload = dhtkit::seconds(1);
  dhtkit::test::replication_cluster cluster(c);
  auto r = cluster.run();
  INFO(r.violations.size() << (r.violations.empty() ? "" : r.violations[0]));
  REQUIRE(r.violations.empty());
  REQUIRE(r.converged);
  REQUIRE(r.writes_acked > 20);
  REQUIRE(r.deletes_acked >= 1);
}

TEST_CASE("seeded fault scenarios keep the five properties", "[replication][sim]") {
  for (std::uint64_t seed : dhtkit::test::seeds(40)) {
    DHTKIT_SEED_SCOPE(seed);
    const auto r = dhtkit::test::run_scenario(dhtkit::test::scenario_config::random(seed));
    INFO((r.violations.empty() ? std::string("none") : r.violations[0]));
    REQUIRE(r.violations.empty());
    REQUIRE(r.converged);
  }
}

TEST_CASE("without read repair and anti-entropy, replicas that missed writes stay apart",
          "[replication][sim]") {
  // Proves check 3 can fail: the same kind of run with the repair mechanisms
  // off does not converge (hints alone do not cover writes lost in partitions).
  std::size_t diverged = 0;
  for (std::uint64_t seed : dhtkit::test::seeds(6)) {
    auto c = dhtkit::test::scenario_config::random(seed);
    c.replica.read_repair = false;
    c.replica.anti_entropy_interval = dhtkit::seconds(3600);
    c.max_converge_rounds = 5;
    c.collect_phase = false;
    const auto r = dhtkit::test::run_scenario(c);
    diverged += r.converged ? 0 : 1;
  }
  REQUIRE(diverged > 0);
}

TEST_CASE("seeded fault scenarios, many seeds", "[replication][sim][long]") {
  for (std::uint64_t seed : dhtkit::test::seeds(500, 1000)) {
    DHTKIT_SEED_SCOPE(seed);
    const auto r = dhtkit::test::run_scenario(dhtkit::test::scenario_config::random(seed));
    INFO((r.violations.empty() ? std::string("none") : r.violations[0]));
    REQUIRE(r.violations.empty());
  }
}
