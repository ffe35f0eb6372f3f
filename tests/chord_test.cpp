// Chord router: the header example, configuration, circle arithmetic, and on
// the simulator: rings grown one join at a time and in bursts converge to the
// true ring within a bounded number of rounds with Zave's invariants checked
// after every round; lookups then return the true owner; mass crashes, churn
// with message loss, voluntary leaves, failure-detector verdicts, range
// events, and hostile messages.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "dhtkit/chord/router.hpp"
#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/transport/detail/crc32c.hpp"
#include "dhtkit/transport/sim.hpp"
#include "support/catch.hpp"
#include "support/chord_cluster.hpp"
#include "support/seeds.hpp"

namespace {

using dhtkit::millis;
using dhtkit::node_id;
using dhtkit::time_point;
using dhtkit::chord::router_config;
using dhtkit::test::chord_cluster;
using rng_t = dhtkit::random_engine;
namespace detail = dhtkit::chord::detail;
using ep = dhtkit::sim::endpoint;
using codec_t = dhtkit::wire::codec<detail::state_request, detail::state_reply<ep>, detail::rectify<ep>,
                                    detail::find_request, detail::find_reply<ep>, detail::leave_notice<ep>>;

static_assert(dhtkit::protocol_core<dhtkit::test::sim_router>);
static_assert(dhtkit::verdict_sink<dhtkit::test::sim_router>);

// Recomputes the envelope checksum of an edited message, so that a decoder
// sees exactly the edit rather than a bad checksum.
void reseal(std::vector<std::byte>& bytes) {
  const std::span<const std::byte> all(bytes);
  const std::uint32_t crc =
      dhtkit::detail::crc32c_extend(dhtkit::detail::crc32c(all.first(20)), all.subspan(24));
  for (int i = 0; i < 4; ++i) bytes[20 + i] = std::byte(static_cast<std::uint8_t>(crc >> (8 * i)));
}

// Runs one stabilization round and checks the invariants; returns the error.
std::string round_checked(chord_cluster& c) {
  c.run_rounds(1);
  return c.check_invariants();
}

// Grows a ring of n nodes with random ids, one join per round, checking the
// invariants after every round.
void grow_one_at_a_time(chord_cluster& c, rng_t& rng, std::size_t n) {
  c.add(node_id{rng.next()});
  c.create(0);
  for (std::size_t i = 1; i < n; ++i) {
    const std::size_t k = c.add(node_id{rng.next()});
    REQUIRE_FALSE(c.join(k, rng.below(k)));
    const std::string err = round_checked(c);
    INFO("after join " << i << ": " << err);
    REQUIRE(err.empty());
  }
}

// Runs rounds until converged (invariants checked every round); the rounds it took.
std::size_t converge(chord_cluster& c, std::size_t limit) {
  std::size_t rounds = 0;
  while (!c.converged() && rounds < limit) {
    const std::string err = round_checked(c);
    INFO("round " << rounds << ": " << err);
    REQUIRE(err.empty());
    ++rounds;
  }
  INFO(c.convergence_error());
  REQUIRE(c.converged());
  return rounds;
}

struct lookup_stats {
  std::size_t issued = 0;
  std::size_t correct = 0;  // succeeded and named the true live owner
  std::size_t failed = 0;   // reported an error
  std::size_t hops = 0;     // over correct ones
};

// Issues `count` lookups of random keys from random live members, lets them
// finish, and compares each answer with the true owner at completion.
lookup_stats run_lookups(chord_cluster& c, rng_t& rng, std::size_t count) {
  const auto members = c.ring();
  struct issued {
    std::size_t node;
    dhtkit::chord::lookup_id id;
    std::uint64_t key;
  };
  std::vector<issued> all;
  for (std::size_t q = 0; q < count; ++q) {
    const std::size_t node = members[rng.below(members.size())].second;
    const std::uint64_t key = rng.next();
    auto id = c.lookup(node, key);
    REQUIRE(id);
    all.push_back({node, *id, key});
  }
  c.run_for(dhtkit::seconds(10));
  lookup_stats s;
  s.issued = count;
  for (const auto& q : all) {
    const auto* r = c.result_of(q.node, q.id);
    REQUIRE(r != nullptr);  // every lookup completes: timeouts bound it
    if (r->error) {
      ++s.failed;
      continue;
    }
    const auto owner = c.true_owner(q.key);
    if (owner && c.router(*owner).id() == r->owner.id) {
      ++s.correct;
      s.hops += r->hops;
    }
  }
  return s;
}

}  // namespace

TEST_CASE("chord: the header example", "[chord]") {
  using router = dhtkit::chord::basic_router<dhtkit::sim::endpoint>;
  dhtkit::time_point now{};
  router a(dhtkit::node_id{100}, dhtkit::sim::endpoint{1}, {}, /*seed=*/1);
  router b(dhtkit::node_id{200}, dhtkit::sim::endpoint{2}, {}, /*seed=*/2);
  a.create(now);  // a one-node ring
  std::error_code ec = b.join(dhtkit::sim::endpoint{1}, now);
  // A driver: deliver every outgoing message (here, instantly) and tick.
  auto pump = [&] {
    for (int round = 0; round < 200; ++round) {
      now += dhtkit::millis(50);
      for (router* r : {&a, &b}) r->tick(now);
      for (router* r : {&a, &b}) {
        auto messages = std::move(r->outbox().messages);
        r->outbox().messages.clear();
        for (auto& m : messages) (m.to.id == 1 ? a : b).receive(r->address(), m.bytes, now);
      }
    }
  };
  pump();
  auto id = a.lookup(/*key=*/150, now);  // owner: the first node at or after 150
  pump();
  // a.outbox().lookups has {id, key 150, owner b, hops, ...}; b.successor() is a
  // and a.outbox().ranges says a lost (100, 200] to b.

  REQUIRE_FALSE(ec);
  REQUIRE(id);
  REQUIRE(a.outbox().lookups.size() == 1);
  const auto& found = a.outbox().lookups.front();
  CHECK(found.id == *id);
  CHECK_FALSE(found.error);
  CHECK(found.owner.id == node_id{200});
  CHECK(b.successor().id == node_id{100});
  CHECK(a.successor().id == node_id{200});
  REQUIRE(a.predecessor());
  CHECK(a.predecessor()->id == node_id{200});
  bool lost_to_b = false;
  for (const auto& r : a.outbox().ranges) lost_to_b |= !r.gained && r.begin == 100 && r.end == 200;
  CHECK(lost_to_b);
  REQUIRE(b.outbox().status.size() == 1);
  CHECK(b.outbox().status.front().kind == dhtkit::chord::status_kind::joined);
}

TEST_CASE("chord: configuration is validated and r derived", "[chord]") {
  router_config c;
  CHECK(c.r() == 16);  // 2*ceil(log2 1024) = 20, clamped to 16
  c.expected_nodes = 16;
  CHECK(c.r() == 8);
  c.expected_nodes = 1;
  CHECK(c.r() == 2);
  c.expected_nodes = 100;
  CHECK(c.r() == 14);
  c.successor_list_length = 5;
  CHECK(c.r() == 5);

  auto bad = [](auto mutate) {
    router_config cfg;
    mutate(cfg);
    return [cfg] { dhtkit::test::sim_router r(node_id{1}, ep{1}, cfg, 1); };
  };
  CHECK_THROWS_AS(bad([](router_config& x) { x.successor_list_length = 17; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.max_successor_list_length = 0; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.stabilize_period = dhtkit::duration::zero(); })(),
                  std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.request_timeout = millis(-1); })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.max_hops = 0; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.lookup_candidates = 0; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.max_lookup_candidates = 1; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.fingers_per_fix = 65; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.expected_nodes = 0; })(), std::invalid_argument);
  // Durations so long that now + duration would overflow.
  CHECK_THROWS_AS(bad([](router_config& x) { x.dead_peer_ttl = dhtkit::duration::max(); })(),
                  std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.request_timeout = dhtkit::duration::max(); })(),
                  std::invalid_argument);
  CHECK_THROWS_AS(bad([](router_config& x) { x.max_pending_range_events = 0; })(), std::invalid_argument);
  CHECK_NOTHROW(bad([](router_config&) {})());
  // The message names the field; the presets are valid.
  router_config zero;
  zero.stabilize_period = dhtkit::duration::zero();
  CHECK_THROWS_WITH(zero.validate(), "dhtkit::chord::router_config: stabilize_period must be in (0, 24 h]");
  CHECK_NOTHROW(router_config::lan().validate());
  CHECK_NOTHROW(router_config::wan().validate());
  CHECK_NOTHROW(router_config::local().validate());
}

TEST_CASE("chord: arcs on the circle wrap around", "[chord]") {
  CHECK(detail::in_open(5, 1, 10));
  CHECK_FALSE(detail::in_open(1, 1, 10));
  CHECK_FALSE(detail::in_open(10, 1, 10));
  CHECK(detail::in_open(0, ~0ULL - 1, 3));  // wraps past zero
  CHECK_FALSE(detail::in_open(5, ~0ULL - 1, 3));
  CHECK(detail::in_open(7, 3, 3));  // a == b: everything but a
  CHECK_FALSE(detail::in_open(3, 3, 3));
  CHECK(detail::in_half_open(10, 1, 10));
  CHECK_FALSE(detail::in_half_open(1, 1, 10));
  CHECK(detail::in_half_open(3, 3, 3));  // a == b: the whole circle
  CHECK(detail::in_half_open(~0ULL, 5, 2));
}

TEST_CASE("chord: lookups before joining fail and a lone node owns everything", "[chord]") {
  dhtkit::test::sim_router r(node_id{42}, ep{1}, {}, 1);
  CHECK(r.lookup(7, time_point{}).error() == dhtkit::errc::not_joined);
  CHECK(r.leave(time_point{}) == dhtkit::errc::not_joined);
  r.create(time_point{});
  auto id = r.lookup(7, time_point{});
  REQUIRE(id);
  REQUIRE(r.outbox().lookups.size() == 1);
  CHECK(r.outbox().lookups[0].owner.id == node_id{42});
  CHECK(r.outbox().lookups[0].hops == 0);
  REQUIRE(r.outbox().ranges.size() == 1);
  CHECK(r.outbox().ranges[0].gained);
  CHECK(r.outbox().ranges[0].begin == r.outbox().ranges[0].end);         // the whole circle
  CHECK(r.join(ep{2}, time_point{}) == dhtkit::errc::invalid_argument);  // already in a ring
}

TEST_CASE("chord: on a stable ring with 5 % loss lookups name the true owner, not its successor",
          "[chord][sim]") {
  // A lost verify request or reply once made the owner's successor the
  // answer, and a peer this node had taken for dead was skipped as owner
  // although alive: the owner is now asked again, and an owner whose
  // predecessor lies at or after the key hands the lookup back to it.
  for (std::uint64_t seed : dhtkit::test::seeds(2)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::sim::network_config net;
    net.link.loss = 0.05;
    chord_cluster c(seed, {}, net);
    rng_t rng(seed * 77);
    grow_one_at_a_time(c, rng, 32);
    c.run_rounds(30);
    REQUIRE(c.check_invariants().empty());
    CHECK(c.successors_correct());
    const auto s = run_lookups(c, rng, 1000);
    const std::size_t wrong = s.issued - s.correct - s.failed;
    INFO("correct " << s.correct << ", failed " << s.failed << ", wrong owner " << wrong << " of "
                    << s.issued);
    CHECK(wrong <= s.issued / 100);
    CHECK(s.correct >= s.issued * 98 / 100);
  }
}

TEST_CASE("chord: rings of 2..64 grown one join at a time converge, lookups find the true owner",
          "[chord][sim]") {
  for (std::size_t n : {2, 3, 4, 5, 8, 17, 32, 64}) {
    for (std::uint64_t seed : dhtkit::test::seeds(n <= 8 ? 4 : 2)) {
      DHTKIT_SEED_SCOPE(seed);
      INFO("ring of " << n);
      chord_cluster c(seed);
      rng_t rng(seed * 1000 + n);
      grow_one_at_a_time(c, rng, n);
      // Bounded: a successor list fills one entry per round from the far end.
      const std::size_t rounds = converge(c, 2 * c.router(0).successor_list_length() + 8);
      CHECK(rounds <= 2 * c.router(0).successor_list_length() + 8);
      c.run_rounds(20);  // fingers
      REQUIRE(c.check_invariants().empty());
      const auto s = run_lookups(c, rng, 200);
      CHECK(s.correct == s.issued);
    }
  }
}

TEST_CASE("chord: burst joins (all at once) converge within a bounded number of rounds", "[chord][sim]") {
  for (std::uint64_t seed : dhtkit::test::seeds(2)) {
    DHTKIT_SEED_SCOPE(seed);
    chord_cluster c(seed);
    rng_t rng(seed);
    c.add(node_id{rng.next()});
    c.create(0);
    // 63 nodes join in the same instant, all through node 0, which is alone:
    // each learns node 0 as its successor, so the ring is sorted out by
    // stabilize one adoption at a time: O(N) rounds, as the paper says of
    // concurrent joins into a small ring.
    for (int i = 1; i < 64; ++i) REQUIRE_FALSE(c.join(c.add(node_id{rng.next()}), 0));
    const std::size_t rounds = converge(c, 120);
    CHECK(rounds <= 120);
    // A second burst through random members.
    for (int i = 0; i < 32; ++i) {
      const std::size_t via = c.ring()[rng.below(c.ring().size())].second;
      REQUIRE_FALSE(c.join(c.add(node_id{rng.next()}), via));
    }
    converge(c, 80);
    c.run_rounds(30);
    const auto s = run_lookups(c, rng, 300);
    CHECK(s.correct == s.issued);
    for (std::size_t i = 1; i < c.size(); ++i) {  // node 0 created the ring
      REQUIRE_FALSE(c.at(i).status.empty());
      CHECK(c.at(i).status.back().kind == dhtkit::chord::status_kind::joined);
    }
  }
}

TEST_CASE("chord: after 10/25/50 % of nodes crash at once the ring heals and lookups find live owners",
          "[chord][sim]") {
  for (double fraction : {0.10, 0.25, 0.50}) {
    for (std::uint64_t seed : dhtkit::test::seeds(2)) {
      DHTKIT_SEED_SCOPE(seed);
      INFO("crash fraction " << fraction);
      chord_cluster c(seed);
      rng_t rng(seed * 77);
      grow_one_at_a_time(c, rng, 64);
      converge(c, 60);
      c.run_rounds(30);
      // Crash a random set, redrawn while it would take all r successors of a
      // survivor: the case the protocol (and the paper's bound) excludes.
      std::vector<std::size_t> victims;
      for (int attempt = 0; attempt < 100; ++attempt) {
        std::vector<std::size_t> all(c.size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
        for (std::size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng.below(i)]);
        victims.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(fraction * 64));
        std::set<std::size_t> dead(victims.begin(), victims.end());
        bool ok = true;
        for (std::size_t i = 0; i < c.size() && ok; ++i) {
          if (dead.count(i)) continue;
          bool any = false;
          for (const auto& p : c.router(i).successors())
            for (std::size_t j = 0; j < c.size(); ++j)
              if (c.router(j).id() == p.id && !dead.count(j)) any = true;
          ok = any;
        }
        if (ok) break;
      }
      for (std::size_t v : victims) c.crash(v);
      // Right after the crash: lookups route around dead hops (timeouts, fallbacks).
      const auto before = run_lookups(c, rng, 200);
      CHECK(before.correct >= before.issued * 9 / 10);
      converge(c, 40);
      c.run_rounds(10);
      const auto after = run_lookups(c, rng, 300);
      CHECK(after.correct == after.issued);
    }
  }
}

TEST_CASE("chord: churn with message loss keeps lookups succeeding at a measured rate", "[chord][sim]") {
  for (std::uint64_t seed : dhtkit::test::seeds(2)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::sim::network_config net;
    net.link.loss = 0.02;
    chord_cluster c(seed, {}, net);
    rng_t rng(seed * 31);
    grow_one_at_a_time(c, rng, 40);
    // Under steady loss a list entry is now and then dropped for a while
    // (two lost messages in a row), so the exact lists are not a fixed
    // point; the first live successors are.
    c.run_rounds(20);
    REQUIRE(c.check_invariants().empty());
    CHECK(c.successors_correct());
    std::size_t issued = 0, correct = 0;
    for (int round = 0; round < 30; ++round) {
      // About one crash and one join every two rounds, i.e. 0.5 failures per
      // stabilization period (more than the paper's worst case of 0.4);
      // lookups are issued right after the change and judged against the
      // truth, so a lookup into the range of a node that has joined but is
      // not yet adopted, or that routed to a just-crashed owner, counts as failed.
      if (rng.below(2) == 0 && c.ring().size() > 20) c.crash(c.ring()[rng.below(c.ring().size())].second);
      if (rng.below(2) == 0) {
        const auto r = c.ring();
        (void)c.join(c.add(node_id{rng.next()}), r[rng.below(r.size())].second);
      }
      const auto s = run_lookups(c, rng, 10);  // 10 s: also ten stabilization rounds
      issued += s.issued;
      correct += s.correct;
      INFO("round " << round);
      REQUIRE(c.check_invariants().empty());
    }
    const double rate = static_cast<double>(correct) / static_cast<double>(issued);
    INFO("lookup success rate under churn with 2 % loss: " << rate);
    CHECK(rate >= 0.90);
    std::size_t rounds = 0;
    for (; rounds < 30 && !c.successors_correct(); ++rounds) REQUIRE(round_checked(c).empty());
    CHECK(c.successors_correct());
  }
}

TEST_CASE("chord: a voluntary leave hands off to both neighbours at once", "[chord][sim]") {
  for (std::uint64_t seed : dhtkit::test::seeds(3)) {
    DHTKIT_SEED_SCOPE(seed);
    chord_cluster c(seed);
    rng_t rng(seed);
    grow_one_at_a_time(c, rng, 16);
    converge(c, 60);
    for (int k = 0; k < 6; ++k) {
      const auto before = c.ring();
      const std::size_t pos = rng.below(before.size());
      const std::size_t leaver = before[pos].second;
      const std::size_t pred = before[(pos + before.size() - 1) % before.size()].second;
      const std::size_t succ = before[(pos + 1) % before.size()].second;
      REQUIRE_FALSE(c.leave(leaver));
      c.run_for(millis(20));  // the notices arrive; no stabilization round has run
      CHECK(c.router(pred).successor().id == c.router(succ).id());
      REQUIRE(c.router(succ).predecessor());
      CHECK(c.router(succ).predecessor()->id == c.router(pred).id());
      CHECK(c.at(leaver).status.back().kind == dhtkit::chord::status_kind::left);
      REQUIRE(c.check_invariants().empty());
      converge(c, 20);
    }
    const auto s = run_lookups(c, rng, 100);
    CHECK(s.correct == s.issued);
  }
}

TEST_CASE("chord: range events add up to each node's range from predecessor to self", "[chord][sim]") {
  for (std::uint64_t seed : dhtkit::test::seeds(3)) {
    DHTKIT_SEED_SCOPE(seed);
    chord_cluster c(seed);
    rng_t rng(seed);
    grow_one_at_a_time(c, rng, 24);
    converge(c, 60);
    c.crash(c.ring()[3].second);
    REQUIRE_FALSE(c.leave(c.ring()[7].second));
    converge(c, 40);
    for (const auto& [id, i] : c.ring()) {
      // Owned length modulo 2^64 (the whole circle counts as 0).
      std::uint64_t owned = 0;
      for (const auto& r : c.at(i).ranges) {
        const std::uint64_t len = r.end - r.begin;
        owned = r.gained ? owned + len : owned - len;
      }
      REQUIRE(c.router(i).predecessor());
      CHECK(owned == id - c.router(i).predecessor()->id.value);
    }
  }
}

TEST_CASE("chord: undrained range events stay bounded and add up to the final range", "[chord]") {
  // A driver that never drains ranges, and a peer that moves a's predecessor
  // one step at a time: the outbox keeps at most max_pending_range_events.
  router_config cfg;
  cfg.max_pending_range_events = 8;
  dhtkit::test::sim_router a{node_id{1000}, ep{1}, cfg, 1};
  codec_t codec;
  a.create(time_point{});
  for (std::uint64_t id = 1; id <= 500; ++id) {
    auto bytes = codec.encode(detail::rectify<ep>{{node_id{id}, ep{2}}}, node_id{id});
    REQUIRE(bytes);
    a.receive(ep{2}, *bytes, time_point{});
    REQUIRE(a.outbox().ranges.size() <= 8);
  }
  REQUIRE(a.predecessor());
  CHECK(a.predecessor()->id == node_id{500});
  // Owned length modulo 2^64 (the whole circle counts as 0): (500, 1000].
  std::uint64_t owned = 0;
  for (const auto& r : a.outbox().ranges)
    owned = r.gained ? owned + (r.end - r.begin) : owned - (r.end - r.begin);
  CHECK(owned == 500);
  // A driver that does drain sees every step, one event each.
  a.outbox().ranges.clear();
  for (std::uint64_t id = 501; id <= 510; ++id) {
    auto bytes = codec.encode(detail::rectify<ep>{{node_id{id}, ep{2}}}, node_id{id});
    REQUIRE(bytes);
    a.receive(ep{2}, *bytes, time_point{});
    REQUIRE(a.outbox().ranges.size() == 1);
    CHECK_FALSE(a.outbox().ranges.front().gained);
    CHECK(a.outbox().ranges.front().begin == id - 1);
    CHECK(a.outbox().ranges.front().end == id);
    a.outbox().ranges.clear();
  }
}

TEST_CASE("chord: a failure detector's verdict removes a dead node at once", "[chord][sim]") {
  chord_cluster c(5);
  rng_t rng(5);
  grow_one_at_a_time(c, rng, 12);
  converge(c, 60);
  const auto r = c.ring();
  const std::size_t victim = r[4].second;
  const std::size_t pred = r[3].second;
  c.crash(victim);
  c.router(pred).mark_dead(c.router(victim).id());
  CHECK(c.router(pred).is_dead(c.router(victim).id()));
  CHECK(c.router(pred).successor().id == c.router(r[5].second).id());
  for (const auto& f : c.router(pred).fingers()) CHECK((!f || f->id != c.router(victim).id()));
  c.router(pred).mark_alive(c.router(victim).id());
  CHECK_FALSE(c.router(pred).is_dead(c.router(victim).id()));
  converge(c, 40);
}

TEST_CASE("chord: joins that cannot succeed fail with a status event", "[chord][sim]") {
  chord_cluster c(9);
  c.add(node_id{1000});
  c.create(0);
  c.add(node_id{1000});  // the same id as node 0
  c.add(node_id{2000});
  c.add(node_id{3000});
  c.run_rounds(1);
  REQUIRE_FALSE(c.join(1, 0));
  c.crash(3);
  REQUIRE_FALSE(c.join(2, 3));  // a bootstrap that is down
  c.run_rounds(5);
  REQUIRE_FALSE(c.at(1).status.empty());
  CHECK(c.at(1).status.back().kind == dhtkit::chord::status_kind::join_failed);
  REQUIRE_FALSE(c.at(2).status.empty());
  CHECK(c.at(2).status.back().kind == dhtkit::chord::status_kind::join_failed);
  CHECK(c.at(2).status.back().error == dhtkit::errc::timed_out);
  CHECK(c.router(2).state() == dhtkit::chord::router_state::idle);
  CHECK(c.router(0).successors().empty());  // node 0 is still alone
}

TEST_CASE("chord: the same seed replays the same run", "[chord][sim]") {
  auto run = [](std::uint64_t seed) {
    chord_cluster c(seed);
    rng_t rng(seed);
    grow_one_at_a_time(c, rng, 16);
    c.run_rounds(10);
    (void)run_lookups(c, rng, 50);
    return c.net().trace_hash();
  };
  CHECK(run(3) == run(3));
  CHECK(run(3) != run(4));
}

namespace {

// Two routers, 100 and 200, wired by hand: b joined a and both have converged.
struct pair_fixture {
  dhtkit::test::sim_router a{node_id{100}, ep{1}, {}, 1};
  dhtkit::test::sim_router b{node_id{200}, ep{2}, {}, 2};
  time_point now{};
  codec_t codec;

  pair_fixture() {
    a.create(now);
    REQUIRE_FALSE(b.join(ep{1}, now));
    pump(100);
    REQUIRE(a.successor().id == node_id{200});
    REQUIRE(b.successor().id == node_id{100});
  }

  void pump(int rounds) {
    for (int k = 0; k < rounds; ++k) {
      now += millis(50);
      a.tick(now);
      b.tick(now);
      for (auto* r : {&a, &b}) {
        auto msgs = std::move(r->outbox().messages);
        r->outbox().messages.clear();
        for (auto& m : msgs) (m.to.id == 1 ? a : b).receive(r->address(), m.bytes, now);
      }
    }
  }

  // Ticks a until it asks b for its state; returns the request id (b does not answer).
  std::uint64_t next_state_request_from_a() {
    for (int k = 0; k < 200; ++k) {
      now += millis(50);
      a.tick(now);
      auto msgs = std::move(a.outbox().messages);
      a.outbox().messages.clear();
      for (auto& m : msgs) {
        auto d = codec.decode(m.bytes);
        REQUIRE(d);
        if (auto* req = std::get_if<detail::state_request>(&d->message); req && m.to.id == 2)
          return req->request;
      }
    }
    FAIL("a never asked b for its state");
    return 0;
  }

  template <class Msg>
  void deliver_to_a(const Msg& m, node_id sender, ep from = ep{2}) {
    auto bytes = codec.encode(m, sender);
    REQUIRE(bytes);
    a.receive(from, *bytes, now);
  }
};

}  // namespace

TEST_CASE("chord: hostile and broken messages are rejected, never trusted", "[chord]") {
  pair_fixture f;
  const auto rejected = [&] { return f.a.stats().rejected; };

  SECTION("garbage bytes") {
    const std::uint64_t before = rejected();
    const std::byte junk[] = {std::byte{1}, std::byte{2}, std::byte{3}};
    f.a.receive(ep{2}, junk, f.now);
    CHECK(rejected() == before + 1);
  }
  SECTION("a message claiming to come from the receiver itself") {
    const std::uint64_t before = rejected();
    f.deliver_to_a(detail::rectify<ep>{{node_id{100}, ep{2}}}, node_id{100});
    CHECK(rejected() == before + 1);
    CHECK(f.a.predecessor()->id == node_id{200});
  }
  SECTION("a rectify naming someone other than its sender") {
    const std::uint64_t before = rejected();
    f.deliver_to_a(detail::rectify<ep>{{node_id{150}, ep{7}}}, node_id{200});
    CHECK(rejected() == before + 1);
    CHECK(f.a.predecessor()->id == node_id{200});
  }
  SECTION("a reply nobody asked for") {
    const std::uint64_t before = f.a.stats().stale_replies;
    f.deliver_to_a(detail::state_reply<ep>{999999, false, {}, {}}, node_id{200});
    CHECK(f.a.stats().stale_replies == before + 1);
  }
  SECTION("successor lists that are too long, loop back to the sender, or run backwards") {
    std::vector<dhtkit::chord::peer<ep>> too_long;
    for (std::uint64_t i = 0; i < 17; ++i)
      too_long.push_back({node_id{300 + i}, ep{static_cast<std::uint32_t>(10 + i)}});
    std::vector<dhtkit::chord::peer<ep>> self_loop{{node_id{300}, ep{3}}, {node_id{200}, ep{2}}};
    std::vector<dhtkit::chord::peer<ep>> backwards{{node_id{400}, ep{4}}, {node_id{300}, ep{3}}};
    for (std::vector<dhtkit::chord::peer<ep>>* list : {&too_long, &self_loop, &backwards}) {
      const std::uint64_t req = f.next_state_request_from_a();
      const std::uint64_t before = rejected();
      detail::state_reply<ep> reply{req, true, {node_id{100}, ep{1}}, *list};
      f.deliver_to_a(reply, node_id{200});
      CHECK(rejected() == before + 1);
      // Nothing of it was adopted: a bad answer counts as no answer.
      for (const auto& p : f.a.successors()) CHECK(p.id != node_id{300});
      f.a.mark_alive(node_id{200});
      f.pump(40);
      REQUIRE(f.a.successor().id == node_id{200});
    }
  }
  SECTION("a peer that answers only with broken replies is taken for dead") {
    // A rejected reply counts as no answer and must not clear the peer's
    // misses, or a successor answering garbage would be asked forever.
    std::vector<dhtkit::chord::peer<ep>> backwards{{node_id{400}, ep{4}}, {node_id{300}, ep{3}}};
    for (std::size_t i = 0; i < f.a.config().failure_threshold && !f.a.is_dead(node_id{200}); ++i) {
      const std::uint64_t req = f.next_state_request_from_a();
      f.deliver_to_a(detail::state_reply<ep>{req, true, {node_id{100}, ep{1}}, backwards}, node_id{200});
    }
    CHECK(f.a.is_dead(node_id{200}));
  }
  SECTION("a reply from someone other than the node asked") {
    const std::uint64_t req = f.next_state_request_from_a();
    const std::uint64_t before = rejected();
    f.deliver_to_a(detail::state_reply<ep>{req, false, {}, {}}, node_id{777}, ep{9});
    CHECK(rejected() == before + 1);
  }
  SECTION("a predecessor that is the sender itself") {
    const std::uint64_t req = f.next_state_request_from_a();
    const std::uint64_t before = rejected();
    f.deliver_to_a(detail::state_reply<ep>{req, true, {node_id{200}, ep{2}}, {}}, node_id{200});
    CHECK(rejected() == before + 1);
  }
  SECTION("a forged leave notice") {
    const std::uint64_t before = rejected();
    detail::leave_notice<ep> notice{{node_id{300}, ep{3}}, false, {}, {}};
    f.deliver_to_a(notice, node_id{200});
    CHECK(rejected() == before + 1);
    CHECK(f.a.successor().id == node_id{200});
  }
  SECTION("a routing reply naming too many nodes or nodes that are not closer") {
    auto id = f.a.lookup(150, f.now);  // owned by 200, which a knows directly
    REQUIRE(id);
    // Drive a lookup that needs a hop: a key a does not own and that is
    // not in (a, successor]: none exists in a two-node ring, so check the
    // decoder bound instead: a list over the container limit does not decode.
    detail::find_reply<ep> huge{1, false, {}, {}};
    for (std::uint64_t i = 0; i < 40; ++i) huge.nodes.push_back({node_id{300 + i}, ep{3}});
    const std::uint64_t before = rejected();
    f.deliver_to_a(huge, node_id{200});
    CHECK(rejected() == before + 1);
  }
  SECTION("a routing reply to a state request is no answer, never a stall") {
    // Answer every state request a sends b (stabilize, check_predecessor,
    // the owner check of a lookup) with a find_reply carrying its id.
    auto id = f.a.lookup(150, f.now);
    REQUIRE(id);
    const std::uint64_t before = rejected();
    for (int k = 0; k < 60; ++k) {
      f.now += millis(50);
      f.a.tick(f.now);
      auto msgs = std::move(f.a.outbox().messages);
      f.a.outbox().messages.clear();
      for (auto& m : msgs) {
        auto d = f.codec.decode(m.bytes);
        REQUIRE(d);
        if (auto* req = std::get_if<detail::state_request>(&d->message))
          f.deliver_to_a(detail::find_reply<ep>{req->request, true, {{node_id{100}, ep{1}}}, {}},
                         node_id{200});
      }
    }
    CHECK(rejected() > before);
    // The lookup finished (its owner check had no answer) and stabilize still runs.
    CHECK(f.a.pending_lookups() == 0);
    REQUIRE(f.a.outbox().lookups.size() == 1);
    CHECK(f.a.outbox().lookups.front().id == *id);
    f.a.mark_alive(node_id{200});
    const std::uint64_t rounds = f.a.stats().stabilizations;
    f.pump(60);
    CHECK(f.a.stats().stabilizations > rounds);
  }
  SECTION("a state reply to a routing request is no answer, never a stall") {
    dhtkit::test::sim_router c{node_id{150}, ep{3}, {}, 3};
    REQUIRE_FALSE(c.join(ep{1}, f.now));
    REQUIRE(c.outbox().messages.size() == 1);
    auto d = f.codec.decode(c.outbox().messages.front().bytes);
    REQUIRE(d);
    auto* req = std::get_if<detail::find_request>(&d->message);
    REQUIRE(req);
    c.outbox().messages.clear();
    auto bytes = f.codec.encode(detail::state_reply<ep>{req->request, false, {}, {}}, node_id{100});
    REQUIRE(bytes);
    c.receive(ep{1}, *bytes, f.now);
    CHECK(c.stats().rejected == 1);
    CHECK(c.pending_lookups() == 0);
    REQUIRE(c.outbox().status.size() == 1);
    CHECK(c.outbox().status.front().kind == dhtkit::chord::status_kind::join_failed);
    CHECK(c.state() == dhtkit::chord::router_state::idle);
  }
  SECTION("every message truncated, with an unknown tag, or with any payload byte changed") {
    using peer_t = dhtkit::chord::peer<ep>;
    const std::vector<peer_t> list{{node_id{300}, ep{3}}, {node_id{400}, ep{4}}, {node_id{50}, ep{5}}};
    std::vector<std::vector<std::byte>> samples;
    auto add = [&](const auto& m) {
      auto bytes = f.codec.encode(m, node_id{200});
      REQUIRE(bytes);
      samples.push_back(*bytes);
    };
    add(detail::state_request{1});
    add(detail::state_reply<ep>{2, true, {node_id{50}, ep{5}}, list});
    add(detail::rectify<ep>{{node_id{200}, ep{2}}});
    add(detail::find_request{3, 250});
    add(detail::find_reply<ep>{4, false, list, list});
    add(detail::leave_notice<ep>{{node_id{200}, ep{2}}, true, {node_id{50}, ep{5}}, list});
    for (const auto& whole : samples) {
      // Every proper prefix is an error.
      for (std::size_t n = 0; n < whole.size(); ++n) {
        const std::uint64_t before = rejected();
        f.a.receive(ep{2}, std::span(whole).first(n), f.now);
        CHECK(rejected() == before + 1);
      }
      // A tag no Chord message has.
      std::vector<std::byte> unknown = whole;
      unknown[6] = std::byte{0x06};
      unknown[7] = std::byte{0x01};
      reseal(unknown);
      const std::uint64_t before = rejected();
      f.a.receive(ep{2}, unknown, f.now);
      CHECK(rejected() == before + 1);
      // Any payload byte changed (checksum resealed): rejected or handled, never a crash
      // (the router checks its invariants after every message in this Debug build).
      for (std::size_t i = 24; i < whole.size(); ++i) {
        for (std::uint8_t v : {std::uint8_t{0x00}, std::uint8_t{0xFF}, std::uint8_t{0x7F}}) {
          std::vector<std::byte> edited = whole;
          edited[i] = std::byte{v};
          reseal(edited);
          f.a.receive(ep{2}, edited, f.now);
        }
      }
    }
    // Edits that still decode are forged messages from b (a leave, a list
    // of nodes that do not exist): the pair recovers once they time out.
    f.a.mark_alive(node_id{200});
    f.pump(60);
  }
  // After all of it, the pair still works.
  f.pump(40);
  CHECK(f.a.successor().id == node_id{200});
  CHECK(f.b.successor().id == node_id{100});
}

TEST_CASE("chord: a routing reply that says done for a key it does not cover is not believed", "[chord]") {
  // a(100) knows b(200) and c(300); the key 250 needs a hop through b.
  using peer_t = dhtkit::chord::peer<ep>;
  const peer_t a_peer{node_id{100}, ep{1}}, b{node_id{200}, ep{2}}, c{node_id{300}, ep{3}};
  dhtkit::test::sim_router a{a_peer.id, a_peer.address, {}, 1};
  std::array<std::optional<peer_t>, dhtkit::chord::identifier_bits> fingers{};
  fingers[0] = b;
  detail::router_access::install(a, std::optional<peer_t>(c), std::vector<peer_t>{b, c}, fingers,
                                 time_point{});
  codec_t codec;
  auto id = a.lookup(250, time_point{});
  REQUIRE(id);
  REQUIRE(a.outbox().messages.size() == 1);
  CHECK(a.outbox().messages.front().to == ep{2});
  auto d = codec.decode(a.outbox().messages.front().bytes);
  REQUIRE(d);
  auto* req = std::get_if<detail::find_request>(&d->message);
  REQUIRE(req);
  a.outbox().messages.clear();
  // b claims the key is in (200, 220]: a valid list from b, but not one that covers 250.
  auto bytes = codec.encode(detail::find_reply<ep>{req->request, true, {{node_id{220}, ep{9}}}, {}}, b.id);
  REQUIRE(bytes);
  a.receive(ep{2}, *bytes, time_point{});
  CHECK(a.stats().rejected == 1);
  // a falls back to its own successor list, which spans the key: it checks c.
  REQUIRE(a.outbox().messages.size() == 1);
  CHECK(a.outbox().messages.front().to == ep{3});
}

TEST_CASE("chord: a router over real network endpoints (IPv4 and IPv6)", "[chord]") {
  using router = dhtkit::chord::basic_router<dhtkit::endpoint>;
  const dhtkit::endpoint ea = dhtkit::endpoint::loopback_v4(7001);
  const dhtkit::endpoint eb = dhtkit::endpoint::loopback_v6(7002);
  const dhtkit::endpoint ec = dhtkit::endpoint::v4(10, 0, 0, 3, 7003);
  time_point now{};
  router a(node_id{100}, ea, {}, 1);
  router b(node_id{200}, eb, {}, 2);
  router c(node_id{300}, ec, {}, 3);
  a.create(now);
  REQUIRE_FALSE(b.join(ea, now));
  auto pump = [&] {
    for (int round = 0; round < 200; ++round) {
      now += millis(50);
      for (router* r : {&a, &b, &c}) r->tick(now);
      for (router* r : {&a, &b, &c}) {
        auto messages = std::move(r->outbox().messages);
        r->outbox().messages.clear();
        for (auto& m : messages) (m.to == ea ? a : m.to == eb ? b : c).receive(r->address(), m.bytes, now);
      }
    }
  };
  pump();
  REQUIRE_FALSE(c.join(eb, now));  // through b, now that b is a member
  pump();
  REQUIRE(c.outbox().status.size() == 1);
  CHECK(c.outbox().status.front().kind == dhtkit::chord::status_kind::joined);
  CHECK(a.successor().address == eb);
  CHECK(b.successor().address == ec);
  CHECK(c.successor().address == ea);
  REQUIRE(a.predecessor());
  CHECK(a.predecessor()->address == ec);
  auto id = a.lookup(250, now);
  REQUIRE(id);
  pump();
  REQUIRE(a.outbox().lookups.size() == 1);
  CHECK_FALSE(a.outbox().lookups.front().error);
  CHECK(a.outbox().lookups.front().owner == dhtkit::chord::peer<dhtkit::endpoint>{node_id{300}, ec});

  // The endpoints survive the wire exactly, and a broken one is an error.
  using ep_codec =
      dhtkit::wire::codec<detail::state_request, detail::state_reply<dhtkit::endpoint>,
                          detail::rectify<dhtkit::endpoint>, detail::find_request,
                          detail::find_reply<dhtkit::endpoint>, detail::leave_notice<dhtkit::endpoint>>;
  ep_codec codec;
  detail::state_reply<dhtkit::endpoint> reply{
      7, true, {node_id{300}, ec}, {{node_id{400}, eb}, {node_id{50}, ea}}};
  auto bytes = codec.encode(reply, node_id{200});
  REQUIRE(bytes);
  auto back = codec.decode(*bytes);
  REQUIRE(back);
  auto* got = std::get_if<detail::state_reply<dhtkit::endpoint>>(&back->message);
  REQUIRE(got);
  CHECK(got->predecessor.address == ec);
  REQUIRE(got->successors.size() == 2);
  CHECK(got->successors[0].address == eb);
  CHECK(got->successors[1].address == ea);
  // A rectify whose endpoint has an unknown address family byte.
  auto rect = codec.encode(detail::rectify<dhtkit::endpoint>{{node_id{50}, ea}}, node_id{50});
  REQUIRE(rect);
  std::vector<std::byte> forged = *rect;
  // Payload: the portable-binary flag byte, the 8-byte id, then the family.
  forged[24 + 1 + 8] = std::byte{5};
  reseal(forged);  // so only the payload is wrong
  CHECK(codec.decode(forged).error() == dhtkit::errc::malformed_payload);
  const std::uint64_t before = a.stats().rejected;
  a.receive(ea, forged, now);
  CHECK(a.stats().rejected == before + 1);
}

TEST_CASE("chord: rings of 128..1024 nodes converge and route correctly", "[chord][sim][.long]") {
  for (std::size_t n : {128, 256, 512, 1024}) {
    for (std::uint64_t seed : dhtkit::test::seeds(2)) {
      DHTKIT_SEED_SCOPE(seed);
      INFO("ring of " << n);
      chord_cluster c(seed);
      rng_t rng(seed * 13 + n);
      c.add(node_id{rng.next()});
      c.create(0);
      // Joins in bursts of 32 per round, each through a random member.
      while (c.size() < n) {
        for (int k = 0; k < 32 && c.size() < n; ++k) {
          const auto r = c.ring();
          REQUIRE_FALSE(c.join(c.add(node_id{rng.next()}), r[rng.below(r.size())].second));
        }
        REQUIRE(round_checked(c).empty());
      }
      converge(c, 200);
      c.run_rounds(40);
      const auto s = run_lookups(c, rng, 2000);
      CHECK(s.correct == s.issued);
    }
  }
}

TEST_CASE("chord: receive says why a message was refused, next_wakeup and take_outbox drive it", "[chord]") {
  dhtkit::test::sim_router a(node_id{100}, ep{1}, {}, 1);
  codec_t codec;
  auto bytes = codec.encode(detail::find_request{1, 5}, node_id{200});
  REQUIRE(bytes);
  // Idle: refused, not counted, nothing to wake up for.
  CHECK(a.receive(ep{2}, *bytes, time_point{}) == dhtkit::errc::not_joined);
  CHECK(a.stats().messages_received == 0);
  CHECK_FALSE(a.next_wakeup());
  a.create(time_point{});
  REQUIRE(a.next_wakeup());
  CHECK_FALSE(a.receive(ep{2}, *bytes, time_point{}));  // taken: a find_reply is queued
  // The envelope overload, as a dispatcher calls it.
  auto env = dhtkit::wire::decode_envelope(*bytes);
  REQUIRE(env);
  CHECK_FALSE(a.receive(ep{2}, *env, time_point{}));
  auto out = a.take_outbox();
  CHECK(out.messages.size() == 2);
  CHECK(a.outbox().empty());
  // Undecodable, from our own id, invalid content.
  std::vector<std::byte> junk(8, std::byte{0});
  CHECK(a.receive(ep{2}, junk, time_point{}) == dhtkit::errc::bad_magic);
  auto own = codec.encode(detail::find_request{1, 5}, node_id{100});
  CHECK(a.receive(ep{2}, *own, time_point{}) == dhtkit::errc::duplicate_node);
  auto forged = codec.encode(detail::rectify<ep>{{node_id{300}, ep{3}}}, node_id{200});
  CHECK(a.receive(ep{2}, *forged, time_point{}) == dhtkit::errc::invalid_argument);
  CHECK(a.stats().messages_received == 5);
  CHECK(a.stats().rejected == 3);
  a.leave(time_point{});
  CHECK(a.receive(ep{2}, *bytes, time_point{}) == dhtkit::errc::not_joined);
}
