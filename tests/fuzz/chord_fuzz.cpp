// libFuzzer target for the Chord router's messages (include/dhtkit/chord/):
// scripts of received, forged and echoed messages, ticks and client calls
// (protocol_harness.hpp) against one router in a fixed state: a member of a
// six-node ring with its successor list, predecessor and fingers installed,
// a stabilize round and lookups in flight, so replies find requests waiting.
//
// The oracles are the harness's (no crash, sent messages decode, forged
// payloads round-trip) plus the router's own invariant checks (asserts in
// this Debug build: the successor list runs strictly clockwise and never
// names the node, request and lookup tables stay within their bounds) and
// its outbox and event bounds.
//
// Built with FUZZ_WRITE_CORPUS, the same file writes a seed corpus of
// scripts with every message type (and replies to the pending requests):
//
//   chord_fuzz_corpus corpus/ && chord_fuzz -runs=200000 corpus/
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dhtkit/chord/router.hpp"
#include "protocol_harness.hpp"

namespace {

using dhtkit::node_id;
using address = std::uint64_t;
using router = dhtkit::chord::basic_router<address>;
using peer_t = dhtkit::chord::peer<address>;
namespace cd = dhtkit::chord::detail;

using chord_codec = dhtkit::wire::codec<cd::state_request, cd::state_reply<address>, cd::rectify<address>,
                                        cd::find_request, cd::find_reply<address>, cd::leave_notice<address>>;

constexpr std::uint64_t self_id = 1000;

dhtkit::wire_limits chord_limits(const dhtkit::chord::router_config& c) {
  // What the router allows itself (router.hpp, limits_for).
  dhtkit::wire_limits w;
  w.max_message_size = 64 * 1024;
  w.max_string_size = 1024;
  w.max_container_size = std::max<std::size_t>(c.max_successor_list_length + 1, c.lookup_candidates);
  return w;
}

dhtkit::chord::router_config fuzz_config() {
  auto c = dhtkit::chord::router_config::local();
  c.successor_list_length = 4;
  // Small bounds, so a script can reach them.
  c.max_pending_lookups = 8;
  c.max_pending_requests = 16;
  c.max_outbox_messages = 64;
  c.max_pending_range_events = 4;
  return c;
}

struct chord_target {
  struct peer {
    node_id id;
    address addr;
  };
  // The ring: 100, 500, 1000 (this node), 2000, 5000, 9000; 7777 is a
  // stranger and the last entry claims this node's own id.
  std::vector<peer> peers{{node_id{100}, 2},  {node_id{500}, 3},  {node_id{2000}, 4},   {node_id{5000}, 5},
                          {node_id{9000}, 6}, {node_id{7777}, 9}, {node_id{self_id}, 1}};
  std::vector<std::uint16_t> tags{cd::state_request::wire_type,       cd::state_reply<address>::wire_type,
                                  cd::rectify<address>::wire_type,    cd::find_request::wire_type,
                                  cd::find_reply<address>::wire_type, cd::leave_notice<address>::wire_type};
  dhtkit::wire::tag_range range = dhtkit::wire::tags::chord;
  dhtkit::time_point now{dhtkit::seconds(10)};
  router r{node_id{self_id}, 1, fuzz_config(), /*seed=*/7};
  chord_codec codec{chord_limits(r.config())};

  chord_target() {
    std::array<std::optional<peer_t>, dhtkit::chord::identifier_bits> fingers{};
    for (std::size_t i = 0; i < 10; ++i) fingers[i] = peer_t{node_id{2000}, 4};
    for (std::size_t i = 10; i < 13; ++i) fingers[i] = peer_t{node_id{9000}, 6};
    fingers[13] = peer_t{node_id{100}, 2};
    dhtkit::chord::detail::router_access::install(
        r, std::optional<peer_t>(peer_t{node_id{500}, 3}),
        std::vector<peer_t>{peer_t{node_id{2000}, 4}, peer_t{node_id{5000}, 5}, peer_t{node_id{9000}, 6},
                            peer_t{node_id{100}, 2}},
        fingers, now);
    // A stabilize round and lookups in flight: pending requests to answer.
    now += dhtkit::millis(250);
    r.tick(now);
    (void)r.lookup(7000, now);
    (void)r.lookup(300, now);
  }

  std::error_code receive(const address& from, std::span<const std::byte> bytes) {
    return r.receive(from, bytes, now);
  }
  void tick() { r.tick(now); }
  std::optional<dhtkit::time_point> next_wakeup() const { return r.next_wakeup(); }

  void client(dhtkit_fuzz::reader& in) {
    const std::uint8_t op = in.u8();
    const auto& p = peers[in.u8() % peers.size()];
    switch (op % 6) {
      case 0:
      case 1:
        (void)r.lookup(in.u64(), now);
        break;
      case 2:
        r.mark_dead(p.id);
        break;
      case 3:
        r.mark_alive(p.id);
        break;
      case 4:
        (void)r.leave(now);
        break;
      case 5:
        (void)r.join(p.addr, now);  // refused unless the router left (or never joined)
        break;
    }
  }

  void drain(std::vector<std::vector<std::byte>>& sent) {
    auto out = r.take_outbox();
    if (out.messages.size() > r.config().max_outbox_messages)
      dhtkit_fuzz::fail("chord outbox over its bound");
    if (out.ranges.size() > r.config().max_pending_range_events + 2)
      dhtkit_fuzz::fail("chord range events over their bound");
    for (auto& m : out.messages) {
      dhtkit_fuzz::check_sent(codec, m.bytes);
      sent.push_back(std::move(m.bytes));
    }
    for (const auto& l : out.lookups)
      if (!l.error && l.owner.id == node_id{}) dhtkit_fuzz::fail("a lookup succeeded without an owner");
  }

  bool round_trip(std::span<const std::byte> bytes) { return dhtkit_fuzz::check_round_trip(codec, bytes); }

  void check() const {
    // The router asserts its own invariants after every call (Debug build);
    // these are the bounds a driver relies on.
    if (r.successors().size() > r.successor_list_length()) dhtkit_fuzz::fail("successor list too long");
    if (r.pending_requests() > r.config().max_pending_requests)
      dhtkit_fuzz::fail("too many pending requests");
    if (r.pending_lookups() > r.config().max_pending_lookups) dhtkit_fuzz::fail("too many pending lookups");
  }
};

}  // namespace

#ifndef FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dhtkit_fuzz::run_script<chord_target>({data, size});
  return 0;
}

#else

int main(int argc, char** argv) {
  const auto enc = [&](const auto& m, node_id sender = node_id{2000}) {
    return *dhtkit::wire::encode(m, sender, chord_limits(fuzz_config()));
  };
  const std::vector<peer_t> list{{node_id{5000}, 5}, {node_id{9000}, 6}, {node_id{100}, 2}};
  std::vector<std::vector<std::uint8_t>> seeds;
  // One of each message from the successor (peer index 2), then ticks.
  {
    dhtkit_fuzz::script_writer s;
    s.forged(0, 2, 0, enc(cd::state_request{42}));
    s.forged(3, 2, 0, enc(cd::find_request{43, 7000}));
    s.forged(2, 1, 0, enc(cd::rectify<address>{peer_t{node_id{500}, 3}}, node_id{500}));
    s.tick(300).wake().wake();
    seeds.push_back(s.bytes());
  }
  // Replies to the router's pending requests (patch copies their ids).
  for (std::uint8_t patch = 1; patch <= 6; ++patch) {
    dhtkit_fuzz::script_writer s;
    s.forged(1, 2, patch, enc(cd::state_reply<address>{1, true, peer_t{node_id{self_id}, 1}, list}));
    s.forged(4, 2, patch, enc(cd::find_reply<address>{1, true, list, {}}));
    s.forged(4, 2, patch, enc(cd::find_reply<address>{1, false, {peer_t{node_id{5000}, 5}}, list}));
    s.wake().forged(1, 3, patch, enc(cd::state_reply<address>{1, false, {}, {}}, node_id{5000}));
    seeds.push_back(s.bytes());
  }
  // A leave from the predecessor and one from the successor; a lookup; echoes.
  {
    dhtkit_fuzz::script_writer s;
    s.forged(5, 1, 0,
             enc(
                 cd::leave_notice<address>{
                     peer_t{node_id{500}, 3}, true, peer_t{node_id{100}, 2}, {peer_t{node_id{self_id}, 1}}},
                 node_id{500}));
    s.forged(
        5, 2, 0,
        enc(cd::leave_notice<address>{peer_t{node_id{2000}, 4}, true, peer_t{node_id{self_id}, 1}, list}));
    s.u8(5).u8(0).u8(0).u64(4242).wake().echo(0, 2).echo(1, 3).wake();
    seeds.push_back(s.bytes());
  }
  // Hostile: a reply naming the sender as its own predecessor; a raw message.
  {
    dhtkit_fuzz::script_writer s;
    s.forged(1, 2, 1, enc(cd::state_reply<address>{1, true, peer_t{node_id{2000}, 4}, list}));
    const auto raw = enc(cd::find_request{9, 1});
    s.u8(0).u8(2).u16(static_cast<std::uint16_t>(raw.size())).raw(raw);
    s.u8(5).u8(2).u8(2).u8(5).u8(4).wake();  // mark 2000 dead, leave
    seeds.push_back(s.bytes());
  }
  // Every seed runs clean through the harness here (no sanitizers, but the
  // oracles and the router's asserts).
  for (const auto& seed : seeds) dhtkit_fuzz::run_script<chord_target>(seed);
  return dhtkit_fuzz::write_corpus(argc, argv, seeds);
}

#endif
