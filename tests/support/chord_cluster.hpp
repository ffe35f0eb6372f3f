// A simulated Chord ring for tests and benchmarks: N routers on one
// sim::network, each driven by sim::core_driver the way a real driver would
// (messages through the transport, tick() at next_wakeup()), plus the ground truth a test
// checks them against: who is alive, the true successor of every node and
// the true owner of every key, and Zave's ring invariants.
//
//   dhtkit::test::chord_cluster c(/*seed=*/7);
//   c.add(dhtkit::node_id{10});
//   c.create(0);
//   for (int i = 1; i < 8; ++i) c.join(c.add(dhtkit::node_id{10 + 100 * i}), 0);
//   c.run_rounds(30);
//   assert(c.check_invariants().empty() && c.converged());
//
// Not a Catch2 header, so benchmarks can use it too.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dhtkit/chord/router.hpp"
#include "dhtkit/driver/sim_driver.hpp"
#include "dhtkit/transport/sim.hpp"

namespace dhtkit::test {

using sim_router = chord::basic_router<sim::endpoint>;
using sim_peer = chord::peer<sim::endpoint>;

class chord_cluster {
 public:
  struct member {
    sim::node_transport* transport = nullptr;
    std::unique_ptr<sim_router> router;
    // Delivers messages, ticks at next_wakeup() and drains the outbox into
    // the event lists below (sim_driver.hpp).
    std::unique_ptr<sim::core_driver<sim_router>> driver;
    bool crashed = false;
    std::unordered_map<chord::lookup_id, chord::lookup_result<sim::endpoint>> results;
    std::vector<chord::range_event> ranges;
    std::vector<chord::status_event> status;
  };

  explicit chord_cluster(std::uint64_t seed, chord::router_config config = {}, sim::network_config net = {})
      : seed_(seed), config_(config), net_(seed, net) {}

  chord_cluster(const chord_cluster&) = delete;
  chord_cluster& operator=(const chord_cluster&) = delete;

  sim::network& net() noexcept { return net_; }
  const chord::router_config& config() const noexcept { return config_; }
  std::size_t size() const noexcept { return members_.size(); }
  member& at(std::size_t i) { return members_.at(i); }
  sim_router& router(std::size_t i) { return *members_.at(i).router; }
  sim::core_driver<sim_router>& driver(std::size_t i) { return *members_.at(i).driver; }
  time_point now() const noexcept { return net_.now(); }

  // A node with the given id (not yet in the ring).
  std::size_t add(node_id id) {
    sim::node_transport& t = net_.add_endpoint();
    const std::size_t index = members_.size();
    member m;
    m.transport = &t;
    m.router = std::make_unique<sim_router>(id, t.local_endpoint(), config_, mix64(seed_ ^ (index + 1)));
    m.driver = std::make_unique<sim::core_driver<sim_router>>(t, *m.router);
    m.driver->on_outbox = [this, index](sim_router::outbox_type& out) { record(index, out); };
    members_.push_back(std::move(m));
    by_endpoint_[t.local_endpoint().id] = index;
    members_[index].driver->start();
    return index;
  }

  void create(std::size_t i) {
    driver(i).call([](sim_router& r, time_point now) { r.create(now); });
  }
  std::error_code join(std::size_t i, std::size_t via) {
    const sim::endpoint bootstrap = router(via).address();
    return driver(i).call([&](sim_router& r, time_point now) { return r.join(bootstrap, now); });
  }
  std::error_code leave(std::size_t i) {
    return driver(i).call([](sim_router& r, time_point now) { return r.leave(now); });
  }
  void crash(std::size_t i) {
    members_.at(i).crashed = true;
    net_.crash(members_[i].transport->local_endpoint());
  }
  result<chord::lookup_id> lookup(std::size_t i, std::uint64_t key) {
    return driver(i).call([key](sim_router& r, time_point now) { return r.lookup(key, now); });
  }
  // The result of lookup `id` started at node i, once it completed.
  const chord::lookup_result<sim::endpoint>* result_of(std::size_t i, chord::lookup_id id) const {
    const auto& r = members_.at(i).results;
    auto it = r.find(id);
    return it == r.end() ? nullptr : &it->second;
  }

  void run_for(duration d) { net_.run_for(d); }
  // Rounds of the stabilization period.
  void run_rounds(std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) net_.run_for(config_.stabilize_period);
  }

  // ---- ground truth ---------------------------------------------------------

  bool live(std::size_t i) const {
    return !members_[i].crashed && members_[i].router->state() != chord::router_state::left;
  }
  bool live_member(std::size_t i) const { return live(i) && members_[i].router->joined(); }
  bool live_id(node_id id) const {
    auto it = by_id().find(id);
    return it != by_id().end() && live(it->second);
  }

  // Live joined nodes by id, in circle order.
  std::vector<std::pair<std::uint64_t, std::size_t>> ring() const {
    std::vector<std::pair<std::uint64_t, std::size_t>> out;
    for (std::size_t i = 0; i < members_.size(); ++i)
      if (live_member(i)) out.emplace_back(members_[i].router->id().value, i);
    std::sort(out.begin(), out.end());
    return out;
  }

  // The member index that owns key: the first live member at or after it.
  std::optional<std::size_t> true_owner(std::uint64_t key) const {
    const auto r = ring();
    if (r.empty()) return std::nullopt;
    auto it = std::lower_bound(r.begin(), r.end(), std::pair<std::uint64_t, std::size_t>{key, 0});
    return it == r.end() ? r.front().second : it->second;
  }

  // The first entry of i's successor list that is alive, if any.
  std::optional<std::size_t> first_live_successor(std::size_t i) const {
    for (const auto& p : members_[i].router->successors()) {
      auto it = by_id().find(p.id);
      if (it != by_id().end() && live(it->second)) return it->second;
    }
    return std::nullopt;
  }

  // Zave's invariants over the live members, as an error message ("" = hold):
  // OrderedSuccessorLists (every list runs strictly clockwise, never names its
  // owner), AtLeastOneLiveSuccessor (when there are two members or more),
  // OneOrderedRing (following first live successors from any member reaches
  // one cycle, and that cycle goes round the circle exactly once: no loops).
  std::string check_invariants() const {
    const auto r = ring();
    if (r.size() <= 1) return {};
    std::unordered_map<std::size_t, std::size_t> next;
    for (const auto& [id, i] : r) {
      const sim_router& n = *members_[i].router;
      std::uint64_t last = 0;
      for (const auto& p : n.successors()) {
        const std::uint64_t d = p.id.value - id;
        if (d == 0 || d <= last) return "successor list of " + name(i) + " is not strictly clockwise";
        last = d;
      }
      auto s = first_live_successor(i);
      if (!s) return name(i) + " has no live successor";
      if (!live_member(*s)) {
        // A joining node as successor is an appendage's target only; members point at members.
        return name(i) + "'s first live successor " + name(*s) + " is not a member";
      }
      next[i] = *s;
    }
    // Walk from the first member r.size() steps: we are then on the cycle.
    std::size_t at = r.front().second;
    for (std::size_t k = 0; k < r.size(); ++k) at = next[at];
    std::vector<std::size_t> cycle{at};
    for (std::size_t cur = next[at]; cur != at; cur = next[cur]) {
      cycle.push_back(cur);
      if (cycle.size() > r.size()) return "successor graph has no cycle";
    }
    std::size_t wraps = 0;
    for (std::size_t k = 0; k < cycle.size(); ++k) {
      const auto a = members_[cycle[k]].router->id().value;
      const auto b = members_[cycle[(k + 1) % cycle.size()]].router->id().value;
      if (b <= a) ++wraps;
    }
    if (wraps != 1) return "the ring winds " + std::to_string(wraps) + " times round the circle (a loop)";
    // Every member reaches this cycle (one ring, appendages hang off it).
    std::unordered_map<std::size_t, bool> on_cycle;
    for (auto c : cycle) on_cycle[c] = true;
    for (const auto& [id, i] : r) {
      std::size_t cur = i;
      std::size_t steps = 0;
      while (!on_cycle.count(cur) && steps <= r.size()) cur = next[cur], ++steps;
      if (!on_cycle.count(cur)) return name(i) + " does not reach the ring";
    }
    return {};
  }

  // Every live member's successor list is exactly the next min(r, N-1) live
  // members and its predecessor is the true predecessor.
  bool converged() const { return convergence_error().empty(); }

  std::string convergence_error() const {
    for (std::size_t i = 0; i < members_.size(); ++i)
      if (live(i) && members_[i].router->state() == chord::router_state::joining)
        return name(i) + " is still joining";
    const auto r = ring();
    const std::size_t n = r.size();
    for (std::size_t k = 0; k < n; ++k) {
      const sim_router& node = *members_[r[k].second].router;
      const std::size_t want = std::min(node.successor_list_length(), n - 1);
      const auto& list = node.successors();
      if (list.size() != want)
        return name(r[k].second) + " has " + std::to_string(list.size()) + " successors, wants " +
               std::to_string(want);
      for (std::size_t j = 0; j < want; ++j)
        if (list[j].id.value != r[(k + 1 + j) % n].first)
          return name(r[k].second) + " successor " + std::to_string(j) + " wrong";
      if (n == 1) {
        if (node.predecessor()) return name(r[k].second) + " alone with a predecessor";
      } else if (!node.predecessor() || node.predecessor()->id.value != r[(k + n - 1) % n].first) {
        return name(r[k].second) + " has the wrong predecessor";
      }
    }
    return {};
  }

  // The weaker, loss-tolerant check: every live member's first live
  // successor is the true successor.
  bool successors_correct() const {
    const auto r = ring();
    for (std::size_t k = 0; k < r.size() && r.size() > 1; ++k) {
      auto s = first_live_successor(r[k].second);
      if (!s || *s != r[(k + 1) % r.size()].second) return false;
    }
    return true;
  }

  // Test/benchmark oracle: gives every node that is not crashed the
  // converged state of the ring they form (true predecessor, successor list
  // and fingers), bypassing the protocol (chord::detail::router_access).
  void install_oracle() {
    std::vector<std::pair<std::uint64_t, std::size_t>> r;
    for (std::size_t i = 0; i < members_.size(); ++i)
      if (!members_[i].crashed) r.emplace_back(members_[i].router->id().value, i);
    std::sort(r.begin(), r.end());
    const std::size_t n = r.size();
    auto peer_of = [&](std::size_t k) {
      const sim_router& x = *members_[r[k % n].second].router;
      return sim_peer{x.id(), x.address()};
    };
    for (std::size_t k = 0; k < n; ++k) {
      sim_router& node = *members_[r[k].second].router;
      std::optional<sim_peer> pred;
      if (n > 1) pred = peer_of(k + n - 1);
      std::vector<sim_peer> succ;
      for (std::size_t j = 1; j < n && succ.size() < node.successor_list_length(); ++j)
        succ.push_back(peer_of(k + j));
      std::array<std::optional<sim_peer>, chord::identifier_bits> fingers{};
      for (std::size_t i = 0; i < chord::identifier_bits; ++i) {
        const std::uint64_t start = r[k].first + (std::uint64_t{1} << i);
        auto it = std::lower_bound(r.begin(), r.end(), std::pair<std::uint64_t, std::size_t>{start, 0});
        const std::size_t idx = it == r.end() ? 0 : static_cast<std::size_t>(it - r.begin());
        if (idx != k) fingers[i] = peer_of(idx);
      }
      chord::detail::router_access::install(node, pred, succ, fingers, now());
      driver(r[k].second).drain();
    }
  }

  // Members that are part of the ring proper: the only member, or the first
  // live successor of some live member (a joined node its predecessor has
  // not adopted yet is not, in Zave's sense, a member).
  std::vector<std::pair<std::uint64_t, std::size_t>> adopted_ring() const {
    const auto r = ring();
    if (r.size() <= 1) return r;
    std::vector<bool> adopted(members_.size(), false);
    for (const auto& [id, i] : r)
      if (auto s = first_live_successor(i)) adopted[*s] = true;
    std::vector<std::pair<std::uint64_t, std::size_t>> out;
    for (const auto& e : r)
      if (adopted[e.second]) out.push_back(e);
    return out;
  }

  // Messages all routers sent so far.
  std::uint64_t messages_sent() const {
    std::uint64_t total = 0;
    for (const auto& m : members_) total += m.router->stats().messages_sent;
    return total;
  }

  std::string name(std::size_t i) const {
    return "node " + std::to_string(i) + " (" + members_[i].router->id().to_string() + ")";
  }

 private:
  const std::unordered_map<node_id, std::size_t>& by_id() const {
    if (by_id_.size() != members_.size()) {
      by_id_.clear();
      for (std::size_t i = 0; i < members_.size(); ++i) by_id_[members_[i].router->id()] = i;
    }
    return by_id_;
  }

  // Keeps the events of what router i produced (the driver sent its messages).
  void record(std::size_t i, sim_router::outbox_type& out) {
    member& m = members_[i];
    for (auto& l : out.lookups) m.results[l.id] = l;
    m.ranges.insert(m.ranges.end(), out.ranges.begin(), out.ranges.end());
    m.status.insert(m.status.end(), out.status.begin(), out.status.end());
  }

  std::uint64_t seed_;
  chord::router_config config_;
  sim::network net_;
  std::vector<member> members_;
  std::unordered_map<std::uint32_t, std::size_t> by_endpoint_;
  mutable std::unordered_map<node_id, std::size_t> by_id_;
};

}  // namespace dhtkit::test
