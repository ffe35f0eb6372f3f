// handoff_manager (node/handoff.hpp) without a network: managers over memory
// storages and a small rendezvous-hash placement, messages moved by hand so a
// test can lose, hold, inspect or forge any of them.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/node/handoff.hpp"
#include "dhtkit/node/handoff_journal.hpp"
#include "dhtkit/replication/storage.hpp"
#include "support/catch.hpp"

namespace {

using dhtkit::key_range;
using dhtkit::node_id;
using dhtkit::time_point;
namespace msg = dhtkit::detail::handoff;

// Keys "name#i" share the position of "name": equal positions on demand.
struct group_hash {
  std::uint64_t operator()(std::string_view key) const noexcept {
    return dhtkit::default_key_hash{}(key.substr(0, key.find('#')));
  }
};

// 2^bits equal units; each unit's list is the members ordered by a per-unit
// hash of their id (rendezvous hashing), so a join moves about 1/(members) of
// the units, and a test can compute every expected move itself.
class test_placement {
 public:
  test_placement(node_id self, dhtkit::placement_config c) : self_(self), cfg_(c) {}
  std::uint64_t position(std::string_view key) const { return group_hash{}(key); }
  std::uint64_t version() const { return version_; }
  std::uint64_t fingerprint() const { return version_; }
  const std::vector<dhtkit::placement_member>& members() const { return members_; }
  key_range unit_of(std::uint64_t pos) const { return unit_at(static_cast<std::size_t>(pos >> shift())); }
  std::size_t unit_count() const { return std::size_t{1} << cfg_.partition_bits; }
  key_range unit_at(std::size_t i) const {
    return {static_cast<std::uint64_t>(i) << shift(), static_cast<std::uint64_t>(i + 1) << shift()};
  }
  std::vector<node_id> preference_list(std::uint64_t pos, std::size_t n) const {
    auto l = list(pos >> shift(), members_);
    if (l.size() > n) l.resize(n);
    return l;
  }
  std::vector<node_id> previous_holders(std::uint64_t) const { return {}; }
  bool holds(node_id id, std::uint64_t pos) const {
    auto l = preference_list(pos, cfg_.n);
    return std::find(l.begin(), l.end(), id) != l.end();
  }
  std::uint64_t set_members(std::span<const dhtkit::placement_member> m,
                            std::vector<dhtkit::range_move>& moves, time_point) {
    std::vector<dhtkit::placement_member> next(m.begin(), m.end());
    std::sort(next.begin(), next.end(), [](auto& a, auto& b) { return a.id < b.id; });
    for (std::size_t i = 0; i < unit_count(); ++i) {
      dhtkit::range_move mv;
      mv.range = unit_at(i);
      mv.before = list(i, members_);
      mv.after = list(i, next);
      if (mv.before.size() > cfg_.n) mv.before.resize(cfg_.n);
      if (mv.after.size() > cfg_.n) mv.after.resize(cfg_.n);
      if (mv.before != mv.after) moves.push_back(mv);
    }
    members_ = std::move(next);
    return ++version_;
  }

 private:
  unsigned shift() const { return 64 - cfg_.partition_bits; }
  static std::vector<node_id> list(std::uint64_t unit, const std::vector<dhtkit::placement_member>& m) {
    std::vector<node_id> ids;
    for (const auto& x : m) ids.push_back(x.id);
    std::sort(ids.begin(), ids.end(), [&](node_id a, node_id b) {
      return dhtkit::mix64(a.value * 0x9E3779B97F4A7C15ull ^ unit) >
             dhtkit::mix64(b.value * 0x9E3779B97F4A7C15ull ^ unit);
    });
    return ids;
  }
  node_id self_;
  dhtkit::placement_config cfg_;
  std::vector<dhtkit::placement_member> members_;
  std::uint64_t version_ = 0;
};
static_assert(dhtkit::placement<test_placement>);

using storage_t = dhtkit::basic_memory_storage<group_hash>;
using manager = dhtkit::handoff_manager<storage_t, test_placement>;

dhtkit::placement_config small_placement() {
  dhtkit::placement_config p;
  p.n = 2;
  p.partition_bits = 3;  // 8 units
  return p;
}

dhtkit::handoff_config test_config() {
  dhtkit::handoff_config c;
  c.chunk_bytes = 4096;
  c.chunk_keys = 16;
  c.window = 4;
  c.rate_bytes_per_second = 0;
  c.chunk_timeout = dhtkit::millis(100);
  c.retry_backoff = dhtkit::millis(50);
  c.scan_interval = dhtkit::millis(50);
  c.not_ready_timeout = dhtkit::seconds(30);
  return c;
}

struct peer {
  node_id id;
  dhtkit::handoff_config cfg;
  storage_t store{};
  dhtkit::handoff_journal journal{};
  test_placement placement;
  std::unique_ptr<manager> mgr;
  std::vector<dhtkit::handoff_event> events;
  peer(node_id i, dhtkit::handoff_config c) : id(i), cfg(c), placement(i, small_placement()) { rebuild(); }
  // A restart with state: the same storage and journal, a new manager.
  void rebuild() {
    mgr = std::make_unique<manager>(id, cfg, dhtkit::wire_limits{}, store, journal, placement,
                                    dhtkit::handoff_limits{small_placement().n, 1024, 256 * 1024});
  }
  void put(const std::string& key, std::size_t value_size = 100, char fill = 'v') {
    dhtkit::versioned_value v;
    v.version = dhtkit::dot{id, store.next_counter()};
    v.value.assign(value_size, std::byte(fill));
    auto ctx = store.get(key) ? store.get(key)->context() : dhtkit::version_vector{};
    REQUIRE(store.put(key, ctx, v));
    mgr->note_write(placement.position(key));
  }
  std::set<std::string> keys() const {
    std::set<std::string> out;
    store.for_each_in_range(0, 0, [&](std::string_view k, const auto&) { out.emplace(k); });
    return out;
  }
};

// A decoded in-flight message, for filters and checks.
struct wire_msg {
  node_id from, to;
  std::vector<std::byte> bytes;
  msg::codec::message_type decode() const {
    auto d = msg::codec{}.decode(bytes);
    REQUIRE(d);
    return d->message;
  }
};

struct cluster {
  std::map<node_id, std::unique_ptr<peer>> peers;
  time_point now{};
  std::vector<wire_msg> log;                            // every message delivered
  std::function<bool(const wire_msg&)> drop = nullptr;  // true: lose it
  std::function<void(const wire_msg&)> on_deliver = nullptr;

  peer& add(std::uint64_t id, dhtkit::handoff_config c = test_config()) {
    auto p = std::make_unique<peer>(node_id{id}, c);
    // A joiner first sees the cluster without itself, so its first change
    // names the previous holders of what it gains.
    if (!peers.empty()) {
      std::vector<dhtkit::range_move> ignored;
      p->placement.set_members(peers.begin()->second->placement.members(), ignored, now);
    }
    auto& ref = *p;
    peers.emplace(node_id{id}, std::move(p));
    return ref;
  }
  peer& operator[](std::uint64_t id) { return *peers.at(node_id{id}); }

  void set_members(std::vector<std::uint64_t> ids, bool founding) {
    std::vector<dhtkit::placement_member> m;
    for (auto i : ids) m.push_back({node_id{i}, 1});
    for (auto& [id, p] : peers) {
      std::vector<dhtkit::range_move> moves;
      p->placement.set_members(m, moves, now);
      p->mgr->on_placement(moves, founding, now, [&](node_id x) { return peers.count(x) > 0; });
    }
  }
  // Moves every queued message once; returns how many were delivered.
  std::size_t deliver() {
    std::vector<wire_msg> batch;
    for (auto& [id, p] : peers) {
      auto out = p->mgr->take_outbox();
      for (auto& e : out.events) p->events.push_back(e);
      for (auto& m : out.messages) batch.push_back({id, m.to, std::move(m.bytes)});
    }
    std::size_t n = 0;
    for (auto& m : batch) {
      if (drop && drop(m)) continue;
      auto it = peers.find(m.to);
      if (it == peers.end()) continue;
      auto env = dhtkit::wire::decode_envelope(m.bytes);
      REQUIRE(env);
      if (on_deliver) on_deliver(m);
      (void)it->second->mgr->receive(m.from, *env, now);
      log.push_back(m);
      ++n;
    }
    return n;
  }
  void step(dhtkit::duration d = dhtkit::millis(1)) {
    while (deliver() > 0) {
    }
    now += d;
    for (auto& [id, p] : peers) p->mgr->tick(now);
    while (deliver() > 0) {
    }
  }
  // What a driver does: sleep until the earliest next_wakeup, tick, deliver.
  void advance_to_wakeup() {
    std::optional<time_point> at;
    for (auto& [id, p] : peers)
      if (auto w = p->mgr->next_wakeup(); w && (!at || *w < *at)) at = *w;
    REQUIRE(at);
    now = std::max(now, *at);
    for (auto& [id, p] : peers) p->mgr->tick(now);
    while (deliver() > 0) {
    }
  }
  bool run_until_idle(dhtkit::duration limit = dhtkit::seconds(20)) {
    const time_point end = now + limit;
    while (now < end) {
      step(dhtkit::millis(5));
      bool idle = true;
      for (auto& [id, p] : peers) idle = idle && p->mgr->idle() && p->mgr->stats().units_pending == 0;
      if (idle) return true;
    }
    return false;
  }
};

// Keys of units `who` holds under its placement.
std::set<std::string> expected_keys(peer& who, const std::set<std::string>& all) {
  std::set<std::string> out;
  for (const auto& k : all)
    if (who.placement.holds(who.id, who.placement.position(k))) out.insert(k);
  return out;
}

// Writes `count` keys to every holder of each under the current placement.
std::set<std::string> seed_keys(cluster& c, int count, std::size_t value_size = 100, int per_position = 1) {
  std::set<std::string> all;
  for (int i = 0; i < count; ++i) {
    for (int j = 0; j < per_position; ++j) {
      const std::string key = "key" + std::to_string(i) + (per_position > 1 ? "#" + std::to_string(j) : "");
      all.insert(key);
      for (auto& [id, p] : c.peers)
        if (p->placement.holds(id, p->placement.position(key))) p->put(key, value_size);
    }
  }
  return all;
}

}  // namespace

TEST_CASE("a join moves exactly the gained units and a leaver drops only after the final ack", "[handoff]") {
  cluster c;
  for (std::uint64_t i : {1, 2, 3}) c.add(i);
  c.set_members({1, 2, 3}, true);
  const auto all = seed_keys(c, 600);
  peer& d = c.add(4);
  // Which units the join moves, computed from the placements alone.
  std::set<std::uint64_t> gained;
  {
    test_placement before(node_id{4}, small_placement()), after(node_id{4}, small_placement());
    std::vector<dhtkit::range_move> moves;
    std::vector<dhtkit::placement_member> three{{node_id{1}, 1}, {node_id{2}, 1}, {node_id{3}, 1}};
    before.set_members(three, moves, c.now);
    moves.clear();
    three.push_back({node_id{4}, 1});
    before.set_members(three, moves, c.now);
    for (const auto& mv : moves)
      if (std::find(mv.after.begin(), mv.after.end(), node_id{4}) != mv.after.end())
        gained.insert(mv.range.begin);
  }
  REQUIRE(!gained.empty());
  // Every complete ack (or `have`) delivered to a leaver, per (leaver, unit).
  std::set<std::pair<node_id, std::uint64_t>> acked;
  std::map<std::pair<node_id, std::uint64_t>, std::uint64_t> session_unit;  // (sender, session) -> unit
  c.on_deliver = [&](const wire_msg& m) {
    auto v = m.decode();
    if (auto* o = std::get_if<msg::offer>(&v)) session_unit[{m.from, o->session}] = o->begin;
    if (auto* a = std::get_if<msg::ack>(&v); a && a->complete)
      acked.insert({m.to, session_unit[{m.to, a->session}]});
  };
  c.set_members({1, 2, 3, 4}, false);
  for (std::uint64_t b : gained) CHECK(!d.mgr->ready(b));
  CHECK(d.mgr->stats().units_pending == gained.size());
  REQUIRE(c.run_until_idle());
  // The new node holds every key of its units and nothing else, and each key crossed once.
  CHECK(d.keys() == expected_keys(d, all));
  CHECK(d.mgr->stats().keys_received == expected_keys(d, all).size());
  CHECK(d.mgr->stats().ready_by_timeout == 0);
  for (std::uint64_t b : gained) CHECK(d.mgr->ready(b));
  std::size_t ready_events = 0;
  for (const auto& e : d.events) ready_events += e.kind == dhtkit::handoff_event_kind::unit_ready;
  CHECK(ready_events == gained.size());
  // Old nodes keep exactly their units; each drop followed the new holder's complete ack.
  std::size_t drops = 0;
  for (std::uint64_t i : {1, 2, 3}) {
    peer& p = c[i];
    CHECK(p.keys() == expected_keys(p, all));
    for (const auto& e : p.events) {
      if (e.kind != dhtkit::handoff_event_kind::unit_dropped) continue;
      ++drops;
      CHECK(gained.count(e.range.begin) == 1);
    }
  }
  CHECK(drops == gained.size());  // n = 2: one leaver per gained unit
  for (std::uint64_t i : {1, 2, 3})
    for (const auto& e : c[i].events)
      if (e.kind == dhtkit::handoff_event_kind::unit_dropped)
        CHECK(acked.count({node_id{i}, e.range.begin}) == 1);
}

TEST_CASE("a leaver keeps its keys while the new holder's acks are lost", "[handoff]") {
  cluster c;
  for (std::uint64_t i : {1, 2, 3}) c.add(i);
  c.set_members({1, 2, 3}, true);
  const auto all = seed_keys(c, 300);
  c.add(4);
  c.drop = [](const wire_msg& m) { return m.from == node_id{4}; };
  c.set_members({1, 2, 3, 4}, false);
  for (int i = 0; i < 400; ++i) c.step(dhtkit::millis(5));
  std::uint64_t failed = 0;
  for (std::uint64_t i : {1, 2, 3}) {
    CHECK(c[i].mgr->stats().keys_dropped == 0);
    failed += c[i].mgr->stats().sessions_failed;  // abandoned after max_retries, offered again
  }
  CHECK(failed > 0);
  c.drop = nullptr;
  REQUIRE(c.run_until_idle());
  for (std::uint64_t i : {1, 2, 3, 4}) CHECK(c[i].keys() == expected_keys(c[i], all));
}

TEST_CASE("chunk boundaries never split keys of equal position", "[handoff]") {
  cluster c;
  auto cfg = test_config();
  cfg.chunk_keys = 4;
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  // Groups of 3 keys per position, and some of 6 (more than chunk_keys: they travel alone).
  auto all = seed_keys(c, 120, 50, 3);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) {
      const std::string key = "big" + std::to_string(i) + "#" + std::to_string(j);
      c[1].put(key, 50);
      all.insert(key);
    }
  std::map<std::uint64_t, std::uint64_t> next_from;  // session -> expected from_pos of its next range chunk
  std::size_t chunks = 0, alone = 0;
  c.on_deliver = [&](const wire_msg& m) {
    auto v = m.decode();
    auto* ch = std::get_if<msg::chunk>(&v);
    if (ch == nullptr || ch->entries.empty()) return;
    ++chunks;
    std::set<std::uint64_t> positions;
    for (const auto& e : ch->entries) positions.insert(group_hash{}(e.key));
    CHECK(*positions.begin() >= ch->from_pos);
    CHECK(*positions.rbegin() <= ch->through_pos);
    // Every key stored at a position the chunk covers is in it.
    for (std::uint64_t pos : positions) {
      std::size_t stored = 0;
      c[1].store.for_each_in_range(pos, pos + 1, [&](std::string_view, const auto&) { ++stored; });
      std::size_t carried = 0;
      for (const auto& e : ch->entries) carried += group_hash{}(e.key) == pos;
      CHECK(carried == stored);
    }
    if (ch->entries.size() > cfg.chunk_keys) {
      ++alone;
      CHECK(positions.size() == 1);
    }
    if (auto it = next_from.find(ch->session); it != next_from.end()) CHECK(ch->from_pos == it->second);
    next_from[ch->session] = ch->through_pos + 1;
  };
  c.set_members({2}, false);  // node 1 leaves every unit to node 2
  REQUIRE(c.run_until_idle());
  CHECK(chunks > all.size() / cfg.chunk_keys);
  CHECK(alone == 5);
  CHECK(c[2].keys() == all);
  CHECK(c[1].keys().empty());
}

TEST_CASE("window and rate bound what is in flight", "[handoff]") {
  cluster c;
  auto cfg = test_config();
  cfg.window = 2;
  cfg.max_outbound_sessions = 1;
  cfg.chunk_bytes = 4096;
  cfg.rate_bytes_per_second = 64 * 1024;
  cfg.scan_interval = dhtkit::seconds(1);
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  const auto all = seed_keys(c, 400, 1000);  // ~400 KB
  // Acks held: the sender stops at the window.
  c.drop = [](const wire_msg& m) {
    return m.from == node_id{2} && std::holds_alternative<msg::ack>(m.decode());
  };
  c.set_members({2}, false);
  for (int i = 0; i < 20; ++i) c.step(dhtkit::millis(1));
  std::size_t chunks = 0;
  for (const auto& m : c.log) chunks += std::holds_alternative<msg::chunk>(m.decode());
  CHECK(chunks == cfg.window);
  CHECK(c[1].mgr->stats().bytes_in_flight <= cfg.window * (cfg.chunk_bytes + 1200));
  CHECK(c[1].mgr->stats().bytes_in_flight > 0);
  // Waiting for acks is no reason to be woken before the chunk timeout.
  REQUIRE(c[1].mgr->next_wakeup());
  CHECK(*c[1].mgr->next_wakeup() > c.now);
  // Acks flow: the token bucket paces the stream at the configured rate.
  c.drop = nullptr;
  const time_point start = c.now;
  const auto sent_before = c[1].mgr->stats().bytes_sent;
  // Ticked only when next_wakeup asks, as a driver does: the bucket's next
  // send time must be among the wake-ups, or the stream would crawl at one
  // chunk per scan_interval (1 s here).
  while (c.now < start + dhtkit::seconds(1)) c.advance_to_wakeup();
  const double secs = std::chrono::duration<double>(c.now - start).count();
  const double sent = static_cast<double>(c[1].mgr->stats().bytes_sent - sent_before);
  CHECK(sent <= secs * static_cast<double>(cfg.rate_bytes_per_second) + 2.0 * cfg.chunk_bytes);
  CHECK(sent >= 0.8 * secs * static_cast<double>(cfg.rate_bytes_per_second));
  REQUIRE(c.run_until_idle());
  CHECK(c[2].keys() == all);
}

TEST_CASE("a lost chunk is sent again by go-back-N", "[handoff]") {
  cluster c;
  c.add(1);
  c.add(2);
  c.set_members({1}, true);
  const auto all = seed_keys(c, 300);
  int chunks = 0;
  std::uint32_t lost_seq = 0;
  c.drop = [&](const wire_msg& m) {
    auto v = m.decode();
    auto* ch = std::get_if<msg::chunk>(&v);
    if (ch == nullptr || ++chunks != 2) return false;
    lost_seq = ch->seq;
    return true;
  };
  c.set_members({2}, false);
  REQUIRE(c.run_until_idle());
  CHECK(lost_seq != 0);
  CHECK(c[1].mgr->stats().resends >= 1);
  CHECK(c[1].mgr->stats().sessions_failed == 0);
  CHECK(c[2].keys() == all);
  CHECK(c[1].keys().empty());
}

TEST_CASE("a stream resumes from the receiver's cursor after either side restarts", "[handoff]") {
  const bool restart_receiver = GENERATE(true, false);
  CAPTURE(restart_receiver);
  cluster c;
  auto cfg = test_config();
  cfg.max_outbound_sessions = 1;
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  const auto all = seed_keys(c, 800);
  c.set_members({2}, false);
  // Let some chunks through, then lose everything while one side restarts.
  for (int i = 0; i < 3; ++i) c.deliver();  // offers, replies, the first window of chunks
  REQUIRE(!c[2].journal.cursors().empty());
  const auto cursors = c[2].journal.cursors();
  const auto received = c[2].mgr->stats().keys_received;
  REQUIRE(received > 0);
  c.drop = [](const wire_msg&) { return true; };
  c.deliver();
  c.drop = nullptr;
  peer& restarted = restart_receiver ? c[2] : c[1];
  restarted.rebuild();
  // The node calls on_placement with its current placement after a restart.
  std::vector<dhtkit::range_move> none;
  restarted.mgr->on_placement(none, false, c.now, [&](node_id x) { return c.peers.count(x) > 0; });
  std::map<std::uint64_t, std::uint64_t> first_from;  // unit -> first chunk's from_pos after the restart
  std::map<std::uint64_t, std::uint64_t> session_unit;
  c.on_deliver = [&](const wire_msg& m) {
    auto v = m.decode();
    if (auto* o = std::get_if<msg::offer>(&v)) session_unit[o->session] = o->begin;
    if (auto* ch = std::get_if<msg::chunk>(&v);
        ch && session_unit.count(ch->session))  // sessions after the restart
      first_from.try_emplace(session_unit[ch->session], ch->from_pos);
  };
  REQUIRE(c.run_until_idle());
  CHECK(c[2].keys() == all);
  for (const auto& [k, cur] : cursors) {
    CAPTURE(k.first, cur.covered_until);
    REQUIRE(first_from.count(k.first) == 1);
    CHECK(first_from[k.first] == cur.covered_until);  // not the unit's start
  }
  // Keys before the cursors were not sent again.
  const auto total_received = c[2].mgr->stats().keys_received + (restart_receiver ? received : 0);
  CHECK(total_received < all.size() + received);
}

TEST_CASE("writes behind a stream's cursor arrive before the final chunk", "[handoff]") {
  cluster c;
  auto cfg = test_config();
  cfg.max_outbound_sessions = 1;
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  auto all = seed_keys(c, 2000);
  c.set_members({2}, false);
  for (int i = 0; i < 3; ++i) c.deliver();  // offers, replies, the first window of chunks
  // A key of that unit behind its cursor gets a new version, and a new key lands there.
  REQUIRE(!c[2].journal.cursors().empty());
  const std::uint64_t unit = c[2].journal.cursors().begin()->first.first;
  REQUIRE(c[2].journal.cursor(unit, node_id{1}));
  std::string old_key, new_key;
  for (const auto& k : all) {
    const auto pos = c[1].placement.position(k);
    if (c[1].placement.unit_of(pos).begin == unit && c[2].store.get(k)) old_key = k;
  }
  REQUIRE(!old_key.empty());
  c[1].put(old_key, 100, 'w');
  for (int i = 0; new_key.empty(); ++i) {
    const std::string k = "late" + std::to_string(i);
    const auto pos = c[1].placement.position(k);
    if (c[1].placement.unit_of(pos).begin == unit && !c[1].store.get(k) &&
        pos < c[2].journal.cursor(unit, node_id{1})->covered_until)
      new_key = k;
  }
  c[1].put(new_key);
  all.insert(new_key);
  CHECK(c[1].journal.find_outbound(unit)->dirty.size() == 2);
  bool final_seen = false, dirty_before_final = false;
  c.on_deliver = [&](const wire_msg& m) {
    auto v = m.decode();
    auto* ch = std::get_if<msg::chunk>(&v);
    if (ch == nullptr || ch->from_pos >> 61 != unit >> 61) return;
    for (const auto& e : ch->entries)
      if (e.key == new_key && !final_seen) dirty_before_final = true;
    if (ch->final) final_seen = true;
  };
  REQUIRE(c.run_until_idle());
  CHECK(dirty_before_final);
  CHECK(c[2].keys() == all);
  const auto got = c[2].store.get(old_key);
  REQUIRE(got);
  REQUIRE(got->siblings().size() == 1);
  CHECK(got->siblings()[0].value.front() == std::byte('w'));
  CHECK(c[1].journal.dirty_positions() == 0);
}

TEST_CASE("more dirty keys than max_dirty_keys restart the unit's stream", "[handoff]") {
  cluster c;
  auto cfg = test_config();
  cfg.max_outbound_sessions = 1;
  cfg.max_dirty_keys = 2;
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  auto all = seed_keys(c, 200);
  c.set_members({2}, false);
  c.deliver();
  std::uint64_t unit = c[1].journal.outbound_units().begin()->first;
  std::set<std::string> rewritten;
  for (const auto& k : all)
    if (c[1].placement.unit_of(c[1].placement.position(k)).begin == unit && rewritten.size() < 3) {
      c[1].put(k, 100, 'x');
      rewritten.insert(k);
    }
  REQUIRE(rewritten.size() == 3);
  CHECK(c[1].mgr->stats().restarts == 1);
  REQUIRE(c.run_until_idle());
  CHECK(c[2].keys() == all);
  for (const auto& k : rewritten) {  // the new versions, not the ones streamed before the writes
    const auto e = c[2].store.get(k);
    REQUIRE(e);
    REQUIRE(e->siblings().size() == 1);
    CHECK(e->siblings()[0].value.front() == std::byte('x'));
  }
}

namespace {
struct stray {
  static constexpr std::uint16_t wire_type = 0x0405;
  std::uint64_t x = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};
template <class M>
std::vector<std::byte> encode_from(const M& m, std::uint64_t sender) {
  auto b = dhtkit::wire::encode(m, node_id{sender});
  REQUIRE(b);
  return *b;
}
template <class M>
std::error_code deliver_to(peer& p, const M& m, std::uint64_t sender, time_point now) {
  const auto bytes = encode_from(m, sender);
  auto env = dhtkit::wire::decode_envelope(bytes);
  REQUIRE(env);
  return p.mgr->receive(node_id{sender}, *env, now);
}
std::optional<msg::reply> last_reply(peer& p) {
  auto out = p.mgr->take_outbox();
  for (auto it = out.messages.rbegin(); it != out.messages.rend(); ++it) {
    auto d = msg::codec{}.decode(it->bytes);
    if (d)
      if (auto* r = std::get_if<msg::reply>(&d->message)) return *r;
  }
  return std::nullopt;
}
}  // namespace

TEST_CASE("offers and chunks a receiver must not take are refused and counted", "[handoff]") {
  cluster c;
  auto cfg = test_config();
  cfg.max_inbound_sessions = 1;
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  c.drop = [](const wire_msg&) { return true; };  // the forged messages below are the only traffic
  c.set_members({2}, false);                      // node 1 leaves: node 2 gains every unit, pending on node 1
  c.deliver();
  peer& p = c[2];
  const auto u0 = p.placement.unit_at(0), u1 = p.placement.unit_at(1);
  REQUIRE(!p.mgr->ready(u0.begin));
  const auto before = p.keys();

  // A range that spans two units.
  msg::offer o;
  o.session = 10;
  o.begin = u0.begin;
  o.end = u1.end;
  o.keys = 5;
  CHECK(deliver_to(p, o, 1, c.now) == dhtkit::errc::placement_mismatch);
  auto r = last_reply(p);
  REQUIRE(r);
  CHECK(r->status == static_cast<std::uint8_t>(msg::reply_status::refuse));
  CHECK(r->reason == static_cast<std::uint16_t>(dhtkit::errc::placement_mismatch));
  CHECK(p.mgr->stats().refused.range_mismatch == 1);

  // A unit the receiver does not hold (node 2 holds all 8 units with n = 2 and 2
  // members, so node 1 is asked about a unit after node 1 leaves its placement).
  {
    peer& q = c[1];
    std::vector<dhtkit::range_move> moves;
    q.placement.set_members(std::vector<dhtkit::placement_member>{{node_id{2}, 1}, {node_id{3}, 1}}, moves,
                            c.now);
    msg::offer x;
    x.session = 11;
    x.begin = u0.begin;
    x.end = u0.end;
    x.keys = 1;
    CHECK(deliver_to(q, x, 2, c.now) == dhtkit::errc::placement_mismatch);
    CHECK(q.mgr->stats().refused.not_held == 1);
  }

  // One inbound session at most.
  o.session = 20;
  o.end = u0.end;
  CHECK(!deliver_to(p, o, 1, c.now));
  r = last_reply(p);
  REQUIRE(r);
  CHECK(r->status == static_cast<std::uint8_t>(msg::reply_status::accept));
  CHECK(r->resume_from == u0.begin);
  msg::offer o2 = o;
  o2.session = 21;
  o2.begin = u1.begin;
  o2.end = u1.end;
  CHECK(deliver_to(p, o2, 1, c.now) == dhtkit::errc::queue_full);
  CHECK(p.mgr->stats().refused.too_many_sessions == 1);

  // Chunks of session 20: bad bounds, too many entries, an entry outside the bounds, a bad key.
  auto entry = [&](const std::string& key) {
    msg::key_entry e;
    e.key = key;
    dhtkit::versioned_value v;
    v.version = dhtkit::dot{node_id{1}, 1};
    v.value.assign(4, std::byte{1});
    REQUIRE(!e.entry.update(dhtkit::version_vector{}, v));
    return e;
  };
  std::vector<std::string> in_u0;
  for (int i = 0; in_u0.size() < 40; ++i) {
    const std::string k = "f" + std::to_string(i);
    if (u0.contains(p.placement.position(k))) in_u0.push_back(k);
  }
  std::sort(in_u0.begin(), in_u0.end(),
            [&](auto& a, auto& b) { return p.placement.position(a) < p.placement.position(b); });
  msg::chunk ch;
  ch.session = 20;
  ch.seq = 1;
  ch.from_pos = u0.begin + 100;
  ch.through_pos = u0.begin + 10;  // through before from
  CHECK(deliver_to(p, ch, 1, c.now) == dhtkit::errc::invalid_argument);
  ch.from_pos = u0.begin;
  ch.through_pos = u1.begin + 5;  // past the unit
  CHECK(deliver_to(p, ch, 1, c.now) == dhtkit::errc::invalid_argument);
  CHECK(p.mgr->stats().refused.malformed_chunk == 2);
  ch.through_pos = u0.end - 1;
  for (std::size_t i = 0; i < cfg.chunk_keys + 1; ++i) ch.entries.push_back(entry(in_u0[i]));
  CHECK(deliver_to(p, ch, 1, c.now) == dhtkit::errc::limit_exceeded);
  CHECK(p.mgr->stats().refused.malformed_chunk == 3);
  ch.entries = {entry(in_u0[0]), entry(in_u0[1])};
  ch.through_pos = p.placement.position(in_u0[0]);  // the second entry lies past through_pos
  CHECK(deliver_to(p, ch, 1, c.now) == dhtkit::errc::placement_mismatch);
  CHECK(p.mgr->stats().refused.out_of_range == 1);
  ch.through_pos = u0.end - 1;
  ch.entries = {entry(in_u0[0]), entry(std::string(2000, 'k'))};
  CHECK(deliver_to(p, ch, 1, c.now) == dhtkit::errc::invalid_argument);
  CHECK(p.mgr->stats().refused.malformed_chunk == 4);
  // The source is checked: the same chunk from another node is refused.
  ch.entries = {entry(in_u0[0])};
  CHECK(deliver_to(p, ch, 3, c.now) == dhtkit::errc::unknown_peer);
  CHECK(p.mgr->stats().refused.unknown_session == 1);
  // Nothing refused reached the store.
  CHECK(p.keys() == before);
  // A node tag no handoff message has.
  const auto rejected = p.mgr->stats().rejected;
  CHECK(deliver_to(p, stray{}, 1, c.now) == dhtkit::errc::unknown_message_type);
  CHECK(p.mgr->stats().rejected == rejected + 1);
  // A good chunk is taken.
  ch.entries = {entry(in_u0[0])};
  CHECK(!deliver_to(p, ch, 1, c.now));
  CHECK(p.store.get(in_u0[0]));
}

TEST_CASE("a gained unit whose sources never answer is ready after not_ready_timeout", "[handoff]") {
  cluster c;
  auto cfg = test_config();
  cfg.not_ready_timeout = dhtkit::seconds(2);
  c.add(1, cfg);
  c.add(2, cfg);
  c.set_members({1}, true);
  (void)seed_keys(c, 50);
  c.drop = [](const wire_msg&) { return true; };
  c.set_members({2}, false);
  const time_point start = c.now;
  const auto units = c[2].mgr->stats().units_pending;
  REQUIRE(units == 8);
  while (c.now + dhtkit::millis(50) < start + cfg.not_ready_timeout) c.step(dhtkit::millis(50));
  CHECK(c[2].mgr->stats().units_pending == units);
  CHECK(!c[2].mgr->ready(0));
  const auto wake = c[2].mgr->next_wakeup();
  REQUIRE(wake);
  CHECK(*wake <= start + cfg.not_ready_timeout);
  c.step(dhtkit::millis(50));
  CHECK(c[2].mgr->stats().units_pending == 0);
  CHECK(c[2].mgr->stats().ready_by_timeout == units);
  CHECK(c[2].mgr->ready(0));
  CHECK(c[1].mgr->stats().keys_dropped == 0);  // nobody acknowledged: the old holder keeps everything
}

TEST_CASE("a gained unit is ready when its only source is marked dead", "[handoff]") {
  cluster c;
  c.add(1);
  c.add(2);
  c.set_members({1}, true);
  (void)seed_keys(c, 50);
  c.drop = [](const wire_msg&) { return true; };
  c.set_members({2}, false);
  CHECK(c[2].mgr->stats().units_pending == 8);
  c[2].mgr->mark_dead(node_id{1});
  CHECK(c[2].mgr->stats().units_pending == 0);
  CHECK(c[2].mgr->stats().ready_by_timeout == 0);
  std::size_t ready = 0;
  for (const auto& e : c[2].mgr->take_outbox().events)
    ready += e.kind == dhtkit::handoff_event_kind::unit_ready;
  CHECK(ready == 8);
}

TEST_CASE("handoff_journal header example", "[handoff]") {
  const time_point now{};
  dhtkit::handoff_journal journal;
  dhtkit::key_range unit{0, 1ull << 54};
  CHECK(journal.set_pending(unit, now, {dhtkit::node_id{2}}));
  CHECK(journal.set_cursor(unit.begin, dhtkit::node_id{2}, {4096, 7}));
  auto c = journal.cursor(unit.begin, dhtkit::node_id{2});
  REQUIRE(c);
  CHECK(*c == dhtkit::handoff_cursor{4096, 7});
  journal.clear_cursors(unit.begin);
  CHECK(!journal.cursor(unit.begin, dhtkit::node_id{2}));
}

TEST_CASE("journal bounds", "[handoff]") {
  dhtkit::handoff_journal_config jc;
  jc.max_pending = 1;
  jc.max_dirty = 1;
  dhtkit::handoff_journal j{jc};
  const time_point now{};
  CHECK(j.set_pending({0, 10}, now, {node_id{2}}));
  CHECK(!j.set_pending({10, 20}, now, {node_id{2}}));
  CHECK(j.set_pending({0, 10}, now, {}));  // an existing entry is replaced
  auto* o = j.outbound({0, 10});
  REQUIRE(o);
  CHECK(j.add_dirty(*o, 1, 10));
  CHECK(!j.add_dirty(*o, 2, 10));
  const auto g = o->generation;
  j.restart(*o);
  CHECK(o->generation != g);
  CHECK(j.dirty_positions() == 0);
  CHECK_THROWS_AS(dhtkit::handoff_journal(dhtkit::handoff_journal_config{0, 1, 1, 1}), std::invalid_argument);
}
