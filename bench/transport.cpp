// Transport cost on loopback: round-trip latency (p50/p99) and one-way
// throughput of tcp_transport and udp_transport at 64 B, 1 KiB and 64 KiB,
// each against raw Asio sockets doing the same exchange without the transport
// layer (same io_context, same single thread, measured in the same run); plus
// the simulator's delivery rate for small messages.
//
//   bench_transport            full run (a few seconds)
//   bench_transport --quick    smoke run
//
// Everything runs on one thread and one io_context: sender and receiver share
// the core, so the figures are per-core costs, not link capacity. UDP cannot
// carry 64 KiB (65507 bytes is the IPv4 limit), so its large case uses 65000
// bytes with max_message_size raised to match; UDP throughput sends in windows
// of 32 datagrams and waits for each window (bounded), so a lost datagram costs
// a timeout and is reported in "lost". JSON Lines on stdout, a table on stderr.
#include <algorithm>
#include <array>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dhtkit/transport/asio_tcp.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "dhtkit/transport/sim.hpp"
#include "support/bench.hpp"

namespace {

using dhtkit::bench::do_not_optimize;

using clock_type = std::chrono::steady_clock;
using bytes = std::vector<std::byte>;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds bound) {
  const auto deadline = clock_type::now() + bound;
  while (!done()) {
    const auto now = clock_type::now();
    if (now >= deadline) return done();
    io.restart();
    io.run_one_for(deadline - now);
  }
  return true;
}

struct latency {
  double p50 = 0, p99 = 0;
  bool complete = false;
};

latency percentiles(std::vector<double> us, bool complete) {
  latency l;
  l.complete = complete;
  if (us.empty()) return l;
  std::sort(us.begin(), us.end());
  l.p50 = us[us.size() / 2];
  l.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  return l;
}

// ---- round trips through a transport: b echoes, a sends the next on reply ----

template <class Transport, class Config>
latency transport_rtt(const Config& cfg, std::size_t size, int n) {
  asio::io_context io;
  auto a = Transport::open(io.get_executor(), cfg).value();
  auto b = Transport::open(io.get_executor(), cfg).value();
  b.set_receive_handler(
      [&b](const dhtkit::endpoint& from, std::span<const std::byte> m) { (void)b.send(from, m); });
  const bytes msg(size, std::byte{0x5a});
  const int warmup = std::max(10, n / 10);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  int replies = 0;
  auto t0 = clock_type::now();
  const auto b_ep = b.local_endpoint();
  a.set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte> m) {
    const auto t1 = clock_type::now();
    do_not_optimize(m.data());
    if (replies >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (++replies < warmup + n) {
      t0 = clock_type::now();
      (void)a.send(b_ep, msg);
    }
  });
  asio::post(a.get_executor(), [&] {
    t0 = clock_type::now();
    (void)a.send(b_ep, msg);
  });
  const bool ok = run_until(
      io, [&] { return replies >= warmup + n; }, std::chrono::seconds(20));
  return percentiles(std::move(us), ok);
}

// ---- the same with raw Asio sockets ----

latency raw_tcp_rtt(std::size_t size, int n) {
  using asio::ip::tcp;
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io), server(io);
  client.connect(acc.local_endpoint());
  acc.accept(server);
  client.set_option(tcp::no_delay(true));
  server.set_option(tcp::no_delay(true));
  bytes frame(4 + size, std::byte{0x5a});
  dhtkit::detail::store_le32(frame.data(), static_cast<std::uint32_t>(size));
  bytes server_buf(4 + size), client_buf(4 + size);
  // Server: read a length prefix, then the body, then write the frame back.
  std::function<void()> serve = [&] {
    asio::async_read(server, asio::buffer(server_buf.data(), 4), [&](std::error_code ec, std::size_t) {
      if (ec) return;
      const std::size_t len = dhtkit::detail::load_le32(server_buf.data());
      asio::async_read(server, asio::buffer(server_buf.data() + 4, len),
                       [&, len](std::error_code ec2, std::size_t) {
                         if (ec2) return;
                         asio::async_write(server, asio::buffer(server_buf.data(), 4 + len),
                                           [&](std::error_code ec3, std::size_t) {
                                             if (!ec3) serve();
                                           });
                       });
    });
  };
  const int warmup = std::max(10, n / 10);
  std::vector<double> us;
  int replies = 0;
  auto t0 = clock_type::now();
  std::function<void()> ping = [&] {
    t0 = clock_type::now();
    asio::async_write(client, asio::buffer(frame), [&](std::error_code ec, std::size_t) {
      if (ec) return;
      asio::async_read(client, asio::buffer(client_buf.data(), 4), [&](std::error_code ec2, std::size_t) {
        if (ec2) return;
        const std::size_t len = dhtkit::detail::load_le32(client_buf.data());
        asio::async_read(client, asio::buffer(client_buf.data() + 4, len),
                         [&](std::error_code ec3, std::size_t) {
                           if (ec3) return;
                           const auto t1 = clock_type::now();
                           if (replies >= warmup)
                             us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
                           if (++replies < warmup + n) ping();
                         });
      });
    });
  };
  serve();
  ping();
  const bool ok = run_until(
      io, [&] { return replies >= warmup + n; }, std::chrono::seconds(20));
  return percentiles(std::move(us), ok);
}

latency raw_udp_rtt(std::size_t size, int n) {
  using asio::ip::udp;
  asio::io_context io;
  const auto lo = asio::ip::make_address("127.0.0.1");
  udp::socket client(io, udp::endpoint(lo, 0)), server(io, udp::endpoint(lo, 0));
  const auto server_ep = server.local_endpoint();
  bytes msg(size, std::byte{0x5a}), server_buf(size + 1), client_buf(size + 1);
  udp::endpoint peer;
  std::function<void()> serve = [&] {
    server.async_receive_from(asio::buffer(server_buf), peer, [&](std::error_code ec, std::size_t len) {
      if (ec) return;
      server.async_send_to(asio::buffer(server_buf.data(), len), peer,
                           [&](std::error_code, std::size_t) { serve(); });
    });
  };
  const int warmup = std::max(10, n / 10);
  std::vector<double> us;
  int replies = 0;
  auto t0 = clock_type::now();
  std::function<void()> ping = [&] {
    t0 = clock_type::now();
    client.send_to(asio::buffer(msg), server_ep);
    client.async_receive(asio::buffer(client_buf), [&](std::error_code ec, std::size_t) {
      if (ec) return;
      const auto t1 = clock_type::now();
      if (replies >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      if (++replies < warmup + n) ping();
    });
  };
  serve();
  ping();
  const bool ok = run_until(
      io, [&] { return replies >= warmup + n; }, std::chrono::seconds(20));
  return percentiles(std::move(us), ok);
}

// ---- one-way throughput ----

struct throughput {
  double msgs_per_s = 0;
  double mb_per_s = 0;
  std::size_t lost = 0;
  bool complete = false;
};

throughput make_throughput(std::size_t delivered, std::size_t size, double secs, std::size_t lost,
                           bool complete) {
  throughput t;
  t.msgs_per_s = static_cast<double>(delivered) / secs;
  t.mb_per_s = static_cast<double>(delivered) * static_cast<double>(size) / secs / 1e6;
  t.lost = lost;
  t.complete = complete;
  return t;
}

// TCP: a keeps at most `window` messages unacknowledged by b's handler, so
// the per-peer queue never overflows; the timing ends when b has them all.
throughput tcp_throughput(std::size_t size, std::size_t n) {
  asio::io_context io;
  dhtkit::tcp_transport_config cfg;
  cfg.send_queue_frames = 1 << 16;
  cfg.send_queue_bytes = std::size_t{64} << 20;
  auto a = dhtkit::tcp_transport::open(io.get_executor(), cfg).value();
  auto b = dhtkit::tcp_transport::open(io.get_executor(), cfg).value();
  const std::size_t window = std::max<std::size_t>(4, std::min<std::size_t>(1024, (8u << 20) / (size + 4)));
  const bytes msg(size, std::byte{0x33});
  std::size_t sent = 0, received = 0;
  const auto b_ep = b.local_endpoint();
  std::function<void()> pump = [&] {
    while (sent < n && sent - received < window) {
      if (a.send(b_ep, msg)) break;  // on a's strand: queue_full would show here
      ++sent;
    }
  };
  b.set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte> m) {
    do_not_optimize(m.data());
    ++received;
    if (received % (window / 2) == 0 || received == sent) asio::post(a.get_executor(), pump);
  });
  const auto t0 = clock_type::now();
  asio::post(a.get_executor(), pump);
  const bool ok = run_until(
      io, [&] { return received >= n; }, std::chrono::seconds(30));
  return make_throughput(received, size, seconds_since(t0), 0, ok);
}

throughput raw_tcp_throughput(std::size_t size, std::size_t n) {
  using asio::ip::tcp;
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io), server(io);
  client.connect(acc.local_endpoint());
  acc.accept(server);
  client.set_option(tcp::no_delay(true));
  // The same byte stream the transport writes (length-prefixed frames), in
  // batches of up to 64 frames or 256 KiB per write, as the transport does.
  const std::size_t per_write =
      std::max<std::size_t>(1, std::min<std::size_t>(64, (256u << 10) / (size + 4)));
  bytes batch;
  for (std::size_t i = 0; i < per_write; ++i) {
    const std::size_t at = batch.size();
    batch.resize(at + 4 + size, std::byte{0x33});
    dhtkit::detail::store_le32(batch.data() + at, static_cast<std::uint32_t>(size));
  }
  const std::size_t total = n * (4 + size);
  std::size_t written_frames = 0, read_bytes = 0;
  std::function<void()> write_more = [&] {
    const std::size_t k = std::min(per_write, n - written_frames);
    if (k == 0) return;
    asio::async_write(client, asio::buffer(batch.data(), k * (4 + size)),
                      [&, k](std::error_code ec, std::size_t) {
                        if (ec) return;
                        written_frames += k;
                        write_more();
                      });
  };
  bytes buf(256 << 10);
  // The reader walks the frames (length prefix, body) but copies nothing out:
  // the least a framed receiver must do.
  std::array<std::byte, 4> header{};
  std::size_t header_have = 0, body_left = 0, frames = 0;
  std::function<void()> read_more = [&] {
    server.async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t len) {
      if (ec) return;
      for (std::size_t i = 0; i < len;) {
        if (header_have < 4) {
          header[header_have++] = buf[i++];
          if (header_have == 4) body_left = dhtkit::detail::load_le32(header.data());
        } else {
          const std::size_t k = std::min(body_left, len - i);
          i += k;
          body_left -= k;
        }
        if (header_have == 4 && body_left == 0) {
          ++frames;
          header_have = 0;
        }
      }
      do_not_optimize(frames);
      read_bytes += len;
      if (read_bytes < total) read_more();
    });
  };
  const auto t0 = clock_type::now();
  read_more();
  write_more();
  const bool ok = run_until(
      io, [&] { return read_bytes >= total; }, std::chrono::seconds(30));
  return make_throughput(frames, size, seconds_since(t0), 0, ok && frames == n);
}

// UDP: windows of `window` datagrams; each window is awaited (at most 50 ms
// without progress) before the next is sent; what never came is "lost".
constexpr std::size_t udp_window = 32;

throughput udp_throughput(std::size_t size, std::size_t n) {
  asio::io_context io;
  dhtkit::udp_transport_config cfg;
  cfg.max_message_size = std::max<std::size_t>(size, 1400);
  cfg.socket_buffer_bytes = 4 << 20;
  auto a = dhtkit::udp_transport::open(io.get_executor(), cfg).value();
  auto b = dhtkit::udp_transport::open(io.get_executor(), cfg).value();
  const bytes msg(size, std::byte{0x44});
  std::size_t received = 0, sent = 0;
  b.set_receive_handler([&](const dhtkit::endpoint&, std::span<const std::byte> m) {
    do_not_optimize(m.data());
    ++received;
  });
  const auto b_ep = b.local_endpoint();
  const auto t0 = clock_type::now();
  while (sent < n) {
    const std::size_t k = std::min(udp_window, n - sent);
    asio::post(a.get_executor(), [&, k] {
      for (std::size_t i = 0; i < k; ++i) (void)a.send(b_ep, msg);
    });
    sent += k;
    std::size_t last = received;
    while (received < sent) {
      if (!run_until(
              io, [&] { return received >= sent || received != last; }, std::chrono::milliseconds(50)))
        break;
      last = received;
    }
  }
  return make_throughput(received, size, seconds_since(t0), sent - received, true);
}

throughput raw_udp_throughput(std::size_t size, std::size_t n) {
  using asio::ip::udp;
  asio::io_context io;
  const auto lo = asio::ip::make_address("127.0.0.1");
  udp::socket client(io, udp::endpoint(lo, 0)), server(io, udp::endpoint(lo, 0));
  server.set_option(asio::socket_base::receive_buffer_size(4 << 20));
  client.set_option(asio::socket_base::send_buffer_size(4 << 20));
  const auto server_ep = server.local_endpoint();
  bytes msg(size, std::byte{0x44}), buf(size + 1);
  std::size_t received = 0, sent = 0;
  std::function<void()> receive = [&] {
    server.async_receive(asio::buffer(buf), [&](std::error_code ec, std::size_t) {
      if (ec) return;
      do_not_optimize(buf.data());
      ++received;
      receive();
    });
  };
  receive();
  const auto t0 = clock_type::now();
  while (sent < n) {
    const std::size_t k = std::min(udp_window, n - sent);
    asio::post(io, [&, k] {
      for (std::size_t i = 0; i < k; ++i) {
        std::error_code ec;
        client.send_to(asio::buffer(msg), server_ep, 0, ec);
      }
    });
    sent += k;
    std::size_t last = received;
    while (received < sent) {
      if (!run_until(
              io, [&] { return received >= sent || received != last; }, std::chrono::milliseconds(50)))
        break;
      last = received;
    }
  }
  return make_throughput(received, size, seconds_since(t0), sent - received, true);
}

// ---- simulator ----

double sim_messages_per_s(std::size_t n) {
  dhtkit::sim::network net(1);
  auto& a = net.add_endpoint();
  auto& b = net.add_endpoint();
  std::size_t received = 0;
  b.set_receive_handler([&](const dhtkit::sim::endpoint&, std::span<const std::byte> m) {
    do_not_optimize(m.data());
    ++received;
  });
  const bytes msg(64, std::byte{0x55});
  const auto t0 = clock_type::now();
  // Batches keep the in-flight count far below the network's bound.
  const std::size_t batch = 10000;
  for (std::size_t sent = 0; sent < n;) {
    const std::size_t k = std::min(batch, n - sent);
    for (std::size_t i = 0; i < k; ++i) (void)a.send(b.local_endpoint(), msg);
    sent += k;
    net.run_until_idle(k * 2);
  }
  const double secs = seconds_since(t0);
  if (received != n) std::fprintf(stderr, "sim: only %zu of %zu delivered\n", received, n);
  return static_cast<double>(received) / secs;
}

std::string size_param(std::size_t size) { return "\"size\":" + std::to_string(size); }

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = dhtkit::bench::parse_options(argc, argv);
  if (!parsed) return 2;
  const dhtkit::bench::options opt = *parsed;
  const dhtkit::bench::reporter out{"transport"};
  const int scale = opt.quick ? 10 : 1;
  const std::size_t uscale = static_cast<std::size_t>(scale);
  struct size_case {
    std::size_t tcp_size, udp_size;
    int rtt_n;
    std::size_t tput_n;
  };
  const size_case cases[] = {
      {64, 64, 20000 / scale, 400000 / uscale},
      {1024, 1024, 20000 / scale, 200000 / uscale},
      {65536, 65000, 3000 / scale, 10000 / uscale},
  };

  for (const auto& c : cases) {
    dhtkit::tcp_transport_config tcfg;
    const auto t = transport_rtt<dhtkit::tcp_transport>(tcfg, c.tcp_size, c.rtt_n);
    const auto raw = raw_tcp_rtt(c.tcp_size, c.rtt_n);
    if (!t.complete || !raw.complete)
      std::fprintf(stderr, "tcp round trip %zu: incomplete run\n", c.tcp_size);
    const std::string p = size_param(c.tcp_size) + ",\"round_trips\":" + std::to_string(c.rtt_n);
    out.emit("tcp/round_trip_p50", p, t.p50, "us", {"raw_asio_tcp", raw.p50});
    out.emit("tcp/round_trip_p99", p, t.p99, "us", {"raw_asio_tcp", raw.p99});
  }
  for (const auto& c : cases) {
    dhtkit::udp_transport_config ucfg;
    ucfg.max_message_size = std::max<std::size_t>(c.udp_size, 1400);
    const auto t = transport_rtt<dhtkit::udp_transport>(ucfg, c.udp_size, c.rtt_n);
    const auto raw = raw_udp_rtt(c.udp_size, c.rtt_n);
    if (!t.complete || !raw.complete)
      std::fprintf(stderr, "udp round trip %zu: incomplete run\n", c.udp_size);
    const std::string p = size_param(c.udp_size) + ",\"round_trips\":" + std::to_string(c.rtt_n);
    out.emit("udp/round_trip_p50", p, t.p50, "us", {"raw_asio_udp", raw.p50});
    out.emit("udp/round_trip_p99", p, t.p99, "us", {"raw_asio_udp", raw.p99});
  }
  for (const auto& c : cases) {
    const auto t = tcp_throughput(c.tcp_size, c.tput_n);
    const auto raw = raw_tcp_throughput(c.tcp_size, c.tput_n);
    if (!t.complete || !raw.complete)
      std::fprintf(stderr, "tcp throughput %zu: incomplete run\n", c.tcp_size);
    const std::string p = size_param(c.tcp_size) + ",\"messages\":" + std::to_string(c.tput_n);
    out.emit("tcp/one_way_msgs", p, t.msgs_per_s, "msgs/s", {"raw_asio_tcp", raw.msgs_per_s});
    out.emit("tcp/one_way_bytes", p, t.mb_per_s, "MB/s", {"raw_asio_tcp", raw.mb_per_s});
  }
  for (const auto& c : cases) {
    const auto t = udp_throughput(c.udp_size, c.tput_n);
    const auto raw = raw_udp_throughput(c.udp_size, c.tput_n);
    const std::string p = size_param(c.udp_size) + ",\"messages\":" + std::to_string(c.tput_n) +
                          ",\"window\":" + std::to_string(udp_window) +
                          ",\"lost\":" + std::to_string(t.lost) +
                          ",\"baseline_lost\":" + std::to_string(raw.lost);
    out.emit("udp/one_way_msgs", p, t.msgs_per_s, "msgs/s", {"raw_asio_udp", raw.msgs_per_s});
    out.emit("udp/one_way_bytes", p, t.mb_per_s, "MB/s", {"raw_asio_udp", raw.mb_per_s});
  }
  const std::size_t sim_n = opt.quick ? 100000 : 1000000;
  out.emit("sim/one_way_msgs", size_param(64) + ",\"messages\":" + std::to_string(sim_n),
           sim_messages_per_s(sim_n), "msgs/s");
  return 0;
}
