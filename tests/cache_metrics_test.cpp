// dhtkit-cache's per-command metrics (protocol/command_metrics.hpp): what a
// session records for each command, outcome and duration, on a fake clock.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "cache/session_fixture.hpp"
#include "protocol/command_metrics.hpp"

using dhtkit_cache::command_kind;
using dhtkit_cache::command_metrics;
using dhtkit_cache::reply_outcome;

namespace {

// Every reading of the clock advances it by 1 us: a command that the session
// times as one stretch measures exactly 1 us, one timed in k stretches k us.
std::uint64_t fake_ns = 0;
std::uint64_t fake_clock() { return fake_ns += 1000; }

struct metered {
  cache_test::fixture f;
  command_metrics m{&fake_clock};
  dhtkit_cache::session s{f.ctx, 1 << 20, {}, &m};

  std::string send(std::string_view bytes, std::size_t chunk = SIZE_MAX) {
    cache_test::run_result r;
    cache_test::feed(s, bytes, chunk, r);
    return r.out;
  }
  std::uint64_t observations(command_kind k) const {
    std::uint64_t n = 0;
    for (std::size_t b = 0; b <= dhtkit_cache::latency_bounds_ns.size(); ++b) n += m.bucket(k, b);
    return n;
  }
};

}  // namespace

TEST_CASE("cache metrics: each command is counted once by its command and its reply's outcome") {
  metered t;
  t.send(
      "set a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nget a b\r\nget zz\r\ndelete zz\r\nincr a 1\r\n"
      "set n 0 0 1 noreply\r\n5\r\nincr n 2\r\ncas a 0 0 1 999\r\nz\r\ntouch a 10\r\nbogus\r\n\r\n"
      "mg a v\r\nmg zz v\r\nms k 1\r\nv\r\nmd k\r\nmg zz v q\r\nmn\r\nset big 0 0 x\r\n");
  CHECK(t.m.count(command_kind::set, reply_outcome::stored) == 1);
  CHECK(t.m.count(command_kind::set, reply_outcome::noreply) == 1);
  CHECK(t.m.count(command_kind::set, reply_outcome::client_error) == 1);  // bad length
  CHECK(t.m.count(command_kind::add, reply_outcome::not_stored) == 1);
  CHECK(t.m.count(command_kind::get, reply_outcome::hit) == 1);  // "get a b": a was found
  CHECK(t.m.count(command_kind::get, reply_outcome::miss) == 1);
  CHECK(t.m.count(command_kind::delete_, reply_outcome::not_found) == 1);
  CHECK(t.m.count(command_kind::incr, reply_outcome::client_error) == 1);  // "x" is not a number
  CHECK(t.m.count(command_kind::incr, reply_outcome::ok) == 1);
  CHECK(t.m.count(command_kind::cas, reply_outcome::exists) == 1);
  CHECK(t.m.count(command_kind::touch, reply_outcome::touched) == 1);
  CHECK(t.m.count(command_kind::other, reply_outcome::error) == 2);  // bogus, and the empty line
  CHECK(t.m.count(command_kind::mg, reply_outcome::hit) == 1);
  CHECK(t.m.count(command_kind::mg, reply_outcome::miss) == 2);  // one shown, one hidden by q
  CHECK(t.m.count(command_kind::ms, reply_outcome::stored) == 1);
  CHECK(t.m.count(command_kind::md, reply_outcome::deleted) == 1);
  CHECK(t.m.count(command_kind::mn, reply_outcome::ok) == 1);
  // Nothing else was counted: one observation per command.
  std::uint64_t total = 0;
  for (std::size_t k = 0; k < dhtkit_cache::command_kinds; ++k)
    total += t.observations(static_cast<command_kind>(k));
  CHECK(total == 19);
}

TEST_CASE("cache metrics: a storage command's duration leaves out the wait for its value") {
  metered t;
  // The line and the value arrive in separate reads: two stretches of 1 us.
  CHECK(t.send("set a 0 0 5\r\nhel", 16) == "");
  CHECK(t.observations(command_kind::set) == 0);  // not done until the value is in
  CHECK(t.send("lo\r\n") == "STORED\r\n");
  CHECK(t.m.count(command_kind::set, reply_outcome::stored) == 1);
  CHECK(t.m.duration_sum_ns(command_kind::set) == 2000);
  CHECK(t.m.bucket(command_kind::set, 3) == 1);  // (1 us, 2.5 us]
  CHECK(dhtkit_cache::latency_bounds_ns[3] == 2500);
}

TEST_CASE("cache metrics: a multiget that resumes is one command, its stretches summed") {
  cache_test::fixture f;
  command_metrics m{&fake_clock};
  // Output bound of 1 KiB: three 600-byte values take three process() calls.
  dhtkit_cache::session s{f.ctx, 1024, {}, &m};
  const std::string value(600, 'v');
  cache_test::run_result r;
  cache_test::feed(s, "set a 0 0 600\r\n" + value + "\r\nset b 0 0 600\r\n" + value + "\r\n", SIZE_MAX, r);
  cache_test::feed(s, "get a b a\r\n", SIZE_MAX, r);
  CHECK(r.out.size() > 3 * 600);
  CHECK(m.count(command_kind::get, reply_outcome::hit) == 1);
  const std::uint64_t stretches = m.duration_sum_ns(command_kind::get) / 1000;
  CHECK(stretches >= 2);
  std::uint64_t get_observations = 0;
  for (std::size_t b = 0; b <= dhtkit_cache::latency_bounds_ns.size(); ++b)
    get_observations += m.bucket(command_kind::get, b);
  CHECK(get_observations == 1);
}

TEST_CASE(
    "cache metrics: quiet meta commands count what q hid, ma's value is not a hit, a bad chunk is an error") {
  metered t;
  const std::string out = t.send(
      "ms q1 1 q\r\nv\r\nmd q1 q\r\nset n 0 0 1\r\n5\r\nma n v\r\nma n q\r\ngat 10 n\r\n"
      "gats 10 zz\r\nset c 0 0 2\r\nabcd\r\nquit\r\n");
  CHECK(out.find("VA 1\r\n6\r\n") != std::string::npos);
  CHECK(t.m.count(command_kind::ms, reply_outcome::stored) == 1);
  CHECK(t.m.count(command_kind::md, reply_outcome::deleted) == 1);
  CHECK(t.m.count(command_kind::ma, reply_outcome::ok) == 2);
  CHECK(t.m.count(command_kind::ma, reply_outcome::hit) == 0);
  CHECK(t.m.count(command_kind::gat, reply_outcome::hit) == 1);
  CHECK(t.m.count(command_kind::gats, reply_outcome::miss) == 1);
  CHECK(t.m.count(command_kind::set, reply_outcome::stored) == 1);
  CHECK(t.m.count(command_kind::set, reply_outcome::client_error) == 1);  // bad data chunk
  CHECK(t.m.count(command_kind::quit, reply_outcome::noreply) == 1);
}

TEST_CASE("cache metrics: a line too long is counted as a client error before the connection closes") {
  for (const bool get : {true, false}) {
    metered t;
    cache_test::run_result r;
    const std::string line = (get ? "get " : "set ") + std::string(70000, 'k');
    cache_test::feed(t.s, line, 4096, r);
    CHECK(r.closed);
    const command_kind k = get ? command_kind::get : command_kind::other;
    CHECK(t.m.count(k, reply_outcome::client_error) == 1);
    CHECK(t.observations(k) == 1);
  }
}

TEST_CASE("cache metrics: a session with metrics replies as one without") {
  cache_test::fixture f;
  const std::string requests =
      "set a 0 0 1\r\nx\r\nget a b\r\nmg a v q\r\nmg zz v q\r\nmn\r\nset big 0 0 x\r\n";
  const auto plain = cache_test::run(f, requests);
  metered t;
  CHECK(t.send(requests) == plain.out);
}

TEST_CASE("cache metrics: reply classification") {
  using dhtkit_cache::classify_reply;
  CHECK(classify_reply(command_kind::ms, "HD c5\r\n") == reply_outcome::stored);
  CHECK(classify_reply(command_kind::md, "HD\r\n") == reply_outcome::deleted);
  CHECK(classify_reply(command_kind::mg, "HD\r\n") == reply_outcome::hit);
  CHECK(classify_reply(command_kind::ma, "HD\r\n") == reply_outcome::ok);
  CHECK(classify_reply(command_kind::shutdown, "ERROR: shutdown not enabled\r\n") == reply_outcome::error);
  CHECK(classify_reply(command_kind::set, "SERVER_ERROR out of memory storing object\r\n") ==
        reply_outcome::server_error);
  CHECK(classify_reply(command_kind::get, "") == reply_outcome::noreply);
  CHECK(classify_reply(command_kind::ma, "VA 1\r\n") == reply_outcome::ok);
  CHECK(classify_reply(command_kind::mg, "VA 1\r\n") == reply_outcome::hit);
  CHECK(classify_reply(command_kind::mg, "") == reply_outcome::miss);  // q hid EN
  CHECK(classify_reply(command_kind::ms, "") == reply_outcome::stored);
  CHECK(classify_reply(command_kind::md, "") == reply_outcome::deleted);
  CHECK(dhtkit_cache::command_of("bget") == command_kind::get);
  CHECK(dhtkit_cache::command_of("delete") == command_kind::delete_);
  CHECK(dhtkit_cache::command_of("GET") == command_kind::other);
}
