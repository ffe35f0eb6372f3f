// dhtkit-cache against memcached, side by side in one run (bench/cache/README.md).
//
// For each server in turn (Debian's memcached first, then dhtkit-cache), the
// program starts it on a free loopback port with -t 2 -m 1024, then:
//   1. throughput and latency: loads 100,000 keys of 100-byte values, then
//      drives it for a fixed time with a closed loop of pipelined requests,
//      9 gets to 1 set, keys drawn uniformly: `threads` client threads, each
//      with `connections` connections, each keeping `depth` requests in flight
//      (epoll, non-blocking). Latency is per request, from the moment it is
//      written to the moment its reply is parsed: ops/s, p50, p99;
//   2. memory: a fresh server, 1,000,000 items of 100 bytes stored, then its
//      VmRSS (/proc/PID/status).
// Figures are JSON Lines on stdout (bench/support/bench.hpp), dhtkit-cache's
// with memcached's as the baseline in the same run.
//
//   bench_cache_load --dhtkit build/release/examples/cache/dhtkit-cache [--memcached /usr/bin/memcached]
//                    [--quick] [--seconds 10] [--threads 2] [--connections 4] [--depth N]
// Each load runs twice, with 1 request in flight per connection (what
// memcaslap does) and with 16 (a pipelining client); --depth picks one.
//
// Why not memcaslap: it reports means and a log2 histogram, not p50/p99, and
// one outstanding request per connection cannot keep a server busy on
// loopback; this client pipelines.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/bench.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

struct config {
  bool quick = false;
  std::string memcached = "/usr/bin/memcached";
  std::string dhtkit;
  double seconds = 10;
  int threads = 2;
  int connections = 4;             // per client thread
  int depth = 16;                  // requests in flight per connection (set by each run of `depths`)
  std::vector<int> depths{1, 16};  // 1: one request at a time, as memcaslap; 16: pipelined
  std::size_t keys = 100000;
  std::size_t value_size = 100;
  std::size_t rss_items = 1000000;
};

// ---- processes ------------------------------------------------------------

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("free_port: bind failed");
  ::close(fd);
  return ntohs(a.sin_port);
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

class server_process {
 public:
  server_process(const std::string& name, std::vector<std::string> argv) : name_(name) {
    port_ = free_port();
    argv.push_back("-p");
    argv.push_back(std::to_string(port_));
    argv.push_back("-l");
    argv.push_back("127.0.0.1");
    if (::geteuid() == 0 && name == "memcached") {
      argv.push_back("-u");
      argv.push_back("nobody");
    }
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
      ::_exit(127);
    }
    // Wait (bounded) until it accepts connections.
    const auto deadline = clock_type::now() + std::chrono::seconds(20);
    for (;;) {
      const int fd = connect_to(port_);
      if (fd >= 0) {
        ::close(fd);
        break;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(name + " exited at start");
      }
      if (clock_type::now() > deadline) throw std::runtime_error(name + " did not start listening in 20 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;
  ~server_process() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (clock_type::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  int port() const { return port_; }
  double rss_mib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return 0;
  }

 private:
  std::string name_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// ---- the client -------------------------------------------------------------

struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// Parses one reply at the front of `in`: its length, or 0 if incomplete.
// Throws on a reply that is not what a get or a set answers.
std::size_t reply_length(std::string_view in, bool is_get) {
  const auto eol = in.find("\r\n");
  if (eol == std::string_view::npos) return 0;
  const std::string_view line = in.substr(0, eol);
  if (!is_get) {
    if (line != "STORED") throw std::runtime_error("set answered " + std::string(line));
    return eol + 2;
  }
  if (line == "END") return eol + 2;
  if (line.rfind("VALUE ", 0) != 0) throw std::runtime_error("get answered " + std::string(line));
  const auto last_space = line.rfind(' ');
  const std::size_t bytes = std::strtoull(std::string(line.substr(last_space + 1)).c_str(), nullptr, 10);
  const std::size_t end = eol + 2 + bytes + 2;  // data \r\n, then END\r\n
  if (in.size() < end + 5) return 0;
  if (in.substr(end, 5) != "END\r\n") throw std::runtime_error("get reply without END");
  return end + 5;
}

struct conn {
  int fd = -1;
  std::string in;
  std::size_t in_off = 0;
  std::string out;
  std::vector<std::pair<clock_type::time_point, bool>> inflight;  // send time, is_get (FIFO)
  std::size_t head = 0;
};

struct thread_result {
  std::uint64_t ops = 0;
  std::vector<std::uint32_t> latencies_ns;
};

void append_request(std::string& out, rng& r, const config& cfg, const std::string& value, bool& is_get) {
  const std::size_t k = r.next() % cfg.keys;
  is_get = r.next() % 10 != 0;  // 9:1
  char buf[64];
  if (is_get) {
    out.append(buf, static_cast<std::size_t>(std::snprintf(buf, sizeof buf, "get key:%08zu\r\n", k)));
  } else {
    out.append(buf, static_cast<std::size_t>(
                        std::snprintf(buf, sizeof buf, "set key:%08zu 0 0 %zu\r\n", k, cfg.value_size)));
    out += value;
    out += "\r\n";
  }
}

void write_all(conn& c) {
  std::size_t off = 0;
  while (off < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + off, c.out.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{c.fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
    } else {
      throw std::runtime_error("send failed");
    }
  }
  c.out.clear();
}

// One client thread: `connections` connections, `depth` requests in flight on each.
thread_result drive(const config& cfg, int port, clock_type::time_point warm_until,
                    clock_type::time_point stop_at, std::uint64_t seed) {
  thread_result res;
  res.latencies_ns.reserve(1 << 22);
  const std::string value(cfg.value_size, 'v');
  rng r{seed * 0x9E3779B97F4A7C15ULL + 1};
  const int ep = ::epoll_create1(0);
  std::vector<conn> conns(static_cast<std::size_t>(cfg.connections));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conn& c = conns[i];
    c.fd = connect_to(port);
    if (c.fd < 0) throw std::runtime_error("connect failed");
    ::fcntl(c.fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    const auto now = clock_type::now();
    for (int d = 0; d < cfg.depth; ++d) {
      bool is_get = false;
      append_request(c.out, r, cfg, value, is_get);
      c.inflight.emplace_back(now, is_get);
    }
    write_all(c);
  }
  std::vector<char> buf(1 << 16);
  epoll_event events[64];
  bool stopping = false;
  std::size_t outstanding = conns.size() * static_cast<std::size_t>(cfg.depth);
  while (outstanding > 0) {
    const int n = ::epoll_wait(ep, events, 64, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("no reply for 1 s");
    const auto now = clock_type::now();
    if (!stopping && now >= stop_at) stopping = true;
    for (int e = 0; e < n; ++e) {
      conn& c = conns[events[e].data.u64];
      for (;;) {
        const ssize_t got = ::recv(c.fd, buf.data(), buf.size(), 0);
        if (got > 0) {
          c.in.append(buf.data(), static_cast<std::size_t>(got));
          if (static_cast<std::size_t>(got) < buf.size()) break;
        } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          break;
        } else {
          throw std::runtime_error("server closed the connection");
        }
      }
      const auto parsed_at = clock_type::now();
      for (;;) {
        if (c.head == c.inflight.size()) break;
        const std::size_t len =
            reply_length(std::string_view(c.in).substr(c.in_off), c.inflight[c.head].second);
        if (len == 0) break;
        c.in_off += len;
        const auto sent = c.inflight[c.head].first;
        ++c.head;
        --outstanding;
        if (sent >= warm_until && sent < stop_at) {
          ++res.ops;
          res.latencies_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(parsed_at - sent).count(), UINT32_MAX)));
        }
        if (!stopping) {
          bool is_get = false;
          append_request(c.out, r, cfg, value, is_get);
          c.inflight.emplace_back(parsed_at, is_get);
          ++outstanding;
        }
      }
      if (c.in_off == c.in.size()) {
        c.in.clear();
        c.in_off = 0;
      }
      if (c.head > 4096) {
        c.inflight.erase(c.inflight.begin(), c.inflight.begin() + static_cast<std::ptrdiff_t>(c.head));
        c.head = 0;
      }
      if (!c.out.empty()) write_all(c);
    }
  }
  for (auto& c : conns) ::close(c.fd);
  ::close(ep);
  return res;
}

// Stores keys [0, count) with pipelined sets over a few connections in parallel.
void load(int port, std::size_t count, std::size_t value_size, int parallel) {
  const std::string value(value_size, 'v');
  std::vector<std::thread> threads;
  std::atomic<bool> failed{false};
  for (int t = 0; t < parallel; ++t) {
    threads.emplace_back([&, t] {
      const int fd = connect_to(port);
      if (fd < 0) {
        failed = true;
        return;
      }
      constexpr std::size_t batch = 1000;
      std::string out, in;
      std::vector<char> buf(1 << 16);
      for (std::size_t start = static_cast<std::size_t>(t) * batch; start < count;
           start += static_cast<std::size_t>(parallel) * batch) {
        const std::size_t end = std::min(count, start + batch);
        out.clear();
        char line[64];
        for (std::size_t i = start; i < end; ++i) {
          out.append(line, static_cast<std::size_t>(
                               std::snprintf(line, sizeof line, "set key:%08zu 0 0 %zu\r\n", i, value_size)));
          out += value;
          out += "\r\n";
        }
        if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
          failed = true;
          break;
        }
        in.clear();
        const std::size_t want = (end - start) * 8;  // "STORED\r\n"
        while (in.size() < want) {
          const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
          if (n <= 0) {
            failed = true;
            break;
          }
          in.append(buf.data(), static_cast<std::size_t>(n));
        }
        if (failed) break;
      }
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  if (failed) throw std::runtime_error("load failed");
}

struct load_result {
  int depth = 0;
  double ops_per_s = 0, p50_us = 0, p99_us = 0;
};

struct run_result {
  std::vector<load_result> loads;
  double rss_mib = 0, load_s = 0;
};

load_result drive_all(const config& cfg, int port) {
  load_result out;
  out.depth = cfg.depth;
  const auto start = clock_type::now();
  const auto warm_until = start + std::chrono::milliseconds(cfg.quick ? 200 : 1000);
  const auto stop_at = warm_until + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(cfg.seconds));
  std::vector<thread_result> results(static_cast<std::size_t>(cfg.threads));
  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.threads; ++t)
    threads.emplace_back([&, t] {
      results[static_cast<std::size_t>(t)] =
          drive(cfg, port, warm_until, stop_at, static_cast<std::uint64_t>(t) + 1);
    });
  for (auto& t : threads) t.join();
  std::vector<std::uint32_t> all;
  std::uint64_t ops = 0;
  for (auto& r : results) {
    ops += r.ops;
    all.insert(all.end(), r.latencies_ns.begin(), r.latencies_ns.end());
  }
  out.ops_per_s = static_cast<double>(ops) / cfg.seconds;
  auto pct = [&](double p) {
    if (all.empty()) return 0.0;
    const std::size_t i =
        std::min(all.size() - 1, static_cast<std::size_t>(p * static_cast<double>(all.size())));
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(i), all.end());
    return all[i] / 1000.0;
  };
  out.p50_us = pct(0.50);
  out.p99_us = pct(0.99);
  return out;
}

run_result measure(const std::string& name, const std::string& binary, const config& cfg) {
  run_result out;
  const std::vector<std::string> argv{binary, "-t", "2", "-m", "1024"};
  {
    server_process server(name, argv);
    load(server.port(), cfg.keys, cfg.value_size, 2);
    for (const int depth : cfg.depths) {
      config run = cfg;
      run.depth = depth;
      out.loads.push_back(drive_all(run, server.port()));
    }
  }
  {
    server_process server(name, argv);
    const auto start = clock_type::now();
    load(server.port(), cfg.rss_items, cfg.value_size, 2);
    out.load_s = std::chrono::duration<double>(clock_type::now() - start).count();
    out.rss_mib = server.rss_mib();
  }
  for (const auto& l : out.loads)
    std::fprintf(stderr, "%-10s depth %2d: %10.0f ops/s  p50 %8.1f us  p99 %8.1f us\n", name.c_str(), l.depth,
                 l.ops_per_s, l.p50_us, l.p99_us);
  std::fprintf(stderr, "%-10s RSS %7.1f MiB after %zu items of %zu bytes (loaded in %.1f s)\n", name.c_str(),
               out.rss_mib, cfg.rss_items, cfg.value_size, out.load_s);
  return out;
}

std::optional<config> parse(int argc, char** argv) {
  config cfg;
#ifdef DHTKIT_CACHE_BINARY
  cfg.dhtkit = DHTKIT_CACHE_BINARY;
#endif
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--memcached" && (v = next())) {
      cfg.memcached = v;
    } else if (a == "--dhtkit" && (v = next())) {
      cfg.dhtkit = v;
    } else if (a == "--seconds" && (v = next())) {
      cfg.seconds = std::atof(v);
    } else if (a == "--threads" && (v = next())) {
      cfg.threads = std::atoi(v);
    } else if (a == "--connections" && (v = next())) {
      cfg.connections = std::atoi(v);
    } else if (a == "--depth" && (v = next())) {
      cfg.depths = {std::atoi(v)};
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--dhtkit PATH] [--memcached PATH] [--seconds S] [--threads N] "
                   "[--connections N] [--depth N (default: both 1 and 16)]\n",
                   argv[0]);
      return std::nullopt;
    }
  }
  if (cfg.dhtkit.empty()) {
    std::fprintf(stderr, "%s: --dhtkit PATH (the dhtkit-cache binary) is required\n", argv[0]);
    return std::nullopt;
  }
  if (cfg.quick) {
    cfg.seconds = std::min(cfg.seconds, 1.0);
    cfg.rss_items = 200000;
  }
  if (cfg.seconds <= 0 || cfg.threads < 1 || cfg.connections < 1 || cfg.depths.front() < 1) {
    std::fprintf(stderr, "%s: --seconds, --threads, --connections and --depth must be positive\n", argv[0]);
    return std::nullopt;
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  const auto cfg = parse(argc, argv);
  if (!cfg) return 2;
  try {
    const run_result base = measure("memcached", cfg->memcached, *cfg);
    const run_result ours = measure("dhtkit", cfg->dhtkit, *cfg);
    const dhtkit::bench::reporter out{"cache", false};
    char params[320];
    for (std::size_t i = 0; i < ours.loads.size(); ++i) {
      const load_result& o = ours.loads[i];
      const load_result& b = base.loads[i];
      std::snprintf(params, sizeof params,
                    "\"server_threads\":2,\"get_set\":\"9:1\",\"value_bytes\":%zu,\"keys\":%zu,"
                    "\"client_threads\":%d,\"connections\":%d,\"depth\":%d,\"seconds\":%g",
                    cfg->value_size, cfg->keys, cfg->threads, cfg->threads * cfg->connections, o.depth,
                    cfg->seconds);
      out.emit("get_set/throughput", params, o.ops_per_s, "ops/s", {"memcached", b.ops_per_s});
      out.emit("get_set/p50", params, o.p50_us, "us", {"memcached", b.p50_us});
      out.emit("get_set/p99", params, o.p99_us, "us", {"memcached", b.p99_us});
    }
    std::snprintf(params, sizeof params, "\"items\":%zu,\"value_bytes\":%zu,\"memory_limit_mb\":1024",
                  cfg->rss_items, cfg->value_size);
    out.emit("rss/loaded", params, ours.rss_mib, "MiB", {"memcached", base.rss_mib});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cache_load: %s\n", e.what());
    return 1;
  }
  return 0;
}
