// A seeded replication scenario on the simulator, shared by the tests and by
// bench_replication_sim / bench_replication.
//
// 5 to 9 replicas (dhtkit::replica over sim::network, each driven by a
// sim::core_driver that ticks it at its next_wakeup()). Clients run a set-add
// workload, Jepsen style: read a key, union the elements of all siblings, add
// one new unique element, write back with the read's context. Every element
// names the write that added it, so "no acknowledged write lost" is checkable:
// an acknowledged element must be in the final union of siblings. Some keys are
// deleted (with the context of a read) after a few writes and then never
// written again. Meanwhile a seeded schedule crashes and restarts nodes (with
// or without volatile state: storage and hints are the durable part and always
// survive, as on disk; what a restart without state loses is the replica core
// -- pending requests, suspicions, anti-entropy sessions, tombstone
// confirmations), partitions the network, clogs links, and the links lose,
// duplicate and reorder messages. A failure detector oracle marks crashed nodes
// down at the others after a delay (partitions are not reported: request
// timeouts must cope). Then everything heals, clients stop, anti-entropy runs
// until every key's true replicas hold identical state (counted in rounds),
// and the checks run:
//   1. no acknowledged write is lost (element in the final union, unless a
//      delete whose read contained it was issued);
//   2. with strict quorum and R + W > N, every successful read contains every
//      element acknowledged before the read began;
//   3. after heal, all replicas of every key become identical within
//      max_converge_rounds anti-entropy intervals;
//   4. deleted elements never come back (also after tombstone collection);
//   5. every sibling set (reads and stored) is an antichain of the true
//      causality (no sibling is in another's causal past), so siblings never
//      exceed truly concurrent writers; every clock has at most N entries.
// One exception to 4 and 5, by design (see replication/replica.hpp): a
// put forwarded to a true replica that did not answer in time is passed on to
// another, and if the first had stored it after all, the client's one write
// has two dots -- two write events, as with any client retry. The harness
// sees every forward_put on the wire; for a write sent to k true replicas it
// allows up to k siblings with its value, and judges 4 and 5 for such a write
// per dot (a read or delete that saw one of its dots did not see the others).
// For every other write a dot is a write, and the checks are the plain ones.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dhtkit/core/random.hpp"
#include "dhtkit/driver/sim_driver.hpp"
#include "dhtkit/replication/replica.hpp"
#include "dhtkit/transport/sim.hpp"

namespace dhtkit::test {

struct scenario_config {
  std::uint64_t seed = 1;
  std::size_t nodes = 5;
  replica_config replica = defaults();
  bool faults = true;                                    // crashes, partitions, clogs, lossy links
  double loss = 0.02, duplicate = 0.02, reorder = 0.05;  // link faults when `faults`
  std::size_t clients = 4;
  std::size_t set_keys = 3;     // keys that are only ever added to
  std::size_t delete_keys = 2;  // keys written a few times, then deleted
  std::size_t writes_before_delete = 4;
  duration workload = seconds(3);
  duration think = millis(20);  // pause between a client's operations
  std::size_t max_converge_rounds = 300;
  bool collect_phase = true;  // then wait past tombstone collection and check again
  bool check_convergence = true;

  static replica_config defaults() { return replica_config::local(); }

  // A random but valid scenario for a seed: 5..9 nodes, N/R/W among
  // 3/2/2, 3/1/3, 3/3/1, 3/2/2 strict, 5/3/3; odd seeds strict quorum.
  static scenario_config random(std::uint64_t seed) {
    random_engine rng(seed ^ 0x5EED5EEDULL);
    scenario_config s;
    s.seed = seed;
    s.nodes = 5 + rng.below(5);
    const std::uint64_t shape = rng.below(5);
    const std::uint32_t shapes[5][3] = {{3, 2, 2}, {3, 1, 3}, {3, 3, 1}, {3, 2, 2}, {5, 3, 3}};
    s.replica.n = shapes[shape][0];
    s.replica.r = shapes[shape][1];
    s.replica.w = shapes[shape][2];
    if (s.replica.n > s.nodes) s.replica.n = static_cast<std::uint32_t>(s.nodes);
    s.replica.strict_quorum = (seed % 2) == 1;
    s.clients = 2 + rng.below(4);
    s.loss = static_cast<double>(rng.below(4)) / 100.0;
    s.duplicate = static_cast<double>(rng.below(4)) / 100.0;
    return s;
  }
};

struct scenario_result {
  std::uint64_t seed = 0;
  std::vector<std::string> violations;
  bool converged = false;
  std::uint64_t converge_rounds = 0;  // anti-entropy intervals after heal until identical
  std::uint64_t reads = 0, single_version_reads = 0, reads_failed = 0;
  std::uint64_t writes_acked = 0, writes_failed = 0, deletes_acked = 0;
  std::uint64_t max_siblings_seen = 0, max_clock_entries = 0;
  std::vector<double> get_latency_ms, put_latency_ms;  // simulated
  time_point workload_end{};
  std::uint64_t events = 0;
};

class replication_cluster {
 public:
  explicit replication_cluster(const scenario_config& config)
      : config_(config),
        net_(config.seed, network_config(config)),
        rng_(config.seed * 0x9E3779B97F4A7C15ULL + 7) {
    for (std::size_t i = 0; i < config_.nodes; ++i) {
      auto& t = net_.add_endpoint();
      auto n = std::make_unique<node_state>();
      n->ep = t.local_endpoint();
      n->id = node_id::from_name("replica-" + std::to_string(i));
      (void)ring_.add(n->id);
      nodes_.push_back(std::move(n));
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      by_id_[nodes_[i]->id] = i;
      build(i);
    }
    for (std::size_t k = 0; k < config_.set_keys + config_.delete_keys; ++k) {
      key_state key;
      key.deletable = k >= config_.set_keys;
      key.name = (key.deletable ? "del-" : "set-") + std::to_string(k);
      keys_.push_back(std::move(key));
    }
    for (std::size_t c = 0; c < config_.clients; ++c) clients_.push_back(client_state{});
  }

  static ring_config small_ring() {
    ring_config r;
    r.vnodes_per_unit = 16;
    r.partitions = 1024;
    return r;
  }

  sim::network& net() { return net_; }
  replica<>& core(std::size_t i) { return *nodes_[i]->core; }
  memory_storage& storage(std::size_t i) { return nodes_[i]->store; }
  hint_store& hints(std::size_t i) { return nodes_[i]->hints; }
  std::size_t size() const { return nodes_.size(); }
  const ring<node_id>& placement() const { return ring_; }

  scenario_result run() {
    result_.seed = config_.seed;
    const time_point start = net_.now();
    const time_point end = start + config_.workload;
    for (std::size_t c = 0; c < clients_.size(); ++c)
      net_.schedule_after(millis(1 + static_cast<std::int64_t>(rng_.below(20))),
                          [this, c] { client_step(c); });
    if (config_.faults) schedule_faults(start, end);
    stop_at_ = end;
    net_.run_until(end);
    heal();
    result_.workload_end = net_.now();
    // Let requests in flight finish (client deadlines are 3 request timeouts).
    net_.run_for(3 * config_.replica.request_timeout + millis(50));
    if (config_.check_convergence) {
      for (std::uint64_t round = 0; round <= config_.max_converge_rounds; ++round) {
        if (identical()) {
          result_.converged = true;
          result_.converge_rounds = round;
          break;
        }
        // One round: one anti-entropy interval (at most a second, when it is switched off in effect).
        net_.run_for(std::min(config_.replica.anti_entropy_interval, duration(seconds(1))));
      }
      if (!result_.converged)
        violation("3: replicas not identical after " + std::to_string(config_.max_converge_rounds) +
                  " anti-entropy rounds");
      check_final("after heal");
      if (config_.collect_phase) {
        net_.run_for(config_.replica.tombstone_grace + config_.replica.marker_ttl +
                     20 * config_.replica.anti_entropy_interval);
        if (!identical()) violation("3: replicas differ after tombstone collection");
        check_final("after tombstone collection");
      }
    }
    result_.events = net_.stats().delivered + net_.stats().timers_fired;
    return result_;
  }

  // True when every key's true replicas hold equal state (a marker equals
  // absence) and no hints are left.
  bool identical() {
    for (const auto& n : nodes_)
      if (n->hints.size() != 0) return false;
    for (const auto& k : keys_) {
      auto pl = ring_.preference_list(k.name, config_.replica.n);
      std::optional<versioned_entry> first;
      bool have = false;
      for (const node_id& id : *pl) {
        auto e = nodes_[by_id_.at(id)]->store.get(k.name);
        if (e && e->empty()) e.reset();
        if (!have) {
          first = e;
          have = true;
        } else if (first != e) {
          return false;
        }
      }
    }
    return true;
  }

  const scenario_result& result() const { return result_; }

  // Direct control, for benchmarks that script their own faults.
  sim::endpoint endpoint(std::size_t i) const { return nodes_[i]->ep; }
  const std::string& key_name(std::size_t k) const { return keys_[k].name; }
  std::size_t key_count() const { return keys_.size(); }
  // Crash node i now and tell the others at once (a perfect failure detector).
  void crash_now(std::size_t i) {
    net_.crash(nodes_[i]->ep);
    down_at_.insert(i);
    for (std::size_t j = 0; j < nodes_.size(); ++j)
      if (j != i) verdict(j, nodes_[i]->id, false);
  }
  // Restart node i (state kept) and mark it up everywhere at once.
  void restart_now(std::size_t i) {
    net_.restart(nodes_[i]->ep, true);
    down_at_.erase(i);
    nodes_[i]->driver->rearm();
    for (std::size_t j = 0; j < nodes_.size(); ++j)
      if (j != i) verdict(j, nodes_[i]->id, true);
  }
  void drain_node(std::size_t i) { drain(i); }

 private:
  struct node_state {
    sim::endpoint ep{};
    node_id id{};
    memory_storage store;  // durable
    hint_store hints;      // durable
    std::unique_ptr<replica<>> core;
    std::unique_ptr<sim::core_driver<replica<>>> driver;
  };
  struct key_state {
    std::string name;
    bool deletable = false;
    std::uint64_t acked_writes = 0;
    bool delete_issued = false;
    std::set<std::uint64_t> acked;       // acknowledged elements
    std::set<std::uint64_t> deleted;     // elements read by an issued delete
    std::set<std::uint64_t> superseded;  // writes an acknowledged delete had seen: never to return
    std::set<dot> superseded_dots;       // the dots of them it had seen
  };
  struct client_state {
    bool busy = false;
  };
  struct pending_op {
    std::size_t client = 0;
    std::size_t key = 0;
    enum kind_t { read_for_write, read_for_delete, write, erase } kind = read_for_write;
    time_point started{};
    std::uint64_t element = 0;
    std::set<std::uint64_t> acked_at_start;
    std::set<std::uint64_t> seen;  // a delete: the writes it had seen
    std::set<dot> seen_dots;       // and their dots
  };

  static sim::network_config network_config(const scenario_config& c) {
    sim::network_config n;
    if (c.faults) {
      n.link.loss = c.loss;
      n.link.duplicate = c.duplicate;
      n.link.reorder = c.reorder;
    }
    return n;
  }

  void violation(std::string what) {
    if (result_.violations.size() < 20)
      result_.violations.push_back("seed " + std::to_string(config_.seed) + ": " + std::move(what));
  }

  // ---- driving the cores ----

  // The first build makes the driver; a restart that lost volatile state
  // (build again) points it at the new core and re-arms it.
  void build(std::size_t i) {
    node_state& n = *nodes_[i];
    n.core = std::make_unique<replica<>>(n.id, config_.replica, ring_, n.store, n.hints);
    for (std::size_t j = 0; j < nodes_.size(); ++j)
      if (j != i && down_at_.contains(j)) n.core->mark_dead(nodes_[j]->id);
    if (n.driver) {
      // The crash discarded the timers and, without state, the receive
      // handler: re-arm, then install the handler again.
      n.driver->set_core(*n.core);
      n.driver->rearm();
      n.driver->start();
      return;
    }
    n.driver = std::make_unique<sim::core_driver<replica<>>>(net_.transport(n.ep), *n.core);
    n.driver->to_endpoint = [this](const node_id& id) { return nodes_[by_id_.at(id)]->ep; };
    n.driver->from_endpoint = [this](const sim::endpoint& ep) { return nodes_[ep.id - 1]->id; };
    n.driver->on_send = [this](const node_id& to, std::span<const std::byte> bytes) {
      note_forward(to, bytes);
    };
    n.driver->on_outbox = [this, i](replica_outbox& out) {
      auto puts = std::move(out.puts);
      auto gets = std::move(out.gets);
      for (auto& p : puts) on_put(i, p);
      for (auto& g : gets) on_get(i, g);
    };
    n.driver->start();
  }

  // After a client call: send, report, re-arm.
  void drain(std::size_t i) { nodes_[i]->driver->drain(); }

  // A failure detector's verdict about `about`, given to node j through its
  // driver: mark_alive can give an idle replica work (a peer to exchange
  // with), so its wake-up is re-armed.
  void verdict(std::size_t j, node_id about, bool alive) {
    nodes_[j]->driver->call([&](replica<>& core, time_point) {
      if (alive) {
        core.mark_alive(about);
      } else {
        core.mark_dead(about);
      }
    });
  }

  // Which true replicas each write was forwarded to (see the top comment).
  void note_forward(node_id to, std::span<const std::byte> payload) {
    auto env = wire::decode_envelope(payload, config_.replica.limits);
    if (!env || env->type != detail::repl::forward_put::wire_type) return;
    auto f = wire::decode_payload<detail::repl::forward_put>(*env, config_.replica.limits);
    std::uint64_t writer = 0;
    std::set<std::uint64_t> elements;
    if (f && !f->tombstone && decode_value(f->value, writer, elements)) forwarded_to_[writer].insert(to);
  }
  bool multi_forwarded(std::uint64_t writer) const {
    auto it = forwarded_to_.find(writer);
    return it != forwarded_to_.end() && it->second.size() > 1;
  }

  std::optional<std::size_t> random_up_node() {
    std::vector<std::size_t> up;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (net_.transport(nodes_[i]->ep).is_up()) up.push_back(i);
    if (up.empty()) return std::nullopt;
    return up[rng_.below(up.size())];
  }

  // ---- values: [writer element][count][elements...], 8-byte little-endian ----

  static bytes encode_value(std::uint64_t writer, const std::set<std::uint64_t>& elements) {
    bytes out;
    auto put = [&](std::uint64_t v) {
      for (int b = 0; b < 8; ++b) out.push_back(static_cast<std::byte>((v >> (8 * b)) & 0xFF));
    };
    put(writer);
    put(elements.size());
    for (std::uint64_t e : elements) put(e);
    return out;
  }
  static bool decode_value(const bytes& v, std::uint64_t& writer, std::set<std::uint64_t>& elements) {
    auto get = [&](std::size_t at) {
      std::uint64_t x = 0;
      for (int b = 0; b < 8; ++b)
        x |= static_cast<std::uint64_t>(v[at + static_cast<std::size_t>(b)]) << (8 * b);
      return x;
    };
    if (v.size() < 16) return false;
    writer = get(0);
    const std::uint64_t count = get(8);
    if (v.size() != 16 + 8 * count) return false;
    for (std::uint64_t i = 0; i < count; ++i) elements.insert(get(16 + 8 * static_cast<std::size_t>(i)));
    return true;
  }

  // ---- clients ----

  void client_step(std::size_t c) {
    if (net_.now() >= stop_at_) return;
    auto node = random_up_node();
    if (!node) return later(c);
    // Pick a key; a deletable key past its writes gets deleted once.
    const std::size_t k = rng_.below(keys_.size());
    key_state& key = keys_[k];
    pending_op op;
    op.client = c;
    op.key = k;
    op.started = net_.now();
    if (key.deletable && key.delete_issued) return later(c);
    op.kind = key.deletable && key.acked_writes >= config_.writes_before_delete ? pending_op::read_for_delete
                                                                                : pending_op::read_for_write;
    if (op.kind == pending_op::read_for_delete) key.delete_issued = true;
    op.acked_at_start = key.acked;
    const request_id id = nodes_[*node]->core->get(key.name, net_.now());
    issue(*node, id, std::move(op));
  }

  void issue(std::size_t node, request_id id, pending_op op) {
    const std::size_t c = op.client;
    const auto slot = std::make_pair(node, id);
    ops_[slot] = std::move(op);
    clients_[c].busy = true;
    drain(node);
    // Client-side deadline: a crashed coordinator never answers.
    net_.schedule_after(3 * config_.replica.request_timeout, [this, slot] {
      auto it = ops_.find(slot);
      if (it == ops_.end()) return;
      const pending_op o = it->second;
      ops_.erase(it);
      if (o.kind == pending_op::write) ++result_.writes_failed;
      finish_client(o.client);
    });
  }

  void later(std::size_t c) {
    clients_[c].busy = false;
    net_.schedule_after(config_.think + millis(static_cast<std::int64_t>(rng_.below(20))),
                        [this, c] { client_step(c); });
  }
  void finish_client(std::size_t c) { later(c); }

  void on_get(std::size_t node, const get_completion& g) {
    auto it = ops_.find({node, g.id});
    if (it == ops_.end()) return;
    pending_op op = it->second;
    ops_.erase(it);
    result_.get_latency_ms.push_back(
        std::chrono::duration<double, std::milli>(net_.now() - op.started).count());
    key_state& key = keys_[op.key];
    if (g.error) {
      ++result_.reads_failed;
      if (op.kind == pending_op::read_for_delete) key.delete_issued = false;
      return finish_client(op.client);
    }
    ++result_.reads;
    if (g.siblings.size() <= 1) ++result_.single_version_reads;
    std::set<std::uint64_t> elements, writers;
    std::set<dot> dots;  // ground truth at the dot level: what the next write saw
    check_siblings(g.siblings, "read of " + key.name, &elements, &writers);
    for (const versioned_value& v : g.siblings) {
      std::uint64_t w = 0;
      std::set<std::uint64_t> els;
      if (v.tombstone || !decode_value(v.value, w, els)) continue;
      dots.insert(v.version);
      const auto& p = past_dots_[w];
      dots.insert(p.begin(), p.end());
    }
    check_clock(g.context, "read of " + key.name);
    // 2: strict quorum with R + W > N reads every write acknowledged before it began.
    const auto& rc = config_.replica;
    if (rc.strict_quorum && rc.r + rc.w > rc.n && !key.deletable) {
      for (std::uint64_t e : op.acked_at_start) {
        if (!elements.contains(e)) {
          violation("2: read of " + key.name + " at " +
                    std::to_string(net_.now().time_since_epoch().count()) + "ns misses element " +
                    std::to_string(e) + " acknowledged before it began");
          break;
        }
      }
    }
    auto target = random_up_node();
    if (!target) return finish_client(op.client);
    pending_op next;
    next.client = op.client;
    next.key = op.key;
    next.started = net_.now();
    request_id id = 0;
    if (op.kind == pending_op::read_for_delete) {
      key.deleted.insert(elements.begin(), elements.end());
      next.kind = pending_op::erase;
      for (std::uint64_t w : writers) {
        next.seen.insert(w);
        const auto& p = past_[w];
        next.seen.insert(p.begin(), p.end());
      }
      next.seen_dots = std::move(dots);
      id = nodes_[*target]->core->erase(key.name, g.context, net_.now());
    } else {
      next.kind = pending_op::write;
      next.element = next_element_++;
      std::set<std::uint64_t> past;  // ground truth causality: what this write has seen
      for (std::uint64_t w : writers) {
        past.insert(w);
        const auto& p = past_[w];
        past.insert(p.begin(), p.end());
      }
      past_[next.element] = std::move(past);
      past_dots_[next.element] = std::move(dots);
      elements.insert(next.element);
      id = nodes_[*target]->core->put(key.name, encode_value(next.element, elements), g.context, net_.now());
    }
    issue(*target, id, std::move(next));
  }

  void on_put(std::size_t node, const put_completion& p) {
    auto it = ops_.find({node, p.id});
    if (it == ops_.end()) return;
    pending_op op = it->second;
    ops_.erase(it);
    key_state& key = keys_[op.key];
    if (!p.error) {
      result_.put_latency_ms.push_back(
          std::chrono::duration<double, std::milli>(net_.now() - op.started).count());
      if (op.kind == pending_op::erase) {
        ++result_.deletes_acked;
        key.superseded.insert(op.seen.begin(), op.seen.end());
        key.superseded_dots.insert(op.seen_dots.begin(), op.seen_dots.end());
      } else {
        ++result_.writes_acked;
        ++key.acked_writes;
        key.acked.insert(op.element);
      }
    } else if (op.kind == pending_op::write) {
      ++result_.writes_failed;
    }
    finish_client(op.client);
  }

  // 5: no sibling may be in another's causal past.
  void check_siblings(const std::vector<versioned_value>& siblings, const std::string& where,
                      std::set<std::uint64_t>* elements, std::set<std::uint64_t>* writers) {
    std::vector<std::uint64_t> ws;
    std::vector<dot> ds;
    for (const versioned_value& v : siblings) {
      if (v.tombstone) continue;
      std::uint64_t writer = 0;
      std::set<std::uint64_t> els;
      if (!decode_value(v.value, writer, els)) {
        violation("value of " + where + " does not decode");
        continue;
      }
      ws.push_back(writer);
      ds.push_back(v.version);
      if (elements) elements->insert(els.begin(), els.end());
      if (writers) writers->insert(writer);
    }
    result_.max_siblings_seen = std::max<std::uint64_t>(result_.max_siblings_seen, ws.size());
    for (std::size_t a = 0; a < ws.size(); ++a) {
      for (std::size_t b = 0; b < ws.size(); ++b) {
        if (a == b) continue;
        // A write forwarded to k true replicas may have up to k dots, each a write event.
        const bool seen =
            multi_forwarded(ws[a]) ? past_dots_[ws[b]].contains(ds[a]) : past_[ws[b]].contains(ws[a]);
        const bool duplicate =
            ws[a] == ws[b] && static_cast<std::size_t>(std::count(ws.begin(), ws.end(), ws[a])) >
                                  (multi_forwarded(ws[a]) ? forwarded_to_.at(ws[a]).size() : 1);
        if (duplicate || seen) {
          violation("5: " + where + " keeps write " + std::to_string(ws[a]) + " next to write " +
                    std::to_string(ws[b]) + " which had seen it");
          return;
        }
      }
    }
  }

  void check_clock(const version_vector& v, const std::string& where) {
    result_.max_clock_entries = std::max<std::uint64_t>(result_.max_clock_entries, v.size());
    if (v.size() > config_.replica.n)
      violation("5: clock of " + where + " has " + std::to_string(v.size()) + " entries > N");
  }

  void check_final(const std::string& when) {
    for (const auto& k : keys_) {
      auto pl = ring_.preference_list(k.name, config_.replica.n);
      for (const node_id& id : *pl) {
        const std::size_t i = by_id_.at(id);
        auto e = nodes_[i]->store.get(k.name);
        std::set<std::uint64_t> elements, writers;
        if (e) {
          check_siblings(e->siblings(), k.name + " on node " + std::to_string(i) + " " + when, &elements,
                         &writers);
          check_clock(e->context(), k.name + " on node " + std::to_string(i));
        }
        for (std::uint64_t a : k.acked) {
          if (!elements.contains(a) && !k.deleted.contains(a)) {
            violation("1: acknowledged element " + std::to_string(a) + " of " + k.name + " lost on node " +
                      std::to_string(i) + " " + when);
            break;
          }
        }
        for (const versioned_value& v : e ? e->siblings() : std::vector<versioned_value>{}) {
          std::uint64_t d = 0;
          std::set<std::uint64_t> els;
          if (v.tombstone || !decode_value(v.value, d, els)) continue;
          if (multi_forwarded(d) ? k.superseded_dots.contains(v.version) : k.superseded.contains(d)) {
            violation("4: deleted write " + std::to_string(d) + " of " + k.name + " came back on node " +
                      std::to_string(i) + " " + when);
            break;
          }
        }
      }
    }
  }

  // ---- faults ----

  void schedule_faults(time_point start, time_point end) {
    time_point t = start + millis(100 + static_cast<std::int64_t>(rng_.below(200)));
    while (t < end - millis(200)) {
      const std::uint64_t kind = rng_.below(10);
      const time_point at = t;
      if (kind < 4) {
        const std::size_t victim = rng_.below(nodes_.size());
        const duration down_for = millis(100 + static_cast<std::int64_t>(rng_.below(700)));
        const bool keep = rng_.below(2) == 0;
        net_.schedule_at(at, [this, victim, down_for, keep] { crash(victim, down_for, keep); });
      } else if (kind < 7) {
        const duration length = millis(200 + static_cast<std::int64_t>(rng_.below(800)));
        const std::uint64_t mask = 1 + rng_.below((std::uint64_t{1} << nodes_.size()) - 2);
        net_.schedule_at(at, [this, mask, length] {
          for (std::size_t a = 0; a < nodes_.size(); ++a)
            for (std::size_t b = a + 1; b < nodes_.size(); ++b)
              if (((mask >> a) & 1) != ((mask >> b) & 1)) net_.partition(nodes_[a]->ep, nodes_[b]->ep);
          net_.schedule_after(length, [this] { net_.heal_all(); });
        });
      } else {
        const std::size_t a = rng_.below(nodes_.size()), b = rng_.below(nodes_.size());
        const duration length = millis(50 + static_cast<std::int64_t>(rng_.below(300)));
        if (a != b)
          net_.schedule_at(at, [this, a, b, length] { net_.clog(nodes_[a]->ep, nodes_[b]->ep, length); });
      }
      t += millis(150 + static_cast<std::int64_t>(rng_.below(350)));
    }
  }

  void crash(std::size_t victim, duration down_for, bool keep_state) {
    auto& t = net_.transport(nodes_[victim]->ep);
    if (!t.is_up()) return;
    // Keep a majority up, so that the workload can make progress.
    std::size_t down = 0;
    for (const auto& n : nodes_) down += net_.transport(n->ep).is_up() ? 0 : 1;
    if (2 * (down + 1) >= nodes_.size()) return;
    net_.crash(nodes_[victim]->ep);
    const std::uint64_t incarnation = t.incarnation();
    down_at_.insert(victim);
    net_.schedule_after(millis(50 + static_cast<std::int64_t>(rng_.below(100))), [this, victim, incarnation] {
      if (net_.transport(nodes_[victim]->ep).is_up() ||
          net_.transport(nodes_[victim]->ep).incarnation() != incarnation)
        return;
      for (std::size_t j = 0; j < nodes_.size(); ++j)
        if (j != victim) verdict(j, nodes_[victim]->id, false);
    });
    net_.schedule_after(down_for, [this, victim, keep_state] { restart(victim, keep_state); });
  }

  void restart(std::size_t victim, bool keep_state) {
    if (net_.transport(nodes_[victim]->ep).is_up()) return;
    net_.restart(nodes_[victim]->ep, keep_state);
    down_at_.erase(victim);
    if (keep_state) {
      nodes_[victim]->driver->rearm();
    } else {
      build(victim);  // storage and hints survive; the core's volatile state does not
    }
    net_.schedule_after(millis(50), [this, victim] {
      for (std::size_t j = 0; j < nodes_.size(); ++j)
        if (j != victim) verdict(j, nodes_[victim]->id, true);
    });
  }

  void heal() {
    net_.heal_all();
    sim::link_config clean;
    for (const auto& a : nodes_)
      for (const auto& b : nodes_)
        if (a != b) net_.set_link(a->ep, b->ep, clean);
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (!net_.transport(nodes_[i]->ep).is_up()) restart(i, rng_.below(2) == 0);
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      for (std::size_t j = 0; j < nodes_.size(); ++j)
        if (i != j) verdict(i, nodes_[j]->id, true);
  }

  scenario_config config_;
  sim::network net_;
  random_engine rng_;
  ring<node_id> ring_{small_ring()};
  std::vector<std::unique_ptr<node_state>> nodes_;
  std::map<node_id, std::size_t> by_id_;
  std::vector<key_state> keys_;
  std::vector<client_state> clients_;
  std::map<std::pair<std::size_t, request_id>, pending_op> ops_;
  std::map<std::uint64_t, std::set<std::uint64_t>> past_;
  std::map<std::uint64_t, std::set<dot>> past_dots_;         // the same per dot
  std::map<std::uint64_t, std::set<node_id>> forwarded_to_;  // write -> true replicas forwarded to
  std::set<std::size_t> down_at_;
  std::uint64_t next_element_ = 1;
  time_point stop_at_{};
  scenario_result result_;
};

inline scenario_result run_scenario(const scenario_config& config) {
  replication_cluster cluster(config);
  return cluster.run();
}

}  // namespace dhtkit::test
