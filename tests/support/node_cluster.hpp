// A seeded DHT-node scenario on the simulator, shared by tests/node_sim_test
// and bench/node.
//
// Nodes are dhtkit::basic_sim_node (the real node core on two simulated
// lanes). Clients run a set-add workload: read a key through a random live
// node, union the elements of all siblings, add one new unique element and
// write the union back with the read's context. An element names the write
// that added it, so "no acknowledged write lost" is checkable: every
// acknowledged element must be in the final read of its key (its own value or
// a causal successor that contains it). Meanwhile a scenario grows the
// cluster, makes nodes leave, crashes and restarts them, partitions the
// network; links lose, duplicate and reorder. At the end faults stop and the
// checks run:
//   A. every acknowledged element is read back (a quorum read through each
//      of two live nodes);
//   B. all holders of every key converge to the same state within a bound;
//   C. once membership converged, every live node's placement agrees
//      (fingerprints equal);
//   D. no node keeps a key of a range it no longer holds past the handoff
//      bound (unless it keeps a hint for it);
//   plus SWIM's own invariants on every node.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dhtkit/core/random.hpp"
#include "dhtkit/node/sim_node.hpp"
#include "dhtkit/transport/sim.hpp"

namespace dhtkit::test {

enum class node_scenario { grow, leaves, crashes, partitions };

struct node_scenario_config {
  std::uint64_t seed = 1;
  node_scenario kind = node_scenario::grow;
  std::size_t clients = 4;
  std::size_t keys = 24;
  duration think = millis(30);
  bool lossy = false;  // loss, duplication and reordering on every link
};

struct node_scenario_result {
  std::vector<std::string> violations;
  std::uint64_t writes_acked = 0, writes_failed = 0, reads = 0, reads_failed = 0;
  std::uint64_t keys_moved = 0, bytes_moved = 0;
  duration converged_after{};
  bool converged = false;
};

template <class Placement = one_hop>
class node_cluster {
 public:
  using node_type = basic_sim_node<Placement>;

  explicit node_cluster(node_scenario_config c)
      : cfg_(c), net_(c.seed, network_config(c)), rng_(mix64(c.seed)) {}

  static node_config base_config() {
    node_config c = node_config::local();
    c.dead_member_grace = seconds(2);
    c.handoff.not_ready_timeout = seconds(8);
    return c;
  }

  sim::network& net() { return net_; }
  node_type& node(std::size_t i) { return *nodes_[i]; }
  std::size_t size() const { return nodes_.size(); }
  const node_scenario_result& result() const { return result_; }

  // Adds a node and joins it through a live member (or founds the cluster).
  std::size_t add_node() {
    const std::size_t i = nodes_.size();
    node_config c = base_config();
    c.name = "node-" + std::to_string(i);
    nodes_.push_back(std::make_unique<node_type>(net_, c, mix64(cfg_.seed * 131 + i)));
    state_.push_back({});
    node_type& n = *nodes_[i];
    n.on_status = [this, i](const node_status& s) {
      state_[i].status = s.state;
      if (s.state == node_state::left && s.error && s.error != errc::timed_out)
        violation("node " + std::to_string(i) + " refused: " + s.error.message());
    };
    // A refused operation completes inside the call, before the client has
    // recorded its id: completions are handled as their own events.
    n.on_put = [this, i](const put_completion& p) {
      net_.schedule_after(duration{0}, [this, i, p] { on_put(i, p); });
    };
    n.on_get = [this, i](const get_completion& g) {
      net_.schedule_after(duration{0}, [this, i, g] { on_get(i, g); });
    };
    std::vector<sim::endpoint> seeds;
    for (std::size_t j = 0; j < i; ++j)
      if (serving(j)) seeds.push_back(nodes_[j]->packet_endpoint());
    if (seeds.size() > 2) seeds.resize(2);
    if (seeds.empty() && i > 0)
      seeds.push_back(nodes_[0]->packet_endpoint());  // the first nodes start together
    (void)n.join(seeds);
    return i;
  }

  bool serving(std::size_t i) const {
    return nodes_[i]->up() && state_[i].status == node_state::joined && !state_[i].crashed;
  }
  std::optional<std::size_t> random_serving() {
    std::vector<std::size_t> up;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (serving(i)) up.push_back(i);
    if (up.empty()) return std::nullopt;
    return up[rng_.below(up.size())];
  }

  // Runs until every node joined (bounded).
  bool settle(duration bound) {
    return net_.run_until(net_.now() + bound, [this] {
      for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (!state_[i].crashed && state_[i].status != node_state::joined &&
            state_[i].status != node_state::left)
          return false;
      return true;
    });
  }

  void start_clients(duration for_how_long) {
    stop_at_ = net_.now() + for_how_long;
    for (std::size_t c = 0; c < cfg_.clients; ++c) later(c);
  }

  void crash(std::size_t i) {
    state_[i].crashed = true;
    nodes_[i]->crash();
  }
  void restart(std::size_t i, bool with_state) {
    state_[i].crashed = false;
    state_[i].status = node_state::joining;
    nodes_[i]->restart(with_state);
  }

  // The end of every scenario: faults stop, clients drain, then A-D.
  void finish() {
    // Faults stop: partitions heal and every link stops losing, duplicating
    // and reordering (a read through lossy links may be answered by sloppy
    // fallbacks only, which is Dynamo's contract, not a lost write).
    net_.heal_all();
    if (cfg_.lossy) {
      sim::link_config clean = network_config(cfg_).link;
      clean.loss = clean.duplicate = clean.reorder = 0;
      for (std::uint32_t a = 1; a <= net_.endpoint_count(); ++a)
        for (std::uint32_t b = 1; b <= net_.endpoint_count(); ++b)
          if (a != b) net_.set_link(sim::endpoint{a}, sim::endpoint{b}, clean);
    }
    stop_at_ = std::min(stop_at_, net_.now());  // clients issue nothing more
    net_.run_for(seconds(4));                   // and what they issued ends
    // C: placement agreement once membership converged (bounded wait).
    const time_point start = net_.now();
    const duration bound = seconds(30);
    bool agreed = net_.run_until(start + bound, [this] { return placements_agree() && converged(); });
    result_.converged = agreed;
    result_.converged_after = net_.now() - start;
    if (!placements_agree())
      violation("C: live nodes' placements differ after " + std::to_string(bound.count()) + "ns");
    if (!converged()) violation("B: holders of some key still differ: " + first_divergence_);
    check_reads();
    // D holds past the handoff bound: a range handed off is dropped in
    // batches after its holders acknowledged it, so wait for that (bounded).
    (void)net_.run_until(net_.now() + seconds(15), [this] { return stale_keys() == 0; });
    check_no_stale();
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (serving(i) && !nodes_[i]->core().check_invariants())
        violation("SWIM invariants broken on " + std::to_string(i));
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      result_.keys_moved += nodes_[i]->core().stats().handoff_keys_received;
      result_.bytes_moved += nodes_[i]->core().stats().handoff_bytes_received;
    }
  }

  void violation(std::string what) {
    if (result_.violations.size() < 20) result_.violations.push_back(std::move(what));
  }

  std::size_t acked_count() const {
    std::size_t n = 0;
    for (const auto& [k, s] : acked_) n += s.size();
    return n;
  }

 private:
  struct node_state_view {
    node_state status = node_state::joining;
    bool crashed = false;
  };
  struct pending {
    std::size_t client = 0;
    std::size_t key = 0;
    bool write = false;
    std::uint64_t element = 0;
  };

  static sim::network_config network_config(const node_scenario_config& c) {
    sim::network_config nc;
    nc.max_message_size = 1 << 20;
    nc.link.latency_mean = micros(300);
    nc.link.jitter = micros(200);
    if (c.lossy) {
      nc.link.loss = 0.03;
      nc.link.duplicate = 0.02;
      nc.link.reorder = 0.05;
      nc.link.reorder_delay = millis(5);
    }
    return nc;
  }

  std::string key_name(std::size_t k) const { return "key-" + std::to_string(k); }

  static bytes encode(const std::set<std::uint64_t>& elements) {
    bytes out;
    for (std::uint64_t e : elements)
      for (int b = 0; b < 8; ++b) out.push_back(static_cast<std::byte>((e >> (8 * b)) & 0xFF));
    return out;
  }
  static std::set<std::uint64_t> decode(const bytes& v) {
    std::set<std::uint64_t> out;
    for (std::size_t at = 0; at + 8 <= v.size(); at += 8) {
      std::uint64_t x = 0;
      for (int b = 0; b < 8; ++b)
        x |= static_cast<std::uint64_t>(v[at + static_cast<std::size_t>(b)]) << (8 * b);
      out.insert(x);
    }
    return out;
  }
  static std::set<std::uint64_t> elements_of(const std::vector<versioned_value>& siblings) {
    std::set<std::uint64_t> all;
    for (const auto& v : siblings)
      if (!v.tombstone) {
        auto e = decode(v.value);
        all.insert(e.begin(), e.end());
      }
    return all;
  }

  void later(std::size_t c) {
    net_.schedule_after(cfg_.think + millis(static_cast<std::int64_t>(rng_.below(20))),
                        [this, c] { step(c); });
  }
  void step(std::size_t c) {
    if (net_.now() >= stop_at_) return;
    auto n = random_serving();
    if (!n) return later(c);
    pending p{c, rng_.below(cfg_.keys), false, 0};
    const request_id id = nodes_[*n]->get(key_name(p.key));
    track(*n, id, p);
  }
  void track(std::size_t n, request_id id, pending p) {
    const auto slot = std::make_pair(n, id);
    ops_[slot] = p;
    // A crashed coordinator never answers: the client gives up on its own.
    net_.schedule_after(seconds(3), [this, slot] {
      auto it = ops_.find(slot);
      if (it == ops_.end()) return;
      const pending q = it->second;
      ops_.erase(it);
      if (q.write) ++result_.writes_failed;
      later(q.client);
    });
  }
  void on_get(std::size_t n, const get_completion& g) {
    if (final_reads_) return final_read(n, g);
    auto it = ops_.find({n, g.id});
    if (it == ops_.end()) return;
    pending p = it->second;
    ops_.erase(it);
    if (g.error) {
      ++result_.reads_failed;
      return later(p.client);
    }
    ++result_.reads;
    auto elements = elements_of(g.siblings);
    auto target = random_serving();
    if (!target) return later(p.client);
    p.write = true;
    p.element = next_element_++;
    elements.insert(p.element);
    const request_id id = nodes_[*target]->put(key_name(p.key), encode(elements), g.context);
    track(*target, id, p);
  }
  void on_put(std::size_t n, const put_completion& r) {
    auto it = ops_.find({n, r.id});
    if (it == ops_.end()) return;
    pending p = it->second;
    ops_.erase(it);
    if (r.error) {
      ++result_.writes_failed;
    } else {
      ++result_.writes_acked;
      acked_[p.key].insert(p.element);
    }
    later(p.client);
  }

  bool placements_agree() {
    std::optional<std::uint64_t> fp;
    std::vector<node_id> live;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!serving(i)) continue;
      const auto& core = nodes_[i]->core();
      if (!fp) {
        fp = core.placement().fingerprint();
        live = core.live_members();
      } else if (*fp != core.placement().fingerprint() || live != core.live_members()) {
        return false;
      }
    }
    return true;
  }

  // B: for every key, every holder (under the first serving node's placement) stores the same siblings.
  bool converged() {
    std::optional<std::size_t> ref;
    for (std::size_t i = 0; i < nodes_.size() && !ref; ++i)
      if (serving(i)) ref = i;
    if (!ref) return true;
    const auto& pl = nodes_[*ref]->core().placement();
    for (std::size_t k = 0; k < cfg_.keys; ++k) {
      const std::string key = key_name(k);
      const auto holders = pl.preference_list(pl.position(key), nodes_[*ref]->config().replication.n);
      std::optional<std::set<dot>> first;
      for (node_id h : holders) {
        auto i = index_of(h);
        if (!i || !serving(*i)) continue;
        std::set<dot> dots;
        if (auto e = nodes_[*i]->store().get(key))
          for (const auto& v : e->siblings()) dots.insert(v.version);
        if (!first) {
          first = dots;
        } else if (*first != dots) {
          first_divergence_ = key;
          return false;
        }
      }
    }
    return true;
  }

  std::optional<std::size_t> index_of(node_id id) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i]->core().id() == id) return i;
    return std::nullopt;
  }

  // A: every acknowledged element is in a quorum read through two live nodes.
  void check_reads() {
    final_reads_ = true;
    std::vector<std::size_t> readers;
    for (std::size_t i = 0; i < nodes_.size() && readers.size() < 2; ++i)
      if (serving(i)) readers.push_back(i);
    if (readers.empty()) return violation("A: no live node to read through");
    final_results_.clear();
    for (std::size_t r : readers)
      for (std::size_t k = 0; k < cfg_.keys; ++k) {
        const request_id id = nodes_[r]->get(key_name(k));
        final_keys_[{r, id}] = k;
      }
    net_.run_for(seconds(2));
    for (std::size_t r : readers)
      for (std::size_t k = 0; k < cfg_.keys; ++k) {
        auto it = final_results_.find({r, k});
        if (it == final_results_.end()) {
          violation("A: final read of " + key_name(k) + " via node " + std::to_string(r) + " failed");
          continue;
        }
        for (std::uint64_t e : acked_[k])
          if (!it->second.contains(e)) {
            violation("A: acknowledged element " + std::to_string(e) + " of " + key_name(k) +
                      " not read back via node " + std::to_string(r));
            break;
          }
      }
    final_reads_ = false;
  }
  void final_read(std::size_t n, const get_completion& g) {
    auto it = final_keys_.find({n, g.id});
    if (it == final_keys_.end() || g.error) return;
    final_results_[{n, it->second}] = elements_of(g.siblings);
  }

  // f(node, key) for every key a serving node stores in a range it no longer
  // holds and keeps no hint for.
  template <class F>
  void for_each_stale(F&& f) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!serving(i)) continue;
      for (std::size_t k = 0; k < cfg_.keys; ++k) {
        const std::string key = key_name(k);
        if (nodes_[i]->store().get(key) && !nodes_[i]->core().holds(key) && !nodes_[i]->hints().has_key(key))
          f(i, key);
      }
    }
  }

  std::size_t stale_keys() {
    std::size_t stale = 0;
    for_each_stale([&](std::size_t, const std::string&) { ++stale; });
    return stale;
  }

  // D: a serving node stores only keys of ranges it holds (or keeps a hint for).
  void check_no_stale() {
    for_each_stale([this](std::size_t i, const std::string& key) {
      violation("D: node " + std::to_string(i) + " still stores " + key + ", a range it no longer holds");
    });
  }

  node_scenario_config cfg_;
  sim::network net_;
  random_engine rng_;
  std::vector<std::unique_ptr<node_type>> nodes_;
  std::vector<node_state_view> state_;
  node_scenario_result result_;
  time_point stop_at_{};
  std::map<std::pair<std::size_t, request_id>, pending> ops_;
  std::map<std::size_t, std::set<std::uint64_t>> acked_;
  std::uint64_t next_element_ = 1;
  std::string first_divergence_;
  bool final_reads_ = false;
  std::map<std::pair<std::size_t, request_id>, std::size_t> final_keys_;
  std::map<std::pair<std::size_t, std::size_t>, std::set<std::uint64_t>> final_results_;
};

}  // namespace dhtkit::test
