// libFuzzer target for the quorum replication messages
// (include/dhtkit/replication/): scripts of received, forged and echoed
// messages, ticks and client calls (protocol_harness.hpp) against one replica
// in a fixed state: node 1 of a five-node ring, with keys stored, puts and a
// get waiting for replies and an anti-entropy exchange open, so acks,
// replies, forwards and Merkle answers find something to match.
//
// The oracles are the harness's (no crash, sent messages decode, forged
// payloads round-trip) plus the replica's bounds (pending requests, outbox)
// and the versioned entries' own invariant asserts (Debug build).
//
// Built with FUZZ_WRITE_CORPUS, the same file writes a seed corpus:
//
//   replication_fuzz_corpus corpus/ && replication_fuzz -runs=200000 corpus/
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dhtkit/replication/replica.hpp"
#include "protocol_harness.hpp"

namespace {

using dhtkit::node_id;
namespace rp = dhtkit::detail::repl;

dhtkit::replica_config fuzz_config() {
  auto c = dhtkit::replica_config::local();
  // Small bounds, so a script can reach them.
  c.max_pending = 16;
  c.max_outbox_messages = 64;
  c.max_key_size = 64;
  c.max_value_size = 1024;
  c.limits.max_message_size = 16 * 1024;
  c.limits.max_container_size = 256;
  return c;
}

// Built once: a ring's partition table costs far more than the rest of a
// run. 16 virtual nodes and 1024 partitions: small, the same placement rules.
const dhtkit::ring<node_id>& five_nodes() {
  static const dhtkit::ring<node_id> ring = [] {
    dhtkit::ring_config c;
    c.vnodes_per_unit = 16;
    c.partitions = 1024;
    dhtkit::ring<node_id> r(c);
    for (std::uint64_t i = 1; i <= 5; ++i) (void)r.add(node_id{i});
    return r;
  }();
  return ring;
}

const char* const keys[] = {"a", "b", "c", "user:42", "cart:7", "k"};

struct replication_target {
  using address = node_id;
  struct peer {
    node_id id;
    address addr;
  };
  // This node is 1; 2-5 are ring members; 9 is a stranger; then our own id.
  std::vector<peer> peers{{node_id{2}, node_id{2}}, {node_id{3}, node_id{3}}, {node_id{4}, node_id{4}},
                          {node_id{5}, node_id{5}}, {node_id{9}, node_id{9}}, {node_id{1}, node_id{1}}};
  std::vector<std::uint16_t> tags{
      rp::replicate::wire_type,  rp::replicate_ack::wire_type, rp::read_request::wire_type,
      rp::read_reply::wire_type, rp::forward_put::wire_type,   rp::forward_reply::wire_type,
      rp::ae_hashes::wire_type,  rp::ae_diff::wire_type,       rp::ae_push::wire_type,
      rp::ae_pull::wire_type,    rp::forward_accept::wire_type};
  dhtkit::wire::tag_range range = dhtkit::wire::tags::replication;
  dhtkit::time_point now{dhtkit::seconds(10)};
  dhtkit::memory_storage store;
  dhtkit::hint_store hints;
  dhtkit::replica<> r{node_id{1}, fuzz_config(), five_nodes(), store, hints};
  rp::codec codec{r.config().limits};

  replication_target() {
    // Stored keys (W=1: the local write answers), then writes and a read
    // waiting for the other replicas, then an anti-entropy round.
    const dhtkit::request_options one{3, 1, 1, {}};
    for (const char* k : keys) (void)r.put(k, dhtkit::to_bytes(k), {}, now, one);
    (void)r.put("a", dhtkit::to_bytes("a2"), {}, now);
    (void)r.erase("b", {}, now);
    (void)r.get("c", now);
    now += dhtkit::millis(120);
    r.tick(now);
  }

  std::error_code receive(const address& from, std::span<const std::byte> bytes) {
    return r.receive(from, bytes, now);
  }
  void tick() { r.tick(now); }
  std::optional<dhtkit::time_point> next_wakeup() const { return r.next_wakeup(); }

  void client(dhtkit_fuzz::reader& in) {
    const std::uint8_t op = in.u8();
    const std::string key = keys[in.u8() % std::size(keys)];
    // N, R, W of 0 mean the configuration's; up to 7, past max_n and each other.
    const auto opt = [&in]() -> std::optional<std::uint32_t> {
      const std::uint32_t v = in.u8() % 8u;
      return v == 0 ? std::nullopt : std::optional<std::uint32_t>(v);
    };
    dhtkit::request_options options;
    options.n = opt();
    options.r = opt();
    options.w = opt();
    switch (op % 6) {
      case 0:
      case 1: {
        const auto v = in.bytes(in.u8());
        (void)r.put(key, dhtkit::bytes(v.begin(), v.end()), {}, now, options);
        break;
      }
      case 2:
        (void)r.erase(key, {}, now, options);
        break;
      case 3:
        (void)r.get(key, now, options);
        break;
      case 4:
        r.mark_dead(node_id{in.u8() % 6u});
        break;
      case 5:
        r.mark_alive(node_id{in.u8() % 6u});
        break;
    }
  }

  void drain(std::vector<std::vector<std::byte>>& sent) {
    auto out = r.take_outbox();
    if (out.messages.size() > r.config().max_outbox_messages)
      dhtkit_fuzz::fail("replica outbox over its bound");
    for (auto& m : out.messages) {
      if (m.to == node_id{1}) dhtkit_fuzz::fail("the replica sent a message to itself");
      dhtkit_fuzz::check_sent(codec, m.bytes);
      sent.push_back(std::move(m.bytes));
    }
    for (const auto& p : out.puts)
      if (!p.error && p.acks < p.required) dhtkit_fuzz::fail("a put succeeded short of its quorum");
    for (const auto& g : out.gets)
      if (!g.error && g.replies < g.required) dhtkit_fuzz::fail("a get succeeded short of its quorum");
  }

  bool round_trip(std::span<const std::byte> bytes) { return dhtkit_fuzz::check_round_trip(codec, bytes); }

  void check() const {
    if (r.pending() > r.config().max_pending) dhtkit_fuzz::fail("replica pending over max_pending");
  }
};

}  // namespace

#ifndef FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dhtkit_fuzz::run_script<replication_target>({data, size});
  return 0;
}

#else

int main(int argc, char** argv) {
  const auto limits = fuzz_config().limits;
  const auto enc = [&](const auto& m, std::uint64_t sender) {
    return *dhtkit::wire::encode(m, node_id{sender}, limits);
  };
  // An entry as node 2 would hold it after one write.
  dhtkit::versioned_entry e2;
  (void)e2.update({}, dhtkit::versioned_value{dhtkit::dot{node_id{2}, 1}, dhtkit::to_bytes("v2"), false,
                                              dhtkit::versioned_value::never});
  dhtkit::versioned_entry tomb;
  (void)tomb.update(
      {}, dhtkit::versioned_value{dhtkit::dot{node_id{3}, 4}, {}, true, dhtkit::versioned_value::never});
  std::vector<std::vector<std::uint8_t>> seeds;
  // Acks and read replies to the pending requests (patch copies their ids).
  for (std::uint8_t patch = 1; patch <= 8; ++patch) {
    dhtkit_fuzz::script_writer w;
    w.forged(1, 0, patch, enc(rp::replicate_ack{1, 0}, 2));
    w.forged(3, 1, patch, enc(rp::read_reply{1, true, e2, 0}, 3));
    w.forged(10, 0, patch, enc(rp::forward_accept{1}, 2));
    w.forged(5, 0, patch, enc(rp::forward_reply{1, 0, 2, 2}, 2));
    w.forged(7, 2, patch, enc(rp::ae_diff{1, 0, 0, {0, 3}}, 4));
    w.forged(9, 2, patch, enc(rp::ae_pull{1, 0, {rp::key_entry{"a", e2}}}, 4));
    w.wake().wake();
    seeds.push_back(w.bytes());
  }
  // Requests from peers: a write (and a hinted one), a read, a forwarded put.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(0, 0, 0, enc(rp::replicate{5, "a", e2, node_id{}}, 2));
    w.forged(0, 1, 0, enc(rp::replicate{6, "zz", tomb, node_id{4}}, 3));
    w.forged(2, 2, 0, enc(rp::read_request{7, "user:42"}, 4));
    rp::forward_put f;
    f.request = 8;
    f.key = "cart:7";
    f.value = dhtkit::to_bytes("fwd");
    f.n = 3;
    f.w = 2;
    f.timeout = 300'000'000;
    w.forged(4, 3, 0, enc(f, 5));
    w.tick(100).wake().echo(0, 0).echo(1, 1).wake();
    seeds.push_back(w.bytes());
  }
  // Anti-entropy from a peer: hashes, a push.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(6, 0, 0, enc(rp::ae_hashes{77, 0, 0, {0}, {12345}}, 2));
    w.forged(8, 0, 0, enc(rp::ae_push{77, 0, {1, 2}, {rp::key_entry{"b", tomb}}}, 2));
    w.u8(5).u8(0).u8(2).u8(3).u8(2).u8(2).u8(2).u8('x').u8('y');
    w.u8(5).u8(3).u8(1).u8(0).u8(0).u8(0).wake().wake();
    seeds.push_back(w.bytes());
  }
  // Hostile: a stranger, a spoofed sender, a raw message, an absurd forward.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(0, 4, 0, enc(rp::replicate{1, "a", e2, node_id{}}, 9));
    w.forged(0, 0x80 | 1, 0, enc(rp::replicate{1, "a", e2, node_id{}}, 3));
    rp::forward_put f;
    f.request = 1;
    f.key = "a";
    f.n = 0xFFFFFFFF;
    f.w = 0xFFFFFFFF;
    f.timeout = -1;
    f.expires_at = -5;
    w.forged(4, 0, 0, enc(f, 2));
    const auto raw = enc(rp::read_request{3, "c"}, 2);
    w.u8(0).u8(0).u16(static_cast<std::uint16_t>(raw.size())).raw(raw).wake();
    seeds.push_back(w.bytes());
  }
  for (const auto& seed : seeds) dhtkit_fuzz::run_script<replication_target>(seed);
  return dhtkit_fuzz::write_corpus(argc, argv, seeds);
}

#endif
