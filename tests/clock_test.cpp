// Logical clocks: Lamport clock and vector clock.
#include <bitset>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/string.hpp>

#include "dhtkit/clock/lamport_clock.hpp"
#include "dhtkit/clock/vector_clock.hpp"
#include "support/catch.hpp"
#include "support/seeds.hpp"

namespace {

using dhtkit::causal_order;
using dhtkit::node_id;
using dhtkit::vector_clock;

constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

template <class T>
std::string encode(const T& value) {
  std::stringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(value);
  }
  return out.str();
}

template <class T>
T decode(const std::string& bytes) {
  std::stringstream in(bytes);
  cereal::PortableBinaryInputArchive ar(in);
  T value;
  ar(value);
  return value;
}

// Writes arbitrary fields with the portable archive, to build encodings the
// clock itself would never produce.
template <class... Fields>
std::string raw(const Fields&... fields) {
  std::stringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(fields...);
  }
  return out.str();
}

template <class Clock>
bool well_formed(const Clock& c) {
  const auto entries = c.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].counter == 0) return false;
    if (i > 0 && !(entries[i - 1].node < entries[i].node)) return false;
  }
  return entries.size() <= Clock::max_entries;
}

// The definition of compare, evaluated naively over the union of nodes.
causal_order reference_compare(const vector_clock& a, const vector_clock& b) {
  std::set<node_id> nodes;
  for (const auto& e : a.entries()) nodes.insert(e.node);
  for (const auto& e : b.entries()) nodes.insert(e.node);
  bool less = false;
  bool greater = false;
  for (const node_id& n : nodes) {
    less = less || a.get(n) < b.get(n);
    greater = greater || a.get(n) > b.get(n);
  }
  if (less && greater) return causal_order::concurrent;
  if (less) return causal_order::before;
  if (greater) return causal_order::after;
  return causal_order::equal;
}

// Small universes and counters so that equal, ordered and concurrent pairs all
// come up often.
vector_clock random_clock(std::mt19937_64& rng, std::uint64_t universe) {
  vector_clock c;
  for (std::uint64_t n = 1; n <= universe; ++n) {
    if (rng() % 2 == 0) continue;
    const std::uint64_t counter = 1 + rng() % 4;
    const std::uint64_t now = rng() % 4;
    for (std::uint64_t i = 0; i < counter; ++i) REQUIRE_FALSE(c.increment(node_id{n}, now));
  }
  return c;
}

vector_clock merged(vector_clock a, const vector_clock& b) {
  REQUIRE_FALSE(a.merge(b));
  return a;
}

bool at_most(causal_order o) { return o == causal_order::before || o == causal_order::equal; }

}  // namespace

// ---------------------------------------------------------------- Lamport clock

TEST_CASE("lamport_clock header example compiles and holds", "[clock][lamport]") {
  dhtkit::lamport_clock a{dhtkit::node_id{1}};
  dhtkit::lamport_clock b{dhtkit::node_id{2}};
  dhtkit::result<dhtkit::lamport_timestamp> sent = a.send();  // stamp an outgoing message
  if (sent) {
    dhtkit::result<dhtkit::lamport_timestamp> got = b.receive(*sent);
    // got holds b's timestamp for the delivery: *sent < *got
    REQUIRE(got);
    CHECK(*sent < *got);
  }
  REQUIRE(sent);
}

TEST_CASE("lamport_clock ticks, merges on receive and orders ties by node", "[clock][lamport]") {
  dhtkit::lamport_clock a{node_id{7}};
  CHECK(a.self() == node_id{7});
  CHECK(a.time() == 0);
  CHECK(*a.tick() == dhtkit::lamport_timestamp{1, node_id{7}});
  CHECK(*a.send() == dhtkit::lamport_timestamp{2, node_id{7}});
  // A receive moves past the larger of the two times.
  CHECK(*a.receive({10, node_id{3}}) == dhtkit::lamport_timestamp{11, node_id{7}});
  CHECK(*a.receive({4, node_id{3}}) == dhtkit::lamport_timestamp{12, node_id{7}});
  CHECK(a.time() == 12);
  // Total order: time first, node id breaks ties.
  CHECK(dhtkit::lamport_timestamp{5, node_id{9}} < dhtkit::lamport_timestamp{6, node_id{1}});
  CHECK(dhtkit::lamport_timestamp{5, node_id{1}} < dhtkit::lamport_timestamp{5, node_id{2}});
  CHECK(dhtkit::lamport_timestamp{5, node_id{1}} == dhtkit::lamport_timestamp{5, node_id{1}});
  // A restored clock continues from where it was persisted.
  dhtkit::lamport_clock restored{node_id{7}, 12};
  CHECK(restored.tick()->time == 13);
}

TEST_CASE("lamport_clock refuses to overflow and stays unchanged", "[clock][lamport]") {
  dhtkit::lamport_clock a{node_id{1}, u64_max - 1};
  CHECK(a.tick()->time == u64_max);
  auto refused = a.tick();
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == dhtkit::errc::limit_exceeded);
  CHECK(a.send().error() == dhtkit::errc::limit_exceeded);
  CHECK(a.time() == u64_max);

  // A hostile timestamp at the maximum is refused without touching the clock.
  dhtkit::lamport_clock b{node_id{2}, 5};
  CHECK(b.receive({u64_max, node_id{1}}).error() == dhtkit::errc::limit_exceeded);
  CHECK(b.time() == 5);
  CHECK(b.receive({u64_max - 1, node_id{1}})->time == u64_max);
  CHECK(b.tick().error() == dhtkit::errc::limit_exceeded);
}

TEST_CASE("lamport_timestamp cereal round trip", "[clock][lamport][serialization]") {
  const dhtkit::lamport_timestamp ts{0x0123456789abcdefULL, node_id{0xfedcba9876543210ULL}};
  CHECK(decode<dhtkit::lamport_timestamp>(encode(ts)) == ts);
  const std::string bytes = encode(ts);
  CHECK_THROWS_AS(decode<dhtkit::lamport_timestamp>(bytes.substr(0, bytes.size() - 1)), cereal::Exception);
}

// ---------------------------------------------------------------- vector clock

TEST_CASE("vector_clock header example compiles and holds", "[clock][vector]") {
  const auto example = []() -> std::error_code {
    dhtkit::vector_clock v1;
    if (auto ec = v1.increment(dhtkit::node_id{1}, 1000)) return ec;  // a write coordinated by node 1
    dhtkit::vector_clock v2 = v1;
    if (auto ec = v2.increment(dhtkit::node_id{2}, 1005)) return ec;  // a later write based on v1
    // v1.compare(v2) == dhtkit::causal_order::before, v2.descends(v1)
    CHECK(v1.compare(v2) == dhtkit::causal_order::before);
    CHECK(v2.descends(v1));
    if (auto ec = v1.merge(v2)) return ec;  // pointwise max: v1 == v2
    CHECK(v1 == v2);
    return {};
  };
  CHECK_FALSE(example());
}

TEST_CASE("vector_clock basics: get, increment, compare, descends, dominates", "[clock][vector]") {
  vector_clock a;
  CHECK(a.empty());
  CHECK(a.get(node_id{5}) == 0);
  REQUIRE_FALSE(a.increment(node_id{5}, 10));
  REQUIRE_FALSE(a.increment(node_id{2}, 11));
  REQUIRE_FALSE(a.increment(node_id{5}, 3));  // never moves `updated` backwards
  REQUIRE(a.size() == 2);
  CHECK(a.get(node_id{5}) == 2);
  CHECK(a.get(node_id{2}) == 1);
  CHECK(a.entries()[0].node == node_id{2});  // sorted by node
  CHECK(a.entries()[1].updated == 10);
  CHECK(well_formed(a));

  vector_clock b = a;
  CHECK(a.compare(b) == causal_order::equal);
  CHECK(a.descends(b));
  CHECK_FALSE(a.dominates(b));
  REQUIRE_FALSE(b.increment(node_id{9}));
  CHECK(a.compare(b) == causal_order::before);
  CHECK(b.compare(a) == causal_order::after);
  CHECK(b.dominates(a));
  CHECK_FALSE(a.descends(b));
  REQUIRE_FALSE(a.increment(node_id{2}));
  CHECK(a.compare(b) == causal_order::concurrent);
  CHECK(b.compare(a) == causal_order::concurrent);
  CHECK(vector_clock{}.compare(vector_clock{}) == causal_order::equal);
  CHECK(vector_clock{}.compare(a) == causal_order::before);

  REQUIRE_FALSE(a.merge(b));
  CHECK(a.get(node_id{2}) == 2);
  CHECK(a.get(node_id{5}) == 2);
  CHECK(a.get(node_id{9}) == 1);
  CHECK(a.dominates(b));
}

TEST_CASE("vector_clock node type requirements", "[clock][vector]") {
  struct unordered {
    int x;
  };
  static_assert(dhtkit::clock_node<dhtkit::node_id>);
  static_assert(dhtkit::clock_node<std::string>);
  static_assert(!dhtkit::clock_node<unordered>);
  static_assert(!dhtkit::clock_node<std::unique_ptr<int>>);  // ordered, but not copyable

  // Any totally ordered, copyable node type works, and serializes if cereal can.
  dhtkit::basic_vector_clock<std::string> c;
  REQUIRE_FALSE(c.increment("b"));
  REQUIRE_FALSE(c.increment("a"));
  REQUIRE_FALSE(c.increment("b"));
  CHECK(c.get("b") == 2);
  CHECK(c.entries()[0].node == "a");
  CHECK(decode<dhtkit::basic_vector_clock<std::string>>(encode(c)) == c);
}

TEST_CASE("vector_clock bounds: entry count and counter overflow are refused", "[clock][vector]") {
  using small_clock = dhtkit::basic_vector_clock<node_id, 4>;
  small_clock a;
  for (std::uint64_t n = 1; n <= 4; ++n) REQUIRE_FALSE(a.increment(node_id{n}));
  const small_clock full = a;
  CHECK(a.increment(node_id{99}) == dhtkit::errc::limit_exceeded);
  CHECK(a == full);
  CHECK_FALSE(a.increment(node_id{3}));  // existing nodes still count

  small_clock b;
  REQUIRE_FALSE(b.increment(node_id{5}));
  const small_clock before_merge = a;
  CHECK(a.merge(b) == dhtkit::errc::limit_exceeded);
  CHECK(a == before_merge);
  CHECK(b.merge(small_clock{}) == std::error_code{});

  small_clock c;  // nodes 3, 4, 5: union with 1..4 is five nodes
  REQUIRE_FALSE(c.increment(node_id{3}));
  REQUIRE_FALSE(c.increment(node_id{4}));
  CHECK_FALSE(c.merge(b));
  small_clock d;  // nodes 1, 2: union with {3, 4, 5} is five nodes
  REQUIRE_FALSE(d.increment(node_id{1}));
  REQUIRE_FALSE(d.increment(node_id{2}));
  const small_clock before_second_merge = c;
  CHECK(c.merge(d) == dhtkit::errc::limit_exceeded);
  CHECK(c == before_second_merge);
  small_clock e;  // node 2 only: union with {3, 4, 5} is four nodes
  REQUIRE_FALSE(e.increment(node_id{2}));
  CHECK_FALSE(c.merge(e));
  CHECK(c.size() == 4);

  // A counter at the maximum (only reachable from the wire) cannot wrap.
  auto at_max = decode<vector_clock>(raw(std::uint64_t{1}, node_id{1}, u64_max, std::uint64_t{0}));
  CHECK(at_max.increment(node_id{1}) == dhtkit::errc::limit_exceeded);
  CHECK(at_max.get(node_id{1}) == u64_max);
}

TEST_CASE("vector_clock merge is a join and compare agrees with it", "[clock][vector][property]") {
  for (std::uint64_t seed : dhtkit::test::seeds(300)) {
    DHTKIT_SEED_SCOPE(seed);
    std::mt19937_64 rng(seed);
    const std::uint64_t universe = 1 + rng() % 6;
    const vector_clock a = random_clock(rng, universe);
    const vector_clock b = random_clock(rng, universe);
    const vector_clock c = random_clock(rng, universe);

    // Commutative, associative, idempotent: structurally, `updated` included.
    CHECK(merged(a, b) == merged(b, a));
    CHECK(merged(merged(a, b), c) == merged(a, merged(b, c)));
    CHECK(merged(a, a) == a);
    CHECK(well_formed(merged(a, b)));

    // compare matches its definition and is antisymmetric.
    const causal_order ab = a.compare(b);
    CHECK(ab == reference_compare(a, b));
    const causal_order ba = b.compare(a);
    CHECK((ab == causal_order::before) == (ba == causal_order::after));
    CHECK((ab == causal_order::equal) == (ba == causal_order::equal));
    CHECK((ab == causal_order::concurrent) == (ba == causal_order::concurrent));
    CHECK(a.descends(b) == (ab == causal_order::after || ab == causal_order::equal));
    CHECK(a.dominates(b) == (ab == causal_order::after));

    // The merge is an upper bound of both, and the least one: it equals a
    // exactly when a already descends b.
    const vector_clock m = merged(a, b);
    CHECK(at_most(a.compare(m)));
    CHECK(at_most(b.compare(m)));
    CHECK(m.descends(a));
    CHECK(m.descends(b));
    CHECK((m.compare(a) == causal_order::equal) == a.descends(b));
    if (ab == causal_order::concurrent) {
      CHECK(a.compare(m) == causal_order::before);
      CHECK(b.compare(m) == causal_order::before);
    }
    // Any upper bound of a and b descends the merge.
    const vector_clock upper = merged(m, c);
    CHECK(upper.descends(m));
  }
}

namespace {

// A randomized message-passing history and the happened-before relation
// computed from its trace, independently of any clock.
struct history {
  static constexpr std::size_t max_events = 400;
  struct event {
    std::size_t process = 0;
    vector_clock vc;
    dhtkit::lamport_timestamp lt;
  };
  std::vector<event> events;
  std::vector<std::bitset<max_events>> before;  // before[e][f]: f -> e (f happened before e)

  bool happened_before(std::size_t e1, std::size_t e2) const { return before[e2][e1]; }
};

// Every event increments its process's entry with `updated` = global step,
// so stamps grow along causality.
history run_history(std::uint64_t seed, std::size_t max_steps) {
  std::mt19937_64 rng(seed);
  const std::size_t processes = 2 + rng() % 5;
  const std::size_t steps = max_steps / 2 + rng() % (max_steps / 2);
  std::vector<node_id> ids;
  std::set<std::uint64_t> used;
  while (ids.size() < processes) {
    const std::uint64_t v = rng();
    if (used.insert(v).second) ids.push_back(node_id{v});
  }
  struct message {
    std::size_t to;
    std::size_t send_event;
  };
  std::vector<vector_clock> vcs(processes);
  std::vector<dhtkit::lamport_clock> lcs;
  for (const node_id& id : ids) lcs.emplace_back(id);
  std::vector<std::ptrdiff_t> last(processes, -1);
  std::vector<message> in_flight;

  history h;
  for (std::size_t step = 0; step < steps; ++step) {
    const std::size_t p = rng() % processes;
    std::vector<std::size_t> deliverable;
    for (std::size_t i = 0; i < in_flight.size(); ++i) {
      if (in_flight[i].to == p) deliverable.push_back(i);
    }
    const std::uint64_t action = rng() % 3;
    std::bitset<history::max_events> preds;
    if (last[p] >= 0) {
      const auto prev = static_cast<std::size_t>(last[p]);
      preds = h.before[prev];
      preds.set(prev);
    }
    history::event ev;
    ev.process = p;
    if (action == 2 && !deliverable.empty()) {
      // Receive a random pending message: delivery order is arbitrary, and
      // sometimes the message stays in flight to be delivered again
      // (duplication).
      const std::size_t pick = deliverable[rng() % deliverable.size()];
      const message m = in_flight[pick];
      if (rng() % 4 != 0) in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(pick));
      preds |= h.before[m.send_event];
      preds.set(m.send_event);
      REQUIRE_FALSE(vcs[p].merge(h.events[m.send_event].vc));
      REQUIRE_FALSE(vcs[p].increment(ids[p], step));
      auto lt = lcs[p].receive(h.events[m.send_event].lt);
      REQUIRE(lt);
      ev.lt = *lt;
    } else {
      REQUIRE_FALSE(vcs[p].increment(ids[p], step));
      auto lt = action == 1 ? lcs[p].send() : lcs[p].tick();
      REQUIRE(lt);
      ev.lt = *lt;
    }
    ev.vc = vcs[p];
    const std::size_t index = h.events.size();
    REQUIRE(index < history::max_events);
    h.events.push_back(ev);
    h.before.push_back(preds);
    last[p] = static_cast<std::ptrdiff_t>(index);
    if (action == 1) in_flight.push_back({(p + 1 + rng() % (processes - 1)) % processes, index});
  }
  return h;
}

void check_history(const history& h) {
  const std::size_t n = h.events.size();
  for (std::size_t e1 = 0; e1 < n; ++e1) {
    for (std::size_t e2 = 0; e2 < n; ++e2) {
      if (e1 == e2) continue;
      const bool hb12 = h.happened_before(e1, e2);
      const bool hb21 = h.happened_before(e2, e1);
      const causal_order o = h.events[e1].vc.compare(h.events[e2].vc);
      // Vector clocks characterize happened-before exactly.
      CHECK((o == causal_order::before) == hb12);
      CHECK((o == causal_order::after) == hb21);
      CHECK((o == causal_order::concurrent) == (!hb12 && !hb21));
      CHECK(o != causal_order::equal);
      // Lamport clocks are consistent with it, and distinct events never tie.
      if (hb12) CHECK(h.events[e1].lt < h.events[e2].lt);
      CHECK(h.events[e1].lt != h.events[e2].lt);
    }
  }
}

}  // namespace

TEST_CASE("clocks against happened-before in random message-passing histories", "[clock][vector][lamport]") {
  for (std::uint64_t seed : dhtkit::test::seeds(60)) {
    DHTKIT_SEED_SCOPE(seed);
    check_history(run_history(seed, 120));
  }
}

TEST_CASE("clocks against happened-before in long random histories", "[clock][vector][lamport][.long]") {
  for (std::uint64_t seed : dhtkit::test::seeds(300)) {
    DHTKIT_SEED_SCOPE(seed);
    check_history(run_history(seed, history::max_events));
  }
}

// ---------------------------------------------------------------- serialization

TEST_CASE("vector_clock cereal round trip", "[clock][vector][serialization]") {
  // The wire format: a u64 count, then (node, counter, updated) per entry in
  // node order, after the archive's endianness byte.
  vector_clock golden;
  REQUIRE_FALSE(golden.increment(node_id{1}, 3));
  REQUIRE_FALSE(golden.increment(node_id{1}, 3));
  CHECK(encode(golden) == raw(std::uint64_t{1}, std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{3}));

  CHECK(decode<vector_clock>(encode(vector_clock{})) == vector_clock{});
  for (std::uint64_t seed : dhtkit::test::seeds(100)) {
    DHTKIT_SEED_SCOPE(seed);
    std::mt19937_64 rng(seed);
    vector_clock c;
    const std::size_t n = rng() % 40;
    for (std::size_t i = 0; i < n; ++i) REQUIRE_FALSE(c.increment(node_id{rng()}, rng()));
    const vector_clock back = decode<vector_clock>(encode(c));
    CHECK(back == c);
    CHECK(back.compare(c) == causal_order::equal);
  }
}

TEST_CASE("vector_clock load rejects malformed and oversized encodings", "[clock][vector][serialization]") {
  const std::uint64_t one = 1;
  // A count far beyond the bound is refused before anything is allocated.
  CHECK_THROWS_AS(decode<vector_clock>(raw(u64_max)), cereal::Exception);
  CHECK_THROWS_AS(decode<vector_clock>(raw(std::uint64_t{vector_clock::max_entries + 1})), cereal::Exception);
  // Even with all the entries present, one over the bound is refused.
  {
    using small_clock = dhtkit::basic_vector_clock<node_id, 2>;
    CHECK_NOTHROW(decode<small_clock>(raw(std::uint64_t{2}, node_id{1}, one, one, node_id{2}, one, one)));
    CHECK_THROWS_AS(decode<small_clock>(raw(std::uint64_t{3}, node_id{1}, one, one, node_id{2}, one, one,
                                            node_id{3}, one, one)),
                    cereal::Exception);
  }
  // Unsorted, duplicate, zero counter, truncated.
  CHECK_THROWS_AS(decode<vector_clock>(raw(std::uint64_t{2}, node_id{2}, one, one, node_id{1}, one, one)),
                  cereal::Exception);
  CHECK_THROWS_AS(decode<vector_clock>(raw(std::uint64_t{2}, node_id{1}, one, one, node_id{1}, one, one)),
                  cereal::Exception);
  CHECK_THROWS_AS(decode<vector_clock>(raw(one, node_id{1}, std::uint64_t{0}, one)), cereal::Exception);
  CHECK_THROWS_AS(decode<vector_clock>(raw(std::uint64_t{2}, node_id{1}, one, one)), cereal::Exception);

  // A failed load leaves the target untouched.
  vector_clock target;
  REQUIRE_FALSE(target.increment(node_id{42}));
  const vector_clock saved = target;
  {
    std::stringstream in(raw(std::uint64_t{2}, node_id{2}, one, one, node_id{1}, one, one));
    cereal::PortableBinaryInputArchive ar(in);
    CHECK_THROWS_AS(ar(target), cereal::Exception);
  }
  CHECK(target == saved);
}

TEST_CASE("vector_clock load survives corrupted encodings", "[clock][vector][serialization]") {
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  for (std::uint64_t seed : dhtkit::test::seeds(2000)) {
    DHTKIT_SEED_SCOPE(seed);
    std::mt19937_64 rng(seed);
    // A valid encoding of a small clock, then a few random byte overwrites
    // and perhaps a truncation.
    vector_clock c;
    const std::size_t n = rng() % 5;
    for (std::size_t i = 0; i < n; ++i) REQUIRE_FALSE(c.increment(node_id{rng() % 8}, rng() % 4));
    std::string bytes = encode(c);
    const std::size_t flips = 1 + rng() % 3;
    for (std::size_t i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    try {
      const vector_clock back = decode<vector_clock>(bytes);
      CHECK(well_formed(back));
      ++accepted;
    } catch (const cereal::Exception&) {
      ++rejected;  // the only acceptable failure
    }
  }
  // Both paths must have run for the test to mean anything.
  CHECK(accepted > 0);
  CHECK(rejected > 0);
}

// ---------------------------------------------------------------- pruning

TEST_CASE("vector_clock prune keeps the most recently updated entries", "[clock][vector][prune]") {
  vector_clock c;
  REQUIRE_FALSE(c.increment(node_id{1}, 30));
  REQUIRE_FALSE(c.increment(node_id{2}, 10));
  REQUIRE_FALSE(c.increment(node_id{3}, 20));
  REQUIRE_FALSE(c.increment(node_id{4}, 20));
  REQUIRE_FALSE(c.increment(node_id{4}, 20));  // ties on `updated` keep the larger counter
  vector_clock p = c;
  CHECK(p.prune(10) == 0);
  CHECK(p == c);
  CHECK(p.prune(2) == 2);
  CHECK(p.size() == 2);
  CHECK(p.get(node_id{1}) == 1);
  CHECK(p.get(node_id{4}) == 2);
  CHECK(well_formed(p));
  CHECK(p.prune(0) == 2);
  CHECK(p.empty());
}

TEST_CASE("vector_clock pruning: false conflicts and lost updates are both possible",
          "[clock][vector][prune]") {
  // after -> concurrent: the newer clock forgets an old entry its ancestor has.
  vector_clock ancestor;
  REQUIRE_FALSE(ancestor.increment(node_id{1}, 1));
  REQUIRE_FALSE(ancestor.increment(node_id{2}, 2));
  vector_clock newer = ancestor;
  REQUIRE_FALSE(newer.increment(node_id{2}, 3));
  REQUIRE(newer.compare(ancestor) == causal_order::after);
  newer.prune(1);
  CHECK(newer.compare(ancestor) == causal_order::concurrent);

  // concurrent -> before: c's only advantage over o was in an old entry, which
  // pruning drops, so c now looks obsolete. This is why pruning can lose an
  // update, as the header says.
  vector_clock c;
  REQUIRE_FALSE(c.increment(node_id{2}, 1));
  REQUIRE_FALSE(c.increment(node_id{2}, 1));
  REQUIRE_FALSE(c.increment(node_id{1}, 5));
  vector_clock o;
  REQUIRE_FALSE(o.increment(node_id{2}, 1));
  REQUIRE_FALSE(o.increment(node_id{1}, 5));
  REQUIRE_FALSE(o.increment(node_id{3}, 6));
  REQUIRE(c.compare(o) == causal_order::concurrent);
  c.prune(1);
  CHECK(c.compare(o) == causal_order::before);
}

TEST_CASE("vector_clock pruning never makes a clock look newer", "[clock][vector][prune][property]") {
  for (std::uint64_t seed : dhtkit::test::seeds(300)) {
    DHTKIT_SEED_SCOPE(seed);
    std::mt19937_64 rng(seed);
    const std::uint64_t universe = 1 + rng() % 6;
    const vector_clock c = random_clock(rng, universe);
    const vector_clock o = random_clock(rng, universe);
    for (std::size_t keep = 0; keep <= c.size(); ++keep) {
      vector_clock p = c;
      CHECK(p.prune(keep) == c.size() - keep);
      CHECK(p.size() == keep);
      CHECK(well_formed(p));
      CHECK(at_most(p.compare(c)));  // p <= c
      // Kept entries are unchanged and are the most recently updated ones.
      std::uint64_t oldest_kept = u64_max;
      for (const auto& e : p.entries()) {
        CHECK(e.counter == c.get(e.node));
        oldest_kept = std::min(oldest_kept, e.updated);
      }
      for (const auto& e : c.entries()) {
        if (p.get(e.node) == 0) CHECK(e.updated <= oldest_kept);
      }
      // Never newer: descent by the pruned clock implies descent by c, and
      // "before" survives pruning.
      if (p.descends(o)) CHECK(c.descends(o));
      if (c.compare(o) == causal_order::before) CHECK(p.compare(o) == causal_order::before);
      // The newest entry survives, so p is never <= a clock that has not
      // seen c's latest increment on it.
      if (keep >= 1) {
        // Same tie-break as prune: updated, then counter, then node.
        const auto newest =
            std::max_element(c.entries().begin(), c.entries().end(), [](const auto& x, const auto& y) {
              return std::tie(x.updated, x.counter, x.node) < std::tie(y.updated, y.counter, y.node);
            });
        REQUIRE(p.get(newest->node) == newest->counter);
        if (o.get(newest->node) < newest->counter) CHECK_FALSE(o.descends(p));
      }
    }
  }
}

TEST_CASE("pruning a freshly incremented clock never hides its write", "[clock][vector][prune][property]") {
  // In a history where every clock comes from an increment and stamps grow
  // along causality, a pruned clock p of event e is <= vc(f) exactly when e
  // happened before f (or is f): pruning cannot make e's write look obsolete
  // to anyone who has not seen it.
  for (std::uint64_t seed : dhtkit::test::seeds(40)) {
    DHTKIT_SEED_SCOPE(seed);
    const history h = run_history(seed, 120);
    std::mt19937_64 rng(seed);
    for (std::size_t e = 0; e < h.events.size(); ++e) {
      vector_clock p = h.events[e].vc;
      p.prune(1 + rng() % 3);
      for (std::size_t f = 0; f < h.events.size(); ++f) {
        const bool obsolete = at_most(p.compare(h.events[f].vc));
        CHECK(obsolete == (e == f || h.happened_before(e, f)));
      }
    }
  }
}
