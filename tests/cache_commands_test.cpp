// dhtkit-cache's commands on a fake clock: expiry, delayed flushes, touch,
// noreply on every command, the server's switches (-A, -F), stats counters,
// the meta flags memcached 1.6.18 lacks (E, md x), win tokens between two
// clients, and the session's bounds on input and output. Byte-level
// agreement with memcached is tests/cache_conformance_test.cpp's job.
#include <atomic>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cache/session_fixture.hpp"
#include "protocol/mutable_reads.hpp"
#include "support/catch.hpp"

using cache_test::fixture;
using dhtkit_cache::session;
using dhtkit_cache::session_status;

namespace {

std::string talk(fixture& f, std::string_view in) { return cache_test::run(f, in).out; }

std::string stat_value(const std::string& stats, const std::string& name) {
  const std::string key = "STAT " + name + " ";
  const std::size_t p = stats.find(key);
  if (p == std::string::npos) return "<none>";
  return stats.substr(p + key.size(), stats.find("\r\n", p) - p - key.size());
}

}  // namespace

TEST_CASE("cache commands: relative and absolute exptimes expire on the injected clock",
          "[cache][commands]") {
  fixture f;
  CHECK(talk(f, "set a 0 10 1\r\nx\r\n") == "STORED\r\n");
  f.clock += 9;
  CHECK(talk(f, "get a\r\n") == "VALUE a 0 1\r\nx\r\nEND\r\n");
  f.clock += 1;
  CHECK(talk(f, "get a\r\n") == "END\r\n");

  const auto unix_now = cache_test::started_unix + f.clock;
  CHECK(talk(f, "set b 0 " + std::to_string(unix_now + 5) + " 1\r\nx\r\nmg b t\r\n") ==
        "STORED\r\nHD t5\r\n");
  f.clock += 5;
  CHECK(talk(f, "get b\r\n") == "END\r\n");

  CHECK(talk(f, "set c 0 -1 1\r\nx\r\nget c\r\n") == "STORED\r\nEND\r\n");
  CHECK(talk(f, "set c 0 0 1\r\nx\r\nadd c 0 -1 1\r\ny\r\nget c\r\n") ==
        "STORED\r\nNOT_STORED\r\nVALUE c 0 1\r\nx\r\nEND\r\n");
}

TEST_CASE("cache commands: touch, gat and meta T move the expiry", "[cache][commands]") {
  fixture f;
  CHECK(talk(f, "set a 0 0 1\r\nx\r\ntouch a 5\r\n") == "STORED\r\nTOUCHED\r\n");
  f.clock += 5;
  CHECK(talk(f, "get a\r\n") == "END\r\n");
  CHECK(talk(f, "set a 0 0 1\r\nx\r\ngat 3 a\r\nmg a t\r\n") ==
        "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nHD t3\r\n");
  CHECK(talk(f, "mg a T100 t\r\nmg a t T7\r\nmg a t\r\n") == "HD t100\r\nHD t100\r\nHD t7\r\n");
  CHECK(talk(f, "gats -1 a\r\nget a\r\n").rfind("VALUE a 0 1 ", 0) == 0);
  CHECK(talk(f, "get a\r\n") == "END\r\n");
}

TEST_CASE("cache commands: flush_all with a delay empties the cache when the delay is over",
          "[cache][commands]") {
  fixture f;
  CHECK(talk(f, "set a 0 0 1\r\nx\r\nflush_all 10\r\nget a\r\n") ==
        "STORED\r\nOK\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
  f.clock += 10;
  CHECK(talk(f, "get a\r\n") == "END\r\n");
  CHECK(talk(f, "set b 0 0 1\r\nx\r\nget b\r\n") == "STORED\r\nVALUE b 0 1\r\nx\r\nEND\r\n");
  f.ctx.settings.flush_enabled = false;  // -F
  CHECK(talk(f, "flush_all\r\nflush_all noreply\r\nget b\r\n") ==
        "CLIENT_ERROR flush_all not allowed\r\nVALUE b 0 1\r\nx\r\nEND\r\n");
}

TEST_CASE("cache commands: noreply silences every reply of every command that takes it",
          "[cache][commands]") {
  const std::vector<std::string> rows = {
      "set a 0 0 1 noreply\r\nx\r\n",
      "add a 0 0 1 noreply\r\nx\r\n",
      "replace a 0 0 1 noreply\r\nx\r\n",
      "append a 0 0 1 noreply\r\nx\r\n",
      "prepend a 0 0 1 noreply\r\nx\r\n",
      "cas a 0 0 1 1 noreply\r\nx\r\n",
      "incr n 1 noreply\r\n",
      "decr n 1 noreply\r\n",
      "incr a 1 noreply\r\n",
      "incr n x noreply\r\n",
      "touch a 1 noreply\r\n",
      "touch a x noreply\r\n",
      "delete a noreply\r\n",
      "delete a 0 noreply\r\n",
      "delete a x noreply\r\n",
      "flush_all noreply\r\n",
      "flush_all 5 noreply\r\n",
      "verbosity 1 noreply\r\n",
      "set a 0 0 2 noreply\r\nxyz\n",
      "set a x 0 1 noreply\r\n",
      "set a 0 0 2000000 noreply\r\n",
      "set " + std::string(251, 'k') + " 0 0 1 noreply\r\n",
  };
  for (const auto& r : rows) {
    fixture f;
    talk(f, "set a 0 0 1\r\nx\r\nset n 0 0 1\r\n5\r\n");
    INFO(r);
    CHECK(talk(f, r) == "");
  }
  // stats, version and quit do not take noreply.
  fixture f;
  CHECK(talk(f, "version noreply\r\n").rfind("VERSION 1.6.18", 0) == 0);
  CHECK(talk(f, "stats noreply\r\n") == "ERROR\r\n");
}

TEST_CASE("cache commands: version, verbosity, quit and shutdown", "[cache][commands]") {
  fixture f;
  CHECK(talk(f, "version\r\n") == "VERSION 1.6.18 dhtkit-cache/0.1.0\r\n");
  CHECK(talk(f, "verbosity 2\r\n") == "OK\r\n");
  CHECK(f.ctx.verbosity.load() == 2);
  CHECK(talk(f, "verbosity 0 noreply\r\n").empty());
  CHECK(f.ctx.verbosity.load() == 0);

  auto r = cache_test::run(f, "get a\r\nquit\r\nget a\r\n");
  CHECK(r.out == "END\r\n");
  CHECK(r.closed);

  r = cache_test::run(f, "shutdown\r\n");
  CHECK(r.out == "ERROR: shutdown not enabled\r\n");
  CHECK_FALSE(r.closed);
  CHECK(f.shutdowns == 0);
  f.ctx.settings.allow_shutdown = true;  // -A
  CHECK(talk(f, "shutdown now\r\n") == "CLIENT_ERROR invalid shutdown mode\r\n");
  r = cache_test::run(f, "shutdown\r\nget a\r\n");
  CHECK(r.out.empty());
  CHECK(r.closed);
  CHECK(f.shutdowns == 1);
  r = cache_test::run(f, "shutdown graceful\r\n");
  CHECK(r.closed);
  CHECK(f.shutdowns == 2);
}

TEST_CASE("cache commands: stats counts commands, hits and misses, and stats reset zeroes them",
          "[cache][commands]") {
  fixture f;
  f.ctx.counters.curr_connections = 3;
  talk(f, "set a 0 0 1\r\n1\r\nget a b\r\ndelete b\r\nincr a 1\r\ntouch a 0\r\ncas a 0 0 1 999999\r\ny\r\n");
  const std::string s = talk(f, "stats\r\n");
  CHECK(stat_value(s, "cmd_get") == "2");
  CHECK(stat_value(s, "get_hits") == "1");
  CHECK(stat_value(s, "get_misses") == "1");
  CHECK(stat_value(s, "cmd_set") == "2");
  CHECK(stat_value(s, "delete_misses") == "1");
  CHECK(stat_value(s, "incr_hits") == "1");
  CHECK(stat_value(s, "touch_hits") == "1");
  CHECK(stat_value(s, "cas_badval") == "1");
  CHECK(stat_value(s, "curr_items") == "1");
  CHECK(stat_value(s, "curr_connections") == "3");
  CHECK(stat_value(s, "version") == "1.6.18");
  CHECK(stat_value(s, "uptime") == std::to_string(f.clock));
  CHECK(stat_value(s, "time") == std::to_string(cache_test::started_unix + f.clock));
  CHECK(s.size() > 5);
  CHECK(s.substr(s.size() - 5) == "END\r\n");

  CHECK(talk(f, "stats reset\r\n") == "RESET\r\n");
  const std::string z = talk(f, "stats\r\n");
  CHECK(stat_value(z, "cmd_get") == "0");
  CHECK(stat_value(z, "curr_items") == "1");  // what is stored stays

  const std::string settings = talk(f, "stats settings\r\n");
  CHECK(stat_value(settings, "item_size_max") == "1048576");
  CHECK(stat_value(settings, "evictions") == "on");
  CHECK(stat_value(talk(f, "stats items\r\n"), "items:1:number") == "1");
  CHECK(talk(f, "stats slabs\r\n").find("STAT total_malloced ") != std::string::npos);
}

TEST_CASE("cache commands: a full store without eviction answers out of memory", "[cache][commands]") {
  dhtkit::cache::store_config cfg;
  cfg.memory_limit = std::size_t{2} << 20;
  cfg.evict = false;  // -M
  fixture f(cfg);
  const std::string value(100000, 'v');
  std::string last;
  for (int i = 0; i < 40; ++i)
    last = talk(f, "set k" + std::to_string(i) + " 0 0 100000\r\n" + value + "\r\n");
  CHECK(last == "SERVER_ERROR out of memory storing object\r\n");
}

TEST_CASE("cache commands: meta flags beyond memcached 1.6.18 (E, md x) do what the protocol doc says",
          "[cache][commands]") {
  fixture f;
  CHECK(talk(f, "ms a 1 E12345 c\r\nx\r\n") == "HD c12345\r\n");
  CHECK(talk(f, "mg a c v\r\n") == "VA 1 c12345\r\nx\r\n");
  CHECK(talk(f, "ma a E99 c\r\n") == "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
  CHECK(talk(f, "ms n 1\r\n5\r\nma n E99 c v\r\n") == "HD\r\nVA 1 c99\r\n6\r\n");
  CHECK(talk(f, "md a I E77\r\nmg a c\r\n") == "HD\r\nHD c77 X W\r\n");
  CHECK(talk(f, "ms b 3 F5 T100\r\nabc\r\nmd b x\r\nmg b v f t\r\n") == "HD\r\nHD\r\nVA 0 f5 t100\r\n\r\n");
  CHECK(talk(f, "mg c N30 E555 c v\r\n") == "VA 0 c555 W\r\n\r\n");
}

TEST_CASE("cache commands: one client wins the refill of a stale item, the others see Z",
          "[cache][commands]") {
  fixture f;
  session a(f.ctx), b(f.ctx);
  std::string out;
  a.receive("ms k 1\r\nx\r\nmd k I\r\nmg k v c\r\n");
  a.process(out);
  CHECK(out.find("VA 1 c") != std::string::npos);
  CHECK(out.substr(out.size() - 9) == " X W\r\nx\r\n");
  out.clear();
  b.receive("mg k v\r\n");
  b.process(out);
  CHECK(out == "VA 1 Z X\r\nx\r\n");
  out.clear();
  a.receive("ms k 1\r\ny\r\n");
  a.process(out);
  out.clear();
  b.receive("mg k v\r\n");
  b.process(out);
  CHECK(out == "VA 1\r\ny\r\n");
}

TEST_CASE("cache commands: a multiget's output is bounded by the high-water mark and resumes",
          "[cache][commands]") {
  fixture f;
  const std::string value(10000, 'v');
  for (int i = 0; i < 20; ++i) talk(f, "set k" + std::to_string(i) + " 0 0 10000\r\n" + value + "\r\n");
  std::string line = "get";
  for (int i = 0; i < 20; ++i) line += " k" + std::to_string(i);
  session s(f.ctx, 25000);
  s.receive(line + "\r\nmn\r\n");
  std::string all;
  int calls = 0;
  for (;;) {
    std::string out;
    const auto st = s.process(out);
    ++calls;
    CHECK(out.size() <= 25000 + 10100);
    all += out;
    if (st == session_status::need_input) break;
    REQUIRE(st == session_status::output_full);
  }
  CHECK(calls > 5);
  CHECK(all.size() == 20 * (std::string("VALUE k10 0 10000\r\n").size() + 10002) - 10 + 5 + 4);
  CHECK(all.substr(all.size() - 9) == "END\r\nMN\r\n");
}

TEST_CASE("cache commands: input is bounded: long lines close, values are checked before reading",
          "[cache][commands]") {
  fixture f;
  {
    session s(f.ctx);
    CHECK(s.input_room() == 64 * 1024);
    s.receive(std::string(3000, 'x'));
    std::string out;
    CHECK(s.process(out) == session_status::close);
    CHECK(out.empty());
    CHECK(s.input_room() == 0);
  }
  {
    session s(f.ctx, 1 << 20, {.buffer_capacity = 4096, .max_line = 2048, .retained_capacity = 4096});
    s.receive("get " + std::string(4092, 'k'));
    std::string out;
    CHECK(s.process(out) == session_status::close);
    CHECK(out == "CLIENT_ERROR line too long\r\n");
  }
  {
    // A length over the item limit is refused before a byte of it is kept.
    auto r = cache_test::run(f, "set a 0 0 2147483600\r\n");
    CHECK(r.out == "SERVER_ERROR object too large for cache\r\n");
    session s(f.ctx);
    s.receive("set a 0 0 100000000\r\n");
    std::string out;
    s.process(out);
    for (int i = 0; i < 100; ++i) {
      s.receive(std::string(s.input_room(), 'v'));
      CHECK(s.process(out) == session_status::need_input);
    }
    CHECK(out == "SERVER_ERROR object too large for cache\r\n");
  }
}

TEST_CASE("cache commands: a negative meta TTL expires the item it creates or keeps", "[cache][commands]") {
  fixture f;
  // mg N, ma N, ma T and md x T with a TTL already past used to store exptime
  // 0, an item that never expires.
  // mg N-1 creates the item and hands out W, but the item is dead on arrival
  // (memcached's realtime() of a negative exptime is a time already past).
  CHECK(talk(f, "mg a N-1 v\r\n") == "VA 0 W\r\n\r\n");
  CHECK(talk(f, "mg a v\r\n") == "EN\r\n");
  CHECK(talk(f, "ma c N-1 J3\r\n") == "HD\r\n");
  CHECK(talk(f, "mg c v\r\n") == "EN\r\n");
  CHECK(talk(f, "ms n 1\r\n5\r\nma n T-1\r\n") == "HD\r\nHD\r\n");
  CHECK(talk(f, "mg n v\r\n") == "EN\r\n");
  CHECK(talk(f, "ms b 1\r\nx\r\nmd b x T-1\r\n") == "HD\r\nHD\r\n");
  CHECK(talk(f, "mg b v\r\n") == "EN\r\n");
}

TEST_CASE("cache commands: a touch to a past time erases only the item it read, never a newer one",
          "[cache][commands]") {
  // touch/gat/mg T with an expiry already past read the item, then erase it
  // in a second trip to the store: a set between the two must survive. (A
  // race: 200,000 rounds against a looping toucher make it happen dozens of
  // times per run; the check cannot fail when the erase is right.)
  fixture f;
  auto& store = f.store;
  auto set = [&](const std::string& v) {
    store.modify("k", 2, [&](dhtkit::cache::item_ref*) -> dhtkit::cache::decision {
      dhtkit::cache::new_value nv;
      nv.head = v;
      return nv;
    });
  };
  set("v0");
  constexpr int rounds = 200000;
  std::atomic<bool> done{false};
  std::vector<std::string> seen;
  std::thread toucher([&] {
    while (!done.load()) {
      dhtkit_cache::read_mutable(store, "k", 2, [&](dhtkit::cache::item_ref& it) -> dhtkit::cache::decision {
        seen.emplace_back(it.value());
        return dhtkit::cache::erase{};
      });
    }
  });
  std::vector<std::string> lost;
  for (int i = 1; i <= rounds; ++i) {
    const std::string v = "v" + std::to_string(i);
    set(v);
    if (!store.read("k", 2, [](const dhtkit::cache::item_ref&) {})) lost.push_back(v);
  }
  done = true;
  toucher.join();
  const std::set<std::string> read_by_toucher(seen.begin(), seen.end());
  std::size_t erased_unseen = 0;
  for (const auto& v : lost) erased_unseen += read_by_toucher.count(v) == 0 ? 1 : 0;
  INFO(lost.size() << " sets erased, " << erased_unseen << " of them by a touch that had read an older item");
  CHECK(erased_unseen == 0);
}
