// Chord placement: owners, successor lists, units, moves on joins and leaves,
// previous holders, and how uneven one point per node leaves the load.
#include "dhtkit/node/chord_placement.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "dhtkit/core/random.hpp"
#include "dhtkit/ring/ring.hpp"
#include "support/catch.hpp"
#include "support/seeds.hpp"

namespace {

using dhtkit::chord_placement;
using dhtkit::key_range;
using dhtkit::node_id;
using dhtkit::placement_config;
using dhtkit::placement_member;
using dhtkit::range_move;
using dhtkit::time_point;

constexpr std::uint64_t top = std::numeric_limits<std::uint64_t>::max();

std::vector<placement_member> members_of(const std::vector<std::uint64_t>& ids) {
  std::vector<placement_member> out;
  for (std::uint64_t id : ids) out.push_back(placement_member{node_id{id}, 1});
  return out;
}

std::vector<node_id> as_ids(const std::vector<std::uint64_t>& values) {
  std::vector<node_id> out;
  for (std::uint64_t v : values) out.push_back(node_id{v});
  return out;
}

placement_config config_with(std::uint32_t n, std::uint32_t bits) {
  placement_config c;
  c.n = n;
  c.list_length = std::max<std::uint32_t>(n, 7);
  c.partition_bits = bits;
  return c;
}

// The tests' own view of the ring, by linear scans over a sorted id list.
std::vector<node_id> oracle_list(const std::vector<std::uint64_t>& sorted, std::uint64_t pos, std::size_t n) {
  std::vector<node_id> out;
  if (sorted.empty()) return out;
  std::size_t first = 0;
  while (first < sorted.size() && sorted[first] < pos) ++first;
  if (first == sorted.size()) first = 0;
  for (std::size_t i = 0; i < std::min(n, sorted.size()); ++i)
    out.push_back(node_id{sorted[(first + i) % sorted.size()]});
  return out;
}

// Where the ring is cut: partition boundaries and id + 1 (mod 2^64).
std::set<std::uint64_t> oracle_cuts(const std::vector<std::uint64_t>& ids, std::uint32_t bits) {
  std::set<std::uint64_t> out;
  for (std::uint64_t p = 0; p < (std::uint64_t{1} << bits); ++p) out.insert(p << (64 - bits));
  for (std::uint64_t id : ids) out.insert(id + 1);
  return out;
}

// The pieces [cut_i, cut_i+1) of a cut set, the last ending at 0 (2^64).
std::vector<key_range> segments(const std::set<std::uint64_t>& cuts) {
  std::vector<std::uint64_t> c(cuts.begin(), cuts.end());
  std::vector<key_range> out;
  for (std::size_t i = 0; i < c.size(); ++i) out.push_back(key_range{c[i], i + 1 < c.size() ? c[i + 1] : 0});
  return out;
}

std::uint64_t last_of(const key_range& r) { return r.end - 1; }  // end 0 wraps to top

// Distinct random ids, sorted; some sit on the awkward places (0, top, a
// partition's first and last position) and some are packed close together.
std::vector<std::uint64_t> random_ids(dhtkit::random_engine& rng, std::size_t count, std::uint32_t bits) {
  const std::uint64_t slice = std::uint64_t{1} << (64 - bits);
  std::set<std::uint64_t> ids;
  while (ids.size() < count) {
    switch (rng.below(6)) {
      case 0:
        ids.insert(rng.below(4) == 0 ? 0 : top);
        break;
      case 1:
        ids.insert(rng.below(std::uint64_t{1} << bits) * slice);
        break;
      case 2:
        ids.insert(rng.below(std::uint64_t{1} << bits) * slice - 1);
        break;
      case 3:
        if (!ids.empty()) ids.insert(*ids.begin() + 1 + rng.below(3));
        break;
      default:
        ids.insert(rng.next());
        break;
    }
  }
  return {ids.begin(), ids.end()};
}

std::vector<std::uint64_t> sorted_insert(std::vector<std::uint64_t> ids, std::uint64_t id) {
  ids.insert(std::lower_bound(ids.begin(), ids.end(), id), id);
  return ids;
}

bool contains(const std::vector<node_id>& list, std::uint64_t id) {
  return std::find(list.begin(), list.end(), node_id{id}) != list.end();
}

// The expected previous holders right after one change: who held pos before
// and does not now, in the old list's order.
std::vector<node_id> dropped(const std::vector<node_id>& before, const std::vector<node_id>& after) {
  std::vector<node_id> out;
  for (const node_id& id : before)
    if (std::find(after.begin(), after.end(), id) == after.end()) out.push_back(id);
  return out;
}

// Checks the moves of one change against the pieces of old and new cuts that
// the geometry says must move (region: the pieces inside it; none: every piece).
void check_moves(const std::vector<range_move>& moves, const std::vector<std::uint64_t>& old_ids,
                 const std::vector<std::uint64_t>& new_ids, std::uint32_t n, std::uint32_t bits,
                 const key_range* region) {
  auto cuts = oracle_cuts(old_ids, bits);
  for (std::uint64_t c : oracle_cuts(new_ids, bits)) cuts.insert(c);
  std::vector<key_range> expected;
  for (const key_range& piece : segments(cuts)) {
    const bool moves_here = region == nullptr || region->contains(piece.begin);
    if (moves_here) {
      expected.push_back(piece);
      // The region starts and ends on cuts, so a piece is wholly in or out.
      if (region != nullptr) CHECK(region->contains(last_of(piece)));
    } else {
      CHECK(oracle_list(old_ids, piece.begin, n) == oracle_list(new_ids, piece.begin, n));
      if (region != nullptr) CHECK_FALSE(region->contains(last_of(piece)));
    }
  }
  std::vector<key_range> got;
  for (const range_move& m : moves) got.push_back(m.range);
  CHECK(got == expected);
  for (const range_move& m : moves) {
    CHECK(m.before == oracle_list(old_ids, m.range.begin, n));
    CHECK(m.after == oracle_list(new_ids, m.range.begin, n));
    CHECK(m.before != m.after);
  }
}

}  // namespace

TEST_CASE("chord placement owner is the first id at or after the position with wrap") {
  chord_placement p{node_id{100}, config_with(3, 4)};
  std::vector<range_move> moves;
  p.set_members(members_of({300, 100, 200}), moves, time_point{});
  CHECK(p.owner_of(0) == node_id{100});
  CHECK(p.owner_of(100) == node_id{100});
  CHECK(p.owner_of(101) == node_id{200});
  CHECK(p.owner_of(200) == node_id{200});
  CHECK(p.owner_of(300) == node_id{300});
  CHECK(p.owner_of(301) == node_id{100});
  CHECK(p.owner_of(top) == node_id{100});

  CHECK(p.preference_list(250, 3) == as_ids({300, 100, 200}));
  CHECK(p.preference_list(301, 2) == as_ids({100, 200}));
  CHECK(p.preference_list(50, 10) == as_ids({100, 200, 300}));  // no repeats past the member count
  CHECK(p.preference_list(50, 0).empty());
  CHECK(p.holds(node_id{200}, 301));
  CHECK(p.holds(node_id{300}, 301));
  CHECK(p.holds(node_id{100}, 301));
  CHECK_FALSE(p.holds(node_id{999}, 301));
  CHECK(p.member_count() == 3);

  // An id at the top of the ring owns it; position 0 wraps to the lowest id.
  p.set_members(members_of({5, top}), moves, time_point{});
  CHECK(p.owner_of(top) == node_id{top});
  CHECK(p.owner_of(top - 1) == node_id{top});
  CHECK(p.owner_of(0) == node_id{5});
  CHECK(p.owner_of(6) == node_id{top});
}

TEST_CASE("chord placement lists are the owner and its successors") {
  for (std::uint64_t seed : dhtkit::test::seeds(50)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    const std::uint32_t bits = 1 + static_cast<std::uint32_t>(rng.below(10));
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng.below(5));
    const auto ids = random_ids(rng, 1 + rng.below(40), bits);
    chord_placement p{node_id{ids.front()}, config_with(n, bits)};
    std::vector<range_move> moves;
    p.set_members(members_of(ids), moves, time_point{});
    REQUIRE(p.member_count() == ids.size());
    for (int i = 0; i < 300; ++i) {
      const std::uint64_t pos = i % 3 == 0 ? ids[rng.below(ids.size())] + rng.below(3) - 1 : rng.next();
      const std::size_t want = rng.below(10);
      CHECK(p.preference_list(pos, want) == oracle_list(ids, pos, std::min<std::size_t>(want, 7)));
      CHECK(p.owner_of(pos) == oracle_list(ids, pos, 1).front());
      const auto first_n = oracle_list(ids, pos, n);
      const std::uint64_t someone = ids[rng.below(ids.size())];
      CHECK(p.holds(node_id{someone}, pos) == contains(first_n, someone));
    }
  }
}

TEST_CASE("chord placement units tile the ring and never straddle a cut") {
  for (std::uint64_t seed : dhtkit::test::seeds(50)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    const std::uint32_t bits = 1 + static_cast<std::uint32_t>(rng.below(7));
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng.below(4));
    const auto ids = random_ids(rng, 1 + rng.below(30), bits);
    chord_placement p{node_id{ids.front()}, config_with(n, bits)};
    std::vector<range_move> moves;
    p.set_members(members_of(ids), moves, time_point{});

    // The units are exactly the pieces between consecutive cuts.
    const auto expected = segments(oracle_cuts(ids, bits));
    REQUIRE(p.unit_count() == expected.size());
    for (std::size_t i = 0; i < p.unit_count(); ++i) {
      const key_range u = p.unit_at(i);
      REQUIRE(u == expected[i]);
      const std::uint64_t inside = u.begin + rng.below(last_of(u) - u.begin + 1);
      const auto list = oracle_list(ids, u.begin, 7);
      for (std::uint64_t pos : {u.begin, last_of(u), inside}) {
        CHECK(p.unit_of(pos) == u);
        CHECK(p.preference_list(pos, 7) == list);
      }
    }
    CHECK_THROWS_AS(p.unit_at(p.unit_count()), std::out_of_range);

    // Keys land in the unit of their position, and position is the storage's hash.
    for (int i = 0; i < 200; ++i) {
      const std::string key = "key:" + std::to_string(rng.next());
      const std::uint64_t pos = p.position(key);
      CHECK(pos == dhtkit::default_key_hash{}(key));
      CHECK(p.unit_of(pos).contains(pos));
      CHECK(p.preference_list(p.unit_of(pos).begin, 7) == p.preference_list(pos, 7));
    }
  }
}

TEST_CASE("chord placement a join moves exactly the arcs from the nth predecessor to the joiner") {
  for (std::uint64_t seed : dhtkit::test::seeds(100)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    const std::uint32_t bits = 1 + static_cast<std::uint32_t>(rng.below(6));
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng.below(4));
    const auto old_ids = random_ids(rng, rng.below(13), bits);
    std::uint64_t joiner = rng.next();
    while (std::binary_search(old_ids.begin(), old_ids.end(), joiner)) joiner = rng.next();
    const auto new_ids = sorted_insert(old_ids, joiner);

    chord_placement p{node_id{joiner}, config_with(n, bits)};
    std::vector<range_move> moves;
    p.set_members(members_of(old_ids), moves, time_point{});
    const auto version = p.version();
    moves.clear();
    CHECK(p.set_members(members_of(new_ids), moves, time_point{} + dhtkit::seconds(1)) == version + 1);

    // With more than n members after the join, the lists that change are those
    // of the joiner's arc and of its n - 1 predecessors' arcs: (P_n, joiner],
    // P_n its nth predecessor. With n or fewer, every list gains the joiner.
    if (new_ids.size() > n) {
      const auto k =
          static_cast<std::size_t>(std::find(new_ids.begin(), new_ids.end(), joiner) - new_ids.begin());
      const std::uint64_t nth_predecessor = new_ids[(k + new_ids.size() - n) % new_ids.size()];
      const key_range region{nth_predecessor + 1, joiner + 1};
      check_moves(moves, old_ids, new_ids, n, bits, &region);
    } else {
      check_moves(moves, old_ids, new_ids, n, bits, nullptr);
    }
    for (const range_move& m : moves) {
      CHECK(contains(m.after, joiner));
      CHECK_FALSE(contains(m.before, joiner));
      // A move is a piece of a unit of the new placement.
      const key_range unit = p.unit_of(m.range.begin);
      CHECK(unit.contains(last_of(m.range)));
      CHECK(p.previous_holders(m.range.begin) == dropped(m.before, m.after));
      CHECK(p.previous_holders(last_of(m.range)) == dropped(m.before, m.after));
    }
  }
}

TEST_CASE("chord placement a leave moves exactly the arcs from the nth predecessor to the leaver") {
  for (std::uint64_t seed : dhtkit::test::seeds(100)) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    const std::uint32_t bits = 1 + static_cast<std::uint32_t>(rng.below(6));
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng.below(4));
    const auto old_ids = random_ids(rng, 1 + rng.below(12), bits);
    const std::size_t k = rng.below(old_ids.size());
    const std::uint64_t leaver = old_ids[k];
    auto new_ids = old_ids;
    new_ids.erase(new_ids.begin() + static_cast<std::ptrdiff_t>(k));

    chord_placement p{node_id{old_ids.front()}, config_with(n, bits)};
    std::vector<range_move> moves;
    p.set_members(members_of(old_ids), moves, time_point{});
    moves.clear();
    p.set_members(members_of(new_ids), moves, time_point{} + dhtkit::seconds(1));

    if (old_ids.size() > n) {
      const std::uint64_t nth_predecessor = old_ids[(k + old_ids.size() - n) % old_ids.size()];
      const key_range region{nth_predecessor + 1, leaver + 1};
      check_moves(moves, old_ids, new_ids, n, bits, &region);
    } else {
      check_moves(moves, old_ids, new_ids, n, bits, nullptr);
    }
    CHECK_FALSE(moves.empty());
    for (const range_move& m : moves) {
      CHECK(contains(m.before, leaver));
      CHECK_FALSE(contains(m.after, leaver));
      CHECK(contains(p.previous_holders(m.range.begin), leaver));
    }
  }
}

TEST_CASE("chord placement previous holders after joins are newest first and expire") {
  chord_placement p{node_id{100}, config_with(3, 1)};
  std::vector<range_move> moves;
  const time_point t0{};
  const time_point t1 = t0 + dhtkit::seconds(1);
  const time_point t2 = t0 + dhtkit::seconds(2);
  p.set_members(members_of({100, 200, 300, 400, 500}), moves, t0);
  CHECK(p.previous_holders(220).empty());

  p.set_members(members_of({100, 200, 250, 300, 400, 500}), moves, t1);
  CHECK(p.previous_holders(220) == as_ids({500}));  // [300 400 500] became [250 300 400]
  CHECK(p.previous_holders(150) == as_ids({400}));  // [200 300 400] became [200 250 300]
  CHECK(p.previous_holders(50) == as_ids({300}));   // 500 is 250's third predecessor: its arc moves too
  CHECK(p.previous_holders(600) == as_ids({300}));  // past the last id: 100's arc again
  CHECK(p.previous_holders(350).empty());           // 400's arc is outside (500, 250]

  p.set_members(members_of({100, 200, 250, 260, 300, 400, 500}), moves, t2);
  // Now [250 260 300]; at t1 [250 300 400], before that [300 400 500].
  CHECK(p.previous_holders(220) == as_ids({400, 500}));
  CHECK(p.history_size() == 2);

  p.expire_history(t2);  // the set replaced at t1 goes; the one replaced at t2 stays
  CHECK(p.history_size() == 1);
  CHECK(p.previous_holders(220) == as_ids({400}));
  p.expire_history(t2 + dhtkit::millis(1));
  CHECK(p.history_size() == 0);
  CHECK(p.previous_holders(220).empty());

  // history_versions bounds what is kept.
  auto one = config_with(3, 1);
  one.history_versions = 1;
  chord_placement q{node_id{100}, one};
  q.set_members(members_of({100, 200, 300, 400, 500}), moves, t0);
  q.set_members(members_of({100, 200, 250, 300, 400, 500}), moves, t1);
  q.set_members(members_of({100, 200, 250, 260, 300, 400, 500}), moves, t2);
  CHECK(q.history_size() == 1);
  CHECK(q.previous_holders(220) == as_ids({400}));
}

TEST_CASE("chord placement set_members with the same ids changes nothing") {
  chord_placement p{node_id{1}, config_with(3, 10)};
  std::vector<range_move> moves;
  CHECK(p.set_members(members_of({10, 20, 30, 40}), moves, time_point{}) == 1);
  const auto fingerprint = p.fingerprint();
  moves.clear();

  // Another order, a repeated id and other weights: the same ring.
  std::vector<placement_member> again{
      {node_id{40}, 1}, {node_id{20}, 5}, {node_id{10}, 1}, {node_id{30}, 1}, {node_id{20}, 9}};
  CHECK(p.set_members(again, moves, time_point{} + dhtkit::seconds(1)) == 1);
  CHECK(moves.empty());
  CHECK(p.version() == 1);
  CHECK(p.fingerprint() == fingerprint);
  CHECK(p.history_size() == 0);
  REQUIRE(p.members().size() == 4);
  CHECK(p.members()[1] == placement_member{node_id{20}, 5});  // the first weight given for 20
  CHECK(std::is_sorted(p.members().begin(), p.members().end(),
                       [](const auto& a, const auto& b) { return a.id < b.id; }));
}

TEST_CASE("chord placement with no members") {
  const auto config = config_with(3, 4);
  chord_placement p{node_id{7}, config};
  CHECK(p.version() == 0);
  CHECK(p.member_count() == 0);
  CHECK(p.members().empty());
  CHECK(p.unit_count() == 16);
  CHECK(p.unit_at(0) == key_range{0, std::uint64_t{1} << 60});
  CHECK(p.unit_at(15) == key_range{std::uint64_t{15} << 60, 0});
  CHECK(p.unit_of(top) == key_range{std::uint64_t{15} << 60, 0});
  CHECK(p.preference_list(123, 3).empty());
  CHECK_FALSE(p.holds(node_id{7}, 123));
  CHECK(p.previous_holders(123).empty());
  CHECK_THROWS_AS(p.owner_of(123), std::logic_error);

  std::vector<range_move> moves;
  CHECK(p.set_members({}, moves, time_point{}) == 0);
  CHECK(moves.empty());

  // Members arrive: every piece moves from nobody to its list.
  CHECK(p.set_members(members_of({1000, 2000}), moves, time_point{}) == 1);
  check_moves(moves, {}, {1000, 2000}, 3, 4, nullptr);
  CHECK(p.history_size() == 0);  // an empty set names no previous holder

  // And leave: every piece moves to nobody, and the last holders are previous ones.
  moves.clear();
  CHECK(p.set_members({}, moves, time_point{} + dhtkit::seconds(1)) == 2);
  check_moves(moves, {1000, 2000}, {}, 3, 4, nullptr);
  CHECK(p.unit_count() == 16);
  CHECK(p.previous_holders(1500) == as_ids({2000, 1000}));
}

TEST_CASE("chord placement fingerprint follows ids and config only") {
  std::vector<range_move> moves;
  auto make = [&](node_id self, placement_config c, const std::vector<placement_member>& m) {
    chord_placement p{self, c};
    p.set_members(m, moves, time_point{});
    return p.fingerprint();
  };
  const auto c = config_with(3, 10);
  const auto base = make(node_id{1}, c, members_of({1, 2, 3}));
  CHECK(make(node_id{3}, c, members_of({3, 1, 2})) == base);
  CHECK(make(node_id{1}, c, {{node_id{2}, 4}, {node_id{1}, 1}, {node_id{3}, 2}}) == base);
  CHECK(make(node_id{1}, c, members_of({1, 2, 4})) != base);
  CHECK(make(node_id{1}, c, members_of({1, 2})) != base);
  CHECK(make(node_id{1}, config_with(2, 10), members_of({1, 2, 3})) != base);
  CHECK(make(node_id{1}, config_with(3, 9), members_of({1, 2, 3})) != base);
  CHECK(make(node_id{1}, c, {}) != make(node_id{1}, config_with(2, 10), {}));
}

TEST_CASE("chord placement rejects an invalid config") {
  auto c = config_with(3, 10);
  c.partition_bits = 0;
  CHECK_THROWS_AS((chord_placement{node_id{1}, c}), std::invalid_argument);
  c = config_with(3, 10);
  c.n = 0;
  CHECK_THROWS_AS((chord_placement{node_id{1}, c}), std::invalid_argument);
}

// One point per node against one_hop's geometry (64 virtual nodes per member,
// placed by vnode_position as the ring places them). The figures are printed
// for the header's comment; only a generous bound is asserted.
TEST_CASE("chord placement load with 64 random ids is less even than 64 virtual nodes each") {
  constexpr double ring_size = 18446744073709551616.0;
  constexpr std::size_t members = 64;
  constexpr std::uint32_t vnodes = 64;
  const auto seeds = dhtkit::test::seeds(20);
  double chord_lo = 1e9, chord_hi = 0, chord_sum = 0, replica_hi = 0, vnode_lo = 1e9, vnode_hi = 0,
         vnode_sum = 0;
  for (std::uint64_t seed : seeds) {
    DHTKIT_SEED_SCOPE(seed);
    dhtkit::random_engine rng(seed);
    std::set<std::uint64_t> drawn;
    while (drawn.size() < members) drawn.insert(rng.next());
    const std::vector<std::uint64_t> ids(drawn.begin(), drawn.end());
    chord_placement p{node_id{ids.front()}, config_with(3, 10)};
    std::vector<range_move> moves;
    p.set_members(members_of(ids), moves, time_point{});

    // Owned and replicated shares, summed over the placement's own units.
    std::map<node_id, double> owned, replicated;
    for (std::size_t i = 0; i < p.unit_count(); ++i) {
      const key_range u = p.unit_at(i);
      const double length = static_cast<double>(u.end - u.begin);  // wraps mod 2^64 for the last unit
      owned[p.owner_of(u.begin)] += length;
      for (const node_id& id : p.preference_list(u.begin, 3)) replicated[id] += length;
    }
    REQUIRE(owned.size() == members);
    double max_owned = 0, max_replicated = 0;
    for (const auto& entry : owned) max_owned = std::max(max_owned, entry.second);
    for (const auto& entry : replicated) max_replicated = std::max(max_replicated, entry.second);
    const double chord_ratio = max_owned / (ring_size / members);
    const double replica_ratio = max_replicated / (3 * ring_size / members);

    // The same ids as one_hop places them: token t owns [previous token, t).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> tokens;
    for (std::uint64_t id : ids)
      for (std::uint32_t v = 0; v < vnodes; ++v)
        tokens.emplace_back(dhtkit::vnode_position(node_id{id}, v), id);
    std::sort(tokens.begin(), tokens.end());
    std::map<std::uint64_t, double> vnode_owned;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::uint64_t previous = tokens[(i + tokens.size() - 1) % tokens.size()].first;
      vnode_owned[tokens[i].second] += static_cast<double>(tokens[i].first - previous);
    }
    double max_vnode = 0;
    for (const auto& entry : vnode_owned) max_vnode = std::max(max_vnode, entry.second);
    const double vnode_ratio = max_vnode / (ring_size / members);

    // Arcs between 64 uniform points: the largest exceeds 16x the mean with
    // probability about 64 e^-16, 7e-6.
    CHECK(chord_ratio < 16.0);
    CHECK(vnode_ratio < 2.5);
    chord_lo = std::min(chord_lo, chord_ratio);
    chord_hi = std::max(chord_hi, chord_ratio);
    chord_sum += chord_ratio;
    replica_hi = std::max(replica_hi, replica_ratio);
    vnode_lo = std::min(vnode_lo, vnode_ratio);
    vnode_hi = std::max(vnode_hi, vnode_ratio);
    vnode_sum += vnode_ratio;
  }
  const auto count = static_cast<double>(seeds.size());
  std::printf(
      "chord_placement load, %zu ids, %zu id sets: owned max/mean %.2f to %.2f (average %.2f), "
      "replicated (n=3) max/mean up to %.2f; %u virtual nodes each: %.2f to %.2f (average %.2f)\n",
      members, seeds.size(), chord_lo, chord_hi, chord_sum / count, replica_hi, vnodes, vnode_lo, vnode_hi,
      vnode_sum / count);
  CHECK(chord_sum / count > vnode_sum / count);
}

TEST_CASE("chord placement header example") {
  dhtkit::placement_config pc;  // N = 3, 2^10 partitions
  dhtkit::chord_placement p{dhtkit::node_id{100}, pc};
  std::vector<dhtkit::placement_member> members{
      {dhtkit::node_id{100}}, {dhtkit::node_id{200}}, {dhtkit::node_id{300}}};
  std::vector<dhtkit::range_move> moves;
  p.set_members(members, moves, dhtkit::time_point{});
  dhtkit::node_id owner = p.owner_of(150);  // 200: the first id at or after 150
  auto list = p.preference_list(250, 2);    // 300, then 100 (wrapping)
  bool mine = p.holds(dhtkit::node_id{100}, p.position("user:42"));
  CHECK(owner == dhtkit::node_id{200});
  CHECK(list == as_ids({300, 100}));
  CHECK(mine);  // three members, n = 3: everyone holds everything
}
