// Transport conformance: the checks every dhtkit transport must pass.
//
// The transport concept (dhtkit/transport/transport.hpp) only fixes the
// signatures; these checks fix the behaviour the protocol drivers rely on, so
// the simulator and the socket transports are held to one contract. A
// transport plugs in through a small Fixture that owns two live transports that
// can reach each other and knows how to drive their event loop:
//
//   struct my_fixture {
//     using transport_type = my_transport;
//     using endpoint_type = my_transport::endpoint_type;
//     transport_type& a();                 // two live transports that can reach each other
//     transport_type& b();                 // (b() may return a new object after restart_b())
//     endpoint_type unreachable();         // an endpoint nobody listens on
//     // Drive the event loop until done() is true or `bound` has passed (virtual
//     // time for the simulator, wall time for sockets); return done().
//     template <class Pred> bool run_until(Pred done, std::chrono::milliseconds bound);
//     void stop_b();                       // b goes away (crash / close its socket)
//     void restart_b();                    // b comes back at the same endpoint
//   };
//   DHTKIT_TRANSPORT_CONFORMANCE_TESTS(my_fixture, "my transport", "[my][conformance]")
//
// The macro defines one TEST_CASE per check, each on a freshly default-constructed
// fixture; the check_* functions can also be called directly on a fixture.
// The checks install their own receive handlers on a() and b() (again after
// restart_b()) and leave no-op handlers behind when they return. They assume no
// configured loss: every message sent while both ends are up must arrive, in any
// order. To stay friendly to datagram sockets they send in small windows and wait
// for each window to arrive before sending the next.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/transport/transport.hpp"
#include "support/catch.hpp"

namespace dhtkit::test::conformance {

template <class F>
concept transport_fixture = dhtkit::transport<typename F::transport_type> &&
    std::same_as<typename F::endpoint_type, typename F::transport_type::endpoint_type> &&
    requires(F& f, std::function<bool()> done, std::chrono::milliseconds bound) {
  { f.a() } -> std::same_as<typename F::transport_type&>;
  { f.b() } -> std::same_as<typename F::transport_type&>;
  { f.unreachable() } -> std::same_as<typename F::endpoint_type>;
  { f.run_until(done, bound) } -> std::same_as<bool>;
  f.stop_b();
  f.restart_b();
};

// How long a check waits for messages that must arrive: generous, because
// sanitizer builds on a loaded machine are slow. Waiting ends as soon as they
// have arrived, so a passing run never waits this long.
inline constexpr std::chrono::milliseconds arrival_bound{5000};
// How long a check lets the event loop run to give a message that must NOT
// arrive the chance to arrive anyway.
inline constexpr std::chrono::milliseconds quiet_period{100};

namespace detail {

using bytes = std::vector<std::byte>;

template <class Endpoint>
struct received {
  Endpoint from;
  bytes message;
};

// Collects what a transport's receive handler is given.
template <class Endpoint>
struct recorder {
  std::vector<received<Endpoint>> messages;

  template <class Transport>
  void attach(Transport& t) {
    t.set_receive_handler([this](const Endpoint& from, std::span<const std::byte> message) {
      messages.push_back({from, bytes(message.begin(), message.end())});
    });
  }
};

// Leaves no-op handlers on a() and b() when a check ends, so no handler refers
// to a recorder that no longer exists.
template <class F>
struct handler_guard {
  F& f;
  ~handler_guard() {
    auto noop = [](const typename F::endpoint_type&, std::span<const std::byte>) {};
    f.a().set_receive_handler(noop);
    f.b().set_receive_handler(noop);
  }
};

// A payload whose content depends on a tag and its length, so a message that
// arrives truncated, corrupted or swapped with another is noticed.
inline bytes payload(std::uint32_t tag, std::size_t size) {
  bytes out(size);
  std::uint64_t x = 0x9E3779B97F4A7C15ULL * (tag + 1) + size;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<std::byte>(x);
  }
  return out;
}

// Sizes from empty to exactly the maximum, across common MTU boundaries.
inline std::vector<std::size_t> interesting_sizes(std::size_t max) {
  std::vector<std::size_t> sizes{0, 1, 2, 3, 7, 8, 31, 64, 100, 512, 1399, 1400, 1401, 1472, 4096, 9000};
  sizes.push_back(max / 2);
  if (max > 0) sizes.push_back(max - 1);
  sizes.push_back(max);
  std::erase_if(sizes, [max](std::size_t s) { return s > max; });
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

// Sends `messages` from `from` to `to` in windows of at most 8 messages or 64 KiB
// and waits for each window to arrive at `sink`. Returns false (after recording
// a failed CHECK) if a send fails or a window does not arrive in time.
template <class F, class Endpoint>
bool send_windowed(F& f, typename F::transport_type& from, const Endpoint& to,
                   const std::vector<bytes>& messages, recorder<Endpoint>& sink) {
  std::size_t i = 0;
  while (i < messages.size()) {
    const std::size_t before = sink.messages.size();
    std::size_t count = 0;
    std::size_t volume = 0;
    while (i < messages.size() && count < 8 && (count == 0 || volume + messages[i].size() <= 64 * 1024)) {
      const std::error_code ec = from.send(to, messages[i]);
      CHECK(!ec);
      if (ec) return false;
      volume += messages[i].size();
      ++count;
      ++i;
    }
    const bool arrived = f.run_until([&] { return sink.messages.size() >= before + count; }, arrival_bound);
    CHECK(arrived);
    if (!arrived) return false;
  }
  return true;
}

template <class Endpoint>
std::vector<bytes> sorted_messages(const std::vector<received<Endpoint>>& got) {
  std::vector<bytes> out;
  for (const auto& r : got) out.push_back(r.message);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace detail

// a->b and b->a: messages of many sizes (0 and max_message_size() included)
// all arrive, intact, once each, with the sender's endpoint as `from`.
template <transport_fixture F>
void check_delivery(F& f) {
  using endpoint = typename F::endpoint_type;
  detail::handler_guard<F> guard{f};
  detail::recorder<endpoint> at_a;
  detail::recorder<endpoint> at_b;
  at_a.attach(f.a());
  at_b.attach(f.b());

  auto run_direction = [&](typename F::transport_type& from, typename F::transport_type& to,
                           detail::recorder<endpoint>& sink, std::uint32_t tag_base) {
    std::vector<detail::bytes> sent;
    std::uint32_t tag = tag_base;
    for (int round = 0; round < 2; ++round) {
      for (std::size_t size : detail::interesting_sizes(from.max_message_size())) {
        sent.push_back(detail::payload(tag++, size));
      }
    }
    REQUIRE(detail::send_windowed(f, from, to.local_endpoint(), sent, sink));
    // Give a duplicating transport the chance to show it.
    f.run_until([] { return false; }, quiet_period);
    REQUIRE(sink.messages.size() == sent.size());
    for (const auto& r : sink.messages) CHECK(r.from == from.local_endpoint());
    std::sort(sent.begin(), sent.end());
    CHECK(detail::sorted_messages(sink.messages) == sent);
  };

  run_direction(f.a(), f.b(), at_b, 0);
  CHECK(at_a.messages.empty());
  run_direction(f.b(), f.a(), at_a, 1000);
}

// One byte over the maximum is refused at send with errc::message_too_large and
// never arrives; the transport keeps working.
template <transport_fixture F>
void check_size_limit(F& f) {
  using endpoint = typename F::endpoint_type;
  detail::handler_guard<F> guard{f};
  detail::recorder<endpoint> at_b;
  at_b.attach(f.b());
  const std::size_t max = f.a().max_message_size();
  REQUIRE(max > 0);
  const detail::bytes too_large = detail::payload(1, max + 1);
  const std::error_code ec = f.a().send(f.b().local_endpoint(), too_large);
  CHECK(ec == dhtkit::errc::message_too_large);

  const detail::bytes ok = detail::payload(2, 16);
  REQUIRE(!f.a().send(f.b().local_endpoint(), ok));
  REQUIRE(f.run_until([&] { return !at_b.messages.empty(); }, arrival_bound));
  f.run_until([] { return false; }, quiet_period);
  REQUIRE(at_b.messages.size() == 1);
  CHECK(at_b.messages[0].message == ok);
}

// Sending to an endpoint nobody listens on neither crashes nor delivers
// anything; send() returns success (the loss is found out later, if ever) or
// errc::unknown_peer; both transports keep working afterwards.
template <transport_fixture F>
void check_unknown_peer(F& f) {
  using endpoint = typename F::endpoint_type;
  detail::handler_guard<F> guard{f};
  detail::recorder<endpoint> at_a;
  detail::recorder<endpoint> at_b;
  at_a.attach(f.a());
  at_b.attach(f.b());
  const endpoint nowhere = f.unreachable();
  CHECK(nowhere != f.a().local_endpoint());
  CHECK(nowhere != f.b().local_endpoint());
  for (std::uint32_t i = 0; i < 4; ++i) {
    const std::error_code ec = f.a().send(nowhere, detail::payload(i, 32));
    CHECK((!ec || ec == dhtkit::errc::unknown_peer));
  }
  f.run_until([] { return false; }, quiet_period);
  CHECK(at_a.messages.empty());
  CHECK(at_b.messages.empty());

  const detail::bytes after = detail::payload(9, 100);
  REQUIRE(!f.a().send(f.b().local_endpoint(), after));
  REQUIRE(f.run_until([&] { return !at_b.messages.empty(); }, arrival_bound));
  CHECK(at_b.messages.back().message == after);
  const detail::bytes back = detail::payload(10, 100);
  REQUIRE(!f.b().send(f.a().local_endpoint(), back));
  REQUIRE(f.run_until([&] { return !at_a.messages.empty(); }, arrival_bound));
  CHECK(at_a.messages.back().message == back);
}

// b goes away and comes back at the same endpoint: sending to b while it is away
// neither crashes nor blocks a (those messages may be lost, or delivered late to
// the new b: both are allowed), and once b is back, messages flow both ways
// again. The first message after the restart may be lost (a stream
// transport may only then find its old connection dead), so a retries until one
// gets through; after that, a whole window must arrive.
template <transport_fixture F>
void check_peer_restart(F& f) {
  using endpoint = typename F::endpoint_type;
  detail::handler_guard<F> guard{f};
  detail::recorder<endpoint> at_a;
  detail::recorder<endpoint> at_b;
  at_a.attach(f.a());
  at_b.attach(f.b());
  const endpoint b_endpoint = f.b().local_endpoint();
  REQUIRE(!f.a().send(b_endpoint, detail::payload(1, 10)));
  REQUIRE(f.run_until([&] { return at_b.messages.size() == 1; }, arrival_bound));

  f.stop_b();
  std::vector<detail::bytes> while_down;
  for (std::uint32_t i = 0; i < 4; ++i) while_down.push_back(detail::payload(100 + i, 10));
  for (const auto& m : while_down) {
    // Whatever send says about a peer that is down (accepted, unknown_peer,
    // queue_full...), it must say it without crashing or blocking.
    (void)f.a().send(b_endpoint, m);
  }
  f.run_until([] { return false; }, quiet_period);

  f.restart_b();
  REQUIRE(f.b().local_endpoint() == b_endpoint);
  detail::recorder<endpoint> at_new_b;
  at_new_b.attach(f.b());

  const detail::bytes hello = detail::payload(200, 24);
  auto expected_late = [&](const detail::bytes& m) {
    return m == hello || std::find(while_down.begin(), while_down.end(), m) != while_down.end();
  };
  auto hello_arrived = [&] {
    return std::any_of(at_new_b.messages.begin(), at_new_b.messages.end(),
                       [&](const auto& r) { return r.message == hello; });
  };
  bool through = false;
  for (int attempt = 0; attempt < 20 && !through; ++attempt) {
    (void)f.a().send(b_endpoint, hello);
    through = f.run_until(hello_arrived, arrival_bound / 20);
  }
  REQUIRE(through);
  for (const auto& r : at_new_b.messages) {
    CHECK(r.from == f.a().local_endpoint());
    CHECK(expected_late(r.message));
  }

  std::vector<detail::bytes> window;
  for (std::uint32_t i = 0; i < 8; ++i) window.push_back(detail::payload(300 + i, 50 + i));
  at_new_b.messages.clear();
  REQUIRE(detail::send_windowed(f, f.a(), b_endpoint, window, at_new_b));
  f.run_until([] { return false; }, quiet_period);
  // Late retries of `hello` (or late messages from the downtime) may still
  // trickle in; everything else must be exactly the window.
  std::vector<detail::bytes> got;
  for (const auto& r : at_new_b.messages) {
    if (!expected_late(r.message)) got.push_back(r.message);
  }
  std::sort(got.begin(), got.end());
  std::sort(window.begin(), window.end());
  CHECK(got == window);

  const detail::bytes back = detail::payload(400, 30);
  REQUIRE(!f.b().send(f.a().local_endpoint(), back));
  REQUIRE(f.run_until([&] { return !at_a.messages.empty(); }, arrival_bound));
  CHECK(at_a.messages.back().message == back);
  CHECK(at_a.messages.back().from == b_endpoint);
}

// After close(), send() returns errc::shut_down (every time, and a second
// close() is harmless) and the closed transport's handler is never called again.
template <transport_fixture F>
void check_close(F& f) {
  using endpoint = typename F::endpoint_type;
  detail::handler_guard<F> guard{f};
  detail::recorder<endpoint> at_a;
  at_a.attach(f.a());
  const endpoint b_endpoint = f.b().local_endpoint();
  const endpoint a_endpoint = f.a().local_endpoint();
  f.a().close();
  CHECK(f.a().send(b_endpoint, detail::payload(1, 8)) == dhtkit::errc::shut_down);
  CHECK(f.a().send(b_endpoint, detail::payload(2, 0)) == dhtkit::errc::shut_down);
  f.a().close();
  CHECK(f.a().send(b_endpoint, detail::payload(3, 8)) == dhtkit::errc::shut_down);
  // b may or may not be told that a is gone; it must not crash, and a must not hear it.
  (void)f.b().send(a_endpoint, detail::payload(4, 8));
  f.run_until([] { return false; }, quiet_period);
  CHECK(at_a.messages.empty());
}

}  // namespace dhtkit::test::conformance

// One TEST_CASE per check, each on a fresh, default-constructed `fixture`.
// `name` prefixes the test names (a string literal), `tags` is a Catch2 tag string.
#define DHTKIT_TRANSPORT_CONFORMANCE_TESTS(fixture, name, tags)                       \
  TEST_CASE(name ": messages of every size arrive intact both ways", tags) {          \
    fixture f;                                                                        \
    ::dhtkit::test::conformance::check_delivery(f);                                   \
  }                                                                                   \
  TEST_CASE(name ": a message over the maximum is refused and never arrives", tags) { \
    fixture f;                                                                        \
    ::dhtkit::test::conformance::check_size_limit(f);                                 \
  }                                                                                   \
  TEST_CASE(name ": sending to an unreachable endpoint is harmless", tags) {          \
    fixture f;                                                                        \
    ::dhtkit::test::conformance::check_unknown_peer(f);                               \
  }                                                                                   \
  TEST_CASE(name ": messages flow again after the peer restarts", tags) {             \
    fixture f;                                                                        \
    ::dhtkit::test::conformance::check_peer_restart(f);                               \
  }                                                                                   \
  TEST_CASE(name ": send after close returns shut_down", tags) {                      \
    fixture f;                                                                        \
    ::dhtkit::test::conformance::check_close(f);                                      \
  }
