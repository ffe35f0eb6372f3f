// one_hop placement: the partition table against an independently built ring,
// fingerprints, the moves a join or a leave reports, history, bounds.
#include "dhtkit/node/one_hop.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "dhtkit/core/random.hpp"
#include "dhtkit/ring/ring.hpp"
#include "support/catch.hpp"
#include "support/seeds.hpp"

namespace {

using dhtkit::node_id;
using dhtkit::one_hop;
using dhtkit::placement_config;
using dhtkit::placement_member;
using dhtkit::range_move;
using dhtkit::time_point;

using ids = std::vector<node_id>;

std::vector<placement_member> random_members(dhtkit::random_engine& rng, std::size_t count,
                                             std::uint32_t max_weight = 1) {
  std::vector<placement_member> out;
  while (out.size() < count) {
    const node_id id{rng.next()};
    if (id == node_id{0}) continue;  // tests use 0 as a non-member
    if (std::any_of(out.begin(), out.end(), [&](const placement_member& m) { return m.id == id; })) continue;
    out.push_back(placement_member{id, static_cast<std::uint32_t>(1 + rng.below(max_weight))});
  }
  return out;
}

template <class T>
std::vector<T> shuffled(std::vector<T> v, dhtkit::random_engine& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
  return v;
}

ids span_ids(std::span<const node_id> s) { return ids(s.begin(), s.end()); }

bool contains(const ids& v, node_id id) { return std::find(v.begin(), v.end(), id) != v.end(); }

// A position inside partition p other than its first one.
std::uint64_t inside(const one_hop& p, std::size_t i, dhtkit::random_engine& rng) {
  const auto u = p.unit_at(i);
  return u.begin + 1 + rng.below((u.end - u.begin) - 1);  // end - begin wraps to the width for the last one
}

one_hop with(const std::vector<placement_member>& members, placement_config cfg = {}) {
  one_hop p{node_id{1}, cfg};
  std::vector<range_move> moves;
  p.set_members(members, moves, time_point{});
  return p;
}

}  // namespace

TEST_CASE("one_hop units are the 2^bits equal partitions of the ring", "[node][one_hop]") {
  for (std::uint32_t bits : {1u, 4u, 10u, 16u}) {
    placement_config cfg;
    cfg.partition_bits = bits;
    const one_hop p{node_id{7}, cfg};
    REQUIRE(p.unit_count() == (std::size_t{1} << bits));
    CHECK(p.unit_at(0).begin == 0);
    CHECK(p.unit_at(p.unit_count() - 1).end == 0);  // the last one wraps to the ring's end
    for (std::size_t i = 0; i + 1 < p.unit_count(); ++i) REQUIRE(p.unit_at(i).end == p.unit_at(i + 1).begin);
    CHECK(p.unit_at(p.unit_count()) == p.unit_at(0));  // modulo unit_count()
    dhtkit::random_engine rng(bits);
    for (int k = 0; k < 1000; ++k) {
      const std::uint64_t pos = rng.next();
      const auto u = p.unit_of(pos);
      REQUIRE(u.contains(pos));
      REQUIRE(u == p.unit_at(p.unit_index(pos)));
      REQUIRE(p.unit_index(pos) == (pos >> (64 - bits)));
    }
    CHECK(p.unit_of(0) == p.unit_at(0));
    CHECK(p.unit_of(~std::uint64_t{0}) == p.unit_at(p.unit_count() - 1));
  }
}

TEST_CASE("one_hop's table is the ring walk from every partition's first position", "[node][one_hop]") {
  for (std::uint64_t seed : dhtkit::test::seeds(20)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    placement_config cfg;
    cfg.partition_bits = static_cast<std::uint32_t>(4 + rng.below(7));  // 2^4 to 2^10
    cfg.tokens_per_weight = static_cast<std::uint32_t>(1 + rng.below(100));
    const auto members = random_members(rng, 1 + rng.below(12), 3);
    INFO("members " << members.size() << " bits " << cfg.partition_bits << " tokens "
                    << cfg.tokens_per_weight);
    const one_hop p = with(members, cfg);

    // Built here on its own, from the members in another order.
    dhtkit::ring_config rc;
    rc.partitions = 1u << cfg.partition_bits;
    rc.vnodes_per_unit = cfg.tokens_per_weight;
    dhtkit::ring<node_id> ring{rc};
    for (const auto& m : shuffled(members, rng)) REQUIRE(ring.add(m.id, m.weight));

    const std::size_t width = std::min<std::size_t>(members.size(), cfg.list_length);
    for (std::size_t i = 0; i < p.unit_count(); ++i) {
      const auto expected =
          *ring.preference_list_at(ring.partition_begin(static_cast<std::uint32_t>(i)), width);
      REQUIRE(span_ids(p.list_at(i)) == expected);
      // Every position of the partition has that one list, whatever the ring walk from it says.
      const std::uint64_t pos = inside(p, i, rng);
      REQUIRE(p.preference_list(pos, cfg.list_length) == expected);
      const std::size_t n = rng.below(10);
      REQUIRE(p.preference_list(pos, n) == ids(expected.begin(), expected.begin() + std::min(n, width)));
      for (const auto& m : members) {
        const auto first = p.preference_list(pos, cfg.n);
        REQUIRE(p.holds(m.id, pos) == contains(first, m.id));
      }
      REQUIRE_FALSE(p.holds(node_id{0}, pos));  // not a member
    }
    CHECK(p.position("user:42") == dhtkit::xxh64("user:42"));
    CHECK(p.position("user:42") == ring.hash("user:42"));
  }
}

TEST_CASE("one_hop after any sequence of changes equals a ring built from the final set", "[node][one_hop]") {
  for (std::uint64_t seed : dhtkit::test::seeds(10)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    placement_config cfg;
    cfg.partition_bits = 8;
    cfg.tokens_per_weight = 16;
    one_hop p{node_id{1}, cfg};
    std::vector<placement_member> members;
    for (int step = 0; step < 40; ++step) {
      INFO("step " << step << " members " << members.size());
      auto next = members;
      const auto op = rng.below(4);
      if (op == 0 || next.size() < 2) {
        next.push_back(random_members(rng, 1, 3)[0]);  // a join (a repeated id has odds 2^-64)
      } else if (op == 1) {
        next.erase(next.begin() + static_cast<std::ptrdiff_t>(rng.below(next.size())));
      } else if (op == 2) {
        auto& m = next[rng.below(next.size())];
        m.weight = m.weight == 1 ? 2 : m.weight - 1;
      }  // op 3: the same set
      const one_hop old = p;
      std::vector<range_move> moves;
      p.set_members(shuffled(next, rng), moves, time_point{} + dhtkit::seconds(step));
      const bool changed =
          next.size() != members.size() || !std::is_permutation(next.begin(), next.end(), members.begin());
      REQUIRE(p.version() == old.version() + (changed ? 1 : 0));
      members = next;

      dhtkit::ring_config rc;
      rc.partitions = 1u << cfg.partition_bits;
      rc.vnodes_per_unit = cfg.tokens_per_weight;
      dhtkit::ring<node_id> ring{rc};
      for (const auto& m : shuffled(members, rng)) REQUIRE(ring.add(m.id, m.weight));
      const std::size_t width = std::min<std::size_t>(members.size(), cfg.list_length);
      auto move = moves.begin();
      for (std::size_t i = 0; i < p.unit_count(); ++i) {
        ids expected;
        if (width > 0)
          expected = *ring.preference_list_at(ring.partition_begin(static_cast<std::uint32_t>(i)), width);
        REQUIRE(span_ids(p.list_at(i)) == expected);
        // A move, in partition order, exactly where the set of the first three changed.
        const ids before = old.preference_list(p.unit_at(i).begin, 3);
        const ids after = p.preference_list(p.unit_at(i).begin, 3);
        const bool same = std::is_permutation(before.begin(), before.end(), after.begin(), after.end());
        if (same) continue;
        REQUIRE(move != moves.end());
        REQUIRE(move->range == p.unit_at(i));
        REQUIRE(move->before == before);
        REQUIRE(move->after == after);
        ++move;
      }
      REQUIRE(move == moves.end());
    }
  }
}

TEST_CASE("one_hop's fingerprint and table ignore insertion order and differ for other sets",
          "[node][one_hop]") {
  dhtkit::random_engine rng(5);
  const auto members = random_members(rng, 6, 2);
  const one_hop a = with(members);
  one_hop b{node_id{99}, placement_config{}};  // another self: the same placement
  std::vector<range_move> moves;
  b.set_members(shuffled(members, rng), moves, time_point{} + dhtkit::seconds(3));
  CHECK(a.fingerprint() == b.fingerprint());
  CHECK(a.fingerprint() != 0);
  CHECK(a.members() == b.members());
  CHECK(std::is_sorted(a.members().begin(), a.members().end(),
                       [](const placement_member& x, const placement_member& y) { return x.id < y.id; }));
  for (std::size_t i = 0; i < a.unit_count(); ++i) REQUIRE(span_ids(a.list_at(i)) == span_ids(b.list_at(i)));

  std::set<std::uint64_t> seen{a.fingerprint()};
  auto fresh = [&](const one_hop& p) { return seen.insert(p.fingerprint()).second; };
  auto more = members;
  more.push_back(placement_member{node_id{12345}, 1});
  CHECK(fresh(with(more)));
  auto fewer = members;
  fewer.pop_back();
  CHECK(fresh(with(fewer)));
  auto heavier = members;
  heavier[0].weight += 1;
  CHECK(fresh(with(heavier)));
  placement_config bits;
  bits.partition_bits = 11;
  CHECK(fresh(with(members, bits)));
  placement_config tokens;
  tokens.tokens_per_weight = 65;
  CHECK(fresh(with(members, tokens)));
  placement_config n2;
  n2.n = 2;
  CHECK(fresh(with(members, n2)));
  CHECK(fresh(with({})));
  // list_length changes no holder (only how far the fallbacks reach): same fingerprint.
  placement_config longer;
  longer.list_length = 9;
  CHECK(with(members, longer).fingerprint() == a.fingerprint());
}

TEST_CASE("one_hop: a fourth node joining three moves the partitions it enters and displaces one holder each",
          "[node][one_hop]") {
  double lowest = 1, highest = 0, sum = 0;
  const auto seeds = dhtkit::test::seeds(20);
  for (std::uint64_t seed : seeds) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    auto members = random_members(rng, 4);
    const node_id joiner = members.back().id;
    members.pop_back();
    one_hop p = with(members);
    const one_hop old = p;
    const auto old_version = p.version();

    members.push_back(placement_member{joiner, 1});
    std::vector<range_move> moves(1);  // set_members appends: what is there stays
    REQUIRE(p.set_members(shuffled(members, rng), moves, time_point{} + dhtkit::seconds(1)) ==
            old_version + 1);
    CHECK(p.version() == old_version + 1);
    REQUIRE(moves.front().range == dhtkit::key_range{});
    moves.erase(moves.begin());

    // With 4 members and n = 3 the joiner is among the first three of about 3/4 of the partitions, and
    // those are exactly the partitions that move: a join only inserts the joiner into every walk.
    std::size_t joined = 0;
    for (std::size_t i = 0; i < p.unit_count(); ++i)
      joined += contains(p.preference_list(p.unit_at(i).begin, 3), joiner) ? 1 : 0;
    REQUIRE(moves.size() == joined);
    const double share = static_cast<double>(moves.size()) / static_cast<double>(p.unit_count());
    lowest = std::min(lowest, share);
    highest = std::max(highest, share);
    sum += share;
    // 2000 seeds gave 0.59 to 0.89.
    CHECK(share > 0.5);
    CHECK(share < 0.95);

    std::set<std::uint64_t> begins;
    for (const range_move& m : moves) {
      REQUIRE(begins.insert(m.range.begin).second);  // one move per partition
      const std::size_t i = p.unit_index(m.range.begin);
      REQUIRE(m.range == p.unit_at(i));
      REQUIRE(m.before == ids(old.list_at(i).begin(), old.list_at(i).begin() + 3));
      REQUIRE(m.after == ids(p.list_at(i).begin(), p.list_at(i).begin() + 3));
      // Every after names the joiner; it displaced the old third holder, the others kept their order.
      REQUIRE(contains(m.after, joiner));
      REQUIRE_FALSE(contains(m.before, joiner));
      ids kept = m.after;
      kept.erase(std::find(kept.begin(), kept.end(), joiner));
      REQUIRE(kept == ids(m.before.begin(), m.before.begin() + 2));
      // The displaced holder is who reads must still consult.
      REQUIRE(p.previous_holders(m.range.begin) == ids{m.before[2]});
      REQUIRE(p.previous_holders(inside(p, i, rng)) == ids{m.before[2]});
    }
    for (std::size_t i = 0; i < p.unit_count(); ++i) {
      if (begins.count(p.unit_at(i).begin)) continue;
      REQUIRE(span_ids(p.list_at(i)).size() == 4);
      REQUIRE(p.list_at(i)[3] == joiner);  // not among the first three: last in the walk
      REQUIRE(p.previous_holders(p.unit_at(i).begin).empty());
    }
  }
  // Over the seeds the share averages out to n/4 (one seed's ring is lumpy at 64 tokens per node).
  const double mean = sum / static_cast<double>(seeds.size());
  INFO("share of partitions moved: mean " << mean << ", " << lowest << " to " << highest);
  if (seeds.size() >= 10) CHECK(std::abs(mean - 0.75) < 0.05);
}

TEST_CASE("one_hop: the same members again change nothing", "[node][one_hop]") {
  dhtkit::random_engine rng(11);
  const auto members = random_members(rng, 5, 3);
  one_hop p = with(members);
  const auto version = p.version();
  const auto fingerprint = p.fingerprint();
  std::vector<range_move> moves;
  for (int k = 0; k < 3; ++k)
    REQUIRE(p.set_members(shuffled(members, rng), moves, time_point{} + dhtkit::seconds(k)) == version);
  CHECK(moves.empty());
  CHECK(p.version() == version);
  CHECK(p.fingerprint() == fingerprint);
  CHECK(p.history_size() == 0);  // the first table replaced an empty one, which names nobody
}

TEST_CASE("one_hop: a node leaving moves exactly its partitions to the next node of each walk",
          "[node][one_hop]") {
  for (std::uint64_t seed : dhtkit::test::seeds(20)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    auto members = random_members(rng, 3 + rng.below(6));
    one_hop p = with(members);
    const one_hop old = p;
    const std::size_t gone_at = rng.below(members.size());
    const node_id gone = members[gone_at].id;
    members.erase(members.begin() + static_cast<std::ptrdiff_t>(gone_at));

    std::vector<range_move> moves;
    p.set_members(members, moves, time_point{} + dhtkit::seconds(1));
    std::size_t held = 0;
    for (std::size_t i = 0; i < p.unit_count(); ++i) held += old.holds(gone, old.unit_at(i).begin) ? 1 : 0;
    REQUIRE(moves.size() == held);
    REQUIRE(held > 0);
    for (const range_move& m : moves) {
      REQUIRE_FALSE(contains(m.after, gone));
      REQUIRE(contains(m.before, gone));
      const auto old_list = span_ids(old.list_at(p.unit_index(m.range.begin)));
      // The old walk without the leaver, cut at n: the next node of the walk steps in (if there is one).
      ids expected = old_list;
      expected.erase(std::find(expected.begin(), expected.end(), gone));
      expected.resize(std::min<std::size_t>(expected.size(), 3));
      REQUIRE(m.after == expected);
      REQUIRE(p.previous_holders(m.range.begin) == ids{gone});
    }
    for (std::size_t i = 0; i < p.unit_count(); ++i) REQUIRE_FALSE(contains(span_ids(p.list_at(i)), gone));
  }
}

TEST_CASE("one_hop keeps history_versions earlier tables and names previous holders newest first",
          "[node][one_hop]") {
  placement_config cfg;
  cfg.partition_bits = 6;
  cfg.history_versions = 2;
  one_hop p{node_id{1}, cfg};
  dhtkit::random_engine rng(3);
  auto members = random_members(rng, 3);
  std::vector<range_move> moves;
  const time_point t0{};
  p.set_members(members, moves, t0);
  const one_hop v1 = p;

  // Two joins: a partition both joiners entered names the holder displaced last first.
  const auto extra = random_members(rng, 2);
  members.push_back(extra[0]);
  p.set_members(members, moves, t0 + dhtkit::seconds(1));
  const one_hop v2 = p;
  members.push_back(extra[1]);
  p.set_members(members, moves, t0 + dhtkit::seconds(2));
  CHECK(p.history_size() == 2);
  std::size_t both = 0;
  for (std::size_t i = 0; i < p.unit_count(); ++i) {
    const std::uint64_t pos = p.unit_at(i).begin;
    ids expected;
    for (const one_hop* h : {&v2, &v1})
      for (node_id id : h->preference_list(pos, 3))
        if (!p.holds(id, pos) && !contains(expected, id)) expected.push_back(id);
    REQUIRE(p.previous_holders(pos) == expected);
    both += expected.size() == 2 ? 1 : 0;
  }
  CHECK(both > 0);  // some partition lost a holder to each join

  // A third change pushes the oldest table (v1) out: only v3 and v2 are asked now.
  const one_hop v3 = p;
  members.erase(members.begin());
  p.set_members(members, moves, t0 + dhtkit::seconds(3));
  CHECK(p.history_size() == 2);
  for (std::size_t i = 0; i < p.unit_count(); ++i) {
    const std::uint64_t pos = p.unit_at(i).begin;
    ids expected;
    for (const one_hop* h : {&v3, &v2})
      for (node_id id : h->preference_list(pos, 3))
        if (!p.holds(id, pos) && !contains(expected, id)) expected.push_back(id);
    REQUIRE(p.previous_holders(pos) == expected);
  }

  // Expiry goes by the time a table was replaced: v2 at 2 s, the next one at 3 s.
  p.expire_history(t0 + dhtkit::seconds(2));
  CHECK(p.history_size() == 2);
  p.expire_history(t0 + dhtkit::seconds(2) + dhtkit::millis(1));
  CHECK(p.history_size() == 1);
  p.expire_history(t0 + dhtkit::seconds(4));
  CHECK(p.history_size() == 0);
  for (std::size_t i = 0; i < p.unit_count(); ++i) REQUIRE(p.previous_holders(p.unit_at(i).begin).empty());
}

TEST_CASE("one_hop with no members names nobody and an empty set is a change like any other",
          "[node][one_hop]") {
  one_hop p{node_id{1}, placement_config{}};
  CHECK(p.version() == 0);
  CHECK(p.members().empty());
  CHECK(p.preference_list(42, 3).empty());
  CHECK(p.list_at(5).empty());
  CHECK_FALSE(p.holds(node_id{1}, 42));
  CHECK(p.previous_holders(42).empty());
  std::vector<range_move> moves;
  CHECK(p.set_members({}, moves, time_point{}) == 0);
  CHECK(moves.empty());

  // One member holds everything, whatever n asks for.
  const std::vector<placement_member> one{{node_id{1}, 1}};
  CHECK(p.set_members(one, moves, time_point{}) == 1);
  CHECK(moves.size() == p.unit_count());
  for (const range_move& m : moves) {
    REQUIRE(m.before.empty());
    REQUIRE(m.after == ids{node_id{1}});
  }
  CHECK(p.preference_list(42, 7) == ids{node_id{1}});
  CHECK(p.holds(node_id{1}, 42));

  dhtkit::random_engine rng(8);
  const auto three = random_members(rng, 3);
  p.set_members(three, moves, time_point{});
  moves.clear();
  CHECK(p.set_members({}, moves, time_point{} + dhtkit::seconds(1)) == 3);
  CHECK(moves.size() == p.unit_count());
  for (const range_move& m : moves) {
    REQUIRE(m.before.size() == 3);
    REQUIRE(m.after.empty());
    // Newest table first: the three, then the single member before them.
    ids expected = m.before;
    expected.push_back(node_id{1});
    REQUIRE(p.previous_holders(m.range.begin) == expected);
  }
  CHECK(p.preference_list(42, 3).empty());
  CHECK(p.fingerprint() == with({}).fingerprint());
}

TEST_CASE("one_hop refuses a bad configuration and a bad member list without changing", "[node][one_hop]") {
  auto refused = [](placement_config cfg) {
    try {
      one_hop p{node_id{1}, cfg};
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  placement_config c;
  c.n = 0;
  CHECK(refused(c).find("n must be") != std::string::npos);
  c = {};
  c.list_length = 2;
  CHECK(refused(c).find("list_length") != std::string::npos);
  c = {};
  c.partition_bits = 0;
  CHECK(refused(c).find("partition_bits") != std::string::npos);
  c.partition_bits = 17;
  CHECK(refused(c).find("partition_bits") != std::string::npos);
  c = {};
  c.tokens_per_weight = 0;
  CHECK(refused(c).find("tokens_per_weight") != std::string::npos);
  c = {};
  c.history_versions = 0;
  CHECK(refused(c).find("history_versions") != std::string::npos);
  CHECK(refused(placement_config{}) == "accepted");

  dhtkit::random_engine rng(2);
  const auto members = random_members(rng, 3);
  one_hop p = with(members);
  const auto version = p.version();
  const auto fingerprint = p.fingerprint();
  std::vector<range_move> moves;
  auto twice = members;
  twice.push_back(members[1]);
  CHECK_THROWS_AS(p.set_members(twice, moves, time_point{}), std::invalid_argument);
  auto weightless = members;
  weightless[2].weight = 0;
  CHECK_THROWS_AS(p.set_members(weightless, moves, time_point{}), std::invalid_argument);
  // 2^17 weight x 64 tokens is past the ring's 2^22 virtual nodes.
  auto huge = members;
  huge[0].weight = 1u << 17;
  CHECK_THROWS_AS(p.set_members(huge, moves, time_point{}), std::length_error);
  CHECK(moves.empty());
  CHECK(p.version() == version);
  CHECK(p.fingerprint() == fingerprint);
  CHECK(p.members() == with(members).members());
  CHECK(p.history_size() == 0);
}
