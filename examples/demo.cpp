// dhtkit walkthrough: what exists today, end to end.
//
//   1. a consistent-hash ring places keys on nodes and says what moves on a join;
//   2. a simulated 6-node cluster stores every key on its 3-node preference
//      list: a client sends wire-encoded puts over a lossy, duplicating
//      simulated network and retries until each replica acknowledges;
//      the run is deterministic, so the same seed gives the same trace hash;
//   3. vector clocks tell ordered writes from concurrent ones;
//   4. 64 Chord routers build a ring by joining one at a time, route lookups
//      to the true owner, and keep doing so after a quarter of them crash;
//   5. 32 SWIM members find each other through one seed and declare a crashed
//      member dead everywhere;
//   6. quorum replication keeps accepting writes while a replica is down and
//      hands them back to it (hinted handoff) when it returns.
//
// Run: bash .ci/demo            (or ./build/release/examples/demo [seed])
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <dhtkit/chord/router.hpp>
#include <dhtkit/clock/vector_clock.hpp>
#include <dhtkit/driver/sim_driver.hpp>
#include <dhtkit/membership/swim.hpp>
#include <dhtkit/replication/replica.hpp>
#include <dhtkit/ring/ring.hpp>
#include <dhtkit/transport/sim.hpp>
#include <dhtkit/transport/wire.hpp>

namespace {

struct put_request {
  static constexpr std::uint16_t wire_type = 1;
  std::uint64_t id = 0;
  std::string key;
  std::string value;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, key, value);
  }
};

struct put_ack {
  static constexpr std::uint16_t wire_type = 2;
  std::uint64_t id = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id);
  }
};

using protocol = dhtkit::wire::codec<put_request, put_ack>;

void ring_walkthrough() {
  std::puts("== 1. consistent-hash ring (160 virtual nodes per node)");
  dhtkit::ring<std::string> ring;
  for (const char* n : {"node-a", "node-b", "node-c", "node-d", "node-e"}) (void)ring.add(n);
  for (const char* key : {"user:1", "user:2", "cart:17", "session:9"}) {
    auto replicas = ring.preference_list(key, 3);
    std::printf("  %-10s owner %-7s replicas", key, ring.owner(key)->c_str());
    for (const auto& r : *replicas) std::printf(" %s", r.c_str());
    std::puts("");
  }
  auto moved = ring.add("node-f");
  long double share = 0;
  for (const auto& m : *moved) share += static_cast<long double>(m.end - m.begin) / 18446744073709551616.0L;
  std::printf("  node-f joins: %zu ranges move to it, %.1f%% of the key space (ideal 1/6 = 16.7%%)\n",
              moved->size(), static_cast<double>(share * 100));
}

struct cluster_result {
  std::size_t stored = 0;    // replica copies written
  std::size_t messages = 0;  // messages the network delivered
  std::size_t retries = 0;   // puts the client sent again after no ack
  std::uint64_t trace_hash = 0;
  dhtkit::time_point finished{};
};

// Stores `keys` keys on a 6-node simulated cluster with 3 replicas each.
cluster_result run_cluster(std::uint64_t seed, std::size_t keys) {
  dhtkit::sim::network_config config;
  config.link.loss = 0.05;       // 5% of messages vanish
  config.link.duplicate = 0.02;  // 2% arrive twice
  config.link.reorder = 0.05;    // 5% are held back and overtaken
  dhtkit::sim::network net(seed, config);
  const protocol codec;

  dhtkit::ring<dhtkit::node_id> ring;
  std::map<dhtkit::node_id, dhtkit::sim::node_transport*> nodes;
  std::map<dhtkit::node_id, std::map<std::string, std::string>> stores;
  cluster_result out;

  for (int i = 0; i < 6; ++i) {
    const auto id = dhtkit::node_id::from_name("node-" + std::to_string(i));
    auto& t = net.add_endpoint();
    nodes[id] = &t;
    (void)ring.add(id);
    // A storage node: apply the put (idempotent, so duplicates are harmless), ack it.
    t.set_receive_handler(
        [&, id, &t = t](const dhtkit::sim::endpoint& from, std::span<const std::byte> bytes) {
          ++out.messages;
          auto msg = codec.decode(bytes);
          if (!msg) return;  // corrupt or unknown: dropped, as the network might
          if (auto* put = std::get_if<put_request>(&msg->message)) {
            stores[id][put->key] = put->value;
            if (auto ack = codec.encode(put_ack{put->id}, id)) (void)t.send(from, *ack);
          }
        });
  }

  // The client: one outstanding put per (key, replica), resent every 20 ms until acked.
  auto& client = net.add_endpoint();
  const auto client_id = dhtkit::node_id::from_name("client");
  struct pending {
    dhtkit::sim::endpoint to;
    std::vector<std::byte> bytes;
  };
  std::map<std::uint64_t, pending> unacked;
  client.set_receive_handler([&](const dhtkit::sim::endpoint&, std::span<const std::byte> bytes) {
    ++out.messages;
    auto msg = codec.decode(bytes);
    if (msg)
      if (auto* ack = std::get_if<put_ack>(&msg->message)) unacked.erase(ack->id);
  });

  std::uint64_t next_id = 1;
  for (std::size_t k = 0; k < keys; ++k) {
    const std::string key = "key:" + std::to_string(k);
    for (const auto& replica : *ring.preference_list(key, 3)) {
      const std::uint64_t id = next_id++;
      auto bytes = codec.encode(put_request{id, key, "value-" + std::to_string(k)}, client_id);
      unacked[id] = pending{nodes[replica]->local_endpoint(), std::move(*bytes)};
    }
  }
  // Unreliable network: resend whatever is still unacked every 20 ms.
  std::function<void()> resend = [&] {
    for (auto& [id, p] : unacked) {
      if (!client.send(p.to, p.bytes)) ++out.retries;
    }
    if (!unacked.empty()) client.schedule_after(dhtkit::millis(20), resend);
  };
  for (auto& [id, p] : unacked) (void)client.send(p.to, p.bytes);
  client.schedule_after(dhtkit::millis(20), resend);

  net.run_until(net.now() + dhtkit::seconds(60), [&] { return unacked.empty(); });
  for (const auto& [id, store] : stores) out.stored += store.size();
  out.trace_hash = net.trace_hash();
  out.finished = net.now();
  return out;
}

void cluster_walkthrough(std::uint64_t seed) {
  std::printf("== 2. simulated cluster: 6 nodes, 3 replicas, 5%% loss, 2%% duplication (seed %llu)\n",
              static_cast<unsigned long long>(seed));
  const std::size_t keys = 2000;
  const auto a = run_cluster(seed, keys);
  const auto b = run_cluster(seed, keys);
  const auto c = run_cluster(seed + 1, keys);
  std::printf("  %zu keys -> %zu replica copies stored (expected %zu) in %.1f simulated ms\n", keys, a.stored,
              keys * 3, std::chrono::duration<double, std::milli>(a.finished.time_since_epoch()).count());
  std::printf("  %zu messages delivered; %zu puts were resent for want of an ack\n", a.messages, a.retries);
  std::printf("  trace hash seed %llu: %016llx, again: %016llx (%s); seed %llu: %016llx\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(a.trace_hash),
              static_cast<unsigned long long>(b.trace_hash),
              a.trace_hash == b.trace_hash ? "identical" : "DIFFER",
              static_cast<unsigned long long>(seed + 1), static_cast<unsigned long long>(c.trace_hash));
}

void clock_walkthrough() {
  std::puts("== 3. vector clocks");
  const dhtkit::node_id a{1}, b{2};
  dhtkit::vector_clock base;
  (void)base.increment(a, 1000);
  dhtkit::vector_clock left = base, right = base;
  (void)left.increment(a, 1010);   // node a writes again
  (void)right.increment(b, 1011);  // node b writes without having seen it
  const char* names[] = {"before", "after", "equal", "concurrent"};
  std::printf("  base vs left: %s; left vs right: %s\n", names[static_cast<int>(base.compare(left))],
              names[static_cast<int>(left.compare(right))]);
  dhtkit::vector_clock merged = left;
  (void)merged.merge(right);
  (void)merged.increment(a, 1020);  // a write that read both siblings resolves them
  std::printf("  resolved write vs left: %s, vs right: %s\n", names[static_cast<int>(merged.compare(left))],
              names[static_cast<int>(merged.compare(right))]);
}

// ---- 4. Chord ---------------------------------------------------------------

using chord_router = dhtkit::chord::basic_router<dhtkit::sim::endpoint>;

// The true owner of `key` among `ids` (sorted): the first id at or after it.
std::uint64_t true_owner(const std::vector<std::uint64_t>& ids, std::uint64_t key) {
  auto it = std::lower_bound(ids.begin(), ids.end(), key);
  return it == ids.end() ? ids.front() : *it;
}

void chord_walkthrough(std::uint64_t seed) {
  constexpr std::size_t n = 64;
  std::printf("== 4. Chord: %zu nodes join one by one over a network losing 1%% of messages\n", n);
  dhtkit::sim::network_config net_config;
  net_config.link.loss = 0.01;
  dhtkit::sim::network net(seed, net_config);
  dhtkit::chord::router_config config;
  config.expected_nodes = n;  // successor lists of r = 2 log2 64 = 12

  std::vector<std::unique_ptr<chord_router>> nodes;
  std::vector<std::unique_ptr<dhtkit::sim::core_driver<chord_router>>> drivers;
  std::vector<dhtkit::sim::node_transport*> transports;
  std::vector<dhtkit::chord::lookup_result<dhtkit::sim::endpoint>> results;
  std::vector<std::size_t> live;
  auto join = [&](chord_router& r, dhtkit::time_point now) {
    return r.join(transports[0]->local_endpoint(), now);
  };
  for (std::size_t i = 0; i < n; ++i) {
    auto& t = net.add_endpoint();
    transports.push_back(&t);
    nodes.push_back(std::make_unique<chord_router>(dhtkit::node_id::from_name("chord-" + std::to_string(i)),
                                                   t.local_endpoint(), config, seed + i));
    // The generic driver sends what the router wrote and ticks it when it
    // asks; the demo keeps lookup results and retries a failed join.
    drivers.push_back(std::make_unique<dhtkit::sim::core_driver<chord_router>>(t, *nodes[i]));
    drivers[i]->on_outbox = [&, i](chord_router::outbox_type& out) {
      results.insert(results.end(), out.lookups.begin(), out.lookups.end());
      for (const auto& s : out.status)
        if (s.kind == dhtkit::chord::status_kind::join_failed)
          net.schedule_after(dhtkit::millis(1), [&, i] { (void)drivers[i]->call(join); });
    };
    drivers[i]->start();
    if (i == 0) {
      drivers[0]->call([](chord_router& r, dhtkit::time_point now) { r.create(now); });
    } else {
      (void)drivers[i]->call(join);
    }
    live.push_back(i);
    net.run_until(net.now() + dhtkit::millis(500));
  }

  auto check = [&](const char* when) {
    std::vector<std::uint64_t> ids;
    for (std::size_t i : live) ids.push_back(nodes[i]->id().value);
    std::sort(ids.begin(), ids.end());
    std::size_t right = 0;
    for (std::size_t i : live)
      right += nodes[i]->successor().id.value == true_owner(ids, nodes[i]->id().value + 1);
    // 2000 lookups of random keys from random live nodes.
    std::mt19937_64 rng(seed);
    results.clear();
    for (int k = 0; k < 2000; ++k) {
      const std::size_t from = live[rng() % live.size()];
      (void)drivers[from]->call(
          [&](chord_router& r, dhtkit::time_point now) { return r.lookup(rng(), now); });
    }
    net.run_until(net.now() + dhtkit::seconds(10));
    std::size_t correct = 0, hops = 0;
    for (const auto& r : results) {
      correct += !r.error && r.owner.id.value == true_owner(ids, r.key);
      hops += r.hops;
    }
    std::printf("  %-34s %zu/%zu successors right; %zu/%zu lookups found the true owner, %.2f hops\n", when,
                right, live.size(), correct, results.size(),
                results.empty() ? 0.0 : static_cast<double>(hops) / static_cast<double>(results.size()));
  };
  net.run_until(net.now() + dhtkit::seconds(30));
  check("after the joins and 30 s:");
  // A quarter of the ring crashes at once; no one is told.
  std::mt19937_64 rng(seed + 1);
  for (std::size_t k = 0; k < n / 4; ++k) {
    const std::size_t victim = rng() % live.size();
    net.crash(transports[live[victim]]->local_endpoint());
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  check("16 crash, lookups right away:");
  net.run_until(net.now() + dhtkit::seconds(30));
  check("and 30 s of stabilization later:");
}

// ---- 5. SWIM ----------------------------------------------------------------

using swim_member = dhtkit::membership::basic_swim<dhtkit::sim::endpoint>;

void swim_walkthrough(std::uint64_t seed) {
  constexpr std::size_t n = 32;
  constexpr std::size_t victim = 7;
  std::printf("== 5. SWIM + Lifeguard: %zu members join through one seed, 2%% loss; member %zu crashes\n", n,
              victim);
  dhtkit::sim::network_config net_config;
  net_config.link.loss = 0.02;
  dhtkit::sim::network net(seed, net_config);
  const auto config = dhtkit::membership::swim_config::lan();  // probe every 1 s, as memberlist's LAN

  std::vector<std::unique_ptr<swim_member>> members;
  std::vector<std::unique_ptr<dhtkit::sim::core_driver<swim_member>>> drivers;
  std::vector<dhtkit::sim::node_transport*> transports;
  std::optional<dhtkit::time_point> crashed_at, first_suspect;
  std::size_t dead_views = 0;  // members that have declared the victim dead
  const auto victim_id = dhtkit::node_id::from_name("member-" + std::to_string(victim));
  for (std::size_t i = 0; i < n; ++i) {
    auto& t = net.add_endpoint();
    transports.push_back(&t);
    members.push_back(std::make_unique<swim_member>(dhtkit::node_id::from_name("member-" + std::to_string(i)),
                                                    t.local_endpoint(), config, seed + i));
    drivers.push_back(std::make_unique<dhtkit::sim::core_driver<swim_member>>(t, *members[i]));
    drivers[i]->on_outbox = [&](swim_member::outbox_type& out) {
      for (const auto& e : out.events) {
        if (!crashed_at || e.id != victim_id) continue;
        if (e.kind == dhtkit::membership::event_kind::suspect && !first_suspect) first_suspect = e.at;
        if (e.kind == dhtkit::membership::event_kind::dead) ++dead_views;
      }
    };
    drivers[i]->start();
    if (i > 0) {
      // One join every 200 ms, as a rolling start would: the seed answers at
      // most max_push_pull_replies (8) join requests per period, and a joiner
      // it refuses may take until the next push-pull (30 s) to learn the seed
      // (README, Known limitations).
      net.run_until(net.now() + dhtkit::millis(200));
      const dhtkit::sim::endpoint seeds[] = {transports[0]->local_endpoint()};
      (void)drivers[i]->call([&](swim_member& m, dhtkit::time_point now) { return m.join(seeds, now); });
    }
  }
  net.run_until(net.now() + dhtkit::seconds(20));
  std::size_t complete = 0;
  for (const auto& m : members) complete += m->live_count() == n;
  std::printf("  20 s after the last join: %zu/%zu members see all %zu alive\n", complete, n, n);

  crashed_at = net.now();
  net.crash(transports[victim]->local_endpoint());
  net.run_until(net.now() + dhtkit::seconds(120), [&] { return dead_views == n - 1; });
  auto periods = [&](dhtkit::time_point t) {
    return std::chrono::duration<double>(t - *crashed_at).count() /
           std::chrono::duration<double>(config.probe_interval).count();
  };
  std::printf(
      "  first suspicion after %.1f protocol periods; %zu/%zu live members declared it dead after %.1f\n",
      first_suspect ? periods(*first_suspect) : -1.0, dead_views, n - 1, periods(net.now()));
}

// ---- 6. quorum replication ----------------------------------------------------

void replication_walkthrough(std::uint64_t seed) {
  constexpr std::size_t n = 5;
  std::printf("== 6. replication: %zu nodes, N/R/W = 3/2/2; a replica is down during the writes\n", n);
  dhtkit::sim::network net(seed, dhtkit::sim::network_config{});
  dhtkit::ring<dhtkit::node_id> ring;
  std::vector<dhtkit::node_id> ids;
  for (std::size_t i = 1; i <= n; ++i) {
    ids.push_back(dhtkit::node_id{i});
    (void)ring.add(ids.back());
  }
  // Durable state (store and hints) lives outside the replica, as on disk.
  std::vector<dhtkit::memory_storage> stores(n);
  std::vector<dhtkit::hint_store> hints(n);
  std::vector<std::unique_ptr<dhtkit::replica<>>> nodes(n);
  std::vector<std::unique_ptr<dhtkit::sim::core_driver<dhtkit::replica<>>>> drivers(n);
  std::vector<dhtkit::sim::node_transport*> transports;
  std::map<dhtkit::sim::endpoint, dhtkit::node_id> id_of;
  std::vector<dhtkit::put_completion> puts;
  std::vector<dhtkit::get_completion> gets;
  // The replica names peers by node id (1..n); the driver maps them to the
  // simulator's endpoints (transports 0..n-1) and ticks at next_wakeup().
  auto start = [&](std::size_t i) {
    nodes[i] =
        std::make_unique<dhtkit::replica<>>(ids[i], dhtkit::replica_config{}, ring, stores[i], hints[i]);
    drivers[i] = std::make_unique<dhtkit::sim::core_driver<dhtkit::replica<>>>(*transports[i], *nodes[i]);
    drivers[i]->to_endpoint = [&](dhtkit::node_id id) { return transports[id.value - 1]->local_endpoint(); };
    drivers[i]->from_endpoint = [&](const dhtkit::sim::endpoint& e) { return id_of[e]; };
    drivers[i]->on_outbox = [&](dhtkit::replica_outbox& out) {
      puts.insert(puts.end(), out.puts.begin(), out.puts.end());
      gets.insert(gets.end(), out.gets.begin(), out.gets.end());
    };
    drivers[i]->start();
  };
  for (std::size_t i = 0; i < n; ++i) {
    transports.push_back(&net.add_endpoint());
    id_of[transports[i]->local_endpoint()] = ids[i];
  }
  for (std::size_t i = 0; i < n; ++i) start(i);

  // Node 3 is down while 200 keys are written through node 1; a failure
  // detector (section 5) would tell the others, here we do.
  const std::size_t down = 2;
  net.crash(transports[down]->local_endpoint());
  for (std::size_t i = 0; i < n; ++i)
    if (i != down)
      drivers[i]->call([&](dhtkit::replica<>& r, dhtkit::time_point) { r.mark_dead(ids[down]); });
  constexpr int keys = 200;
  drivers[0]->call([&](dhtkit::replica<>& r, dhtkit::time_point now) {
    for (int k = 0; k < keys; ++k) {
      const std::string key = "key:" + std::to_string(k);
      (void)r.put(key, dhtkit::to_bytes(key), dhtkit::version_vector{}, now);
    }
  });
  net.run_until(net.now() + dhtkit::seconds(2));
  std::size_t ok = 0;
  for (const auto& p : puts) ok += !p.error;
  std::size_t held_hints = 0;
  for (const auto& h : hints) held_hints += h.size();
  std::printf("  %zu/%d puts acknowledged by W=2 while node 3 was down; fallbacks hold %zu hints\n", ok, keys,
              held_hints);

  // It comes back with its disk (store) intact but nothing from while it was down.
  net.restart(transports[down]->local_endpoint(), /*keep_state=*/false);
  start(down);
  for (std::size_t i = 0; i < n; ++i)
    drivers[i]->call([&](dhtkit::replica<>& r, dhtkit::time_point) { r.mark_alive(ids[down]); });
  const std::size_t before = stores[down].stats().keys;
  net.run_until(net.now() + dhtkit::seconds(5));
  held_hints = 0;
  for (const auto& h : hints) held_hints += h.size();
  std::printf(
      "  node 3 restarts holding %zu keys; 5 s of hinted handoff later it holds %zu, %zu hints left\n",
      before, stores[down].stats().keys, held_hints);
  drivers[down]->call([&](dhtkit::replica<>& r, dhtkit::time_point now) {
    for (int k = 0; k < keys; ++k) (void)r.get("key:" + std::to_string(k), now);
  });
  net.run_until(net.now() + dhtkit::seconds(2));
  std::size_t single = 0;
  for (const auto& g : gets) single += !g.error && g.siblings.size() == 1;
  std::printf("  reads through node 3: %zu/%zu found exactly one version\n", single, gets.size());
}
}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 42;
  ring_walkthrough();
  cluster_walkthrough(seed);
  clock_walkthrough();
  chord_walkthrough(seed);
  swim_walkthrough(seed);
  replication_walkthrough(seed);
  return 0;
}
