// A client session in a cluster (server_context::cluster set): every request
// is still parsed and framed as by a single server, the commands on one key
// and flush_all are handed to the cluster as deferred requests, and their
// replies take their places in the reply order.
//
// The cluster here is a fake that runs each deferred request on a fresh,
// ordinary single-node session over one real store (the same store and the
// same fake clock for every request), so a session in cluster mode over it
// must reply exactly as a single server: every conformance row is replayed
// that way, with replies completed at once or held and completed in shuffled
// order. Then the connection (examples/cache/server/connection.hpp) over a
// real socket, with a cluster completing on another thread: the reply order,
// the bound on deferred requests in flight, and a client leaving early.
#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cache/conformance_rows.hpp"
#include "cache/session_fixture.hpp"
#include "server/connection.hpp"
#include "support/catch.hpp"

namespace {

using dhtkit_cache::deferred_request;
using dhtkit_cache::session_status;

// Runs deferred requests as the coordinator would: each on a fresh single
// node session over the shared store.
struct fake_cluster : dhtkit_cache::cluster_hooks {
  explicit fake_cluster(cache_test::fixture& f)
      : fx(f),
        node_ctx{.store = f.store,
                 .settings = {},
                 .counters = {},
                 .now = [&f] { return f.clock; },
                 .process_started_unix = f.ctx.process_started_unix,
                 .request_shutdown = [] {},
                 .verbosity = {0}} {}

  // The reply a single server gives to the request's bytes.
  std::string run(const deferred_request& r) {
    if (r.what == deferred_request::kind::flush_all) {
      if (r.flush_unix == 0) {
        fx.store.flush_at(0);
        fx.store.flush_all();
      } else {
        // As text/admin.hpp: items last touched a second before the deadline or earlier.
        fx.store.flush_at(
            static_cast<dhtkit::cache::rel_time>(r.flush_unix - node_ctx.process_started_unix - 1));
      }
      return r.noreply ? "" : "OK\r\n";
    }
    dhtkit_cache::session s(node_ctx);
    cache_test::run_result res;
    cache_test::feed(s, r.bytes, SIZE_MAX, res);
    return res.out;
  }

  void dispatch(deferred_request request, std::function<void(std::string)> done) override {
    std::string reply = run(request);
    log.push_back(std::move(request));
    if (hold) {
      held.emplace_back(std::move(done), std::move(reply));
    } else {
      done(std::move(reply));
    }
  }

  // Completes the held requests in a shuffled order.
  void complete_held(std::mt19937& rng) {
    std::shuffle(held.begin(), held.end(), rng);
    auto batch = std::move(held);
    held.clear();
    for (auto& h : batch) h.first(std::move(h.second));
  }

  std::string stats_lines() const override { return lines; }
  std::uint64_t items() const override { return 7; }
  std::uint64_t item_bytes() const override { return 777; }

  cache_test::fixture& fx;
  dhtkit_cache::server_context node_ctx;
  bool hold = false;  // hold replies until complete_held()
  std::vector<std::pair<std::function<void(std::string)>, std::string>> held;
  std::vector<deferred_request> log;
  std::string lines;
};

// What a connection does with a session's output and deferred requests,
// without the socket: reply slots in request order.
struct ordered_replies {
  struct slot {
    std::string bytes;
    bool ready = false;
  };
  std::vector<std::shared_ptr<slot>> slots;
  bool closed = false;

  void add_ready(std::string s) {
    if (!s.empty()) slots.push_back(std::make_shared<slot>(slot{std::move(s), true}));
  }
  void add_deferred(fake_cluster& c, deferred_request r) {
    auto sl = std::make_shared<slot>();
    slots.push_back(sl);
    const bool strip = r.strip_end, noreply = r.noreply;
    c.dispatch(std::move(r), [sl, strip, noreply](std::string reply) {
      if (noreply) reply.clear();
      if (strip && reply.size() >= 5 && reply.compare(reply.size() - 5, 5, "END\r\n") == 0)
        reply.resize(reply.size() - 5);
      sl->bytes = std::move(reply);
      sl->ready = true;
    });
  }
  std::string text() const {
    std::string s;
    for (const auto& sl : slots) {
      REQUIRE(sl->ready);
      s += sl->bytes;
    }
    return s;
  }
};

void feed_cluster(dhtkit_cache::session& s, fake_cluster& c, std::string_view bytes, std::size_t chunk,
                  ordered_replies& r, std::mt19937& rng) {
  while (!bytes.empty() && !r.closed) {
    const std::size_t room = s.input_room();
    if (room == 0) {
      r.closed = true;
      return;
    }
    const std::size_t n = std::min({bytes.size(), chunk, room});
    s.receive(bytes.substr(0, n));
    bytes.remove_prefix(n);
    for (;;) {
      std::string out;
      const auto st = s.process(out);
      r.add_ready(std::move(out));
      if (st == session_status::deferred) {
        r.add_deferred(c, s.take_deferred());
        if (c.held.size() >= 128) c.complete_held(rng);
        continue;
      }
      if (st == session_status::close) {
        r.closed = true;
        break;
      }
      if (st == session_status::need_input) break;
    }
  }
  c.complete_held(rng);
}

struct cluster_fixture {
  cache_test::fixture f;
  fake_cluster cluster{f};
  std::mt19937 rng{14};
  cluster_fixture() { f.ctx.cluster = &cluster; }
};

std::string run_cluster(cluster_fixture& cf, std::string_view bytes, bool hold = false) {
  cf.cluster.hold = hold;
  dhtkit_cache::session s(cf.f.ctx);
  ordered_replies r;
  feed_cluster(s, cf.cluster, bytes, SIZE_MAX, r, cf.rng);
  return r.text();
}

struct replay_result {
  std::string out;
  bool closed = false;
  std::size_t deferred = 0;  // requests the cluster ran
};

replay_result replay_in_cluster(const conformance::row& row, bool hold, std::size_t chunk = SIZE_MAX) {
  cluster_fixture cf;
  conformance::warm_up(cf.f);
  cf.cluster.hold = hold;
  dhtkit_cache::session s(cf.f.ctx);
  ordered_replies r;
  for (auto seg : conformance::segments(row.request)) {
    const std::size_t p = seg.find("{CAS}");
    if (p != std::string::npos) seg.replace(p, 5, conformance::last_cas(r.text()));
    feed_cluster(s, cf.cluster, seg, chunk, r, cf.rng);
  }
  return {r.text(), r.closed, cf.cluster.log.size()};
}

}  // namespace

TEST_CASE("cache cluster session: every conformance row replies as memcached did", "[cache][cluster]") {
  const auto rows = conformance::load_rows();
  REQUIRE(rows.size() > 200);
  std::size_t compared = 0, deferred = 0;
  for (const bool hold : {false, true}) {
    for (const auto& r : rows) {
      if (r.mode == "ext") continue;
      INFO("row " << r.name << (hold ? " (replies completed out of order)" : "") << ": "
                  << r.request.substr(0, 200));
      const auto got = replay_in_cluster(r, hold);
      if (r.mode == "stats") {
        std::string why;
        CHECK(conformance::stats_match(got.out, conformance::unescape(r.reply), why));
        INFO(why);
      } else {
        const std::string ours = conformance::esc(conformance::mask(got.out));
        const std::string theirs = conformance::esc(conformance::mask(conformance::unescape(r.reply)));
        CHECK(conformance::shorten(ours) == conformance::shorten(theirs));
        CHECK(ours.size() == theirs.size());
      }
      CHECK(got.closed == r.closed);
      ++compared;
      deferred += got.deferred;
    }
  }
  CHECK(compared > 400);
  // The rows went through the cluster, not around it.
  CHECK(deferred > compared);
}

TEST_CASE("cache cluster session: rows fed in 7-byte chunks reply as whole rows", "[cache][cluster]") {
  for (const auto& r : conformance::load_rows()) {
    if (r.mode != "exact" || conformance::has_long_line(r.request) ||
        r.request.find("{pause}") != std::string::npos)
      continue;
    INFO("row " << r.name);
    const auto whole = replay_in_cluster(r, false);
    const auto split = replay_in_cluster(r, true, 7);
    CHECK(conformance::esc(conformance::mask(split.out)) == conformance::esc(conformance::mask(whole.out)));
    CHECK(split.closed == whole.closed);
  }
}

TEST_CASE("cache cluster session: a multiget is one deferred request per key in order", "[cache][cluster]") {
  cluster_fixture cf;
  CHECK(run_cluster(cf, "set a 1 0 1\r\nA\r\nset c 3 0 2\r\nCC\r\n") == "STORED\r\nSTORED\r\n");
  cf.cluster.log.clear();
  const std::string got = run_cluster(cf, "version\r\nget a b  c\r\nget c\r\nmn\r\n", true);
  CHECK(got ==
        "VERSION 1.6.18 dhtkit-cache/0.1.0\r\nVALUE a 1 1\r\nA\r\nVALUE c 3 2\r\nCC\r\nEND\r\n"
        "VALUE c 3 2\r\nCC\r\nEND\r\nMN\r\n");
  REQUIRE(cf.cluster.log.size() == 4);
  CHECK(cf.cluster.log[0].bytes == "get a\r\n");
  CHECK(cf.cluster.log[0].key == "a");
  CHECK(cf.cluster.log[0].strip_end);
  CHECK(cf.cluster.log[1].bytes == "get b\r\n");
  CHECK(cf.cluster.log[2].bytes == "get c\r\n");
  CHECK(cf.cluster.log[3].bytes == "get c\r\n");
  CHECK_FALSE(cf.cluster.log[3].strip_end);

  cf.cluster.log.clear();
  CHECK(run_cluster(cf, "gats 100 a c\r\n", true).starts_with("VALUE a 1 1 "));
  REQUIRE(cf.cluster.log.size() == 2);
  CHECK(cf.cluster.log[1].bytes == "gats 100 c\r\n");

  // Errors in the line itself are answered here, with no value and no request.
  cf.cluster.log.clear();
  const std::string long_key(251, 'k');
  CHECK(run_cluster(cf, "get a " + long_key + "\r\ngat x a\r\nget\r\n") ==
        "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\n");
  CHECK(cf.cluster.log.empty());
}

TEST_CASE("cache cluster session: process() stops at each deferred request", "[cache][cluster]") {
  cluster_fixture cf;
  dhtkit_cache::session s(cf.f.ctx);
  s.receive("version\r\nget a b\r\nversion\r\n");
  std::string out;
  CHECK(s.process(out) == session_status::deferred);
  CHECK(out == "VERSION 1.6.18 dhtkit-cache/0.1.0\r\n");
  auto first = s.take_deferred();
  CHECK(first.bytes == "get a\r\n");
  out.clear();
  CHECK(s.process(out) == session_status::deferred);
  CHECK(out.empty());
  CHECK(s.take_deferred().bytes == "get b\r\n");
  out.clear();
  CHECK(s.process(out) == session_status::need_input);
  CHECK(out == "END\r\nVERSION 1.6.18 dhtkit-cache/0.1.0\r\n");
}

TEST_CASE("cache cluster session: noreply requests carry noreply and give no reply", "[cache][cluster]") {
  cluster_fixture cf;
  const std::string got = run_cluster(cf,
                                      "set k 0 0 1 noreply\r\nx\r\nincr k 1 noreply\r\ntouch k 10 noreply\r\n"
                                      "delete k noreply\r\nget k\r\n",
                                      true);
  CHECK(got == "END\r\n");
  REQUIRE(cf.cluster.log.size() == 5);
  for (std::size_t i = 0; i < 4; ++i) CHECK(cf.cluster.log[i].noreply);
  CHECK(cf.cluster.log[0].bytes == "set k 0 0 1 noreply\r\nx\r\n");
  CHECK(cf.cluster.log[0].key == "k");
  CHECK(cf.cluster.log[3].bytes == "delete k noreply\r\n");
  CHECK_FALSE(cf.cluster.log[4].noreply);
  // An argument count memcached answers with ERROR even under noreply stays here.
  cf.cluster.log.clear();
  CHECK(run_cluster(cf, "delete a b c noreply\r\n") == "ERROR\r\n");
  CHECK(cf.cluster.log.empty());
}

TEST_CASE("cache cluster session: a too large set drops the old item at the coordinator",
          "[cache][cluster]") {
  cluster_fixture cf;
  CHECK(run_cluster(cf, "set k 0 0 1\r\nx\r\nms m 1\r\ny\r\n") == "STORED\r\nHD\r\n");
  cf.cluster.log.clear();
  const std::string big(1100000, 'z');
  const std::string len = std::to_string(big.size());
  CHECK(
      run_cluster(cf, "set k 0 0 " + len + "\r\n" + big + "\r\nms bQ== " + len + " b\r\n" + big +
                          "\r\nget k\r\nmg m v\r\n") ==
      "SERVER_ERROR object too large for cache\r\nSERVER_ERROR object too large for cache\r\nEND\r\nEN\r\n");
  REQUIRE(cf.cluster.log.size() == 4);
  CHECK(cf.cluster.log[0].bytes == "delete k noreply\r\n");
  CHECK(cf.cluster.log[1].bytes == "md bQ== b q\r\n");
  CHECK(cf.cluster.log[1].key == "m");
  CHECK(cf.cluster.log[1].noreply);
}

TEST_CASE("cache cluster session: meta keys in base64 are decoded for the cluster", "[cache][cluster]") {
  cluster_fixture cf;
  // "Zm9vIGJhcg==" is "foo bar", a key only base64 can carry.
  CHECK(run_cluster(cf, "ms Zm9vIGJhcg== 2 b T0\r\nhi\r\nmg Zm9vIGJhcg== b v k\r\nma Zm9vIGJhcg== b\r\n") ==
        "HD\r\nVA 2 kfoo bar\r\nhi\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
  REQUIRE(cf.cluster.log.size() == 3);
  for (const auto& r : cf.cluster.log) CHECK(r.key == "foo bar");
  CHECK(cf.cluster.log[0].bytes == "ms Zm9vIGJhcg== 2 b T0\r\nhi\r\n");
  CHECK(cf.cluster.log[1].bytes == "mg Zm9vIGJhcg== b v k\r\n");
  // A key that does not decode is answered here.
  cf.cluster.log.clear();
  CHECK(run_cluster(cf, "mg Zm9v! b v\r\nmn\r\n") == "CLIENT_ERROR error decoding key\r\nMN\r\n");
  CHECK(cf.cluster.log.empty());
  // Without b the key is the token.
  CHECK(run_cluster(cf, "md Zm9v q\r\nmn\r\n") == "NF\r\nMN\r\n");
  REQUIRE(cf.cluster.log.size() == 1);
  CHECK(cf.cluster.log[0].key == "Zm9v");
}

TEST_CASE("cache cluster session: flush_all goes to the cluster with its deadline", "[cache][cluster]") {
  cluster_fixture cf;
  cf.f.clock = 100;
  CHECK(run_cluster(cf, "flush_all\r\nflush_all 60 noreply\r\nflush_all 1800000000\r\nflush_all x\r\n") ==
        "OK\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\n");
  REQUIRE(cf.cluster.log.size() == 3);
  for (const auto& r : cf.cluster.log) CHECK(r.what == deferred_request::kind::flush_all);
  CHECK(cf.cluster.log[0].flush_unix == 0);
  CHECK(cf.cluster.log[1].flush_unix == cache_test::started_unix + 100 + 60);
  CHECK(cf.cluster.log[1].noreply);
  CHECK(cf.cluster.log[2].flush_unix == 1800000000);
  cf.f.ctx.settings.flush_enabled = false;
  cf.cluster.log.clear();
  CHECK(run_cluster(cf, "flush_all\r\n") == "CLIENT_ERROR flush_all not allowed\r\n");
  CHECK(cf.cluster.log.empty());
}

TEST_CASE("cache cluster session: stats report the cluster", "[cache][cluster]") {
  cluster_fixture cf;
  cf.cluster.lines = "STAT cluster_name n1\r\nSTAT cluster_members_alive 3\r\n";
  CHECK(run_cluster(cf, "stats cluster\r\n") == cf.cluster.lines + "END\r\n");
  const std::string all = run_cluster(cf, "stats\r\n");
  CHECK(all.find("STAT curr_items 7\r\n") != std::string::npos);
  CHECK(all.find("STAT bytes 777\r\n") != std::string::npos);
  CHECK(all.ends_with("STAT reclaimed 0\r\n" + cf.cluster.lines + "END\r\n"));
  // A single server answers `stats cluster` as any unknown stats argument.
  cache_test::fixture single;
  CHECK(cache_test::run(single, "stats cluster\r\n").out == "ERROR\r\n");
}

namespace {

// A cluster whose replies come from another thread, held until released:
// for the connection.
struct threaded_cluster : dhtkit_cache::cluster_hooks {
  explicit threaded_cluster(cache_test::fixture& f) : runner(f) {}

  void dispatch(deferred_request request, std::function<void(std::string)> done) override {
    std::lock_guard lock(mu);
    std::string reply = runner.run(request);
    queue.emplace_back(std::move(done), std::move(reply));
    ++dispatched;
    max_outstanding = std::max(max_outstanding, queue.size());
    cv.notify_all();
  }
  std::string stats_lines() const override { return ""; }
  std::uint64_t items() const override { return 0; }
  std::uint64_t item_bytes() const override { return 0; }

  // On its own thread: completes what is queued, newest first, while released.
  void serve(const std::atomic<bool>& stop) {
    std::unique_lock lock(mu);
    while (!stop) {
      cv.wait_for(lock, std::chrono::milliseconds(5));
      if (!released) continue;
      auto batch = std::move(queue);
      queue.clear();
      lock.unlock();
      std::reverse(batch.begin(), batch.end());
      for (auto& b : batch) b.first(std::move(b.second));
      lock.lock();
    }
  }

  std::size_t outstanding() {
    std::lock_guard lock(mu);
    return queue.size();
  }

  fake_cluster runner;  // runs the requests (under mu: it is not thread-safe)
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::function<void(std::string)>, std::string>> queue;
  std::size_t dispatched = 0, max_outstanding = 0;
  bool released = false;
};

struct connection_rig {
  cache_test::fixture f;
  threaded_cluster cluster{f};
  dhtkit_cache::worker_shared shared;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::atomic<bool> stop{false};
  std::thread io_thread, cluster_thread;

  connection_rig() {
    f.ctx.cluster = &cluster;
    acceptor.async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      std::make_shared<dhtkit_cache::connection>(std::move(s), f.ctx, shared)->start();
    });
    io_thread = std::thread([this] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
    cluster_thread = std::thread([this] { cluster.serve(stop); });
  }
  ~connection_rig() {
    stop = true;
    cluster_thread.join();
    io.stop();
    io_thread.join();
    // Replies never completed hold their connections: let them go while the
    // io_context their sockets belong to still exists.
    cluster.queue.clear();
  }
  void release() {
    std::lock_guard lock(cluster.mu);
    cluster.released = true;
  }
  bool wait_for(const std::function<bool()>& what) {
    for (int i = 0; i < 500; ++i) {
      if (what()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

}  // namespace

TEST_CASE("cache cluster connection: replies in order and at most 128 requests in flight",
          "[cache][cluster]") {
  connection_rig rig;
  constexpr int keys = 300;
  for (int i = 0; i < keys; ++i) {
    const std::string value = std::to_string(i);
    rig.f.store.modify("k" + value, rig.f.clock, [&](dhtkit::cache::item_ref*) -> dhtkit::cache::decision {
      dhtkit::cache::new_value v;
      v.head = value;
      return v;
    });
  }
  asio::io_context client_io;
  asio::ip::tcp::socket client(client_io);
  client.connect(rig.acceptor.local_endpoint());
  std::string request = "version\r\n";
  for (int i = 0; i < keys; ++i) request += "get k" + std::to_string(i) + (i % 2 ? " nokey\r\n" : "\r\n");
  request += "mn\r\n";
  asio::write(client, asio::buffer(request));

  // Nothing completes yet: the connection stops at the bound.
  CHECK(rig.wait_for([&] { return rig.cluster.outstanding() == 128; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  {
    std::lock_guard lock(rig.cluster.mu);
    CHECK(rig.cluster.dispatched == 128);
  }
  rig.release();

  std::string expected = "VERSION 1.6.18 dhtkit-cache/0.1.0\r\n";
  for (int i = 0; i < keys; ++i) {
    const std::string v = std::to_string(i);
    expected += "VALUE k" + v + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\nEND\r\n";
  }
  expected += "MN\r\n";
  asio::streambuf buf;
  std::error_code ec;
  asio::read_until(client, buf, "MN\r\n", ec);
  REQUIRE_FALSE(ec);
  std::string got(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
  CHECK(got == expected);
  std::lock_guard lock(rig.cluster.mu);
  CHECK(rig.cluster.max_outstanding == 128);
  CHECK(rig.cluster.dispatched == 2 * keys - keys / 2);
}

TEST_CASE("cache cluster connection: a client that leaves with replies pending", "[cache][cluster]") {
  connection_rig rig;
  {
    asio::io_context client_io;
    asio::ip::tcp::socket client(client_io);
    client.connect(rig.acceptor.local_endpoint());
    asio::write(client, asio::buffer(std::string("get a\r\nget b c\r\nset k 0 0 1\r\nx\r\n")));
    CHECK(rig.wait_for([&] { return rig.cluster.outstanding() == 4; }));
  }  // closed with four replies to come
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  rig.release();
  CHECK(rig.wait_for([&] { return rig.cluster.outstanding() == 0; }));
  CHECK(rig.wait_for([&] { return rig.f.ctx.counters.curr_connections.load() == 0; }));
}

TEST_CASE("cache cluster connection: a client that shuts down its side still gets its replies",
          "[cache][cluster]") {
  connection_rig rig;
  asio::io_context client_io;
  asio::ip::tcp::socket client(client_io);
  client.connect(rig.acceptor.local_endpoint());
  asio::write(client, asio::buffer(std::string("set a 0 0 1\r\nA\r\nget a b\r\n")));
  client.shutdown(asio::ip::tcp::socket::shutdown_send);
  CHECK(rig.wait_for([&] { return rig.cluster.outstanding() == 3; }));
  rig.release();
  std::string got;
  std::error_code ec;
  char buf[256];
  while (!ec) got.append(buf, client.read_some(asio::buffer(buf), ec));
  CHECK(ec == asio::error::eof);
  CHECK(got == "STORED\r\nVALUE a 0 1\r\nA\r\nEND\r\n");
}
