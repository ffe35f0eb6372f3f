// The driver contract on its own: a small protocol core written to the
// concept runs unchanged under sim::core_driver and asio_driver; the tag
// registry refuses overlaps; a codec decodes an envelope already checked by
// a dispatcher. (Each real core's conformance is checked in its own test.)
#include <asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/driver/asio_driver.hpp"
#include "dhtkit/driver/dispatcher.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/driver/sim_driver.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "dhtkit/transport/sim.hpp"
#include "dhtkit/transport/wire_tags.hpp"
#include "support/asio_run.hpp"
#include "support/catch.hpp"

using namespace dhtkit;
using namespace std::chrono_literals;

namespace {

struct beat {
  static constexpr std::uint16_t wire_type = 0x0010;
  std::uint64_t seq = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq);
  }
};
struct echo {
  static constexpr std::uint16_t wire_type = 0x0011;
  std::uint64_t seq = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq);
  }
};
static_assert(wire::tags_within<beat, echo>(wire::tags::examples));

// A message of another protocol (Chord's range).
struct other {
  static constexpr std::uint16_t wire_type = 0x0101;
  template <class Archive>
  void serialize(Archive&) {}
};

// A heartbeat protocol: every period it sends a beat to its one peer until
// `beats` have gone out; a beat is answered with an echo. The outbox reports
// every echo received, so a test sees events travel through the driver.
template <class Address>
class beacon {
 public:
  using address_type = Address;
  struct outbox_type : message_outbox<Address> {
    std::vector<std::uint64_t> echoes;
    void clear() noexcept {
      this->messages.clear();
      echoes.clear();
    }
    bool empty() const noexcept { return this->messages.empty() && echoes.empty(); }
  };
  static constexpr wire::tag_range wire_tags = wire::tags::examples;

  beacon(node_id self, Address peer, duration period, std::uint64_t beats)
      : self_(self), peer_(peer), period_(period), beats_(beats) {
    if (beats_ > 0) next_ = time_point{};
  }

  std::error_code receive(const Address& from, std::span<const std::byte> bytes, time_point now) {
    auto env = wire::decode_envelope(bytes, codec_.limits());
    if (!env) {
      ++stats_.messages_received;
      ++stats_.rejected;
      return env.error();
    }
    return receive(from, *env, now);
  }
  std::error_code receive(const Address& from, const wire::envelope& env, time_point) {
    ++stats_.messages_received;
    auto m = codec_.decode(env);
    if (!m) {
      ++stats_.rejected;
      return m.error();
    }
    if (auto* b = std::get_if<beat>(&m->message)) {
      send(from, echo{b->seq});
    } else {
      out_.echoes.push_back(std::get<echo>(m->message).seq);
    }
    return {};
  }
  void tick(time_point now) {
    if (!next_ || now < *next_) return;
    send(peer_, beat{sent_++});
    next_ = sent_ < beats_ ? std::optional<time_point>(now + period_) : std::nullopt;
  }
  std::optional<time_point> next_wakeup() const noexcept { return next_; }
  outbox_type take_outbox() {
    outbox_type out = std::move(out_);
    out_.clear();
    return out;
  }
  const message_stats& stats() const noexcept { return stats_; }

 private:
  template <class Msg>
  void send(const Address& to, const Msg& m) {
    auto bytes = codec_.encode(m, self_);
    if (!bytes) return;
    ++stats_.messages_sent;
    out_.messages.push_back({to, std::move(*bytes)});
  }

  node_id self_;
  Address peer_;
  duration period_;
  std::uint64_t beats_;
  std::uint64_t sent_ = 0;
  std::optional<time_point> next_;
  wire::codec<beat, echo> codec_;
  outbox_type out_;
  message_stats stats_;
};

static_assert(protocol_core<beacon<sim::endpoint>>);
static_assert(protocol_core<beacon<endpoint>>);
static_assert(!verdict_sink<beacon<sim::endpoint>>);

// A core with the wrong shape is refused by the concept, not deep inside a driver.
struct polls_instead {
  using address_type = sim::endpoint;
  using outbox_type = message_outbox<sim::endpoint>;
  static constexpr wire::tag_range wire_tags = wire::tags::examples;
  void receive(const sim::endpoint&, std::span<const std::byte>, time_point) {}  // no error code
  void tick(time_point) {}
  time_point next_wakeup() const { return time_point::max(); }  // no "none"
  outbox_type take_outbox() { return {}; }
  const message_stats& stats() const { return stats_; }
  message_stats stats_;
};
static_assert(!protocol_core<polls_instead>);

// A second protocol in the applications' range: counts notes, never replies.
struct note {
  static constexpr std::uint16_t wire_type = 0x8001;
  template <class Archive>
  void serialize(Archive&) {}
};

class notebook {
 public:
  using address_type = sim::endpoint;
  using outbox_type = message_outbox<sim::endpoint>;
  static constexpr wire::tag_range wire_tags = wire::tags::application;

  std::error_code receive(const sim::endpoint& from, std::span<const std::byte> bytes, time_point now) {
    auto env = wire::decode_envelope(bytes);
    if (!env) return env.error();
    return receive(from, *env, now);
  }
  std::error_code receive(const sim::endpoint&, const wire::envelope& env, time_point) {
    ++stats_.messages_received;
    if (auto m = codec_.decode(env); !m) {
      ++stats_.rejected;
      return m.error();
    }
    ++notes;
    return {};
  }
  void tick(time_point) {}
  std::optional<time_point> next_wakeup() const noexcept { return std::nullopt; }
  outbox_type take_outbox() { return {}; }
  const message_stats& stats() const noexcept { return stats_; }

  std::size_t notes = 0;

 private:
  wire::codec<note> codec_;
  message_stats stats_;
};
static_assert(protocol_core<notebook>);

// Two simulator endpoints: a sends `beats` beats to b every 100 ms, b only echoes.
// Tests name the members through references, not a structured binding: clang 14
// cannot capture a structured binding in a lambda.
struct beacon_pair {
  beacon_pair(std::uint64_t seed, std::uint64_t beats)
      : net(seed),
        ta(net.add_endpoint()),
        tb(net.add_endpoint()),
        a(node_id{1}, tb.local_endpoint(), millis(100), beats),
        b(node_id{2}, ta.local_endpoint(), millis(100), 0) {}
  sim::network net;
  sim::node_transport& ta;
  sim::node_transport& tb;
  beacon<sim::endpoint> a;
  beacon<sim::endpoint> b;
};

}  // namespace

TEST_CASE("driver: a dispatcher checks each envelope once and routes it by tag range", "[driver][wire]") {
  beacon<sim::endpoint> b(node_id{1}, sim::endpoint{2}, millis(10), 0);
  notebook n;
  dispatcher<beacon<sim::endpoint>, notebook> dispatch(b, n);
  const sim::endpoint from{2};
  const time_point now{};
  auto to_beacon = wire::encode(beat{1}, node_id{2}).value();
  auto to_notebook = wire::encode(note{}, node_id{2}).value();
  CHECK_FALSE(dispatch.receive(from, to_beacon, now));
  CHECK_FALSE(dispatch.receive(from, to_notebook, now));
  CHECK(b.stats().messages_received == 1);
  CHECK(b.take_outbox().messages.size() == 1);  // the echo
  CHECK(n.notes == 1);

  // A tag nobody owns, and a broken envelope, stop at the dispatcher.
  auto chord_tag = wire::encode(other{}, node_id{2}).value();
  CHECK(dispatch.receive(from, chord_tag, now) == errc::unknown_message_type);
  to_notebook[20] ^= std::byte{1};  // the checksum no longer matches
  CHECK(dispatch.receive(from, to_notebook, now) == errc::bad_checksum);
  CHECK(dispatch.rejected() == 2);
  CHECK(b.stats().messages_received == 1);
  CHECK(n.stats().messages_received == 1);
}

TEST_CASE("driver: the tag registry is disjoint and refuses an overlap", "[driver][wire]") {
  STATIC_REQUIRE(wire::disjoint(wire::tags::registered));
  constexpr std::array overlapping{wire::tags::chord, wire::tag_range{0x01F0, 0x0210, "greedy"}};
  STATIC_REQUIRE_FALSE(wire::disjoint(overlapping));
  constexpr std::array zero{wire::tag_range{0x0000, 0x000F, "zero"}};
  STATIC_REQUIRE_FALSE(wire::disjoint(zero));
  STATIC_REQUIRE(disjoint_tags<beacon<sim::endpoint>>());
  STATIC_REQUIRE_FALSE(disjoint_tags<beacon<sim::endpoint>, beacon<endpoint>>());
  STATIC_REQUIRE_FALSE(wire::tags_within<beat>(wire::tags::chord));
}

TEST_CASE("driver: a codec decodes a checked envelope once, within its own limit", "[driver][wire]") {
  wire::codec<beat, echo> codec;
  auto bytes = codec.encode(beat{7}, node_id{3}).value();
  auto env = wire::decode_envelope(bytes).value();
  auto got = codec.decode(env);
  REQUIRE(got);
  CHECK(got->sender == node_id{3});
  CHECK(std::get<beat>(got->message).seq == 7);

  // A dispatcher accepts up to its own maximum; a stricter codec still refuses.
  wire::codec<beat, echo> strict(wire_limits{wire::header_size + 4, 4, 4, 4});
  CHECK(strict.decode(env).error() == errc::message_too_large);

  // Another protocol's tag is not this codec's message.
  auto foreign = wire::encode(other{}, node_id{3}).value();
  CHECK(codec.decode(wire::decode_envelope(foreign).value()).error() == errc::unknown_message_type);
}

TEST_CASE("driver: a core runs on the simulator, ticking only when it asks", "[driver][sim]") {
  beacon_pair p(11, 5);
  sim::network& net = p.net;
  sim::node_transport &ta = p.ta, &tb = p.tb;
  beacon<sim::endpoint>&a = p.a, &b = p.b;
  sim::core_driver da(ta, a);
  sim::core_driver db(tb, b);
  std::vector<std::uint64_t> echoes;
  da.on_outbox = [&](auto& out) { echoes.insert(echoes.end(), out.echoes.begin(), out.echoes.end()); };
  da.start();
  db.start();
  net.run_for(seconds(10));
  CHECK(echoes == std::vector<std::uint64_t>{0, 1, 2, 3, 4});
  CHECK(a.stats().messages_sent == 5);
  CHECK(b.stats().messages_sent == 5);  // echoes only: b never needed a tick
  CHECK_FALSE(b.next_wakeup());
  // Five beats, no more: once next_wakeup() says none, no timer is left.
  CHECK_FALSE(a.next_wakeup());
  CHECK(net.stats().timers_fired <= 6);

  // Garbage is rejected with the reason, counted, and changes nothing.
  const std::byte junk[] = {std::byte{1}, std::byte{2}};
  CHECK(db.call([&](auto& core, time_point now) { return core.receive(ta.local_endpoint(), junk, now); }) ==
        errc::bad_magic);
  CHECK(b.stats().rejected == 1);
}

TEST_CASE("driver: a slow node handles messages and ticks later, and a crash stops its ticks",
          "[driver][sim]") {
  beacon_pair p(12, 1000);
  sim::network& net = p.net;
  sim::node_transport &ta = p.ta, &tb = p.tb;
  beacon<sim::endpoint>&a = p.a, &b = p.b;
  sim::core_driver da(ta, a);
  sim::core_driver db(tb, b);
  std::vector<time_point> echoed_at;
  da.on_outbox = [&](auto& out) {
    for (std::size_t i = 0; i < out.echoes.size(); ++i) echoed_at.push_back(net.now());
  };
  db.processing_delay = [] { return std::optional<duration>(millis(30)); };
  da.start();
  db.start();
  net.run_for(millis(450));
  REQUIRE(echoed_at.size() >= 3);
  // Each echo waited for b's 30 ms on top of the network's latency.
  CHECK(echoed_at[0] >= time_point{} + millis(30));
  net.crash(ta.local_endpoint());
  const auto sent = a.stats().messages_sent;
  net.run_for(seconds(2));
  CHECK(a.stats().messages_sent == sent);  // no tick ran while down
  net.restart(ta.local_endpoint(), true);
  da.rearm();
  net.run_for(seconds(1));
  CHECK(a.stats().messages_sent > sent);
}

TEST_CASE("driver: a driver destroyed with timers and a handler pending leaves them inert", "[driver][sim]") {
  beacon_pair p(14, 1000);
  sim::network& net = p.net;
  sim::node_transport &ta = p.ta, &tb = p.tb;
  beacon<sim::endpoint>&a = p.a, &b = p.b;
  sim::core_driver db(tb, b);
  db.start();
  {
    sim::core_driver da(ta, a);
    da.processing_delay = [] { return std::optional<duration>(millis(5)); };
    da.start();
    net.run_for(millis(250));  // a's next tick is armed, echoes are in flight to it
  }
  const auto sent = a.stats().messages_sent;
  net.run_for(seconds(1));  // under ASan a dangling driver would be a use after free
  CHECK(a.stats().messages_sent == sent);
  CHECK(b.stats().messages_received == sent);
}

TEST_CASE("driver: a core addressed by node_id maps to simulator endpoints", "[driver][sim]") {
  sim::network net(13);
  auto& ta = net.add_endpoint();
  auto& tb = net.add_endpoint();
  beacon<node_id> a(node_id{1}, node_id{2}, millis(50), 3);
  beacon<node_id> b(node_id{2}, node_id{1}, millis(50), 0);
  sim::core_driver da(ta, a);
  sim::core_driver db(tb, b);
  for (auto* d : {&da, &db})
    d->to_endpoint = [&](node_id id) { return id == node_id{1} ? ta.local_endpoint() : tb.local_endpoint(); };
  for (auto* d : {&da, &db})
    d->from_endpoint = [&](const sim::endpoint& e) {
      return e == ta.local_endpoint() ? node_id{1} : node_id{2};
    };
  std::size_t echoes = 0;
  da.on_outbox = [&](auto& out) { echoes += out.echoes.size(); };
  da.start();
  db.start();
  net.run_for(seconds(1));
  CHECK(echoes == 3);
}

TEST_CASE("driver: the same core runs on UDP sockets under asio_driver", "[driver][udp]") {
  asio::io_context io;
  auto ua = udp_transport::open(io.get_executor(), {});
  auto ub = udp_transport::open(io.get_executor(), {});
  REQUIRE(ua);
  REQUIRE(ub);
  const endpoint ea = ua->local_endpoint(), eb = ub->local_endpoint();
  using core = beacon<endpoint>;
  asio_driver<core, udp_transport> a(io.get_executor(), std::move(*ua), node_id{1}, eb, millis(20),
                                     std::uint64_t{5});
  asio_driver<core, udp_transport> b(io.get_executor(), std::move(*ub), node_id{2}, ea, millis(20),
                                     std::uint64_t{0});
  std::vector<std::uint64_t> echoes;
  a.on_outbox = [&](core::outbox_type& out) {
    echoes.insert(echoes.end(), out.echoes.begin(), out.echoes.end());
  };
  a.start();
  b.start();
  // Loopback UDP may still drop under load: wait for the last echo, generously.
  REQUIRE(test::run_until(
      io, [&] { return !echoes.empty() && echoes.back() == 4; }, 10s));
  CHECK(a.core().stats().messages_sent == 5);
  a.close();
  b.close();
  CHECK(b.call([](core& c, time_point) { return c.stats().messages_sent; }) >= 1);
}
