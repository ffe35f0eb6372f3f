// dhtkit walkthrough: what exists today, end to end.
//
//   1. a consistent-hash ring places keys on nodes and says what moves on a join;
//   2. a simulated 6-node cluster stores every key on its 3-node preference
//      list: a client sends wire-encoded puts over a lossy, duplicating
//      simulated network and retries until each replica acknowledges;
//      the run is deterministic, so the same seed gives the same trace hash;
//   3. vector clocks tell ordered writes from concurrent ones.
//
// Run: bash .ci/demo            (or ./build/release/examples/demo [seed])
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <dhtkit/clock/vector_clock.hpp>
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

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 42;
  ring_walkthrough();
  cluster_walkthrough(seed);
  clock_walkthrough();
  return 0;
}
