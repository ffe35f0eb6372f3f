// The DHT node's costs (issue 12): each figure beside a baseline measured in
// the same run.
//
//   bench_node            full run (several minutes: N = 1024 Chord included)
//   bench_node --quick    smoke run, well under a minute (Chord at N = 64 only)
//
// Figures (JSON Lines on stdout, a line per figure on stderr):
//  - sim/ops_per_second: 9 sim nodes (node_config::local(), N/R/W 3/2/2),
//    64 closed-loop clients doing get-then-put (with the get's context) on
//    10,000 keys with 100-byte values; acknowledged operations per CPU second
//    of this thread (one core) while the simulator runs. Baseline: 9 bare
//    replicas (replica<> on a fixed ring, sim::core_driver) under the same
//    workload, same link model, same run.
//  - loopback/put, loopback/get: 3 dhtkit::node on 127.0.0.1 in one
//    io_context on one thread, N/R/W 3/2/2, 100-byte values: operations per
//    second with 16 outstanding, and p50/p99 latency of one outstanding op.
//    Baseline: udp_transport round trips between two sockets (p50/p99 with one
//    outstanding, and per second with 16 outstanding).
//  - rebalance/join_4th: 3 sim nodes loaded through the nodes with 100,000
//    keys (--quick: 20,000), then a 4th joins while 16 clients read random
//    acknowledged keys: keys and bytes moved against the joiner's fair share,
//    virtual time until no range is pending or outbound, reads that failed or
//    missed their value meanwhile.
//  - chord/get at N = 64 and 1024: messages and virtual latency per get with
//    chord placement (owner found by finger-table lookups) against one_hop
//    at the same N; the messages a get adds are the network's sends during a
//    burst of gets minus the background rate (SWIM, Chord stabilization,
//    anti-entropy) measured just before over the same length of time.
#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dhtkit/core/random.hpp"
#include "dhtkit/driver/sim_driver.hpp"
#include "dhtkit/node/node.hpp"
#include "dhtkit/node/sim_node.hpp"
#include "dhtkit/replication/replica.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "dhtkit/transport/sim.hpp"
#include "support/bench.hpp"

namespace {

using dhtkit::bench::baseline;
using wall_clock = std::chrono::steady_clock;
constexpr std::size_t value_size = 100;

// CPU time of this thread: the simulator is single-threaded, so this is the
// cost on one core even when other processes share the machine.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double seconds_since(wall_clock::time_point t0) {
  return std::chrono::duration<double>(wall_clock::now() - t0).count();
}
double sim_ms(dhtkit::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
std::string fixed(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

dhtkit::bytes value_for(std::uint64_t k) {
  dhtkit::bytes v(value_size, std::byte{0x61});
  for (std::size_t b = 0; b < 8; ++b) v[b] = static_cast<std::byte>((k >> (8 * b)) & 0xFF);
  return v;
}
std::string key_name(std::uint64_t k) { return "key-" + std::to_string(k); }

dhtkit::sim::network_config sim_network() {
  dhtkit::sim::network_config nc;  // link: 1 ms +- 0.5 ms one way, no faults
  nc.max_message_size = 1 << 20;   // the stream lane carries handoff chunks
  return nc;
}

dhtkit::node_config node_config(const std::string& name) {
  auto c = dhtkit::node_config::local();
  c.name = name;
  return c;
}

// ---- closed-loop get-then-put clients, over any cluster ----------------------

// `slots` clients: each reads a random key through a random node, then writes
// it back through a random node with the read's context (so siblings do not
// pile up), then starts over. Counts acknowledged operations.
struct rmw_clients {
  std::function<std::uint64_t(std::size_t node, const std::string& key)> get;
  std::function<std::uint64_t(std::size_t node, const std::string& key, const dhtkit::version_vector& ctx)>
      put;
  std::function<void(std::function<void()>)> defer;  // runs f a little later (not inside a completion)
  std::size_t nodes = 0, keys = 10000;
  dhtkit::random_engine rng{42};
  std::uint64_t acked = 0, failed = 0;
  int depth = 0;

  struct op {
    std::size_t slot = 0;
    std::size_t key = 0;
  };
  std::vector<std::unordered_map<std::uint64_t, op>> pending;

  void start(std::size_t slots) {
    pending.resize(nodes);
    for (std::size_t s = 0; s < slots; ++s) next(s);
  }
  void next(std::size_t slot) {
    // A request refused at once completes inside the call: defer instead of recursing.
    if (depth > 4) return defer([this, slot] { next(slot); });
    ++depth;
    const std::size_t n = rng.below(nodes), k = rng.below(keys);
    const std::uint64_t id = get(n, key_name(k));
    pending[n][id] = op{slot, k};
    --depth;
  }
  void on_get(std::size_t n, std::uint64_t id, std::error_code ec, const dhtkit::version_vector& ctx) {
    auto it = pending[n].find(id);
    if (it == pending[n].end()) return;
    const op o = it->second;
    pending[n].erase(it);
    if (ec) {
      ++failed;
      return next(o.slot);
    }
    ++acked;
    ++depth;
    const std::size_t m = rng.below(nodes);
    const std::uint64_t pid = put(m, key_name(o.key), ctx);
    pending[m][pid] = o;
    --depth;
  }
  void on_put(std::size_t n, std::uint64_t id, std::error_code ec) {
    auto it = pending[n].find(id);
    if (it == pending[n].end()) return;
    const op o = it->second;
    pending[n].erase(it);
    ++(ec ? failed : acked);
    next(o.slot);
  }
};

struct throughput {
  std::uint64_t acked = 0, failed = 0;
  double cpu_s = 0, wall_s = 0, sim_s = 0;
  double per_cpu_second() const { return cpu_s > 0 ? static_cast<double>(acked) / cpu_s : 0; }
};

// Runs a warm-up, then measures `measure` of virtual time.
throughput measure_loop(dhtkit::sim::network& net, rmw_clients& clients, dhtkit::duration measure) {
  net.run_for(dhtkit::millis(500));
  const std::uint64_t a0 = clients.acked, f0 = clients.failed;
  const double c0 = thread_cpu_seconds();
  const auto w0 = wall_clock::now();
  net.run_for(measure);
  throughput t;
  t.cpu_s = thread_cpu_seconds() - c0;
  t.wall_s = seconds_since(w0);
  t.sim_s = std::chrono::duration<double>(measure).count();
  t.acked = clients.acked - a0;
  t.failed = clients.failed - f0;
  return t;
}

template <class Node>
bool wait_joined(dhtkit::sim::network& net, std::vector<std::unique_ptr<Node>>& nodes, dhtkit::duration bound,
                 dhtkit::duration check_every) {
  const auto deadline = net.now() + bound;
  const std::size_t n = nodes.size();
  while (net.now() < deadline) {
    bool done = true;
    // Joined, the full member set, and every gained range filled: until then
    // a joiner declines reads of its pending ranges (R = 2 of 3 may fail).
    for (auto& x : nodes) {
      const auto& s = x->core().stats();
      if (x->core().state() != dhtkit::node_state::joined || x->core().live_members().size() != n ||
          s.ranges_pending != 0 || s.ranges_outbound != 0) {
        done = false;
        break;
      }
    }
    if (done) return true;
    net.run_for(check_every);
  }
  return false;
}

template <class Node>
std::vector<std::unique_ptr<Node>> make_nodes(dhtkit::sim::network& net, std::size_t count,
                                              const std::function<void(dhtkit::node_config&)>& tune = {}) {
  std::vector<std::unique_ptr<Node>> nodes;
  for (std::size_t i = 0; i < count; ++i) {
    auto c = node_config("node-" + std::to_string(i));
    if (tune) tune(c);
    nodes.push_back(std::make_unique<Node>(net, c, 1000 + i));
  }
  return nodes;
}

// Node i joins at i x `spacing` through node 0 (node 0 founds the cluster).
template <class Node>
void join_all(dhtkit::sim::network& net, std::vector<std::unique_ptr<Node>>& nodes,
              dhtkit::duration spacing) {
  (void)nodes[0]->join({});
  const dhtkit::sim::endpoint seed = nodes[0]->packet_endpoint();
  for (std::size_t i = 1; i < nodes.size(); ++i) {
    Node* n = nodes[i].get();
    net.schedule_after(spacing * static_cast<std::int64_t>(i), [n, seed] { (void)n->join({seed}); });
  }
}

// ---- 1. sim/ops_per_second ---------------------------------------------------

throughput sim_node_ops(dhtkit::duration measure) {
  dhtkit::sim::network net(1, sim_network());
  auto nodes = make_nodes<dhtkit::sim_node>(net, 9);
  join_all(net, nodes, dhtkit::millis(20));
  if (!wait_joined(net, nodes, dhtkit::seconds(30), dhtkit::millis(50)))
    std::fprintf(stderr, "sim/ops_per_second: the 9 nodes did not converge in 30 s\n");
  net.run_for(dhtkit::seconds(1));  // placement settle and first handoff scans

  rmw_clients cl;
  cl.nodes = nodes.size();
  cl.get = [&](std::size_t n, const std::string& k) { return nodes[n]->get(k); };
  cl.put = [&](std::size_t n, const std::string& k, const dhtkit::version_vector& ctx) {
    return nodes[n]->put(k, value_for(0), ctx);
  };
  cl.defer = [&](std::function<void()> f) { net.schedule_after(dhtkit::millis(1), std::move(f)); };
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    nodes[i]->on_get = [&cl, i](const dhtkit::get_completion& g) { cl.on_get(i, g.id, g.error, g.context); };
    nodes[i]->on_put = [&cl, i](const dhtkit::put_completion& p) { cl.on_put(i, p.id, p.error); };
  }
  cl.start(64);
  return measure_loop(net, cl, measure);
}

throughput bare_replica_ops(dhtkit::duration measure) {
  dhtkit::sim::network net(1, sim_network());
  constexpr std::size_t count = 9;
  struct member {
    dhtkit::sim::endpoint ep{};
    dhtkit::node_id id{};
    dhtkit::memory_storage store{};
    dhtkit::hint_store hints{};
    std::unique_ptr<dhtkit::replica<>> core{};
    std::unique_ptr<dhtkit::sim::core_driver<dhtkit::replica<>>> driver{};
  };
  std::vector<std::unique_ptr<member>> m;
  dhtkit::ring<dhtkit::node_id> ring;
  std::unordered_map<dhtkit::node_id, std::size_t> index;
  for (std::size_t i = 0; i < count; ++i) {
    auto x = std::make_unique<member>();
    x->ep = net.add_endpoint().local_endpoint();
    x->id = dhtkit::node_id::from_name("node-" + std::to_string(i));
    (void)ring.add(x->id);
    index[x->id] = i;
    m.push_back(std::move(x));
  }
  rmw_clients cl;
  cl.nodes = count;
  const auto rcfg = dhtkit::node_config::local().replication;
  for (std::size_t i = 0; i < count; ++i) {
    member& x = *m[i];
    x.core = std::make_unique<dhtkit::replica<>>(x.id, rcfg, ring, x.store, x.hints);
    x.driver = std::make_unique<dhtkit::sim::core_driver<dhtkit::replica<>>>(net.transport(x.ep), *x.core);
    x.driver->to_endpoint = [&m, &index](const dhtkit::node_id& id) { return m[index.at(id)]->ep; };
    x.driver->from_endpoint = [&m](const dhtkit::sim::endpoint& ep) { return m[ep.id - 1]->id; };
    x.driver->on_outbox = [&cl, i](dhtkit::replica_outbox& out) {
      auto puts = std::move(out.puts);
      auto gets = std::move(out.gets);
      for (const auto& p : puts) cl.on_put(i, p.id, p.error);
      for (const auto& g : gets) cl.on_get(i, g.id, g.error, g.context);
    };
    x.driver->start();
  }
  cl.get = [&](std::size_t n, const std::string& k) {
    return m[n]->driver->call([&](dhtkit::replica<>& c, dhtkit::time_point now) { return c.get(k, now); });
  };
  cl.put = [&](std::size_t n, const std::string& k, const dhtkit::version_vector& ctx) {
    return m[n]->driver->call(
        [&](dhtkit::replica<>& c, dhtkit::time_point now) { return c.put(k, value_for(0), ctx, now); });
  };
  cl.defer = [&](std::function<void()> f) { net.schedule_after(dhtkit::millis(1), std::move(f)); };
  cl.start(64);
  return measure_loop(net, cl, measure);
}

void bench_sim_ops(const dhtkit::bench::reporter& out, bool quick) {
  const dhtkit::duration measure = quick ? dhtkit::seconds(2) : dhtkit::seconds(10);
  const throughput base = bare_replica_ops(measure);
  const throughput node = sim_node_ops(measure);
  const std::string p =
      "\"nodes\":9,\"nrw\":\"3/2/2\",\"clients\":64,\"keys\":10000,\"value_bytes\":100,\"sim_s\":" +
      std::to_string(static_cast<int>(node.sim_s));
  auto extra = [](const throughput& t) {
    return ",\"acked\":" + std::to_string(t.acked) + ",\"failed\":" + std::to_string(t.failed) +
           ",\"cpu_s\":" + std::to_string(t.cpu_s) + ",\"wall_s\":" + std::to_string(t.wall_s) +
           ",\"per_wall_second\":" +
           std::to_string(t.wall_s > 0 ? static_cast<double>(t.acked) / t.wall_s : 0) +
           ",\"per_sim_second\":" + std::to_string(static_cast<double>(t.acked) / t.sim_s);
  };
  out.emit("sim/ops_per_second", p, node.per_cpu_second(), "ops/cpu_s",
           {"bare_replica", base.per_cpu_second()},
           extra(node) + ",\"baseline_detail\":{" + extra(base).substr(1) + "},\"goal\":100000");
}

// ---- 2. loopback ---------------------------------------------------------------

template <class Pred>
bool run_io_until(asio::io_context& io, Pred done, std::chrono::milliseconds bound) {
  const auto deadline = wall_clock::now() + bound;
  while (!done()) {
    const auto now = wall_clock::now();
    if (now >= deadline) return done();
    io.restart();
    io.run_one_for(deadline - now);
  }
  return true;
}

struct lat_and_rate {
  double p50_us = 0, p99_us = 0, per_second = 0;
  std::uint64_t failed = 0, done = 0;
};

// Round trips over udp_transport between two sockets: b echoes.
lat_and_rate udp_round_trips(int sequential, dhtkit::duration concurrent_for, int outstanding) {
  asio::io_context io;
  auto a = dhtkit::udp_transport::open(io.get_executor()).value();
  auto b = dhtkit::udp_transport::open(io.get_executor()).value();
  b.set_receive_handler(
      [&b](const dhtkit::endpoint& from, std::span<const std::byte> msg) { (void)b.send(from, msg); });
  const dhtkit::bytes msg(value_size + 64, std::byte{0x5a});  // about a put's request
  const auto b_ep = b.local_endpoint();
  lat_and_rate r;
  // One outstanding: latency.
  std::vector<double> us;
  wall_clock::time_point t0;
  int replies = 0;
  bool concurrent = false;
  std::uint64_t count = 0;
  a.set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte>) {
    if (concurrent) {
      ++count;
      (void)a.send(b_ep, msg);
      return;
    }
    us.push_back(std::chrono::duration<double, std::micro>(wall_clock::now() - t0).count());
    if (++replies < sequential) {
      t0 = wall_clock::now();
      (void)a.send(b_ep, msg);
    }
  });
  asio::post(a.get_executor(), [&] {
    t0 = wall_clock::now();
    (void)a.send(b_ep, msg);
  });
  (void)run_io_until(
      io, [&] { return replies >= sequential; }, std::chrono::seconds(20));
  if (us.size() > 10) us.erase(us.begin(), us.begin() + 10);  // warm-up
  r.p50_us = percentile(us, 0.50);
  r.p99_us = percentile(us, 0.99);
  // `outstanding` in flight: rate (a lost datagram lowers the window for good, as it would a client's).
  concurrent = true;
  asio::post(a.get_executor(), [&] {
    for (int i = 0; i < outstanding; ++i) (void)a.send(b_ep, msg);
  });
  const auto w0 = wall_clock::now();
  const auto length = std::chrono::duration_cast<std::chrono::milliseconds>(concurrent_for);
  (void)run_io_until(
      io, [&] { return wall_clock::now() - w0 >= length; }, length + std::chrono::milliseconds(100));
  r.per_second = static_cast<double>(count) / seconds_since(w0);
  r.done = count;
  return r;
}

struct loopback_result {
  lat_and_rate put, get;
  bool joined = false;
};

loopback_result loopback_nodes(int sequential, dhtkit::duration concurrent_for, int outstanding) {
  asio::io_context io;
  std::vector<std::unique_ptr<dhtkit::node>> nodes;
  auto cfg = node_config("lb-0");
  nodes.push_back(std::make_unique<dhtkit::node>(io.get_executor(), cfg));
  int joined = 0;
  nodes[0]->async_join([&](std::error_code ec) { joined += ec ? 0 : 1; });
  (void)run_io_until(
      io, [&] { return joined == 1; }, std::chrono::seconds(10));
  for (int i = 1; i < 3; ++i) {
    auto c = node_config("lb-" + std::to_string(i));
    c.seeds = {nodes[0]->packet_endpoint().to_string()};
    nodes.push_back(std::make_unique<dhtkit::node>(io.get_executor(), c));
    nodes.back()->async_join([&](std::error_code ec) { joined += ec ? 0 : 1; });
  }
  loopback_result r;
  r.joined = run_io_until(
      io, [&] { return joined == 3; }, std::chrono::seconds(10));
  // Every node sees three members and the same placement before clients start.
  bool agreed = false;
  const auto agree_by = wall_clock::now() + std::chrono::seconds(10);
  while (!agreed && wall_clock::now() < agree_by) {
    std::vector<dhtkit::node_stats> s;
    for (auto& n : nodes) n->async_stats([&s](dhtkit::node_stats st) { s.push_back(st); });
    (void)run_io_until(
        io, [&] { return s.size() == 3; }, std::chrono::seconds(1));
    agreed = s.size() == 3;
    for (const auto& st : s)
      agreed = agreed && st.members_alive == 3 && st.placement_fingerprint == s[0].placement_fingerprint &&
               st.ranges_pending == 0 && st.ranges_outbound == 0;
    if (!agreed) {
      const auto until = wall_clock::now() + std::chrono::milliseconds(50);
      (void)run_io_until(
          io, [&] { return wall_clock::now() >= until; }, std::chrono::milliseconds(60));
    }
  }
  r.joined = r.joined && agreed;

  // One outstanding: latency of puts of fresh keys, then gets of them.
  std::uint64_t next_key = 0;
  auto sequential_ops = [&](bool puts) {
    std::vector<double> us;
    int done = 0;
    std::uint64_t failed = 0;
    std::function<void()> issue = [&] {
      if (done >= sequential) return;
      const auto t0 = wall_clock::now();
      const std::size_t via = static_cast<std::size_t>(done) % nodes.size();
      if (puts) {
        const std::uint64_t k = next_key++;
        nodes[via]->async_put(key_name(k), value_for(k), {}, [&, t0](std::error_code ec, dhtkit::put_result) {
          us.push_back(std::chrono::duration<double, std::micro>(wall_clock::now() - t0).count());
          failed += ec ? 1 : 0;
          ++done;
          issue();
        });
      } else {
        const std::uint64_t k = static_cast<std::uint64_t>(done) % std::max<std::uint64_t>(next_key, 1);
        nodes[(via + 1) % nodes.size()]->async_get(
            key_name(k), [&, t0](std::error_code ec, const dhtkit::get_result& g) {
              us.push_back(std::chrono::duration<double, std::micro>(wall_clock::now() - t0).count());
              failed += (ec || g.siblings.empty()) ? 1 : 0;
              ++done;
              issue();
            });
      }
    };
    issue();
    (void)run_io_until(
        io, [&] { return done >= sequential; }, std::chrono::seconds(60));
    if (us.size() > 20) us.erase(us.begin(), us.begin() + 20);
    lat_and_rate l;
    l.p50_us = percentile(us, 0.50);
    l.p99_us = percentile(us, 0.99);
    l.failed = failed;
    return l;
  };
  // `outstanding` in flight for a fixed wall time: rate.
  auto concurrent_ops = [&](bool puts) {
    std::uint64_t done = 0, failed = 0, issued = 0;
    int in_flight = 0;
    bool stop = false;
    const std::uint64_t readable = next_key;
    std::function<void()> issue = [&] {
      if (stop) return;
      ++in_flight;
      const std::size_t via = static_cast<std::size_t>(issued++ % nodes.size());
      if (puts) {
        const std::uint64_t k = next_key++;
        nodes[via]->async_put(key_name(k), value_for(k), {}, [&](std::error_code ec, dhtkit::put_result) {
          --in_flight;
          ++done;
          failed += ec ? 1 : 0;
          issue();
        });
      } else {
        const std::uint64_t k = issued % std::max<std::uint64_t>(readable, 1);
        nodes[via]->async_get(key_name(k), [&](std::error_code ec, const dhtkit::get_result& g) {
          --in_flight;
          ++done;
          failed += (ec || g.siblings.empty()) ? 1 : 0;
          issue();
        });
      }
    };
    const auto w0 = wall_clock::now();
    for (int i = 0; i < outstanding; ++i) issue();
    const auto length = std::chrono::duration_cast<std::chrono::milliseconds>(concurrent_for);
    (void)run_io_until(
        io, [&] { return wall_clock::now() - w0 >= length; }, length + std::chrono::milliseconds(100));
    const double secs = seconds_since(w0);
    stop = true;
    (void)run_io_until(
        io, [&] { return in_flight == 0; }, std::chrono::seconds(5));
    lat_and_rate l;
    l.per_second = static_cast<double>(done - failed) / secs;
    l.failed = failed;
    l.done = done;
    return l;
  };
  r.put = sequential_ops(true);
  r.get = sequential_ops(false);
  const lat_and_rate put_rate = concurrent_ops(true);
  const lat_and_rate get_rate = concurrent_ops(false);
  r.put.per_second = put_rate.per_second;
  r.put.failed += put_rate.failed;
  r.put.done = put_rate.done;
  r.get.per_second = get_rate.per_second;
  r.get.failed += get_rate.failed;
  r.get.done = get_rate.done;
  for (auto& n : nodes) n->close();
  (void)run_io_until(
      io, [] { return false; }, std::chrono::milliseconds(50));
  return r;
}

void bench_loopback(const dhtkit::bench::reporter& out, bool quick) {
  const int sequential = quick ? 300 : 3000;
  const dhtkit::duration concurrent_for = quick ? dhtkit::millis(500) : dhtkit::seconds(3);
  constexpr int outstanding = 16;
  const lat_and_rate udp = udp_round_trips(sequential, concurrent_for, outstanding);
  const loopback_result lb = loopback_nodes(sequential, concurrent_for, outstanding);
  if (!lb.joined) std::fprintf(stderr, "loopback: the 3 nodes did not join and agree within 10 s\n");
  for (const bool puts : {true, false}) {
    const lat_and_rate& l = puts ? lb.put : lb.get;
    const std::string name = puts ? "loopback/put" : "loopback/get";
    const std::string p = "\"nodes\":3,\"nrw\":\"3/2/2\",\"value_bytes\":100,\"joined\":" +
                          std::string(lb.joined ? "true" : "false") +
                          ",\"failed\":" + std::to_string(l.failed);
    out.emit(name + "/ops_per_second", p + ",\"outstanding\":16", l.per_second, "ops/s",
             {"udp_round_trips_per_second", udp.per_second});
    out.emit(name + "/p50", p + ",\"outstanding\":1", l.p50_us, "us", {"udp_round_trip_p50", udp.p50_us});
    out.emit(name + "/p99", p + ",\"outstanding\":1", l.p99_us, "us", {"udp_round_trip_p99", udp.p99_us});
  }
}

// ---- 3. rebalance/join_4th -------------------------------------------------------

struct rebalance_result {
  std::uint64_t keys = 0, load_failed = 0;
  std::uint64_t keys_moved = 0, bytes_moved = 0, joiner_keys_received = 0, keys_dropped = 0;
  std::uint64_t joiner_holds = 0;  // loaded keys the joiner replicates under the final placement
  std::uint64_t reads = 0, reads_failed = 0, reads_missed = 0;
  std::uint64_t reads_before = 0, reads_failed_before = 0;
  double ready_ms = -1;         // virtual time from join() until nothing is pending or outbound
  double joiner_ready_ms = -1;  // ... until the joiner has every gained range (serves all its reads)
  double load_wall_s = 0, move_wall_s = 0;
};

rebalance_result rebalance(std::uint64_t keys) {
  rebalance_result r;
  r.keys = keys;
  dhtkit::sim::network net(3, sim_network());
  auto nodes = make_nodes<dhtkit::sim_node>(net, 4);
  (void)nodes[0]->join({});
  for (std::size_t i = 1; i < 3; ++i) (void)nodes[i]->join({nodes[0]->packet_endpoint()});
  {
    // wait_joined over the first three only
    std::vector<std::unique_ptr<dhtkit::sim_node>> three;
    for (std::size_t i = 0; i < 3; ++i) three.push_back(std::move(nodes[i]));
    (void)wait_joined(net, three, dhtkit::seconds(30), dhtkit::millis(20));
    for (std::size_t i = 0; i < 3; ++i) nodes[i] = std::move(three[i]);
  }
  net.run_for(dhtkit::seconds(1));

  dhtkit::random_engine rng(7);
  std::vector<bool> acked(keys, false);
  std::vector<std::unordered_map<std::uint64_t, std::uint64_t>> pending(4);  // request -> key

  // Load: 256 puts in flight through the first three nodes, each key once.
  const auto w0 = wall_clock::now();
  std::uint64_t next = 0, done = 0;
  std::function<void()> put_next = [&] {
    if (next >= keys) return;
    const std::uint64_t k = next++;
    const std::size_t via = rng.below(3);
    pending[via][nodes[via]->put(key_name(k), value_for(k), {})] = k;
  };
  for (std::size_t i = 0; i < 4; ++i)
    nodes[i]->on_put = [&, i](const dhtkit::put_completion& p) {
      auto it = pending[i].find(p.id);
      if (it == pending[i].end()) return;
      if (!p.error) acked[it->second] = true;
      r.load_failed += p.error ? 1 : 0;
      pending[i].erase(it);
      ++done;
      net.schedule_after(dhtkit::duration{0}, put_next);
    };
  for (int i = 0; i < 256; ++i) put_next();
  (void)net.run_until(net.now() + dhtkit::seconds(600), [&] { return done == keys; });
  net.run_for(dhtkit::seconds(1));  // anti-entropy and hints quiesce
  r.load_wall_s = seconds_since(w0);
  std::vector<std::uint64_t> loaded;
  for (std::uint64_t k = 0; k < keys; ++k)
    if (acked[k]) loaded.push_back(k);

  // Readers: 16 gets in flight of random acknowledged keys, through any joined node.
  bool moving = false, reading = true;
  auto serving = [&](std::size_t i) { return nodes[i]->core().state() == dhtkit::node_state::joined; };
  std::function<void()> read_next = [&] {
    if (!reading || loaded.empty()) return;
    std::size_t via = rng.below(4);
    while (!serving(via)) via = rng.below(4);
    const std::uint64_t k = loaded[rng.below(loaded.size())];
    pending[via][nodes[via]->get(key_name(k))] = k;
  };
  for (std::size_t i = 0; i < 4; ++i)
    nodes[i]->on_get = [&, i](const dhtkit::get_completion& g) {
      auto it = pending[i].find(g.id);
      if (it == pending[i].end()) return;
      const std::uint64_t k = it->second;
      pending[i].erase(it);
      const bool failed = static_cast<bool>(g.error);
      bool found = false;
      for (const auto& v : g.siblings) found = found || (!v.tombstone && v.value == value_for(k));
      if (moving) {
        ++r.reads;
        r.reads_failed += failed ? 1 : 0;
        r.reads_missed += (!failed && !found) ? 1 : 0;
      } else {
        ++r.reads_before;
        r.reads_failed_before += (failed || !found) ? 1 : 0;
      }
      net.schedule_after(dhtkit::duration{0}, read_next);
    };
  for (int i = 0; i < 16; ++i) read_next();
  net.run_for(dhtkit::millis(500));

  // The 4th joins.
  moving = true;
  const auto m0 = wall_clock::now();
  const dhtkit::time_point joined_at = net.now();
  (void)nodes[3]->join({nodes[0]->packet_endpoint()});
  auto ready = [&] {
    if (!serving(3)) return false;
    const auto fp = nodes[3]->core().stats().placement_fingerprint;
    bool outbound = false;
    for (auto& n : nodes) {
      const auto& s = n->core().stats();
      if (n->core().live_members().size() != 4 || s.placement_fingerprint != fp) return false;
      outbound = outbound || s.ranges_outbound != 0;
    }
    if (nodes[3]->core().stats().ranges_pending != 0) return false;
    if (r.joiner_ready_ms < 0) r.joiner_ready_ms = sim_ms(net.now() - joined_at);
    return !outbound;
  };
  if (net.run_until(net.now() + dhtkit::seconds(120), ready)) r.ready_ms = sim_ms(net.now() - joined_at);
  net.run_for(dhtkit::millis(500));  // reads continue past the end of the move
  reading = false;
  net.run_for(dhtkit::seconds(1));
  r.move_wall_s = seconds_since(m0);
  for (auto& n : nodes) {
    const auto& s = n->core().stats();
    r.keys_moved += s.handoff_keys_received;
    r.bytes_moved += s.handoff_bytes_received;
    r.keys_dropped += s.keys_dropped;
  }
  r.joiner_keys_received = nodes[3]->core().stats().handoff_keys_received;
  for (std::uint64_t k : loaded) r.joiner_holds += nodes[3]->core().holds(key_name(k)) ? 1 : 0;
  r.keys = loaded.size();
  return r;
}

void bench_rebalance(const dhtkit::bench::reporter& out, bool quick) {
  const std::uint64_t keys = quick ? 20000 : 100000;
  const rebalance_result r = rebalance(keys);
  // With N = 3 replicas over 4 nodes, a balanced placement gives each node
  // 3/4 of the keys: the joiner's fair share is keys x N / nodes, and only
  // the joiner gains (each old node drops about keys / 4).
  const double fair_keys = static_cast<double>(r.keys) * 3.0 / 4.0;
  const std::string p =
      "\"nodes_before\":3,\"nrw\":\"3/2/2\",\"keys\":" + std::to_string(r.keys) +
      ",\"value_bytes\":100,\"loaded_through\":\"nodes\",\"load_failed\":" + std::to_string(r.load_failed);
  out.emit("rebalance/join_4th/keys_moved", p, static_cast<double>(r.keys_moved), "keys",
           {"fair_share_keys_x_3_over_4", fair_keys},
           ",\"joiner_keys_received\":" + std::to_string(r.joiner_keys_received) + ",\"joiner_holds\":" +
               std::to_string(r.joiner_holds) + ",\"keys_dropped\":" + std::to_string(r.keys_dropped));
  out.emit(
      "rebalance/join_4th/bytes_moved", p, static_cast<double>(r.bytes_moved), "bytes",
      {"fair_share_value_bytes", fair_keys * static_cast<double>(value_size)},
      ",\"bytes_per_key\":" +
          fixed(r.keys_moved ? static_cast<double>(r.bytes_moved) / static_cast<double>(r.keys_moved) : 0));
  out.emit("rebalance/join_4th/time_to_ready", p, r.ready_ms, "sim_ms", {},
           ",\"joiner_ready_sim_ms\":" + fixed(r.joiner_ready_ms) + ",\"wall_s\":" + fixed(r.move_wall_s) +
               ",\"load_wall_s\":" + fixed(r.load_wall_s));
  out.emit("rebalance/join_4th/reads_failed_or_missed", p,
           static_cast<double>(r.reads_failed + r.reads_missed), "reads", {},
           ",\"reads\":" + std::to_string(r.reads) + ",\"failed\":" + std::to_string(r.reads_failed) +
               ",\"missed\":" + std::to_string(r.reads_missed) +
               ",\"reads_before_join\":" + std::to_string(r.reads_before) +
               ",\"bad_reads_before_join\":" + std::to_string(r.reads_failed_before) + ",\"goal\":0");
}

// ---- 4. chord/get against one_hop -----------------------------------------------

struct lookup_cost {
  bool converged = false;
  double messages_per_get = 0, background_per_s = 0;
  double latency_mean_ms = 0, latency_p50_ms = 0, latency_p99_ms = 0;
  std::uint64_t gets = 0, failed = 0, not_found = 0, lookups = 0, disagreements = 0;
  std::uint64_t puts_failed = 0;                    // of the puts that wrote the keys read
  std::map<std::string, std::uint64_t> put_errors;  // why, for the stderr line
  double converge_sim_s = 0, wall_s = 0;
};

template <class Node>
lookup_cost get_cost(std::size_t count, std::size_t gets) {
  const auto w0 = wall_clock::now();
  lookup_cost r;
  dhtkit::sim::network net(5, sim_network());
  auto nodes = make_nodes<Node>(net, count, [count](dhtkit::node_config& c) {
    c.membership.max_members = std::max<std::size_t>(c.membership.max_members, 2 * count);
  });
  join_all(net, nodes, dhtkit::millis(5));
  const dhtkit::time_point t0 = net.now();
  r.converged = wait_joined(net, nodes, dhtkit::seconds(count > 100 ? 300 : 60), dhtkit::millis(250));
  r.converge_sim_s = std::chrono::duration<double>(net.now() - t0).count();
  if (!r.converged) std::fprintf(stderr, "chord/get: %zu nodes did not converge\n", count);
  net.run_for(dhtkit::seconds(5));  // fingers and handoff settle

  dhtkit::random_engine rng(11);
  std::vector<std::unordered_map<std::uint64_t, dhtkit::time_point>> pending(count);
  std::uint64_t done = 0;
  std::vector<double> ms;
  for (std::size_t i = 0; i < count; ++i) {
    nodes[i]->on_put = [&, i](const dhtkit::put_completion& p) {
      if (!pending[i].erase(p.id)) return;
      ++done;
      if (p.error) ++r.puts_failed, ++r.put_errors[p.error.message()];
    };
    nodes[i]->on_get = [&, i](const dhtkit::get_completion& g) {
      auto it = pending[i].find(g.id);
      if (it == pending[i].end()) return;
      ms.push_back(sim_ms(net.now() - it->second));
      r.failed += g.error ? 1 : 0;
      r.not_found += (!g.error && g.siblings.empty()) ? 1 : 0;
      pending[i].erase(it);
      ++done;
    };
  }
  for (std::size_t k = 0; k < gets; ++k) {
    const std::size_t via = rng.below(count);
    pending[via][nodes[via]->put(key_name(k), value_for(k), {})] = net.now();
  }
  (void)net.run_until(net.now() + dhtkit::seconds(30), [&] { return done == gets; });
  net.run_for(dhtkit::seconds(1));

  // Background: what the cluster sends with no client traffic.
  const dhtkit::duration quiet = dhtkit::seconds(2);
  const std::uint64_t q0 = net.stats().sent;
  net.run_for(quiet);
  r.background_per_s =
      static_cast<double>(net.stats().sent - q0) / std::chrono::duration<double>(quiet).count();

  std::uint64_t lookups0 = 0, dis0 = 0;
  for (auto& n : nodes) {
    lookups0 += n->core().stats().lookups;
    dis0 += n->core().stats().lookup_disagreements;
  }
  done = 0;
  const std::uint64_t s0 = net.stats().sent;
  const dhtkit::time_point g0 = net.now();
  for (std::size_t k = 0; k < gets; ++k) {
    // A node other than the one that wrote the key, so nothing is warm.
    const std::size_t via = rng.below(count);
    pending[via][nodes[via]->get(key_name(k))] = net.now();
  }
  (void)net.run_until(net.now() + dhtkit::seconds(30), [&] { return done == gets; });
  const double elapsed = std::chrono::duration<double>(net.now() - g0).count();
  const double sent = static_cast<double>(net.stats().sent - s0) - r.background_per_s * elapsed;
  r.gets = gets;
  r.messages_per_get = sent / static_cast<double>(gets);
  for (auto& n : nodes) {
    r.lookups += n->core().stats().lookups;
    r.disagreements += n->core().stats().lookup_disagreements;
  }
  r.lookups -= lookups0;
  r.disagreements -= dis0;
  double sum = 0;
  for (double x : ms) sum += x;
  r.latency_mean_ms = ms.empty() ? 0 : sum / static_cast<double>(ms.size());
  r.latency_p50_ms = percentile(ms, 0.50);
  r.latency_p99_ms = percentile(ms, 0.99);
  r.wall_s = seconds_since(w0);
  return r;
}

void bench_chord(const dhtkit::bench::reporter& out, bool quick) {
  std::vector<std::size_t> sizes{64};
  if (!quick) sizes.push_back(1024);
  for (std::size_t n : sizes) {
    const std::size_t gets = 500;
    const lookup_cost oh = get_cost<dhtkit::sim_node>(n, gets);
    const lookup_cost ch = get_cost<dhtkit::chord_sim_node>(n, gets);
    auto params = [&](const lookup_cost& c) {
      return "\"nodes\":" + std::to_string(n) + ",\"nrw\":\"3/2/2\",\"gets\":" + std::to_string(c.gets) +
             ",\"converged\":" + (c.converged ? "true" : "false");
    };
    auto extra = [](const lookup_cost& c) {
      return ",\"failed\":" + std::to_string(c.failed) + ",\"not_found\":" + std::to_string(c.not_found) +
             ",\"puts_failed\":" + std::to_string(c.puts_failed) +
             ",\"lookups\":" + std::to_string(c.lookups) +
             ",\"lookup_disagreements\":" + std::to_string(c.disagreements) +
             ",\"background_msgs_per_sim_s\":" + fixed(c.background_per_s) +
             ",\"converge_sim_s\":" + fixed(c.converge_sim_s) + ",\"wall_s\":" + fixed(c.wall_s);
    };
    for (const auto* c : {&oh, &ch})
      for (const auto& [why, count] : c->put_errors)
        std::fprintf(stderr, "chord/get setup (%s): %llu puts failed: %s\n", c == &oh ? "one_hop" : "chord",
                     static_cast<unsigned long long>(count), why.c_str());
    out.emit("chord/get/messages", params(ch), ch.messages_per_get, "msgs/get",
             {"one_hop", oh.messages_per_get}, extra(ch) + ",\"one_hop\":{" + extra(oh).substr(1) + "}");
    out.emit("chord/get/latency_mean", params(ch), ch.latency_mean_ms, "sim_ms",
             {"one_hop", oh.latency_mean_ms});
    out.emit("chord/get/latency_p50", params(ch), ch.latency_p50_ms, "sim_ms",
             {"one_hop", oh.latency_p50_ms});
    out.emit("chord/get/latency_p99", params(ch), ch.latency_p99_ms, "sim_ms",
             {"one_hop", oh.latency_p99_ms});
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = dhtkit::bench::parse_options(argc, argv);
  if (!opt) return 2;
  const dhtkit::bench::reporter out{"node"};
  bench_sim_ops(out, opt->quick);
  bench_loopback(out, opt->quick);
  bench_rebalance(out, opt->quick);
  bench_chord(out, opt->quick);
  return 0;
}
