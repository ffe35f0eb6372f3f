// Replication: dotted version vector sets, storage, the replica core (header
// examples, quorum outcomes, bad input) and the seeded fault scenarios that
// check the five correctness properties (see support/replication_cluster.hpp).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/replication/replica.hpp"
#include "dhtkit/replication/storage.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "dhtkit/transport/detail/crc32c.hpp"
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

std::error_code replica_example() {
  dhtkit::ring<dhtkit::node_id> ring;
  for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
  dhtkit::memory_storage store;                                   // durable state: survives a restart
  dhtkit::hint_store hints;                                       // durable too
  dhtkit::replica_config config = dhtkit::replica_config::lan();  // N/R/W = 3/2/2
  dhtkit::replica<> node(dhtkit::node_id{1}, config, ring, store, hints);
  dhtkit::time_point now{};
  auto op = node.put("cart:7", dhtkit::to_bytes("milk"), dhtkit::version_vector{}, now);
  auto sent = node.take_outbox().messages;
  for (auto& m : sent) (void)m;                        // a driver sends m.bytes to m.to
  REQUIRE(sent.size() == 2);                           // to the two other replicas
  REQUIRE(node.stats().messages_sent == sent.size());  // each message counted once
  node.tick(now + dhtkit::seconds(1));                 // no replies: the deadline passes
  // node.outbox().puts[0]: id == op, error == errc::quorum_not_reached, acks == 1, required == 2
  REQUIRE(node.outbox().puts.size() == 1);
  REQUIRE(node.outbox().puts[0].id == op);
  REQUIRE(node.outbox().puts[0].error == dhtkit::errc::quorum_not_reached);
  REQUIRE(node.outbox().puts[0].acks == 1);
  REQUIRE(node.outbox().puts[0].required == 2);
  REQUIRE(node.outbox().puts[0].describe() == "quorum not reached: 1 of 2 required replicas acknowledged");
  return {};
}

TEST_CASE("replica header example", "[replication]") { REQUIRE(!replica_example()); }

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
  REQUIRE(node.receive(dhtkit::node_id{2}, junk, {}) == dhtkit::errc::bad_magic);
  dhtkit::detail::repl::codec codec;
  dhtkit::detail::repl::ae_hashes hashes{1, 9999, 0, {0}, {1}};  // range out of bounds
  REQUIRE(node.receive(dhtkit::node_id{2}, *codec.encode(hashes, dhtkit::node_id{2}), {}) ==
          dhtkit::errc::invalid_argument);
  dhtkit::detail::repl::ae_hashes uneven{1, 0, 0, {0, 1}, {1}};
  node.receive(dhtkit::node_id{2}, *codec.encode(uneven, dhtkit::node_id{2}), {});
  dhtkit::detail::repl::replicate not_owner{5, "", {}, {}};  // empty key
  node.receive(dhtkit::node_id{2}, *codec.encode(not_owner, dhtkit::node_id{2}), {});
  REQUIRE(node.receive(dhtkit::node_id{3}, *codec.encode(not_owner, dhtkit::node_id{2}), {}) ==
          dhtkit::errc::invalid_argument);  // sender mismatch
  REQUIRE(node.stats().rejected == 5);
  REQUIRE(node.stats().messages_received == 5);
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

TEST_CASE("seeded fault scenarios, many seeds", "[replication][sim][.long]") {
  for (std::uint64_t seed : dhtkit::test::seeds(500, 1000)) {
    DHTKIT_SEED_SCOPE(seed);
    const auto r = dhtkit::test::run_scenario(dhtkit::test::scenario_config::random(seed));
    INFO((r.violations.empty() ? std::string("none") : r.violations[0]));
    REQUIRE(r.violations.empty());
  }
}

namespace {

// Five replicas driven by hand: messages go from outbox to receive() at once,
// except to or from a node in `down` (dropped) or while `hold` is set (kept
// in `held` for the test to deliver or drop).
struct hand_cluster {
  static constexpr std::size_t size = 5;
  dhtkit::ring<dhtkit::node_id> ring;
  std::vector<dhtkit::memory_storage> stores = std::vector<dhtkit::memory_storage>(size);
  std::vector<dhtkit::hint_store> hints = std::vector<dhtkit::hint_store>(size);
  std::vector<std::unique_ptr<dhtkit::replica<>>> nodes;
  std::set<std::size_t> down;
  dhtkit::time_point now{};

  explicit hand_cluster(dhtkit::replica_config config) {
    for (std::uint64_t i = 1; i <= size; ++i) (void)ring.add(dhtkit::node_id{i});
    for (std::size_t i = 0; i < size; ++i)
      nodes.push_back(std::make_unique<dhtkit::replica<>>(id(i), config, ring, stores[i], hints[i]));
  }
  static dhtkit::node_id id(std::size_t i) { return dhtkit::node_id{i + 1}; }
  static std::size_t index(dhtkit::node_id n) { return static_cast<std::size_t>(n.value - 1); }
  dhtkit::replica<>& at(std::size_t i) { return *nodes[i]; }

  // Node i is down: the others are told, its messages are dropped.
  void crash(std::size_t i) {
    down.insert(i);
    for (std::size_t j = 0; j < size; ++j)
      if (j != i) nodes[j]->mark_dead(id(i));
  }
  void restart(std::size_t i) {
    down.erase(i);
    for (std::size_t j = 0; j < size; ++j)
      if (j != i) nodes[j]->mark_alive(id(i));
  }
  // Delivers until every outbox is empty.
  void pump() {
    for (bool any = true; any;) {
      any = false;
      for (std::size_t i = 0; i < size; ++i) {
        auto messages = std::move(nodes[i]->outbox().messages);
        nodes[i]->outbox().messages.clear();
        for (auto& m : messages) {
          any = true;
          const std::size_t to = index(m.to);
          if (!down.contains(i) && !down.contains(to)) nodes[to]->receive(id(i), m.bytes, now);
        }
      }
    }
  }
  // Advances time in 10 ms steps, ticking the live nodes and delivering.
  void run_for(dhtkit::duration d) {
    const dhtkit::time_point end = now + d;
    while (now < end) {
      now += dhtkit::millis(10);
      for (std::size_t i = 0; i < size; ++i)
        if (!down.contains(i)) nodes[i]->tick(now);
      pump();
    }
  }
  bool holds(std::size_t i, const std::string& key, const std::string& value) const {
    auto e = stores[i].get(key);
    if (!e) return false;
    for (const auto& v : e->siblings())
      if (v.value == dhtkit::to_bytes(value)) return true;
    return false;
  }
};

dhtkit::replica_config hand_config() {
  dhtkit::replica_config c;
  c.hint_max_age = dhtkit::seconds(2);
  c.tombstone_grace = dhtkit::seconds(5);
  c.ae_range_bits = 0;  // one slice: every exchange covers every key
  return c;
}

}  // namespace

TEST_CASE("per-request timeouts of zero or over 10 request timeouts are refused", "[replication]") {
  hand_cluster c(hand_config());
  dhtkit::request_options zero, huge, fine;
  zero.timeout = dhtkit::duration::zero();
  huge.timeout = dhtkit::duration::max();  // would overflow now + timeout
  fine.timeout = dhtkit::seconds(5);       // 10 * 500 ms
  c.at(0).put("k", {}, {}, c.now, zero);
  c.at(0).get("k", c.now, huge);
  c.at(0).get("k", c.now, fine);
  REQUIRE(c.at(0).outbox().puts.at(0).error == dhtkit::errc::invalid_argument);
  REQUIRE(c.at(0).outbox().gets.at(0).error == dhtkit::errc::invalid_argument);
  REQUIRE(c.at(0).pending() == 1);
}

TEST_CASE("a forwarded put is completed only by the replica it was forwarded to", "[replication]") {
  hand_cluster c(hand_config());
  // A key node 0 does not replicate with n = 1.
  std::string key;
  for (int i = 0; key.empty(); ++i)
    if (c.at(0).replicas_of("k" + std::to_string(i), 1).at(0) != hand_cluster::id(0))
      key = "k" + std::to_string(i);
  const auto owner = c.at(0).replicas_of(key, 1).at(0);
  const auto other = hand_cluster::id(hand_cluster::index(owner) == 1 ? 2 : 1);
  dhtkit::request_options one;
  one.n = 1;
  one.w = 1;
  const auto op = c.at(0).put(key, dhtkit::to_bytes("v"), {}, c.now, one);
  REQUIRE(c.at(0).outbox().messages.at(0).to == owner);
  c.at(0).outbox().messages.clear();
  dhtkit::detail::repl::codec codec;
  const dhtkit::detail::repl::forward_reply forged{op, 0, 1, 1};
  c.at(0).receive(other, *codec.encode(forged, other), c.now);
  REQUIRE(c.at(0).outbox().puts.empty());
  REQUIRE(c.at(0).stats().rejected == 1);
  c.at(0).receive(owner, *codec.encode(forged, owner), c.now);
  REQUIRE(c.at(0).outbox().puts.at(0).id == op);
  REQUIRE(!c.at(0).outbox().puts.at(0).error);
}

TEST_CASE("a forward reply claiming success short of W is refused", "[replication]") {
  // Found by replication_fuzz: a reply with status 0 but fewer acks than W
  // completed the put as a success "stored on 0 replicas (W=2)".
  hand_cluster c(hand_config());
  std::string key;
  for (int i = 0; key.empty(); ++i) {
    const auto owners = c.at(0).replicas_of("k" + std::to_string(i), 3);
    if (std::find(owners.begin(), owners.end(), hand_cluster::id(0)) == owners.end())
      key = "k" + std::to_string(i);
  }
  const auto op = c.at(0).put(key, dhtkit::to_bytes("v"), {}, c.now);  // W = 2
  const auto owner = c.at(0).outbox().messages.at(0).to;
  c.at(0).outbox().messages.clear();
  dhtkit::detail::repl::codec codec;
  const dhtkit::detail::repl::forward_reply short_of_w{op, 0, 1, 2};
  REQUIRE(c.at(0).receive(owner, *codec.encode(short_of_w, owner), c.now));
  REQUIRE(c.at(0).outbox().puts.empty());
  REQUIRE(c.at(0).stats().rejected == 1);
  const dhtkit::detail::repl::forward_reply enough{op, 0, 2, 2};
  REQUIRE_FALSE(c.at(0).receive(owner, *codec.encode(enough, owner), c.now));
  REQUIRE(c.at(0).outbox().puts.at(0).id == op);
  REQUIRE_FALSE(c.at(0).outbox().puts.at(0).error);
  REQUIRE(c.at(0).outbox().puts.at(0).acks == 2);
}

TEST_CASE("a forward whose replica is dead but not marked down goes to the next true replica",
          "[replication]") {
  // Node 2 crashes and no failure detector says so: forwards to it go unanswered.
  hand_cluster c(hand_config());
  c.down.insert(2);
  std::size_t forwarded_to_dead = 0, failed = 0, puts = 0;
  for (int i = 0; puts < 200; ++i) {
    const std::string key = "key" + std::to_string(i);
    const auto owners = c.at(0).replicas_of(key, 3);
    if (std::find(owners.begin(), owners.end(), hand_cluster::id(0)) != owners.end()) continue;
    ++puts;
    c.at(0).put(key, dhtkit::to_bytes("v" + std::to_string(i)), {}, c.now);
    if (c.at(0).outbox().messages.at(0).to == hand_cluster::id(2)) ++forwarded_to_dead;
    c.run_for(dhtkit::millis(700));  // past request_timeout + replica_timeout
    REQUIRE(c.at(0).outbox().puts.size() == 1);
    const auto done = c.at(0).outbox().puts.at(0);
    c.at(0).outbox().puts.clear();
    if (done.error) {
      ++failed;
      continue;
    }
    std::size_t copies = 0;
    for (std::size_t n = 0; n < hand_cluster::size; ++n)
      copies += c.holds(n, key, "v" + std::to_string(i)) ? 1 : 0;
    REQUIRE(copies >= 2);
    // Each forward reached one live replica first try or after the dead one: one dot, no duplicate.
    for (std::size_t n = 0; n < hand_cluster::size; ++n)
      if (auto e = c.stores[n].get(key)) REQUIRE(e->siblings().size() == 1);
    if (i % 16 == 0) c.run_for(dhtkit::seconds(2));  // suspicion of node 2 lapses now and then
  }
  REQUIRE(forwarded_to_dead > 0);
  REQUIRE(failed == 0);
  REQUIRE(c.at(0).stats().reforwarded > 0);
  REQUIRE(c.at(0).pending() == 0);
}

TEST_CASE("a forwarded put that no true replica answers fails saying none acknowledged", "[replication]") {
  hand_cluster c(hand_config());
  std::string key;
  for (int i = 0; key.empty(); ++i)
    if (c.at(0).replicas_of("k" + std::to_string(i), 3) ==
        std::vector<dhtkit::node_id>{hand_cluster::id(1), hand_cluster::id(2), hand_cluster::id(3)})
      key = "k" + std::to_string(i);
  for (std::size_t n = 1; n <= 3; ++n) c.down.insert(n);  // silent, not marked down
  const auto op = c.at(0).put(key, dhtkit::to_bytes("v"), {}, c.now);
  c.run_for(dhtkit::millis(700));
  REQUIRE(c.at(0).outbox().puts.size() == 1);
  const auto done = c.at(0).outbox().puts.at(0);
  REQUIRE(done.id == op);
  REQUIRE(done.error == dhtkit::errc::quorum_not_reached);
  REQUIRE(done.acks == 0);
  REQUIRE(c.at(0).stats().reforwarded == 2);  // all three true replicas were asked
}

TEST_CASE("anti-entropy: a diff with repeated or unsent indices is refused", "[replication]") {
  hand_cluster c(hand_config());
  c.at(0).tick(c.now);  // starts a session with some peer
  auto& out = c.at(0).outbox().messages;
  REQUIRE(out.size() == 1);
  dhtkit::detail::repl::codec codec;
  auto hashes = codec.decode(out[0].bytes);
  REQUIRE(hashes);
  const auto& h = std::get<dhtkit::detail::repl::ae_hashes>(hashes->message);
  const auto peer = out[0].to;
  out.clear();
  for (const std::vector<std::uint32_t>& bad : {std::vector<std::uint32_t>{0, 0}, {1}}) {
    const dhtkit::detail::repl::ae_diff diff{h.session, h.range, 0, bad};
    c.at(0).receive(peer, *codec.encode(diff, peer), c.now);
  }
  REQUIRE(c.at(0).stats().rejected == 2);
  REQUIRE(out.empty());
  const dhtkit::detail::repl::ae_diff good{h.session, h.range, 0, {0}};
  c.at(0).receive(peer, *codec.encode(good, peer), c.now);
  REQUIRE(out.size() == 1);  // the next level's hashes
}

TEST_CASE("the outbox is bounded when the driver does not drain it", "[replication]") {
  auto config = hand_config();
  config.max_outbox_messages = 16;
  hand_cluster c(config);
  dhtkit::detail::repl::codec codec;
  const auto bytes = *codec.encode(dhtkit::detail::repl::read_request{1, "k"}, hand_cluster::id(1));
  for (int i = 0; i < 100; ++i) c.at(0).receive(hand_cluster::id(1), bytes, c.now);
  REQUIRE(c.at(0).outbox().messages.size() == 16);
  REQUIRE(c.at(0).stats().outbox_dropped == 84);
}

TEST_CASE("hinted handoff keeps the fallback's copy of a write that arrived after the offer",
          "[replication]") {
  hand_cluster c(hand_config());
  const std::string key = "cart";
  const auto walk = c.at(0).replicas_of(key, 5);
  const std::size_t a = hand_cluster::index(walk[0]), b = hand_cluster::index(walk[1]),
                    d = hand_cluster::index(walk[3]);
  c.crash(b);
  c.at(a).put(key, dhtkit::to_bytes("one"), {}, c.now);
  c.pump();
  REQUIRE(c.holds(d, key, "one"));
  REQUIRE(c.hints[d].size() == 1);
  // b returns, but only d hears of it; a still writes around b, through d.
  c.down.erase(b);
  c.at(d).mark_alive(hand_cluster::id(b));
  c.now += dhtkit::seconds(1);
  c.at(d).tick(c.now);  // handoff: d offers "one" to b
  auto offer = std::move(c.at(d).outbox().messages);
  c.at(d).outbox().messages.clear();
  for (auto& m : offer)
    if (m.to == hand_cluster::id(b)) c.at(b).receive(hand_cluster::id(d), m.bytes, c.now);
  auto ack = std::move(c.at(b).outbox().messages);  // held back
  c.at(b).outbox().messages.clear();
  REQUIRE(ack.size() == 1);
  const auto context = c.stores[a].get(key)->context();
  c.at(a).put(key, dhtkit::to_bytes("two"), context, c.now);
  c.pump();
  REQUIRE(c.holds(d, key, "two"));
  REQUIRE(!c.holds(b, key, "two"));
  c.at(d).receive(hand_cluster::id(b), ack[0].bytes, c.now);  // acknowledges "one" only
  REQUIRE(c.holds(d, key, "two"));
  REQUIRE(c.hints[d].size() == 1);
  // The next offer carries "two"; then d lets go.
  c.restart(b);
  c.run_for(dhtkit::millis(500));
  REQUIRE(c.holds(b, key, "two"));
  REQUIRE(c.hints[d].size() == 0);
  REQUIRE(!c.stores[d].get(key));
}

TEST_CASE("a write acknowledged with fallbacks survives hint expiry on its coordinator", "[replication]") {
  // W = 3 met by the coordinator and two fallbacks; both owners stay down past
  // hint_max_age, so the fallbacks drop their copies. The coordinator (always
  // a true replica) still holds the write, and anti-entropy brings it to the
  // owners when they return: between expiry and then it lives on one node.
  auto config = hand_config();
  config.w = 3;
  hand_cluster c(config);
  const std::string key = "cart";
  const auto walk = c.at(0).replicas_of(key, 5);
  std::vector<std::size_t> at;
  for (const auto& n : walk) at.push_back(hand_cluster::index(n));
  c.crash(at[1]);
  c.crash(at[2]);
  c.at(at[0]).put(key, dhtkit::to_bytes("one"), {}, c.now);
  c.pump();
  REQUIRE(c.at(at[0]).outbox().puts.at(0).acks == 3);
  REQUIRE(!c.at(at[0]).outbox().puts.at(0).error);
  REQUIRE((c.holds(at[3], key, "one") && c.holds(at[4], key, "one")));
  c.run_for(config.hint_max_age + config.handoff_interval + dhtkit::millis(10));
  REQUIRE(c.at(at[3]).stats().hints_expired + c.at(at[4]).stats().hints_expired == 2);
  REQUIRE((!c.holds(at[3], key, "one") && !c.holds(at[4], key, "one")));
  REQUIRE(c.holds(at[0], key, "one"));
  c.restart(at[1]);
  c.restart(at[2]);
  c.run_for(dhtkit::seconds(20));
  REQUIRE((c.holds(at[1], key, "one") && c.holds(at[2], key, "one")));
}

TEST_CASE("every corruption or truncation of every message is refused or harmless", "[replication]") {
  // Each message type, well formed, then every payload byte set to a few
  // values and every payload prefix, each with a valid envelope and checksum
  // so that the payload decoders and the handlers see it: counts, lengths,
  // tags and truncation. Under the sanitizers this is the "never a crash" check.
  hand_cluster c(hand_config());
  dhtkit::versioned_entry entry;
  for (std::uint64_t n = 2; n <= 3; ++n) {
    dhtkit::versioned_value v;
    v.version = dhtkit::dot{dhtkit::node_id{n}, 1};
    v.value = dhtkit::to_bytes("ab");
    REQUIRE(!entry.update({}, v));
  }
  namespace repl = dhtkit::detail::repl;
  repl::codec codec;
  const auto from = hand_cluster::id(1);
  std::vector<std::vector<std::byte>> messages;
  auto add = [&](const auto& m) { messages.push_back(*codec.encode(m, from)); };
  add(repl::replicate{7, "key", entry, dhtkit::node_id{3}});
  add(repl::replicate_ack{7, 0});
  add(repl::read_request{7, "key"});
  add(repl::read_reply{7, true, entry});
  repl::forward_put fwd;
  fwd.request = 7;
  fwd.key = "key";
  fwd.context = entry.context();
  fwd.value = dhtkit::to_bytes("abc");
  fwd.n = 3;
  fwd.w = 2;
  fwd.timeout = dhtkit::millis(100).count();
  add(fwd);
  add(repl::forward_reply{7, 0, 1, 2});
  add(repl::forward_accept{7});
  add(repl::ae_hashes{1, 0, 1, {0, 1}, {5, 6}});
  add(repl::ae_diff{1, 0, 0, {0}});
  add(repl::ae_push{1, 0, {0}, {repl::key_entry{"key", entry}}});
  add(repl::ae_pull{1, 0, {repl::key_entry{"key", entry}}});

  auto seal = [](std::vector<std::byte>& m) {  // fix length and checksum after an edit
    const std::size_t payload = m.size() - dhtkit::wire::header_size;
    for (std::size_t i = 0; i < 4; ++i) m[16 + i] = static_cast<std::byte>((payload >> (8 * i)) & 0xFF);
    const auto crc = dhtkit::detail::crc32c_extend(
        dhtkit::detail::crc32c(std::span<const std::byte>(m.data(), 20)),
        std::span<const std::byte>(m.data() + dhtkit::wire::header_size, payload));
    for (std::size_t i = 0; i < 4; ++i) m[20 + i] = static_cast<std::byte>((crc >> (8 * i)) & 0xFF);
  };
  std::size_t fed = 0;
  auto feed = [&](std::vector<std::byte> m) {
    seal(m);
    c.at(0).receive(from, m, c.now);
    c.at(0).outbox().clear();
    ++fed;
  };
  for (const auto& original : messages) {
    for (std::size_t p = 6; p < original.size(); ++p) {
      if (p >= 8 && p < dhtkit::wire::header_size) continue;  // sender, length, checksum
      for (std::byte v : {std::byte{0}, std::byte{0xFF}, std::byte{0x7F}, original[p] ^ std::byte{1}}) {
        auto m = original;
        m[p] = v;
        feed(std::move(m));
      }
    }
    for (std::size_t cut = dhtkit::wire::header_size; cut < original.size(); ++cut)
      feed(std::vector<std::byte>(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(cut)));
  }
  REQUIRE(fed > 1000);
  REQUIRE(c.at(0).stats().rejected > 0);
  // What was accepted (a mutated but well-formed forward is a real write) finishes.
  c.run_for(dhtkit::seconds(2));
  REQUIRE(c.at(0).pending() == 0);
  // Still a working replica.
  c.at(0).outbox().clear();
  c.at(0).get("key", c.now);
  c.pump();
  REQUIRE(c.at(0).outbox().gets.size() == 1);
}

// ---- the driver contract: shape, configuration, next_wakeup ----

static_assert(dhtkit::protocol_core<dhtkit::replica<dhtkit::memory_storage>>);
static_assert(dhtkit::verdict_sink<dhtkit::replica<dhtkit::memory_storage>>);

TEST_CASE("replica_config: presets validate, and validate() names the bad field", "[replication]") {
  REQUIRE_NOTHROW(dhtkit::replica_config::lan().validate());
  REQUIRE_NOTHROW(dhtkit::replica_config::wan().validate());
  REQUIRE_NOTHROW(dhtkit::replica_config::local().validate());
  REQUIRE(dhtkit::replica_config::lan().request_timeout == dhtkit::replica_config{}.request_timeout);
  REQUIRE(dhtkit::replica_config::local().anti_entropy_interval <
          dhtkit::replica_config::lan().anti_entropy_interval);
  REQUIRE(dhtkit::replica_config::wan().replica_timeout > dhtkit::replica_config::lan().replica_timeout);
  auto message = [](dhtkit::replica_config c) -> std::string {
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return {};
  };
  dhtkit::replica_config bad;
  bad.r = 4;
  REQUIRE(message(bad) == "dhtkit::replica_config: r must be in [1, n]");
  bad = {};
  bad.handoff_batch = 0;
  REQUIRE(message(bad) == "dhtkit::replica_config: handoff_batch must be at least 1");
  bad = {};
  bad.anti_entropy_interval = dhtkit::duration::zero();
  REQUIRE(message(bad) == "dhtkit::replica_config: anti_entropy_interval must be in (0, 24 h]");
  bad = {};
  bad.ae_session_timeout = dhtkit::seconds(86401);  // now + timeout must not overflow
  REQUIRE(message(bad) == "dhtkit::replica_config: ae_session_timeout must be in (0, 24 h]");
  bad = {};
  bad.ae_max_keys = 0;
  REQUIRE(message(bad) == "dhtkit::replica_config: ae_max_keys must be at least 1");
}

namespace {

// Replicas over a tiny deterministic network (every message takes `latency`,
// messages to or from a crashed node are dropped), run on a 1 ms grid; all
// configured times are whole milliseconds, so per-millisecond ticking sees
// every deadline at its exact time. `every_ms` ticks every live replica every
// millisecond; otherwise a replica is ticked only when its next_wakeup() has
// come. Everything a replica emits is recorded: if next_wakeup() were ever
// later than the first tick with work, the two traces would differ.
struct wakeup_run {
  static constexpr std::size_t size = 5;
  dhtkit::ring<dhtkit::node_id> ring;
  std::vector<dhtkit::memory_storage> stores = std::vector<dhtkit::memory_storage>(size);
  std::vector<dhtkit::hint_store> hints = std::vector<dhtkit::hint_store>(size);
  std::vector<std::unique_ptr<dhtkit::replica<>>> nodes;
  std::set<std::size_t> crashed;
  struct in_flight {
    dhtkit::time_point at;
    std::size_t from, to;
    std::vector<std::byte> bytes;
  };
  std::vector<in_flight> wire;  // in send order; delivered in that order at `at`
  std::vector<std::string> trace;
  std::size_t ticks = 0;
  dhtkit::time_point now{};
  bool every_ms;

  explicit wakeup_run(bool every) : every_ms(every) {
    dhtkit::replica_config c = dhtkit::replica_config::local();
    c.tombstone_grace = dhtkit::seconds(1);
    c.hint_max_age = dhtkit::millis(800);
    c.marker_ttl = dhtkit::millis(500);
    c.ae_range_bits = 0;
    c.handoff_interval = dhtkit::millis(70);  // out of phase with anti-entropy
    for (std::uint64_t i = 1; i <= size; ++i) (void)ring.add(dhtkit::node_id{i});
    for (std::size_t i = 0; i < size; ++i)
      nodes.push_back(
          std::make_unique<dhtkit::replica<>>(dhtkit::node_id{i + 1}, c, ring, stores[i], hints[i]));
  }

  void drain(std::size_t i) {
    auto out = nodes[i]->take_outbox();
    const auto t = std::to_string(now.time_since_epoch().count());
    for (auto& m : out.messages) {
      trace.push_back(t + " " + std::to_string(i) + "->" + std::to_string(m.to.value - 1) + " " +
                      std::to_string(dhtkit::detail::crc32c(m.bytes)));
      wire.push_back(
          {now + dhtkit::millis(2), i, static_cast<std::size_t>(m.to.value - 1), std::move(m.bytes)});
    }
    for (auto& p : out.puts)
      trace.push_back(t + " put " + std::to_string(i) + " " + p.key + " " + p.describe());
    for (auto& g : out.gets)
      trace.push_back(t + " get " + std::to_string(i) + " " + g.key + " " + g.describe());
  }

  // One millisecond: deliveries due, then the ticks.
  void step() {
    std::vector<in_flight> due;
    for (auto it = wire.begin(); it != wire.end();) {
      if (it->at <= now) {
        due.push_back(std::move(*it));
        it = wire.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& m : due) {
      if (crashed.contains(m.from) || crashed.contains(m.to)) continue;
      (void)nodes[m.to]->receive(dhtkit::node_id{m.from + 1}, m.bytes, now);
      drain(m.to);
    }
    for (std::size_t i = 0; i < size; ++i) {
      if (crashed.contains(i)) continue;
      const auto wake = nodes[i]->next_wakeup();
      if (!every_ms && !(wake && *wake <= now)) continue;
      nodes[i]->tick(now);
      ++ticks;
      drain(i);
    }
  }
  void run_until(std::int64_t ms) {
    while (now < dhtkit::time_point(dhtkit::millis(ms))) {
      now += dhtkit::millis(1);
      step();
    }
  }
  void verdict(std::size_t about, bool alive) {
    for (std::size_t j = 0; j < size; ++j) {
      if (j == about) continue;
      alive ? nodes[j]->mark_alive(dhtkit::node_id{about + 1})
            : nodes[j]->mark_dead(dhtkit::node_id{about + 1});
    }
  }

  // Writes, reads and deletes through several nodes while one replica
  // crashes unnoticed (replica timeouts, suspicions, forwards passed on,
  // fallbacks and hints), is declared dead, comes back (hinted handoff),
  // then anti-entropy and tombstone collection run to the end.
  void scenario() {
    auto key = [](int k) { return "key-" + std::to_string(k); };
    run_until(3);
    for (int k = 0; k < 8; ++k) (void)nodes[0]->put(key(k), dhtkit::to_bytes("a"), {}, now);
    drain(0);
    run_until(40);
    crashed.insert(2);
    // All three replicas wanted: the silent one must be replaced.
    dhtkit::request_options all3;
    all3.w = 3;
    all3.r = 3;
    for (int k = 0; k < 8; ++k) (void)nodes[1]->put(key(k), dhtkit::to_bytes("b"), {}, now, all3);
    drain(1);
    // Puts through every live node: some are forwarded to the crashed one.
    for (int k = 12; k < 28; ++k) {
      const std::size_t via = std::array<std::size_t, 4>{0, 1, 3, 4}[static_cast<std::size_t>(k % 4)];
      (void)nodes[via]->put(key(k), dhtkit::to_bytes("d"), {}, now);
      drain(via);
    }
    run_until(47);
    for (int k = 0; k < 8; ++k) (void)nodes[3]->get(key(k), now, all3);
    drain(3);
    run_until(300);
    verdict(2, false);
    for (int k = 8; k < 12; ++k) (void)nodes[4]->put(key(k), dhtkit::to_bytes("c"), {}, now);
    drain(4);
    run_until(600);
    crashed.erase(2);
    verdict(2, true);
    run_until(650);
    // Deletes with a context that covers every version (as after a read).
    for (int k = 0; k < 12; k += 3) {
      dhtkit::versioned_entry all;
      for (const auto& st : stores)
        if (auto e = st.get(key(k))) (void)all.sync(*e);
      (void)nodes[1]->erase(key(k), all.context(), now);
    }
    drain(1);
    run_until(4000);
  }
};

}  // namespace

TEST_CASE("next_wakeup: ticking only then does exactly what ticking every millisecond does",
          "[replication]") {
  wakeup_run fine(true), woken(false);
  fine.scenario();
  woken.scenario();
  REQUIRE(fine.trace.size() > 500);
  REQUIRE(fine.trace == woken.trace);
  REQUIRE(woken.ticks < fine.ticks / 4);  // and far fewer ticks
  for (std::size_t i = 0; i < wakeup_run::size; ++i) {
    const auto& a = fine.nodes[i]->stats();
    const auto& b = woken.nodes[i]->stats();
    REQUIRE(a.messages_sent == b.messages_sent);
    REQUIRE(a.messages_received == b.messages_received);
    REQUIRE(a.puts_ok + a.puts_failed == b.puts_ok + b.puts_failed);
    REQUIRE(a.hints_handed_off == b.hints_handed_off);
    REQUIRE(a.ae_sessions == b.ae_sessions);
    REQUIRE(a.tombstones_collected == b.tombstones_collected);
    REQUIRE(a.markers_removed == b.markers_removed);
    REQUIRE(fine.stores[i].stats().keys == woken.stores[i].stats().keys);
  }
  // The scenario went through what it is meant to exercise.
  std::uint64_t handed_off = 0, reforwarded = 0, collected = 0, removed = 0, failed = 0;
  for (const auto& n : fine.nodes) {
    handed_off += n->stats().hints_handed_off;
    reforwarded += n->stats().reforwarded + n->stats().fallback_writes;
    collected += n->stats().tombstones_collected;
    removed += n->stats().markers_removed;
    failed += n->stats().puts_failed + n->stats().gets_failed;
  }
  CHECK(handed_off > 0);
  CHECK(reforwarded > 0);
  CHECK(collected > 0);
  CHECK(removed > 0);
  (void)failed;
}

TEST_CASE("next_wakeup: nullopt only when tick() has nothing to do", "[replication]") {
  dhtkit::memory_storage store;
  dhtkit::hint_store hints;
  const dhtkit::replica_config config = dhtkit::replica_config::local();
  auto unchanged_by_ticks = [](dhtkit::replica<>& r, dhtkit::time_point from) {
    const auto sent = r.stats().messages_sent;
    for (int s = 0; s < 100; ++s) {
      r.tick(from + dhtkit::millis(37 * s));
      if (!r.take_outbox().empty() || r.stats().messages_sent != sent || r.next_wakeup()) return false;
    }
    return true;
  };

  SECTION("a replica alone on the ring, with nothing pending, is idle") {
    dhtkit::ring<dhtkit::node_id> ring;
    (void)ring.add(dhtkit::node_id{1});
    dhtkit::replica<> r(dhtkit::node_id{1}, config, ring, store, hints);
    REQUIRE(!r.next_wakeup());
    REQUIRE(unchanged_by_ticks(r, {}));
    // A put it can complete alone leaves it idle; one waiting for a second
    // acknowledgement wakes it exactly at its deadline.
    dhtkit::request_options one;
    one.n = 1;
    one.w = 1;
    (void)r.put("k", dhtkit::to_bytes("v"), {}, {}, one);
    REQUIRE(r.take_outbox().puts.size() == 1);
    REQUIRE(!r.next_wakeup());
    const dhtkit::time_point at{dhtkit::seconds(10)};
    (void)r.put("k2", dhtkit::to_bytes("v"), {}, at);
    REQUIRE(r.next_wakeup() == at + config.request_timeout);
    r.tick(at + config.request_timeout - std::chrono::nanoseconds(1));
    REQUIRE(r.take_outbox().puts.empty());
    r.tick(at + config.request_timeout);
    REQUIRE(r.take_outbox().puts.at(0).error == dhtkit::errc::quorum_not_reached);
    REQUIRE(!r.next_wakeup());
    REQUIRE(unchanged_by_ticks(r, at + dhtkit::seconds(1)));
  }

  SECTION("with peers, the periodic rounds are work; with every peer dead, they are not") {
    dhtkit::ring<dhtkit::node_id> ring;
    for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
    dhtkit::replica<> r(dhtkit::node_id{1}, config, ring, store, hints);
    REQUIRE(r.next_wakeup() == dhtkit::time_point{});  // the first round is due at once
    r.tick({});
    REQUIRE(r.take_outbox().messages.size() == 1);  // an anti-entropy exchange
    REQUIRE(r.next_wakeup() == dhtkit::time_point{} + config.anti_entropy_interval);
    r.mark_dead(dhtkit::node_id{2});
    REQUIRE(r.next_wakeup());
    r.mark_dead(dhtkit::node_id{3});
    REQUIRE(r.next_wakeup());  // the session started above is still open
    r.tick(dhtkit::time_point{} + config.ae_session_timeout);
    (void)r.take_outbox();
    REQUIRE(!r.next_wakeup());  // session abandoned, nobody to talk to
    REQUIRE(unchanged_by_ticks(r, dhtkit::time_point{} + dhtkit::seconds(1)));
    r.mark_alive(dhtkit::node_id{3});
    REQUIRE(r.next_wakeup());
    // A hint held for a dead owner is work too (it is offered or expires).
    r.mark_dead(dhtkit::node_id{3});
    REQUIRE(!r.next_wakeup());
    REQUIRE(!hints.add("k", dhtkit::node_id{2}, {}));
    REQUIRE(r.next_wakeup());
  }
}

// ---- placements: a replica over a placement that changes (replication/placement.hpp) ----

static_assert(dhtkit::protocol_core<dhtkit::basic_replica<dhtkit::memory_storage, dhtkit::fixed_ring>>);
static_assert(dhtkit::verdict_sink<dhtkit::basic_replica<dhtkit::memory_storage, dhtkit::fixed_ring>>);

TEST_CASE("fixed_ring header example", "[replication][placement]") {
  dhtkit::ring<dhtkit::node_id> ring;
  for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
  dhtkit::fixed_ring placement(dhtkit::node_id{1}, ring);  // throws if node 1 is not on the ring
  const std::uint64_t pos = placement.position("cart:7");  // the storage's key hash
  auto holders = placement.replicas(pos, 2);               // the first 2 of the ring walk
  auto walk = placement.walk(pos, 3);                      // holders first, then the third node
  // placement.ready(pos) is always true and placement.read_extras(pos) always empty
  REQUIRE(pos == dhtkit::memory_storage{}.position("cart:7"));
  REQUIRE(holders == *ring.preference_list("cart:7", 2));
  REQUIRE(walk.size() == 3);
  REQUIRE(std::equal(holders.begin(), holders.end(), walk.begin()));
  REQUIRE(placement.ready(pos));
  REQUIRE(placement.read_extras(pos).empty());
  REQUIRE(placement.peers() == ring.nodes());
  REQUIRE(!placement.is_member(dhtkit::node_id{4}));
  REQUIRE_THROWS_AS(dhtkit::fixed_ring(dhtkit::node_id{4}, ring), std::invalid_argument);
  // The replica over it is today's replica: the same ring comes back.
  dhtkit::memory_storage store;
  dhtkit::hint_store hints;
  dhtkit::replica<> node(dhtkit::node_id{1}, {}, ring, store, hints);
  REQUIRE(node.placement().nodes() == ring.nodes());
  REQUIRE(node.placement_view().ring().size() == 3);
}

namespace {

// The placement a test changes under running replicas; every key has the same
// list, `order`.
struct shared_placement {
  std::vector<dhtkit::node_id> order;   // the members, in preference order
  std::set<dhtkit::node_id> not_ready;  // nodes whose view says they are not ready
  std::vector<dhtkit::node_id> extras;  // previous holders of every key
};

// What each replica keeps: a pointer and its own id, as the DHT node's view.
struct placement_view {
  const shared_placement* shared = nullptr;
  dhtkit::node_id self{};

  std::uint64_t position(std::string_view key) const { return dhtkit::default_key_hash{}(key); }
  std::vector<dhtkit::node_id> replicas(std::uint64_t, std::size_t n) const {
    const auto& o = shared->order;
    return {o.begin(), o.begin() + static_cast<std::ptrdiff_t>(std::min(n, o.size()))};
  }
  std::vector<dhtkit::node_id> walk(std::uint64_t pos, std::size_t n) const { return replicas(pos, n); }
  bool is_member(dhtkit::node_id id) const {
    return std::find(shared->order.begin(), shared->order.end(), id) != shared->order.end();
  }
  std::vector<dhtkit::node_id> peers() const { return shared->order; }
  bool ready(std::uint64_t) const { return !shared->not_ready.contains(self); }
  std::vector<dhtkit::node_id> read_extras(std::uint64_t) const { return shared->extras; }
};

static_assert(dhtkit::replica_placement<placement_view>);
using view_replica = dhtkit::basic_replica<dhtkit::memory_storage, placement_view>;
static_assert(dhtkit::protocol_core<view_replica>);

// `size` replicas with ids 1..size over one shared_placement; messages are
// delivered at once (hand_cluster's pump), and each node counts what it got.
struct view_cluster {
  static constexpr std::size_t size = 4;
  shared_placement placement;
  std::vector<dhtkit::memory_storage> stores = std::vector<dhtkit::memory_storage>(size);
  std::vector<dhtkit::hint_store> hints = std::vector<dhtkit::hint_store>(size);
  std::vector<std::unique_ptr<view_replica>> nodes;
  std::vector<std::size_t> received = std::vector<std::size_t>(size);
  dhtkit::time_point now{};

  explicit view_cluster(dhtkit::replica_config config) {
    for (std::uint64_t i = 1; i <= size; ++i) placement.order.push_back(dhtkit::node_id{i});
    for (std::size_t i = 0; i < size; ++i)
      nodes.push_back(std::make_unique<view_replica>(id(i), config, placement_view{&placement, id(i)},
                                                     stores[i], hints[i]));
  }
  static dhtkit::node_id id(std::size_t i) { return dhtkit::node_id{i + 1}; }
  view_replica& at(std::size_t i) { return *nodes[i]; }
  void pump() {
    for (bool any = true; any;) {
      any = false;
      for (std::size_t i = 0; i < size; ++i) {
        auto messages = std::move(nodes[i]->outbox().messages);
        nodes[i]->outbox().messages.clear();
        for (auto& m : messages) {
          any = true;
          const auto to = static_cast<std::size_t>(m.to.value - 1);
          ++received[to];
          nodes[to]->receive(id(i), m.bytes, now);
        }
      }
    }
  }
  void store(std::size_t i, const std::string& key, const std::string& value) {
    dhtkit::versioned_value v;
    v.version = dhtkit::dot{id(i), stores[i].next_counter()};
    v.value = dhtkit::to_bytes(value);
    REQUIRE(stores[i].put(key, {}, v));
  }
  // The values a get through node i returns, with R = 2 over the first 2 of the list.
  dhtkit::get_completion get(std::size_t i, const std::string& key) {
    dhtkit::request_options two;
    two.n = 2;
    two.r = 2;
    at(i).outbox().gets.clear();
    (void)at(i).get(key, now, two);
    pump();
    REQUIRE(at(i).outbox().gets.size() == 1);
    return at(i).outbox().gets[0];
  }
};

std::vector<std::string> values_of(const dhtkit::get_completion& g) {
  std::vector<std::string> out;
  for (const auto& v : g.siblings)
    out.emplace_back(reinterpret_cast<const char*>(v.value.data()), v.value.size());
  return out;
}

}  // namespace

TEST_CASE("a replica takes messages from whoever its placement names a member now",
          "[replication][placement]") {
  shared_placement shared;
  shared.order = {dhtkit::node_id{1}};
  dhtkit::memory_storage store;
  dhtkit::hint_store hints;
  view_replica r(dhtkit::node_id{1}, dhtkit::replica_config::local(),
                 placement_view{&shared, dhtkit::node_id{1}}, store, hints);
  dhtkit::detail::repl::codec codec;
  auto request_from = [&](std::uint64_t n) {
    return *codec.encode(dhtkit::detail::repl::read_request{7, "k"}, dhtkit::node_id{n});
  };
  // Alone: no anti-entropy partner, so nothing to wake for.
  REQUIRE(!r.next_wakeup());
  REQUIRE(r.receive(dhtkit::node_id{3}, request_from(3), {}) == dhtkit::errc::not_a_member);
  REQUIRE(r.stats().rejected == 1);
  REQUIRE(r.outbox().messages.empty());

  // Node 3 joins: its read is answered, and it is now a partner for the rounds.
  shared.order.push_back(dhtkit::node_id{3});
  REQUIRE(r.receive(dhtkit::node_id{3}, request_from(3), {}) == std::error_code{});
  REQUIRE(r.outbox().messages.size() == 1);
  REQUIRE(r.outbox().messages[0].to == dhtkit::node_id{3});
  REQUIRE(r.next_wakeup());
  REQUIRE(r.replicas_of("k", 3) == shared.order);

  // Node 2 joins, node 3 leaves: 3 is refused again, 2 is taken.
  shared.order = {dhtkit::node_id{1}, dhtkit::node_id{2}};
  r.outbox().clear();
  REQUIRE(r.receive(dhtkit::node_id{3}, request_from(3), {}) == dhtkit::errc::not_a_member);
  REQUIRE(r.receive(dhtkit::node_id{2}, request_from(2), {}) == std::error_code{});
  REQUIRE(r.stats().rejected == 2);
  REQUIRE(r.outbox().messages.size() == 1);
  REQUIRE(r.outbox().messages[0].to == dhtkit::node_id{2});
  // Writes follow the list too: a put goes to the new member.
  (void)r.put("k", dhtkit::to_bytes("v"), {}, {});
  REQUIRE(r.outbox().messages.size() == 2);
  REQUIRE(r.outbox().messages[1].to == dhtkit::node_id{2});
}

TEST_CASE("a target that is not ready is replaced by a previous holder and does not count toward R",
          "[replication][placement]") {
  // The key's list is 1 2 3 4: with N = 2, nodes 1 and 2 hold it and 3 is the
  // first fallback. Node 2 has just taken the key over and is not ready; node 4
  // held it before and still has the acknowledged value. Node 2's store has an
  // older sibling the get must not see.
  view_cluster c(dhtkit::replica_config::local());
  c.placement.not_ready = {view_cluster::id(1)};
  c.placement.extras = {view_cluster::id(3)};
  c.store(3, "k", "acked");
  c.store(1, "k", "partial");

  SECTION("asked by another coordinator") {
    const auto got = c.get(0, "k");
    REQUIRE(!got.error);
    REQUIRE(got.replies == 2);  // node 1 (nothing) and node 4: not node 2's refusal
    REQUIRE(values_of(got) == std::vector<std::string>{"acked"});
    REQUIRE(c.at(0).stats().not_ready_replies == 1);
    REQUIRE(c.received[2] == 0);  // the fallback was not asked: the previous holder was
    REQUIRE(c.received[1] == 1);
    REQUIRE(c.received[3] == 1);
    // The refusal is no answer to repair: node 2 is left to its handoff.
    REQUIRE(c.stores[1].get("k")->siblings().size() == 1);
  }
  SECTION("the coordinator itself, which reads its own store only when ready") {
    const auto got = c.get(1, "k");
    REQUIRE(!got.error);
    REQUIRE(got.replies == 2);
    REQUIRE(values_of(got) == std::vector<std::string>{"acked"});
    REQUIRE(c.at(1).stats().not_ready_replies == 1);
    REQUIRE(c.received[2] == 0);
  }
  SECTION("the coordinator first in the list: its stand-in is not a node it is about to ask") {
    c.placement.not_ready = {view_cluster::id(0)};
    const auto got = c.get(0, "k");
    REQUIRE(!got.error);
    REQUIRE(got.replies == 2);  // node 2 and node 4
    REQUIRE(values_of(got).size() == 2);
    REQUIRE(c.received[1] == 2);  // asked once, then repaired with node 4's value
    REQUIRE(c.received[3] == 1);
    REQUIRE(c.received[2] == 0);
    REQUIRE(c.at(0).stats().not_ready_replies == 1);
  }
  SECTION("under strict quorum the previous holder still stands in") {
    auto config = dhtkit::replica_config::local();
    config.strict_quorum = true;
    view_cluster s(config);
    s.placement.not_ready = {view_cluster::id(1)};
    s.placement.extras = {view_cluster::id(3)};
    s.store(3, "k", "acked");
    const auto got = s.get(0, "k");
    REQUIRE(!got.error);
    REQUIRE(values_of(got) == std::vector<std::string>{"acked"});
  }
  SECTION("without previous holders the fallback stands in, and has nothing") {
    c.placement.extras.clear();
    const auto got = c.get(0, "k");
    REQUIRE(!got.error);
    REQUIRE(got.replies == 2);
    REQUIRE(got.siblings.empty());
    REQUIRE(c.received[2] == 1);
    REQUIRE(c.received[3] == 0);
  }
  SECTION("with nobody to stand in the get fails with what did reply") {
    auto config = dhtkit::replica_config::local();
    config.strict_quorum = true;
    view_cluster s(config);
    s.placement.not_ready = {view_cluster::id(1)};
    const auto got = s.get(0, "k");
    REQUIRE(got.error == dhtkit::errc::quorum_not_reached);
    REQUIRE(got.replies == 1);
    REQUIRE(s.at(0).pending() == 0);  // finished at once, not at the deadline
  }
}

TEST_CASE("the may_drop hook keeps a hinted copy it vetoes", "[replication][placement]") {
  hand_cluster c(hand_config());
  std::vector<std::string> asked;
  for (std::size_t i = 0; i < hand_cluster::size; ++i)
    c.at(i).set_may_drop([&](std::string_view key) {
      asked.emplace_back(key);
      return key != "cart";
    });
  // Two keys with the same owner down, each written around it to a fallback.
  const std::size_t b = hand_cluster::index(c.at(0).replicas_of("cart", 5)[1]);
  std::string other;
  for (int i = 0; other.empty(); ++i) {
    const std::string k = "key" + std::to_string(i);
    if (c.at(0).replicas_of(k, 5)[1] == hand_cluster::id(b)) other = k;
  }
  c.crash(b);
  std::vector<std::size_t> fallback;
  for (const std::string& key : {std::string("cart"), other}) {
    const auto walk = c.at(0).replicas_of(key, 5);
    c.at(hand_cluster::index(walk[0])).put(key, dhtkit::to_bytes("one"), {}, c.now);
    c.pump();
    fallback.push_back(hand_cluster::index(walk[3]));
    REQUIRE(c.holds(fallback.back(), key, "one"));
    REQUIRE(c.hints[fallback.back()].size() >= 1);
  }
  c.restart(b);
  c.run_for(dhtkit::millis(500));
  // Both were handed off; only the one the hook allowed was dropped.
  REQUIRE((c.holds(b, "cart", "one") && c.holds(b, other, "one")));
  REQUIRE(c.hints[fallback[0]].size() == 0);
  REQUIRE(c.hints[fallback[1]].size() == 0);
  REQUIRE(c.holds(fallback[0], "cart", "one"));
  REQUIRE(!c.stores[fallback[1]].get(other));
  REQUIRE(std::count(asked.begin(), asked.end(), "cart") >= 1);
  REQUIRE(std::count(asked.begin(), asked.end(), other) == 1);
}
