// libFuzzer target for SWIM's messages (include/dhtkit/membership/): scripts
// of received, forged and echoed messages, ticks and client calls
// (protocol_harness.hpp) against one member in a fixed state: it has learnt
// four others from a push-pull and started probing, so acks, nacks and
// ping-req relays find a probe to match.
//
// The oracles are the harness's (no crash, sent messages decode, forged
// payloads round-trip) plus the core's check_invariants() (index, counts,
// suspicions), its member bound and its outbox bound.
//
// Built with FUZZ_WRITE_CORPUS, the same file writes a seed corpus:
//
//   swim_fuzz_corpus corpus/ && swim_fuzz -runs=200000 corpus/
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dhtkit/membership/swim.hpp"
#include "protocol_harness.hpp"

namespace {

using dhtkit::node_id;
using address = std::uint64_t;
using swim = dhtkit::membership::basic_swim<address>;
namespace md = dhtkit::membership::detail;
using update = md::member_update<address>;

dhtkit::membership::swim_config fuzz_config() {
  auto c = dhtkit::membership::swim_config::local();
  // Small bounds, so a script can reach them.
  c.max_members = 8;
  c.max_message_size = 1024;
  c.max_metadata_bytes = 64;
  c.max_pending_relays = 4;
  c.max_outbox_messages = 32;
  return c;
}

dhtkit::wire_limits swim_limits(const dhtkit::membership::swim_config& c) {
  // What the core decodes with (swim.hpp's constructor).
  return dhtkit::wire_limits{c.max_message_size, c.max_metadata_bytes, c.max_members, 16};
}

update alive(std::uint64_t id, std::uint32_t incarnation = 1, std::string meta = {}) {
  return update{node_id{id}, id, incarnation, 0, node_id{id}, std::move(meta)};
}

struct swim_target {
  struct peer {
    node_id id;
    address addr;
  };
  // This node is 1; 2-5 are members; 9 is a stranger; then one claiming our
  // own id and one at the reserved address 0.
  std::vector<peer> peers{{node_id{2}, 2}, {node_id{3}, 3}, {node_id{4}, 4}, {node_id{5}, 5},
                          {node_id{9}, 9}, {node_id{1}, 1}, {node_id{6}, 0}};
  std::vector<std::uint16_t> tags{md::ping<address>::wire_type,   md::ping_req<address>::wire_type,
                                  md::ack<address>::wire_type,    md::nack::wire_type,
                                  md::gossip<address>::wire_type, md::push_pull<address>::wire_type};
  dhtkit::wire::tag_range range = dhtkit::wire::tags::membership;
  dhtkit::time_point now{dhtkit::seconds(10)};
  swim s{node_id{1}, 1, fuzz_config(), /*seed=*/11, "self"};
  md::swim_codec<address> codec{swim_limits(s.config())};

  swim_target() {
    const address seed = 2;
    (void)s.join(std::span<const address>(&seed, 1), now);
    md::push_pull<address> state{md::push_pull<address>::want_reply,
                                 {alive(2), alive(3), alive(4, 2, "m4"), alive(5)}};
    (void)s.receive(2, *dhtkit::wire::encode(state, node_id{2}, swim_limits(s.config())), now);
    // Into the first probe: a ping out, waiting for its ack.
    for (int i = 0; i < 3; ++i) {
      if (auto w = s.next_wakeup()) now = std::max(now, *w);
      s.tick(now);
    }
  }

  std::error_code receive(const address& from, std::span<const std::byte> bytes) {
    return s.receive(from, bytes, now);
  }
  void tick() { s.tick(now); }
  std::optional<dhtkit::time_point> next_wakeup() const { return s.next_wakeup(); }

  void client(dhtkit_fuzz::reader& in) {
    const std::uint8_t op = in.u8();
    switch (op % 4) {
      case 0: {
        const address seeds[] = {in.u8(), in.u8()};
        (void)s.join(seeds, now);
        break;
      }
      case 1:
        (void)s.leave(now);
        break;
      case 2:
      case 3: {
        const auto b = in.bytes(in.u8());
        (void)s.set_metadata(std::string(reinterpret_cast<const char*>(b.data()), b.size()), now);
        break;
      }
    }
  }

  void drain(std::vector<std::vector<std::byte>>& sent) {
    auto out = s.take_outbox();
    if (out.messages.size() > s.config().max_outbox_messages) dhtkit_fuzz::fail("SWIM outbox over its bound");
    for (auto& m : out.messages) {
      if (m.bytes.size() > s.config().max_message_size)
        dhtkit_fuzz::fail("SWIM sent a message over its size");
      if (m.to == address{}) dhtkit_fuzz::fail("SWIM sent to the reserved address");
      dhtkit_fuzz::check_sent(codec, m.bytes);
      sent.push_back(std::move(m.bytes));
    }
  }

  bool round_trip(std::span<const std::byte> bytes) { return dhtkit_fuzz::check_round_trip(codec, bytes); }

  void check() const {
    if (!s.check_invariants()) dhtkit_fuzz::fail("SWIM invariants");
    if (s.size() > s.config().max_members) dhtkit_fuzz::fail("SWIM knows more members than max_members");
    if (s.state_of(node_id{1}) == std::nullopt) dhtkit_fuzz::fail("SWIM forgot itself");
  }
};

}  // namespace

#ifndef FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dhtkit_fuzz::run_script<swim_target>({data, size});
  return 0;
}

#else

int main(int argc, char** argv) {
  const auto limits = swim_limits(fuzz_config());
  const auto enc = [&](const auto& m, std::uint64_t sender) {
    return *dhtkit::wire::encode(m, node_id{sender}, limits);
  };
  const update suspect3{node_id{3}, 3, 1, 1, node_id{2}, {}};
  const update dead4{node_id{4}, 4, 2, 2, node_id{2}, {}};
  const update suspect_self{node_id{1}, 1, 0, 1, node_id{2}, {}};
  const update left5{node_id{5}, 5, 1, 3, node_id{5}, {}};
  std::vector<std::vector<std::uint8_t>> seeds;
  // Acks, nacks from the probed member and helpers (patch copies the probe's seq).
  for (std::uint8_t patch = 1; patch <= 4; ++patch) {
    dhtkit_fuzz::script_writer w;
    w.forged(2, 0, patch, enc(md::ack<address>{1, {alive(3, 2)}}, 2));
    w.forged(2, 1, patch, enc(md::ack<address>{1, {}}, 3));
    w.wake().forged(3, 2, patch, enc(md::nack{1}, 4)).wake().wake();
    seeds.push_back(w.bytes());
  }
  // A ping and a ping-req (for a member, for ourselves), gossip of every state.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(0, 0, 0, enc(md::ping<address>{7, node_id{1}, {suspect3}}, 2));
    w.forged(1, 1, 0, enc(md::ping_req<address>{8, node_id{4}, 4, {dead4}}, 3));
    w.forged(1, 1, 0, enc(md::ping_req<address>{9, node_id{1}, 1, {}}, 3));
    w.forged(4, 2, 0, enc(md::gossip<address>{{suspect_self, left5, alive(9, 1, "new")}}, 4));
    w.tick(150).wake().echo(0, 0).echo(1, 1).wake();
    seeds.push_back(w.bytes());
  }
  // A push-pull join of a new member wanting a reply; metadata; leave.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(5, 4, 0, enc(md::push_pull<address>{3, {alive(9), alive(2, 5)}}, 9));
    w.u8(5).u8(2).u8(3).raw(std::as_bytes(std::span("abc", 3)));
    w.wake().u8(5).u8(1).wake().wake();
    seeds.push_back(w.bytes());
  }
  // Hostile: our own id, address 0, a raw message, an incarnation jump.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(0, 5, 0, enc(md::ping<address>{1, node_id{1}, {}}, 1));
    w.forged(4, 6, 0, enc(md::gossip<address>{{alive(6)}}, 6));
    w.forged(4, 0, 0, enc(md::gossip<address>{{alive(3, 0xFFFFFFFF)}}, 2));
    const auto raw = enc(md::nack{3}, 2);
    w.u8(0).u8(0).u16(static_cast<std::uint16_t>(raw.size())).raw(raw).wake();
    seeds.push_back(w.bytes());
  }
  for (const auto& seed : seeds) dhtkit_fuzz::run_script<swim_target>(seed);
  return dhtkit_fuzz::write_corpus(argc, argv, seeds);
}

#endif
