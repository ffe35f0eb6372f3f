// libFuzzer target for the DHT node core's envelope routing
// (include/dhtkit/node/node_core.hpp, detail/node_routing.hpp): scripts of
// received, forged and echoed messages, ticks and client calls
// (protocol_harness.hpp) against one node in a fixed state. Every message
// goes through the node's own dispatcher, on either lane: SWIM (whose alive
// updates carry the node metadata, detail/node_meta.hpp), replication,
// handoff (0x0400-0x0404, detail/handoff_messages.hpp), application messages
// (0x04E0, detail/node_application.hpp) and tags nobody speaks.
//
// The fixed state: node "a" founded a cluster, stored keys, then learnt
// members "b", "c" and "d" from a push-pull and settled its placement, so
// handoff offers to them, replicated writes and a read are in flight and
// their replies find sessions and requests to match.
//
// The oracles are the harness's (no crash, sent messages decode, forged
// payloads round-trip under their protocol's codec) plus the node's
// invariants and bounds.
//
// Built with FUZZ_WRITE_CORPUS, the same file writes a seed corpus:
//
//   node_fuzz_corpus corpus/ && node_fuzz -runs=200000 corpus/
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dhtkit/node/detail/handoff_messages.hpp"
#include "dhtkit/node/detail/node_application.hpp"
#include "dhtkit/node/node_core.hpp"
#include "protocol_harness.hpp"

namespace {

using dhtkit::node_id;
using endpoint = int;
using core_t = dhtkit::basic_node_core<endpoint>;
using address = dhtkit::lane_address<endpoint>;
namespace md = dhtkit::membership::detail;
namespace rp = dhtkit::detail::repl;
namespace ho = dhtkit::detail::handoff;
using app_codec = dhtkit::wire::codec<dhtkit::detail::node::application_message>;

dhtkit::node_config fuzz_config() {
  auto c = dhtkit::node_config::local();
  c.name = "a";
  // Small tables, so one run is cheap and a script can reach the bounds.
  c.placement.partition_bits = 4;
  c.placement.tokens_per_weight = 8;
  c.max_pending_ops = 16;
  c.replication.max_pending = 16;
  c.replication.max_outbox_messages = 64;
  c.membership.max_members = 8;
  c.handoff.chunk_bytes = 4096;
  c.handoff.max_inbound_sessions = 2;
  c.stream_max_message = 64 * 1024;
  c.replication.max_value_size = 16 * 1024;
  c.replication.max_key_size = 250;
  c.replication.limits.max_message_size = 64 * 1024;
  return c;
}

dhtkit::wire_limits swim_limits(const dhtkit::membership::swim_config& c) {
  return dhtkit::wire_limits{c.max_message_size, c.max_metadata_bytes, c.max_members, 16};
}

std::string meta(const char* name, endpoint stream, std::uint8_t flags = 0) {
  return dhtkit::detail::node::encode_meta(
      dhtkit::detail::node::node_meta<endpoint>{1, flags, 1, stream, name}, node_id::from_name(name));
}

md::member_update<endpoint> alive(const char* name, endpoint packet, endpoint stream, std::uint32_t inc = 1) {
  const node_id id = node_id::from_name(name);
  return {id, packet, inc, 0, id, meta(name, stream)};
}

const char* const keys[] = {"a", "b", "c", "user:42", "cart:7", "k"};

struct node_target {
  struct peer {
    node_id id;
    address addr;
  };
  // b, c and d are members (packet and stream endpoints); x is a stranger;
  // the last claims this node's own id.
  std::vector<peer> peers{{node_id::from_name("b"), {11, dhtkit::lane::packet}},
                          {node_id::from_name("b"), {12, dhtkit::lane::stream}},
                          {node_id::from_name("c"), {21, dhtkit::lane::packet}},
                          {node_id::from_name("c"), {22, dhtkit::lane::stream}},
                          {node_id::from_name("d"), {31, dhtkit::lane::packet}},
                          {node_id::from_name("d"), {32, dhtkit::lane::stream}},
                          {node_id::from_name("x"), {91, dhtkit::lane::packet}},
                          {node_id::from_name("a"), {1, dhtkit::lane::packet}}};
  std::vector<std::uint16_t> tags{md::ping<endpoint>::wire_type,
                                  md::ping_req<endpoint>::wire_type,
                                  md::ack<endpoint>::wire_type,
                                  md::nack::wire_type,
                                  md::gossip<endpoint>::wire_type,
                                  md::push_pull<endpoint>::wire_type,
                                  rp::replicate::wire_type,
                                  rp::replicate_ack::wire_type,
                                  rp::read_request::wire_type,
                                  rp::read_reply::wire_type,
                                  rp::forward_put::wire_type,
                                  rp::forward_reply::wire_type,
                                  rp::forward_accept::wire_type,
                                  rp::ae_hashes::wire_type,
                                  rp::ae_diff::wire_type,
                                  rp::ae_push::wire_type,
                                  rp::ae_pull::wire_type,
                                  ho::offer::wire_type,
                                  ho::reply::wire_type,
                                  ho::chunk::wire_type,
                                  ho::ack::wire_type,
                                  ho::cancel::wire_type,
                                  dhtkit::detail::node::application_message::wire_type,
                                  0x0103 /* Chord: not spoken by a one-hop node */};
  dhtkit::wire::tag_range range = dhtkit::wire::tags::node;
  dhtkit::time_point now{dhtkit::seconds(10)};
  dhtkit::memory_storage store;
  dhtkit::hint_store hints;
  dhtkit::handoff_journal journal;
  core_t core{fuzz_config(), 1, 2, store, hints, journal, /*seed=*/5};
  md::swim_codec<endpoint> swim_codec{swim_limits(core.config().membership)};
  rp::codec repl_codec{core.config().replication.limits};
  ho::codec handoff_codec{core.config().replication.limits};
  app_codec application_codec{core.config().replication.limits};

  node_target() {
    (void)core.join({}, now);
    settle();
    const dhtkit::request_options one{1, 1, 1, {}};
    for (const char* k : keys) (void)core.put(k, dhtkit::to_bytes(k), {}, now, one);
    md::push_pull<endpoint> state{md::push_pull<endpoint>::want_reply,
                                  {alive("b", 11, 12), alive("c", 21, 22), alive("d", 31, 32)}};
    (void)core.receive(
        address{11, dhtkit::lane::packet},
        *dhtkit::wire::encode(state, node_id::from_name("b"), swim_limits(core.config().membership)), now);
    settle();
    (void)core.put("user:42", dhtkit::to_bytes("v2"), {}, now);
    (void)core.get("cart:7", now);
  }

  void settle() {
    for (int i = 0; i < 4; ++i) {
      now += dhtkit::millis(60);
      core.tick(now);
    }
  }

  std::error_code receive(const address& from, std::span<const std::byte> bytes) {
    return core.receive(from, bytes, now);
  }
  void tick() { core.tick(now); }
  std::optional<dhtkit::time_point> next_wakeup() const { return core.next_wakeup(); }

  void client(dhtkit_fuzz::reader& in) {
    const std::uint8_t op = in.u8();
    const std::string key = keys[in.u8() % std::size(keys)];
    switch (op % 8) {
      case 0:
      case 1: {
        const auto v = in.bytes(in.u8());
        (void)core.put(key, dhtkit::bytes(v.begin(), v.end()), {}, now);
        break;
      }
      case 2:
        (void)core.erase(key, {}, now);
        break;
      case 3:
        (void)core.get(key, now);
        break;
      case 4:
        (void)core.cancel(in.u8());
        break;
      case 5:
      case 6: {
        const auto v = in.bytes(in.u8());
        (void)core.send_application(peers[in.u8() % peers.size()].id, dhtkit::bytes(v.begin(), v.end()));
        break;
      }
      case 7:
        (void)core.leave(now);
        break;
    }
  }

  // The codec of a tag's protocol, as the node routes it.
  template <class F>
  bool with_codec(std::uint16_t tag, F&& f) {
    if (dhtkit::wire::tags::membership.contains(tag)) return f(swim_codec);
    if (dhtkit::wire::tags::replication.contains(tag)) return f(repl_codec);
    if (tag == dhtkit::detail::node::application_message::wire_type) return f(application_codec);
    if (dhtkit::wire::tags::node.contains(tag)) return f(handoff_codec);
    return false;
  }
  static std::uint16_t tag_of(std::span<const std::byte> b) {
    return b.size() >= 8 ? static_cast<std::uint16_t>(dhtkit::wire::detail::get_le(b.data() + 6, 2)) : 0;
  }

  void drain(std::vector<std::vector<std::byte>>& sent) {
    auto out = core.take_outbox();
    for (auto& m : out.messages) {
      const auto limit = m.to.via == dhtkit::lane::packet ? core.config().packet_max_message
                                                          : core.config().stream_max_message;
      if (m.bytes.size() > limit) dhtkit_fuzz::fail("the node sent a message over its lane's limit");
      if (m.to.endpoint == 1 || m.to.endpoint == 2) dhtkit_fuzz::fail("the node sent a message to itself");
      const bool known = with_codec(tag_of(m.bytes), [&](const auto& codec) {
        dhtkit_fuzz::check_sent(codec, m.bytes);
        return true;
      });
      if (!known) dhtkit_fuzz::fail("the node sent a tag it does not speak");
      sent.push_back(std::move(m.bytes));
    }
    for (const auto& a : out.applications)
      if (a.from == core.id()) dhtkit_fuzz::fail("an application message from ourselves was delivered");
  }

  bool round_trip(std::span<const std::byte> bytes) {
    return with_codec(tag_of(bytes),
                      [&](const auto& codec) { return dhtkit_fuzz::check_round_trip(codec, bytes); });
  }

  void check() const {
    if (!core.check_invariants()) dhtkit_fuzz::fail("node invariants");
    if (core.pending() > core.config().max_pending_ops) dhtkit_fuzz::fail("node pending ops over the bound");
  }
};

}  // namespace

#ifndef FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dhtkit_fuzz::run_script<node_target>({data, size});
  return 0;
}

#else

int main(int argc, char** argv) {
  const auto cfg = fuzz_config();
  const node_id b = node_id::from_name("b"), c = node_id::from_name("c");
  const auto enc = [&](const auto& m, node_id sender) {
    return *dhtkit::wire::encode(m, sender, cfg.replication.limits);
  };
  const auto swim_enc = [&](const auto& m, node_id sender) {
    return *dhtkit::wire::encode(m, sender, swim_limits(cfg.membership));
  };
  // The index of a tag in node_target::tags.
  const node_target probe;
  const auto tag = [&](std::uint16_t t) {
    for (std::size_t i = 0; i < probe.tags.size(); ++i)
      if (probe.tags[i] == t) return static_cast<std::uint8_t>(i);
    return std::uint8_t{0};
  };
  dhtkit::versioned_entry entry;
  (void)entry.update({}, dhtkit::versioned_value{dhtkit::dot{b, 1}, dhtkit::to_bytes("vb"), false,
                                                 dhtkit::versioned_value::never});
  std::vector<std::vector<std::uint8_t>> seeds;
  // Handoff: replies to the offers (patch copies their session ids), then acks.
  for (std::uint8_t patch = 1; patch <= 6; ++patch) {
    dhtkit_fuzz::script_writer w;
    w.forged(tag(ho::reply::wire_type), 0, patch, enc(ho::reply{1, 0, 0, 0, 4}, b));
    w.forged(tag(ho::reply::wire_type), 2, patch, enc(ho::reply{1, 1, 0, 0, 0}, c));
    w.wake();
    w.forged(tag(ho::ack::wire_type), 1, patch, enc(ho::ack{1, 0, 0, false, 0}, b));
    w.forged(tag(ho::ack::wire_type), 1, patch, enc(ho::ack{1, 1, 0, true, 0}, b));
    w.forged(tag(ho::cancel::wire_type), 2, patch, enc(ho::cancel{1, 3}, c));
    w.forged(tag(rp::replicate_ack::wire_type), 0, patch, enc(rp::replicate_ack{1, 0}, b));
    w.forged(tag(rp::read_reply::wire_type), 2, patch, enc(rp::read_reply{1, true, entry, 0}, c));
    w.wake().wake();
    seeds.push_back(w.bytes());
  }
  // Handoff into this node: an offer, chunks, on the stream lane.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(tag(ho::offer::wire_type), 0, 0, enc(ho::offer{900, 0, std::uint64_t{1} << 60, 1, 1, 0}, b));
    w.forged(tag(ho::chunk::wire_type), 1, 0,
             enc(ho::chunk{900, 0, 0, std::uint64_t{1} << 59, false, {ho::key_entry{"zz", entry}}}, b));
    w.forged(tag(ho::chunk::wire_type), 1, 0, enc(ho::chunk{900, 1, 0, 0, true, {}}, b));
    w.wake().wake();
    seeds.push_back(w.bytes());
  }
  // SWIM with node metadata (a new member, a draining one, a malformed one),
  // an application message, a replicate, a read.
  {
    dhtkit_fuzz::script_writer w;
    const node_id e = node_id::from_name("e");
    auto draining = alive("c", 21, 22, 2);
    draining.metadata = meta("c", 22, dhtkit::detail::node::node_meta<endpoint>::draining_flag);
    auto malformed = alive("d", 31, 32, 2);
    malformed.metadata = "not a node's metadata";
    w.forged(tag(md::gossip<endpoint>::wire_type), 0, 0,
             swim_enc(md::gossip<endpoint>{{md::member_update<endpoint>{e, 41, 1, 0, e, meta("e", 42)},
                                            draining, malformed}},
                      b));
    w.forged(tag(md::ping<endpoint>::wire_type), 2, 0,
             swim_enc(md::ping<endpoint>{3, node_id::from_name("a"), {}}, c));
    w.forged(tag(dhtkit::detail::node::application_message::wire_type), 1, 0,
             enc(dhtkit::detail::node::application_message{dhtkit::to_bytes("hello")}, b));
    w.forged(tag(rp::replicate::wire_type), 0, 0, enc(rp::replicate{5, "k", entry, {}}, b));
    w.forged(tag(rp::read_request::wire_type), 2, 0, enc(rp::read_request{6, "a"}, c));
    w.u8(5).u8(5).u8(0).u8(3).raw(std::as_bytes(std::span("abc", 3))).u8(0);  // an application message to b
    w.wake().echo(0, 0).echo(1, 2).wake();
    seeds.push_back(w.bytes());
  }
  // Hostile: a spoofed lane, a stranger, our own id, a tag nobody speaks, raw.
  {
    dhtkit_fuzz::script_writer w;
    w.forged(tag(rp::replicate::wire_type), 0x80 | 0, 0, enc(rp::replicate{5, "k", entry, {}}, b));
    w.forged(tag(rp::replicate::wire_type), 6, 0,
             enc(rp::replicate{5, "k", entry, {}}, node_id::from_name("x")));
    w.forged(tag(md::gossip<endpoint>::wire_type), 7, 0,
             swim_enc(md::gossip<endpoint>{{alive("a", 99, 98, 9)}}, node_id::from_name("a")));
    w.forged(tag(0x0103), 0, 0, enc(dhtkit::detail::node::application_message{}, b));
    w.forged(0xE5, 0, 0, enc(dhtkit::detail::node::application_message{}, b));
    const auto raw = enc(ho::cancel{1, 2}, b);
    w.u8(0).u8(0).u16(static_cast<std::uint16_t>(raw.size())).raw(raw);
    w.u8(5).u8(7).wake().wake();  // leave
    seeds.push_back(w.bytes());
  }
  for (const auto& seed : seeds) dhtkit_fuzz::run_script<node_target>(seed);
  return dhtkit_fuzz::write_corpus(argc, argv, seeds);
}

#endif
