// The DHT node core's own rules on the simulator: joining and identity, the
// two lanes, hostile peers, and the client-operation bounds.
#include <string>
#include <vector>

#include "dhtkit/node/detail/handoff_messages.hpp"
#include "dhtkit/node/detail/node_lanes.hpp"
#include "dhtkit/node/sim_node.hpp"
#include "dhtkit/replication/detail/messages.hpp"
#include "support/catch.hpp"

using namespace dhtkit;

namespace {

sim::network_config big_messages() {
  sim::network_config nc;
  nc.max_message_size = 1 << 20;
  return nc;
}

node_config named(const std::string& name) {
  node_config c = node_config::local();
  c.name = name;
  return c;
}

// Three nodes, joined: a fixture most tests start from.
struct trio {
  sim::network net{1, big_messages()};
  sim_node a{net, named("a"), 1}, b{net, named("b"), 2}, c{net, named("c"), 3};
  trio() {
    REQUIRE_FALSE(a.join({}));
    REQUIRE_FALSE(b.join({a.packet_endpoint()}));
    REQUIRE_FALSE(c.join({a.packet_endpoint()}));
    REQUIRE(net.run_until(net.now() + seconds(10), [&] {
      for (sim_node* n : {&a, &b, &c})
        if (n->core().state() != node_state::joined || n->core().live_members().size() != 3) return false;
      return true;
    }));
    net.run_for(seconds(1));
  }
};

// A tag no component of the node speaks.
struct odd_message {
  static constexpr std::uint16_t wire_type = 0x0600;
  std::uint64_t x = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x);
  }
};

}  // namespace

TEST_CASE("node lanes: control on the packet lane, bulk on the stream lane") {
  using detail::node::lane_for;
  CHECK(lane_for(0x0201, 1400, 1400, false) == lane::packet);  // SWIM, even at the limit
  CHECK(lane_for(0x0301, 200, 1400, false) == lane::packet);   // a small replicate
  CHECK(lane_for(0x0301, 1401, 1400, false) == lane::stream);  // a value larger than a datagram
  CHECK(lane_for(0x0402, 100, 1400, false) == lane::stream);   // a handoff chunk, whatever its size
  CHECK(lane_for(0x0400, 100, 1400, false) == lane::packet);   // a handoff offer
  CHECK(lane_for(0x0201, 100, 1400, true) == lane::stream);    // single_lane: everything on one path
}

TEST_CASE("node: put through one node, get through another") {
  trio t;
  std::optional<put_completion> put;
  t.a.on_put = [&](const put_completion& p) { put = p; };
  t.a.put("user:42", to_bytes("alice"), {});
  REQUIRE(t.net.run_until(t.net.now() + seconds(2), [&] { return put.has_value(); }));
  CHECK_FALSE(put->error);
  CHECK(put->acks >= 2);
  std::optional<get_completion> got;
  t.c.on_get = [&](const get_completion& g) { got = g; };
  t.c.get("user:42");
  REQUIRE(t.net.run_until(t.net.now() + seconds(2), [&] { return got.has_value(); }));
  REQUIRE_FALSE(got->error);
  REQUIRE(got->siblings.size() == 1);
  CHECK(got->siblings[0].value == to_bytes("alice"));
  CHECK_FALSE(got->context.empty());
}

TEST_CASE("node: every node computes the same placement") {
  trio t;
  CHECK(t.a.core().placement().fingerprint() == t.b.core().placement().fingerprint());
  CHECK(t.b.core().placement().fingerprint() == t.c.core().placement().fingerprint());
  CHECK(t.a.core().stats().members_alive == 3);
}

TEST_CASE("node: operations before joining or beyond the bound are refused at once") {
  sim::network net{2, big_messages()};
  node_config cfg = named("solo");
  cfg.max_pending_ops = 2;
  sim_node n{net, cfg, 1};
  std::vector<put_completion> puts;
  n.on_put = [&](const put_completion& p) { puts.push_back(p); };
  n.put("k", to_bytes("v"), {});
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].error == errc::not_joined);
  REQUIRE_FALSE(n.join({}));
  REQUIRE(net.run_until(net.now() + seconds(2), [&] { return n.core().state() == node_state::joined; }));
  puts.clear();
  request_options slow;
  slow.w = 3;
  slow.n = 3;
  for (int i = 0; i < 3; ++i)
    n.put("k" + std::to_string(i), to_bytes("v"), {}, slow);  // one node cannot make W=3
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].error == errc::limit_exceeded);
  CHECK(n.core().stats().ops_rejected == 2);
  net.run_for(seconds(2));
  REQUIRE(puts.size() == 3);
  CHECK(puts[1].error == errc::quorum_not_reached);
  CHECK(puts[1].acks == 1);
  CHECK(puts[1].required == 3);
}

TEST_CASE("node: a second node claiming a live node's name is refused") {
  trio t;
  sim_node twin{t.net, named("b"), 99};
  std::optional<node_status> status;
  twin.on_status = [&](const node_status& s) { status = s; };
  REQUIRE_FALSE(twin.join({t.a.packet_endpoint()}));
  REQUIRE(t.net.run_until(t.net.now() + seconds(10), [&] { return status.has_value(); }));
  CHECK(status->state == node_state::left);
  CHECK(status->error == errc::name_in_use);
  t.net.run_for(seconds(3));
  // The legitimate b is still a live member everywhere, at its own address.
  for (sim_node* n : {&t.a, &t.c}) {
    auto m = n->core().membership().find(t.b.core().id());
    REQUIRE(m);
    CHECK(m->address == t.b.packet_endpoint());
    CHECK((m->state == membership::member_state::alive || m->state == membership::member_state::suspect));
  }
}

TEST_CASE("node: hostile messages are refused, counted, and change nothing") {
  trio t;
  auto& core = t.b.core();
  auto& stranger = t.net.add_endpoint();
  const auto before_keys = t.b.store().stats().keys;
  auto send = [&](sim::node_transport& from, sim::endpoint to, std::vector<std::byte> bytes) {
    REQUIRE_FALSE(from.send(to, bytes));
    t.net.run_for(millis(50));
  };
  detail::repl::replicate rep;
  rep.request = 1;
  rep.key = "planted";
  versioned_value v;
  v.value = to_bytes("evil");
  v.version = dot{node_id{7}, 1};
  REQUIRE_FALSE(rep.entry.update({}, v));
  SECTION("from a node that is not a member") {
    auto bytes = wire::encode(rep, node_id::from_name("mallory"));
    REQUIRE(bytes);
    send(stranger, t.b.packet_endpoint(), *bytes);
    CHECK(core.stats().dropped.not_a_member >= 1);
  }
  SECTION("from a stranger claiming a member's id") {
    auto bytes = wire::encode(rep, t.a.core().id());
    REQUIRE(bytes);
    send(stranger, t.b.packet_endpoint(), *bytes);
    CHECK(core.stats().dropped.spoofed == 1);
  }
  SECTION("garbage, truncated and oversized datagrams") {
    send(stranger, t.b.packet_endpoint(), std::vector<std::byte>(40, std::byte{0x5A}));
    auto bytes = wire::encode(rep, t.a.core().id());
    REQUIRE(bytes);
    bytes->resize(bytes->size() - 3);
    send(stranger, t.b.packet_endpoint(), *bytes);
    send(stranger, t.b.packet_endpoint(),
         std::vector<std::byte>(4000, std::byte{1}));  // over the packet limit
    CHECK(core.stats().dropped.malformed == 3);
  }
  SECTION("a member offering a range the receiver does not hold") {
    sim_node d{t.net, named("d"), 4};  // with 4 nodes and N = 3, b holds only part of the ring
    REQUIRE_FALSE(d.join({t.a.packet_endpoint()}));
    REQUIRE(t.net.run_until(t.net.now() + seconds(10), [&] {
      return core.placement().members().size() == 4 && t.a.core().placement().members().size() == 4 &&
             core.placement().fingerprint() == t.a.core().placement().fingerprint();
    }));
    std::optional<key_range> foreign;
    for (std::size_t u = 0; u < core.placement().unit_count() && !foreign; ++u)
      if (!core.placement().holds(core.id(), core.placement().unit_at(u).begin))
        foreign = core.placement().unit_at(u);
    REQUIRE(foreign);
    detail::handoff::offer o;
    o.session = 77;
    o.begin = foreign->begin;
    o.end = foreign->end;
    o.keys = 1;
    auto bytes = wire::encode(o, t.a.core().id());
    REQUIRE(bytes);
    const auto before = core.stats().dropped.not_held;
    send(t.net.transport(t.a.packet_endpoint()), t.b.packet_endpoint(), *bytes);
    CHECK(core.stats().dropped.not_held == before + 1);
  }
  SECTION("an unknown tag") {
    auto bytes = wire::encode(odd_message{}, t.a.core().id());
    REQUIRE(bytes);
    send(stranger, t.b.packet_endpoint(), *bytes);
    CHECK(core.stats().dropped.unknown_type == 1);
  }
  CHECK_FALSE(t.b.store().get("planted"));
  CHECK(t.b.store().stats().keys == before_keys);
  CHECK(core.state() == node_state::joined);
  CHECK(core.pending() == 0);
}

namespace {

// How many times a or b suspected x while 4 MB of values streamed into x
// over 2 MB/s links.
std::size_t suspicions_under_bulk(bool single_lane) {
  sim::network net{7, big_messages()};
  auto cfg = [&](const std::string& name) {
    node_config c = named(name);
    c.single_lane = single_lane;
    return c;
  };
  sim_node a{net, cfg("a"), 1}, b{net, cfg("b"), 2}, x{net, cfg("x"), 3};
  REQUIRE_FALSE(a.join({}));
  REQUIRE_FALSE(b.join({a.packet_endpoint()}));
  REQUIRE_FALSE(x.join({a.packet_endpoint()}));
  REQUIRE(net.run_until(net.now() + seconds(10), [&] {
    for (sim_node* n : {&a, &b, &x})
      if (n->core().live_members().size() != 3) return false;
    return true;
  }));
  net.run_for(seconds(1));
  std::size_t suspicions = 0;
  const node_id xid = x.core().id();
  for (sim_node* n : {&a, &b})
    n->on_event = [&](const node_event& e) {
      if (e.kind == node_event_kind::member_suspect && e.member == xid) ++suspicions;
    };
  sim::link_config slow;
  slow.bandwidth = 2'000'000;
  for (sim_node* n : {&a, &b}) {
    net.set_link(n->stream_endpoint(), x.stream_endpoint(), slow);
    net.set_link(n->packet_endpoint(), x.packet_endpoint(), slow);
  }
  std::size_t acked = 0;
  a.on_put = [&](const put_completion& p) { acked += p.error ? 0 : 1; };
  const bytes value(200 * 1024, std::byte{7});
  request_options all;
  all.timeout = seconds(3);
  for (int i = 0; i < 20; ++i) a.put("bulk-" + std::to_string(i), value, {}, all);
  net.run_for(seconds(6));
  CHECK(acked == 20);
  return suspicions;
}

}  // namespace

TEST_CASE("node: a live node stays alive while megabytes stream to it") {
  // Two lanes: the probes take the packet link, which the bulk data does not
  // use, so x is never suspected.
  CHECK(suspicions_under_bulk(false) == 0);
  // The same on one lane (a test switch, never on a network): the probes wait
  // behind seconds of data and x looks dead. This is what the lanes prevent.
  CHECK(suspicions_under_bulk(true) >= 1);
}
