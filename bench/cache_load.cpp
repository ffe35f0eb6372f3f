// dhtkit-cache against memcached, side by side in one run (bench/cache/README.md).
//
// Both servers (Debian's memcached and dhtkit-cache) run on free loopback
// ports with -t 2 -m 1024:
//   1. throughput and latency: both are started and loaded with 100,000 keys
//      of 100-byte values, then the load runs in `rounds` interleaved rounds.
//      In each round, for each depth, each server in turn is driven for a
//      fixed time (memcached first in odd rounds, dhtkit-cache first in even
//      ones) with a closed loop of pipelined requests, 9 gets to 1 set, keys
//      drawn uniformly: `threads` client threads, each with `connections`
//      connections, each keeping `depth` requests in flight (epoll,
//      non-blocking). Latency is per request, from the moment it is written to
//      the moment its reply is parsed: ops/s, p50, p99. Each figure reported is
//      the median over the rounds, per server, so one noisy window on a shared
//      machine does not decide the ratio;
//   2. memory: for each server in turn, a fresh server, 1,000,000 items of 100
//      bytes stored, then its VmRSS (/proc/PID/status).
// Figures are JSON Lines on stdout (bench/support/bench.hpp), dhtkit-cache's
// with memcached's as the baseline in the same run; the load figures carry
// every round's value of both ("rounds_value", "rounds_baseline").
//
//   bench_cache_load --dhtkit build/release/examples/cache/dhtkit-cache [--memcached /usr/bin/memcached]
//                    [--quick] [--rounds 3] [--seconds 10] [--threads 2] [--connections 4] [--depth N]
// Each load runs twice per round, with 1 request in flight per connection
// (what memcaslap does) and with 16 (a pipelining client); --depth picks one.
// --quick: 1 round (unless --rounds is given), 1 s per load, 20,000 keys
// (unless --keys is given), 200,000 items.
//
// The cluster rows (bench/cache/README.md; --no-cluster leaves them out):
// two three-node clusters, N=3 R=1 W=2 and N=3 R=2 W=2, loaded in the same
// rounds with connections spread over their nodes; then a fourth node joins
// the R=1 cluster under load (time until no handoff is in progress, the
// throughput before and during, failed requests).
//
// The cost of a dhtkit-cache option, measured the same way: the baseline can
// be another dhtkit-cache, and --dhtkit-flag (repeatable) adds a flag to the
// measured one only; --baseline-name names the baseline in the output:
//   bench_cache_load --dhtkit D --memcached D --baseline-name dhtkit-cache
//                    --dhtkit-flag --metrics-port --dhtkit-flag 0
//
// Every server started is killed on every way out: normal return, an exception
// (also one thrown in a client thread), std::terminate, and SIGINT, SIGTERM,
// SIGHUP or SIGQUIT to this program; a server started without `-u` also gets
// SIGKILL from the kernel if this program dies of anything else.
//
// TLS (--tls-cert FILE --tls-key FILE; bench/cache/run.sh --tls makes them):
// two more targets in the same rounds, memcached -Z and dhtkit-cache -Z with
// that certificate, driven over TLS (OpenSSL, non-blocking, handshakes before
// the timed window). Rows tls/... compare dhtkit-cache -Z with memcached -Z,
// rows tls_cost/... dhtkit-cache -Z with the plain dhtkit-cache of the run.
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/bench.hpp"

#ifdef DHTKIT_BENCH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

namespace {

using clock_type = std::chrono::steady_clock;

struct config {
  bool quick = false;
  std::string memcached = "/usr/bin/memcached";
  std::string dhtkit;
  std::vector<std::string> dhtkit_flags;  // --dhtkit-flag: extra flags for the measured server only
  std::string baseline_name = "memcached";
  double seconds = 10;
  int threads = 2;
  int connections = 4;             // per client thread
  int depth = 16;                  // requests in flight per connection (set by each run of `depths`)
  int rounds = 3;                  // interleaved rounds of the load phase; medians over them are reported
  std::vector<int> depths{1, 16};  // 1: one request at a time, as memcaslap; 16: pipelined
  std::size_t keys = 100000;
  std::size_t value_size = 100;
  std::size_t rss_items = 1000000;
  bool cluster = true;                    // --no-cluster: memcached and one dhtkit-cache only
  std::string cluster_profile = "local";  // loopback: what the tests and the demo use
  std::size_t cluster_load_batch = 100;   // sets in flight per connection while a cluster is loaded
  std::string node_logs;                  // --node-logs DIR: each cluster node's stderr in DIR/<name>.log
  std::string tls_cert, tls_key;          // --tls-cert, --tls-key: also measure both servers with -Z
};

// ---- processes ------------------------------------------------------------

// The servers alive now, so that a signal handler or std::terminate can kill
// them: kill and waitpid are async-signal-safe, and a lock-free atomic is safe
// to read in a handler.
constexpr std::size_t max_children = 16;
std::atomic<pid_t> children[max_children];
static_assert(std::atomic<pid_t>::is_always_lock_free);

void kill_children() {
  for (auto& slot : children) {
    const pid_t pid = slot.exchange(0);
    if (pid <= 0) continue;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void on_fatal_signal(int sig) {
  const int saved = errno;
  kill_children();
  errno = saved;
  ::signal(sig, SIG_DFL);  // then die of the same signal, as the caller expects
  ::raise(sig);
}

constexpr int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void install_cleanup() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  ::sigemptyset(&sa.sa_mask);
  for (const int sig : fatal_signals) ::sigaddset(&sa.sa_mask, sig);  // one cleanup at a time
  for (const int sig : fatal_signals) ::sigaction(sig, &sa, nullptr);
  std::set_terminate([] {
    kill_children();
    std::abort();
  });
}

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
  // stderr_path: where the server's stderr goes ("": this program's stderr).
  server_process(const std::string& name, std::vector<std::string> argv, const std::string& stderr_path = "")
      : name_(name) {
    port_ = free_port();
    argv.push_back("-p");
    argv.push_back(std::to_string(port_));
    argv.push_back("-l");
    argv.push_back("127.0.0.1");
    // memcached refuses to run as root without -u; the baseline may be a
    // dhtkit-cache, which has no -u.
    const std::string& binary = argv.front();
    const bool is_memcached = binary.size() >= 9 && binary.compare(binary.size() - 9, 9, "memcached") == 0;
    if (::geteuid() == 0 && is_memcached) {
      argv.push_back("-u");
      argv.push_back("nobody");
    }
    // Signals stay blocked from fork until the child is registered, so a
    // handler never misses it.
    sigset_t block, old;
    ::sigemptyset(&block);
    for (const int sig : fatal_signals) ::sigaddset(&block, sig);
    ::pthread_sigmask(SIG_BLOCK, &block, &old);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const int sig : fatal_signals) ::signal(sig, SIG_DFL);
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dropped by memcached's -u; the handlers cover that
      if (::getppid() != parent) ::_exit(1);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      if (!stderr_path.empty()) {
        const int log = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(log >= 0 ? log : null, 2);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
      ::_exit(127);
    }
    if (pid_ > 0) {
      for (auto& slot : children) {
        pid_t empty = 0;
        if (slot.compare_exchange_strong(empty, pid_)) break;
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid_ < 0) throw std::runtime_error("fork failed");
    try {
      wait_until_listening();
    } catch (...) {
      stop();  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;
  ~server_process() { stop(); }
  int port() const { return port_; }
  const std::string& name() const { return name_; }
  // Sends SIGTERM without waiting, so that several servers (a cluster's
  // nodes) leave at the same time; stop() then waits for each.
  void terminate() {
    if (pid_ > 0 && !terminated_) ::kill(pid_, SIGTERM);
    terminated_ = true;
  }
  // CPU time used so far (user + system), from /proc/PID/stat.
  double cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::vector<std::string> fields;
    std::size_t at = close + 2;
    for (std::size_t space; fields.size() < 13 && (space = stat.find(' ', at)) != std::string::npos;
         at = space + 1)
      fields.push_back(stat.substr(at, space - at));
    if (fields.size() < 13) return 0;
    return static_cast<double>(std::stoull(fields[11]) + std::stoull(fields[12])) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  double rss_mib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return 0;
  }

 private:
  // Waits (bounded) until the server accepts connections.
  void wait_until_listening() {
    const auto deadline = clock_type::now() + std::chrono::seconds(20);
    for (;;) {
      const int fd = connect_to(port_);
      if (fd >= 0) {
        ::close(fd);
        break;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        forget();
        throw std::runtime_error(name_ + " exited at start");
      }
      if (clock_type::now() > deadline) throw std::runtime_error(name_ + " did not start listening in 20 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  // SIGTERM (unless terminate() sent it), then SIGKILL if it has not exited
  // in 10 s; reaps it.
  void stop() {
    if (pid_ <= 0) return;
    terminate();
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;  // reaped (here or by a handler)
      if (clock_type::now() > deadline) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    forget();
  }
  void forget() {
    for (auto& slot : children) {
      pid_t mine = pid_;
      if (slot.compare_exchange_strong(mine, 0)) break;
    }
    pid_ = -1;
  }

  std::string name_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool terminated_ = false;
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
// A cluster node answers "SERVER_ERROR <reason>" to a request whose quorum it
// cannot reach: that sets `failed`. Throws on any other reply that is not
// what a get or a set answers.
std::size_t reply_length(std::string_view in, bool is_get, bool& failed) {
  const auto eol = in.find("\r\n");
  if (eol == std::string_view::npos) return 0;
  const std::string_view line = in.substr(0, eol);
  failed = line.rfind("SERVER_ERROR", 0) == 0;
  if (failed) return eol + 2;
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

// ---- TLS on the client side ----------------------------------------------

#ifdef DHTKIT_BENCH_TLS
// One client context for every TLS connection (no verification: the
// certificate is the bench's own, on loopback).
SSL_CTX* client_tls_context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (c == nullptr) throw std::runtime_error("SSL_CTX_new failed");
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return c;
  }();
  return ctx;
}
using ssl_handle = SSL*;
#else
using ssl_handle = void*;
#endif

// A client connection, plain or TLS: the handshake is done (blocking) here,
// before the caller makes the socket non-blocking.
struct client_socket {
  int fd = -1;
  ssl_handle ssl = nullptr;
  client_socket() = default;
  client_socket(int port, bool tls) : fd(connect_to(port)) {
    if (fd < 0) throw std::runtime_error("connect failed");
    if (!tls) return;
#ifdef DHTKIT_BENCH_TLS
    ssl = SSL_new(client_tls_context());
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) throw std::runtime_error("TLS handshake failed");
#else
    throw std::runtime_error("this bench_cache_load was built without OpenSSL");
#endif
  }
  client_socket(client_socket&& o) noexcept
      : fd(std::exchange(o.fd, -1)), ssl(std::exchange(o.ssl, nullptr)) {}
  client_socket& operator=(client_socket&& o) noexcept {
    std::swap(fd, o.fd);
    std::swap(ssl, o.ssl);
    return *this;
  }
  ~client_socket() {
#ifdef DHTKIT_BENCH_TLS
    if (ssl != nullptr) SSL_free(ssl);
#endif
    if (fd >= 0) ::close(fd);
  }
  // As send/recv: bytes, or -1 with errno (EAGAIN when it would block, either
  // way round for TLS), or 0 from recv at the end.
  ssize_t send_some(const char* data, std::size_t size) {
#ifdef DHTKIT_BENCH_TLS
    if (ssl != nullptr)
      return tls_result(SSL_write(ssl, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX))));
#endif
    return ::send(fd, data, size, MSG_NOSIGNAL);
  }
  ssize_t recv_some(char* data, std::size_t size) {
#ifdef DHTKIT_BENCH_TLS
    if (ssl != nullptr)
      return tls_result(SSL_read(ssl, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX))));
#endif
    return ::recv(fd, data, size, 0);
  }
  // Whether a short read may leave bytes behind (TLS: OpenSSL may hold some).
  bool short_read_drains() const { return ssl == nullptr; }
  bool send_all(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = send_some(data.data() + off, data.size() - off);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

 private:
#ifdef DHTKIT_BENCH_TLS
  ssize_t tls_result(int r) {
    if (r > 0) return r;
    const int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = EIO;
    return -1;
  }
#endif
};

struct conn {
  client_socket sock;
  int fd = -1;
  std::string in;
  std::size_t in_off = 0;
  std::string out;
  std::vector<std::pair<clock_type::time_point, bool>> inflight;  // send time, is_get (FIFO)
  std::size_t head = 0;
};

// Replies completed in each slice of this long since the load began, so the
// rebalancing row can compare throughput before and during a join.
constexpr auto bucket_width = std::chrono::milliseconds(100);

struct thread_result {
  std::uint64_t ops = 0;     // successful replies to requests sent in the measured window
  std::uint64_t failed = 0;  // SERVER_ERROR replies, whenever sent
  std::vector<std::uint32_t> latencies_ns;
  std::vector<std::uint32_t> ok_buckets, failed_buckets;  // per bucket_width since `start`
};

// When a load runs: requests sent from warm_until to stop_at are measured;
// stop_now (if given) ends it early, for a load whose end is not known ahead.
struct load_window {
  clock_type::time_point start, warm_until, stop_at;
  const std::atomic<bool>* stop_now = nullptr;
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
    const ssize_t n = c.sock.send_some(c.out.data() + off, c.out.size() - off);
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

// One client thread: `connections` connections, `depth` requests in flight on
// each. Connection i of the run (first_conn + i) goes to ports[i % size]:
// a cluster's connections are spread over its nodes.
thread_result drive(const config& cfg, const std::vector<int>& ports, bool tls, std::size_t first_conn,
                    const load_window& w, std::uint64_t seed) {
  const auto warm_until = w.warm_until;
  const auto stop_at = w.stop_at;
  thread_result res;
  res.latencies_ns.reserve(1 << 22);
  const std::string value(cfg.value_size, 'v');
  rng r{seed * 0x9E3779B97F4A7C15ULL + 1};
  const int ep = ::epoll_create1(0);
  std::vector<conn> conns(static_cast<std::size_t>(cfg.connections));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conn& c = conns[i];
    c.sock = client_socket(ports[(first_conn + i) % ports.size()], tls);
    c.fd = c.sock.fd;
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
    // A cluster node answers a request it cannot complete within its request
    // timeout (1-2 s) with SERVER_ERROR: silence for longer is a hang.
    const int n = ::epoll_wait(ep, events, 64, 5000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("no reply for 5 s");
    const auto now = clock_type::now();
    if (!stopping && (now >= stop_at || (w.stop_now != nullptr && w.stop_now->load()))) stopping = true;
    for (int e = 0; e < n; ++e) {
      conn& c = conns[events[e].data.u64];
      for (;;) {
        const ssize_t got = c.sock.recv_some(buf.data(), buf.size());
        if (got > 0) {
          c.in.append(buf.data(), static_cast<std::size_t>(got));
          if (static_cast<std::size_t>(got) < buf.size() && c.sock.short_read_drains()) break;
        } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          break;
        } else {
          throw std::runtime_error("server closed the connection");
        }
      }
      const auto parsed_at = clock_type::now();
      for (;;) {
        if (c.head == c.inflight.size()) break;
        bool failed = false;
        const std::size_t len =
            reply_length(std::string_view(c.in).substr(c.in_off), c.inflight[c.head].second, failed);
        if (len == 0) break;
        c.in_off += len;
        const auto sent = c.inflight[c.head].first;
        ++c.head;
        --outstanding;
        const auto bucket = static_cast<std::size_t>((parsed_at - w.start) / bucket_width);
        auto& buckets = failed ? res.failed_buckets : res.ok_buckets;
        if (buckets.size() <= bucket) buckets.resize(bucket + 1);
        ++buckets[bucket];
        if (failed) {
          ++res.failed;
        } else if (sent >= warm_until && sent < stop_at) {
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
  conns.clear();  // closes them
  ::close(ep);
  return res;
}

// Stores keys [0, count) with pipelined sets over a few connections in
// parallel, connection t to ports[t % size], `batch` sets in flight on each.
// Every reply must be STORED, or SERVER_ERROR (a cluster's quorum not
// reached), which is counted and returned: that key is then simply absent.
std::uint64_t load(const std::vector<int>& ports, std::size_t count, std::size_t value_size, int parallel,
                   std::size_t batch = 1000, bool tls = false) {
  const std::string value(value_size, 'v');
  std::vector<std::thread> threads;
  std::atomic<bool> failed{false};
  std::atomic<std::uint64_t> server_errors{0};
  std::string first_error;  // written by the first thread that fails
  std::atomic<bool> error_claimed{false};
  for (int t = 0; t < parallel; ++t) {
    threads.emplace_back([&, t] {
      client_socket sock;
      try {
        sock = client_socket(ports[static_cast<std::size_t>(t) % ports.size()], tls);
      } catch (const std::exception&) {
        failed = true;
        return;
      }
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
        if (!sock.send_all(out)) {
          failed = true;
          break;
        }
        in.clear();
        std::size_t lines = 0, scanned = 0;
        while (lines < end - start && !failed) {
          const ssize_t n = sock.recv_some(buf.data(), buf.size());
          if (n <= 0) {
            failed = true;
            break;
          }
          in.append(buf.data(), static_cast<std::size_t>(n));
          for (std::size_t eol; (eol = in.find("\r\n", scanned)) != std::string::npos; scanned = eol + 2) {
            ++lines;
            if (in.compare(scanned, 12, "SERVER_ERROR") == 0) {
              ++server_errors;
            } else if (in.compare(scanned, eol - scanned, "STORED") != 0) {
              if (!error_claimed.exchange(true)) first_error = in.substr(scanned, eol - scanned);
              failed = true;
              break;
            }
          }
        }
        if (failed) break;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed)
    throw std::runtime_error("load failed" + (first_error.empty() ? "" : ": a set answered " + first_error));
  return server_errors;
}

struct load_result {
  int depth = 0;
  double ops_per_s = 0, p50_us = 0, p99_us = 0;
  std::uint64_t failed = 0;                               // SERVER_ERROR replies
  std::vector<std::uint32_t> ok_buckets, failed_buckets;  // all threads' replies per bucket_width
};

struct rss_result {
  double rss_mib = 0, load_s = 0;
};

const std::vector<std::string> server_flags{"-t", "2", "-m", "1024"};

std::vector<std::string> server_argv(const std::string& binary, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), server_flags.begin(), server_flags.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

void add_buckets(std::vector<std::uint32_t>& into, const std::vector<std::uint32_t>& from) {
  if (into.size() < from.size()) into.resize(from.size());
  for (std::size_t i = 0; i < from.size(); ++i) into[i] += from[i];
}

// Runs `threads` client threads against `ports` (connections spread over
// them). Without stop_now, the load lasts cfg.seconds after a warm-up; with
// it, until *stop_now (ops_per_s and the percentiles are then not meaningful:
// the buckets are).
load_result drive_all(const config& cfg, const std::vector<int>& ports, bool tls = false,
                      const std::atomic<bool>* stop_now = nullptr,
                      clock_type::time_point* started = nullptr) {
  load_result out;
  out.depth = cfg.depth;
  load_window w;
  w.start = clock_type::now();
  if (started != nullptr) *started = w.start;
  w.warm_until = w.start + std::chrono::milliseconds(cfg.quick ? 200 : 1000);
  w.stop_at = stop_now != nullptr ? w.start + std::chrono::hours(24)
                                  : w.warm_until + std::chrono::duration_cast<clock_type::duration>(
                                                       std::chrono::duration<double>(cfg.seconds));
  w.stop_now = stop_now;
  std::vector<thread_result> results(static_cast<std::size_t>(cfg.threads));
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(cfg.threads));
  for (int t = 0; t < cfg.threads; ++t)
    threads.emplace_back([&, t] {
      try {
        results[static_cast<std::size_t>(t)] =
            drive(cfg, ports, tls, static_cast<std::size_t>(t * cfg.connections), w,
                  static_cast<std::uint64_t>(t) + 1);
      } catch (...) {  // rethrown below, so it unwinds (and stops the servers) in the main thread
        errors[static_cast<std::size_t>(t)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  std::vector<std::uint32_t> all;
  std::uint64_t ops = 0;
  for (auto& r : results) {
    ops += r.ops;
    out.failed += r.failed;
    all.insert(all.end(), r.latencies_ns.begin(), r.latencies_ns.end());
    add_buckets(out.ok_buckets, r.ok_buckets);
    add_buckets(out.failed_buckets, r.failed_buckets);
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

// ---- the cluster ------------------------------------------------------------

// One request and its reply up to END, e.g. `stats cluster`: the STAT lines as
// name -> value.
std::map<std::string, std::string> stats_of(int port, const char* command) {
  const int fd = connect_to(port);
  if (fd < 0) throw std::runtime_error(std::string(command) + ": connect failed");
  const std::string request = std::string(command) + "\r\n";
  std::string in;
  bool ok = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
  char buf[4096];
  while (ok && !(in.size() >= 5 && in.compare(in.size() - 5, 5, "END\r\n") == 0)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) {
      ok = false;
      break;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      ok = false;
    else
      in.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (!ok) throw std::runtime_error(std::string(command) + ": no complete reply in 5 s");
  std::map<std::string, std::string> out;
  std::size_t at = 0;
  for (std::size_t eol; (eol = in.find("\r\n", at)) != std::string::npos; at = eol + 2) {
    const std::string line = in.substr(at, eol - at);
    if (line.rfind("STAT ", 0) != 0) continue;
    const auto space = line.find(' ', 5);
    if (space != std::string::npos) out[line.substr(5, space - 5)] = line.substr(space + 1);
  }
  return out;
}

long stat_number(const std::map<std::string, std::string>& stats, const std::string& name) {
  const auto it = stats.find(name);
  if (it == stats.end()) throw std::runtime_error("stats has no " + name + " (is this a cluster node?)");
  return std::strtol(it->second.c_str(), nullptr, 10);
}

// dhtkit-cache nodes on loopback forming one cache: node 1 starts the
// cluster, each later node joins through all those before it.
class cluster {
 public:
  cluster(const config& cfg, std::string name, int read_quorum, int write_quorum)
      : cfg_(cfg), name_(std::move(name)), read_quorum_(read_quorum), write_quorum_(write_quorum) {}
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;
  // Every node leaves at once rather than one after another.
  ~cluster() {
    for (auto& n : nodes_) n->terminate();
    nodes_.clear();
  }

  // Starts one more node; returns once its client port is open (it has joined).
  void add_node() {
    const int cport = free_port();
    const std::string node = "n" + std::to_string(nodes_.size() + 1);
    std::vector<std::string> extra = cfg_.dhtkit_flags;
    for (const std::string& f :
         {std::string("--cluster-port"), std::to_string(cport), std::string("--name"), node,
          std::string("--cluster-profile"), cfg_.cluster_profile, std::string("--replicas"),
          std::to_string(replicas_), std::string("--read-quorum"), std::to_string(read_quorum_),
          std::string("--write-quorum"), std::to_string(write_quorum_)})
      extra.push_back(f);
    if (!cports_.empty()) {
      std::string join;
      for (const int p : cports_)
        join += (join.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
      extra.push_back("--join");
      extra.push_back(join);
    }
    const std::string log =
        cfg_.node_logs.empty() ? "/dev/null" : cfg_.node_logs + "/" + name_ + "-" + node + ".log";
    nodes_.push_back(
        std::make_unique<server_process>(name_ + "/" + node, server_argv(cfg_.dhtkit, extra), log));
    cports_.push_back(cport);
  }
  // Waits (bounded) until every node counts every node alive.
  void wait_all_alive(std::chrono::seconds timeout) const {
    const auto deadline = clock_type::now() + timeout;
    while (!all_alive()) {
      if (clock_type::now() > deadline)
        throw std::runtime_error(name_ + ": the nodes did not all see each other alive in time");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  bool all_alive() const {
    for (const auto& n : nodes_)
      if (stat_number(stats_of(n->port(), "stats cluster"), "cluster_members_alive") !=
          static_cast<long>(nodes_.size()))
        return false;
    return true;
  }
  // Waits (bounded) until the nodes together use less than 10% of a core over
  // a second: after a bulk load, replication's background work (anti-entropy)
  // goes on for a while, and the rounds should measure the steady state.
  // Returns the seconds waited, or -1 if still busy at the timeout; idle_cores
  // gets the CPU the idle nodes used together over the last second (cores).
  double wait_quiet(std::chrono::seconds timeout, double& idle_cores) const {
    const auto start = clock_type::now();
    auto total = [&] {
      double sum = 0;
      for (const auto& n : nodes_) sum += n->cpu_seconds();
      return sum;
    };
    while (clock_type::now() - start < timeout) {
      const double before = total();
      std::this_thread::sleep_for(std::chrono::seconds(1));
      idle_cores = total() - before;
      if (idle_cores < 0.1) return std::chrono::duration<double>(clock_type::now() - start).count();
    }
    return -1;
  }
  // The sum over the nodes of stats cluster's handoffs_in_progress.
  long handoffs_in_progress() const {
    long sum = 0;
    for (const auto& n : nodes_)
      sum += stat_number(stats_of(n->port(), "stats cluster"), "cluster_handoffs_in_progress");
    return sum;
  }
  std::vector<int> ports() const {
    std::vector<int> out;
    for (const auto& n : nodes_) out.push_back(n->port());
    return out;
  }
  int last_port() const { return nodes_.back()->port(); }
  const std::string& name() const { return name_; }
  std::string params() const {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "\"nodes\":%zu,\"replicas\":%d,\"read_quorum\":%d,\"write_quorum\":%d,\"profile\":\"%s\"",
                  nodes_.size(), replicas_, read_quorum_, write_quorum_, cfg_.cluster_profile.c_str());
    return buf;
  }

 private:
  const config& cfg_;
  std::string name_;
  int replicas_ = 3, read_quorum_ = 1, write_quorum_ = 2;
  std::vector<std::unique_ptr<server_process>> nodes_;
  std::vector<int> cports_;
};

// What the load phase drives: a server, or a cluster through all its nodes.
struct target {
  std::string name;
  std::vector<int> ports;
  bool tls = false;  // a -Z server, driven over TLS
};

// Phase 1: every target up and loaded, then `rounds` rounds; in each, for
// each depth, one timed load on each target in turn, starting with a
// different one each round. loads[target][depth index][round].
using rounds_table = std::vector<std::vector<std::vector<load_result>>>;

rounds_table measure_loads(const config& cfg, const std::vector<target>& targets,
                           const std::vector<const cluster*>& quiet, std::vector<double>& idle_cores) {
  idle_cores.assign(quiet.size(), 0);
  for (const auto& t : targets) {
    const auto start = clock_type::now();
    // A cluster node replicates each set before it answers, within its request
    // timeout: 1000 sets in flight per connection can outwait it.
    const bool is_cluster = t.ports.size() > 1;
    const std::uint64_t errors =
        load(t.ports, cfg.keys, cfg.value_size, static_cast<int>(std::max<std::size_t>(2, t.ports.size())),
             is_cluster ? cfg.cluster_load_batch : 1000, t.tls);
    std::fprintf(stderr, "%-10s loaded %zu keys in %.1f s (%llu sets answered SERVER_ERROR)\n",
                 t.name.c_str(), cfg.keys, std::chrono::duration<double>(clock_type::now() - start).count(),
                 static_cast<unsigned long long>(errors));
  }
  for (std::size_t i = 0; i < quiet.size(); ++i) {
    const int timeout = cfg.quick ? 5 : 20;
    const double waited = quiet[i]->wait_quiet(std::chrono::seconds(timeout), idle_cores[i]);
    if (waited < 0)
      std::fprintf(stderr,
                   "%-10s still busy %d s after loading, idle nodes using %.2f cores (measured anyway)\n",
                   quiet[i]->name().c_str(), timeout, idle_cores[i]);
    else
      std::fprintf(stderr, "%-10s quiet %.0f s after loading\n", quiet[i]->name().c_str(), waited);
  }
  const std::size_t n = targets.size();
  rounds_table out(n, std::vector<std::vector<load_result>>(cfg.depths.size()));
  for (int round = 0; round < cfg.rounds; ++round) {
    for (std::size_t d = 0; d < cfg.depths.size(); ++d) {
      config run = cfg;
      run.depth = cfg.depths[d];
      for (std::size_t turn = 0; turn < n; ++turn) {
        const std::size_t s = (turn + static_cast<std::size_t>(round)) % n;  // round 1: memcached first; ...
        const load_result l = drive_all(run, targets[s].ports, targets[s].tls);
        out[s][d].push_back(l);
        std::fprintf(stderr,
                     "round %d/%d  %-10s depth %2d: %10.0f ops/s  p50 %8.1f us  p99 %8.1f us  failed %llu\n",
                     round + 1, cfg.rounds, targets[s].name.c_str(), l.depth, l.ops_per_s, l.p50_us, l.p99_us,
                     static_cast<unsigned long long>(l.failed));
      }
    }
  }
  return out;
}

// The rebalancing row: a fourth node joins `c` (3 nodes, loaded) while a
// depth-1 load runs against the first three.
struct join_result {
  double listening_s = 0;   // from the start of the 4th process to its client port opening (it joined)
  double all_alive_s = -1;  // ... to every node counting 4 alive
  double ready_s = -1;    // ... to that and handoffs_in_progress 0 on every node (-1: not within the timeout)
  long handoffs_max = 0;  // the largest sum of handoffs_in_progress seen while polling
  double before_ops = 0, during_ops = 0, min_1s_ops = 0, after_ops = 0;
  std::uint64_t failed_total = 0, failed_during = 0, requests_total = 0;
  long new_node_items = -1;  // the 4th node's curr_items at the end
};

join_result measure_join(const config& cfg, cluster& c) {
  join_result out;
  config run = cfg;
  run.depth = 1;
  std::atomic<bool> stop{false};
  clock_type::time_point started{};  // the load's start, where its buckets count from; read after join()
  load_result load_out;
  std::exception_ptr load_error;
  const std::vector<int> ports = c.ports();
  std::thread loader([&] {
    try {
      load_out = drive_all(run, ports, false, &stop, &started);
    } catch (...) {
      load_error = std::current_exception();
    }
  });
  const double before_s = cfg.quick ? 3 : 8, after_s = cfg.quick ? 2 : 5, timeout_s = cfg.quick ? 30 : 60;
  auto since = [](clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
  };
  std::this_thread::sleep_for(std::chrono::duration<double>(before_s));
  const auto join_at = clock_type::now();
  try {
    c.add_node();
    out.listening_s = since(join_at);
    while (since(join_at) < timeout_s) {
      const bool alive = c.all_alive();
      const long handoffs = c.handoffs_in_progress();
      out.handoffs_max = std::max(out.handoffs_max, handoffs);
      if (alive && out.all_alive_s < 0) out.all_alive_s = since(join_at);
      if (alive && handoffs == 0) {
        out.ready_s = since(join_at);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (...) {
    stop = true;
    loader.join();
    throw;
  }
  const auto ready_at = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(after_s));
  const auto stop_at = clock_type::now();
  stop = true;
  loader.join();
  if (load_error) std::rethrow_exception(load_error);
  out.new_node_items = stat_number(stats_of(c.last_port(), "stats"), "curr_items");

  const double w = std::chrono::duration<double>(bucket_width).count();
  auto bucket_of = [&](clock_type::time_point t) {
    return static_cast<std::size_t>(std::max(0.0, std::chrono::duration<double>(t - started).count() / w));
  };
  auto sum = [](const std::vector<std::uint32_t>& b, std::size_t from, std::size_t to) {
    std::uint64_t s = 0;
    for (std::size_t i = from; i < std::min(to, b.size()); ++i) s += b[i];
    return s;
  };
  auto rate = [&](std::size_t from, std::size_t to) {
    return to > from ? static_cast<double>(sum(load_out.ok_buckets, from, to)) /
                           (static_cast<double>(to - from) * w)
                     : 0;
  };
  const std::size_t warm = bucket_of(started + std::chrono::seconds(1)), joined = bucket_of(join_at),
                    ready = std::max(bucket_of(ready_at), joined + static_cast<std::size_t>(1 / w)),
                    end = bucket_of(stop_at);
  out.before_ops = rate(warm, joined);
  out.during_ops = rate(joined, ready);
  out.after_ops = rate(ready, end);
  const std::size_t second = static_cast<std::size_t>(1 / w);
  out.min_1s_ops = -1;
  for (std::size_t i = joined; i + second <= ready; ++i) {
    const double r = rate(i, i + second);
    if (out.min_1s_ops < 0 || r < out.min_1s_ops) out.min_1s_ops = r;
  }
  out.failed_total = load_out.failed;
  out.failed_during = sum(load_out.failed_buckets, joined, ready);
  out.requests_total = sum(load_out.ok_buckets, 0, load_out.ok_buckets.size()) + load_out.failed;
  return out;
}

// Phase 2: a fresh server, `rss_items` items stored, its VmRSS.
rss_result measure_rss(const std::string& name, const std::string& binary, const config& cfg,
                       const std::vector<std::string>& flags = {}) {
  rss_result out;
  server_process server(name, server_argv(binary, flags));
  const auto start = clock_type::now();
  load({server.port()}, cfg.rss_items, cfg.value_size, 2);
  out.load_s = std::chrono::duration<double>(clock_type::now() - start).count();
  out.rss_mib = server.rss_mib();
  return out;
}

// The median (the mean of the middle two for an even count).
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string json_array(const std::vector<double>& v) {
  std::string out = "[";
  char buf[32];
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    out.append(buf, static_cast<std::size_t>(std::snprintf(buf, sizeof buf, "%.6g", v[i])));
  }
  return out + "]";
}

std::optional<config> parse(int argc, char** argv) {
  config cfg;
  std::optional<int> rounds;        // --rounds; else 3, or 1 with --quick
  std::optional<std::size_t> keys;  // --keys; else 100,000, or 20,000 with --quick
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
    } else if (a == "--dhtkit-flag" && (v = next())) {
      cfg.dhtkit_flags.push_back(v);
    } else if (a == "--baseline-name" && (v = next())) {
      cfg.baseline_name = v;
    } else if (a == "--rounds" && (v = next())) {
      rounds = std::atoi(v);
    } else if (a == "--seconds" && (v = next())) {
      cfg.seconds = std::atof(v);
    } else if (a == "--threads" && (v = next())) {
      cfg.threads = std::atoi(v);
    } else if (a == "--connections" && (v = next())) {
      cfg.connections = std::atoi(v);
    } else if (a == "--depth" && (v = next())) {
      cfg.depths = {std::atoi(v)};
    } else if (a == "--keys" && (v = next())) {
      keys = static_cast<std::size_t>(std::atoll(v));
    } else if (a == "--no-cluster") {
      cfg.cluster = false;
    } else if (a == "--cluster-profile" && (v = next())) {
      cfg.cluster_profile = v;
    } else if (a == "--node-logs" && (v = next())) {
      cfg.node_logs = v;
    } else if (a == "--tls-cert" && (v = next())) {
      cfg.tls_cert = v;
    } else if (a == "--tls-key" && (v = next())) {
      cfg.tls_key = v;
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--quick] [--dhtkit PATH] [--memcached PATH] [--rounds N (default 3, --quick 1)] "
          "[--seconds S] [--threads N] [--connections N] [--depth N (default: both 1 and 16)] "
          "[--dhtkit-flag FLAG]... [--baseline-name NAME] [--no-cluster] [--cluster-profile local|lan|wan] "
          "[--node-logs DIR] [--keys N (default 100000, --quick 20000)] [--tls-cert FILE --tls-key FILE]\n",
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
    // Loading a cluster replicates every set, so 100,000 keys alone take
    // longer than the whole quick run should.
    cfg.keys = 20000;
    cfg.rounds = 1;
  }
  if (cfg.tls_cert.empty() != cfg.tls_key.empty()) {
    std::fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", argv[0]);
    return std::nullopt;
  }
#ifndef DHTKIT_BENCH_TLS
  if (!cfg.tls_cert.empty()) {
    std::fprintf(stderr, "%s: built without OpenSSL (Debian: libssl-dev): no --tls-cert\n", argv[0]);
    return std::nullopt;
  }
#endif
  if (rounds) cfg.rounds = *rounds;
  if (keys) cfg.keys = *keys;
  if (cfg.keys < 1 || cfg.seconds <= 0 || cfg.threads < 1 || cfg.connections < 1 || cfg.depths.front() < 1 ||
      cfg.rounds < 1) {
    std::fprintf(stderr, "%s: --rounds, --seconds, --threads, --connections and --depth must be positive\n",
                 argv[0]);
    return std::nullopt;
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  const auto cfg = parse(argc, argv);
  if (!cfg) return 2;
  install_cleanup();
  try {
    const dhtkit::bench::reporter out{"cache", false};
    char params[512];
    {
      // Phase 1, and the rebalancing row on the R=1 cluster once its rounds are done.
      server_process memcached("memcached", server_argv(cfg->memcached));
      server_process dhtkit("dhtkit", server_argv(cfg->dhtkit, cfg->dhtkit_flags));
      std::vector<target> targets{{"memcached", {memcached.port()}}, {"dhtkit", {dhtkit.port()}}};
      std::vector<std::unique_ptr<cluster>> clusters;
      if (cfg->cluster) {
        for (const int r : {1, 2}) {
          auto c = std::make_unique<cluster>(*cfg, "cluster_r" + std::to_string(r), r, 2);
          for (int i = 0; i < 3; ++i) c->add_node();
          c->wait_all_alive(std::chrono::seconds(30));
          targets.push_back({c->name(), c->ports()});
          clusters.push_back(std::move(c));
        }
      }
      // memcached -Z and dhtkit-cache -Z, after the clusters in `targets`.
      const std::size_t tls_first = targets.size();
      std::unique_ptr<server_process> memcached_tls, dhtkit_tls;
      if (!cfg->tls_cert.empty()) {
        const std::vector<std::string> z{"-Z", "-o",
                                         "ssl_chain_cert=" + cfg->tls_cert + ",ssl_key=" + cfg->tls_key};
        std::vector<std::string> flags = cfg->dhtkit_flags;
        flags.insert(flags.end(), z.begin(), z.end());
        memcached_tls = std::make_unique<server_process>("memcached_tls", server_argv(cfg->memcached, z));
        dhtkit_tls = std::make_unique<server_process>("dhtkit_tls", server_argv(cfg->dhtkit, flags));
        targets.push_back({"memcached_tls", {memcached_tls->port()}, true});
        targets.push_back({"dhtkit_tls", {dhtkit_tls->port()}, true});
      }
      std::vector<const cluster*> quiet;
      for (const auto& c : clusters) quiet.push_back(c.get());
      std::vector<double> idle_cores;  // per cluster: CPU its idle nodes used after loading
      const rounds_table loads = measure_loads(*cfg, targets, quiet, idle_cores);

      struct figure {
        const char* name;
        const char* unit;
        double load_result::*field;
      };
      const figure figures[] = {{"get_set/throughput", "ops/s", &load_result::ops_per_s},
                                {"get_set/p50", "us", &load_result::p50_us},
                                {"get_set/p99", "us", &load_result::p99_us}};
      for (std::size_t d = 0; d < cfg->depths.size(); ++d) {
        std::vector<std::vector<double>> med(targets.size(), std::vector<double>(std::size(figures)));
        std::vector<std::vector<std::vector<double>>> per_round(
            targets.size(), std::vector<std::vector<double>>(std::size(figures)));
        for (std::size_t t = 0; t < targets.size(); ++t)
          for (std::size_t f = 0; f < std::size(figures); ++f) {
            for (const load_result& l : loads[t][d]) per_round[t][f].push_back(l.*figures[f].field);
            med[t][f] = median(per_round[t][f]);
          }
        // targets[0] is the baseline; targets[1] the single dhtkit-cache (rows
        // named as before); then the clusters, named cluster/<figure>.
        for (std::size_t t = 1; t < tls_first; ++t) {
          const bool is_cluster = t >= 2;
          std::snprintf(
              params, sizeof params,
              "\"server_threads\":2,\"get_set\":\"9:1\",\"value_bytes\":%zu,\"keys\":%zu,"
              "\"client_threads\":%d,\"connections\":%d,\"depth\":%d,\"seconds\":%g,\"rounds\":%d%s%s",
              cfg->value_size, cfg->keys, cfg->threads, cfg->threads * cfg->connections, cfg->depths[d],
              cfg->seconds, cfg->rounds, is_cluster ? "," : "",
              is_cluster ? clusters[t - 2]->params().c_str() : "");
          std::uint64_t failed = 0;
          for (const load_result& l : loads[t][d]) failed += l.failed;
          for (std::size_t f = 0; f < std::size(figures); ++f) {
            std::string extra = ",\"rounds_value\":" + json_array(per_round[t][f]) +
                                ",\"rounds_baseline\":" + json_array(per_round[0][f]);
            if (is_cluster) {
              char idle[64];
              std::snprintf(idle, sizeof idle, ",\"failed\":%llu,\"idle_cpu_cores\":%.3f",
                            static_cast<unsigned long long>(failed), idle_cores[t - 2]);
              extra += idle;
            }
            out.emit((is_cluster ? "cluster/" : "") + std::string(figures[f].name), params, med[t][f],
                     figures[f].unit, {cfg->baseline_name.c_str(), med[0][f]}, extra);
          }
        }
        if (targets.size() > tls_first) {
          // tls/...: dhtkit-cache -Z against memcached -Z; tls_cost/...: against the plain dhtkit-cache.
          const std::size_t mt = tls_first, dt = tls_first + 1;
          std::snprintf(params, sizeof params,
                        "\"server_threads\":2,\"get_set\":\"9:1\",\"value_bytes\":%zu,\"keys\":%zu,"
                        "\"client_threads\":%d,\"connections\":%d,\"depth\":%d,\"seconds\":%g,\"rounds\":%d,"
                        "\"tls\":true",
                        cfg->value_size, cfg->keys, cfg->threads, cfg->threads * cfg->connections,
                        cfg->depths[d], cfg->seconds, cfg->rounds);
          for (std::size_t f = 0; f < std::size(figures); ++f) {
            out.emit("tls/" + std::string(figures[f].name), params, med[dt][f], figures[f].unit,
                     {"memcached_tls", med[mt][f]},
                     ",\"rounds_value\":" + json_array(per_round[dt][f]) +
                         ",\"rounds_baseline\":" + json_array(per_round[mt][f]));
            out.emit("tls_cost/" + std::string(figures[f].name), params, med[dt][f], figures[f].unit,
                     {"dhtkit-cache", med[1][f]},
                     ",\"rounds_value\":" + json_array(per_round[dt][f]) +
                         ",\"rounds_baseline\":" + json_array(per_round[1][f]));
          }
          std::fprintf(stderr, "ratio TLS/plain depth %2d: memcached throughput %.3g, dhtkit-cache %.3g\n",
                       cfg->depths[d], med[mt][0] / med[0][0], med[dt][0] / med[1][0]);
        }
        for (std::size_t t = 0; t < targets.size(); ++t)
          std::fprintf(stderr, "median of %d  %-10s depth %2d: %10.0f ops/s  p50 %8.1f us  p99 %8.1f us\n",
                       cfg->rounds, targets[t].name.c_str(), cfg->depths[d], med[t][0], med[t][1], med[t][2]);
        for (std::size_t t = 1; t < targets.size(); ++t)
          std::fprintf(stderr, "ratio %s/%s depth %2d: throughput %.3g  p50 %.3g  p99 %.3g\n",
                       targets[t].name.c_str(), cfg->baseline_name.c_str(), cfg->depths[d],
                       med[t][0] / med[0][0], med[t][1] / med[0][1], med[t][2] / med[0][2]);
      }

      if (cfg->cluster) {
        clusters.pop_back();  // the R=2 cluster leaves, so it does not share the CPU with the join
        cluster& c = *clusters.front();
        const join_result j = measure_join(*cfg, c);
        std::snprintf(
            params, sizeof params,
            "%s,\"joining\":1,\"keys\":%zu,\"value_bytes\":%zu,\"get_set\":\"9:1\",\"connections\":%d,"
            "\"depth\":1",
            c.params().c_str(), cfg->keys, cfg->value_size, cfg->threads * cfg->connections);
        char extra[256];
        std::snprintf(extra, sizeof extra,
                      ",\"listening_s\":%.3f,\"all_alive_s\":%.3f,\"handoffs_max_seen\":%ld,\"timed_out\":%s",
                      j.listening_s, j.all_alive_s, j.handoffs_max, j.ready_s < 0 ? "true" : "false");
        out.emit("cluster_join/time_to_ready", params, j.ready_s, "s", {}, extra);
        std::snprintf(extra, sizeof extra, ",\"min_1s_ops_s\":%.6g,\"after_ops_s\":%.6g", j.min_1s_ops,
                      j.after_ops);
        out.emit("cluster_join/throughput_during", params, j.during_ops, "ops/s",
                 {"before_join", j.before_ops}, extra);
        std::snprintf(extra, sizeof extra, ",\"failed_during\":%llu,\"requests\":%llu",
                      static_cast<unsigned long long>(j.failed_during),
                      static_cast<unsigned long long>(j.requests_total));
        out.emit("cluster_join/failed_requests", params, static_cast<double>(j.failed_total), "requests", {},
                 extra);
        std::snprintf(extra, sizeof extra, ",\"fair_share\":%zu", cfg->keys * 3 / 4);
        out.emit("cluster_join/new_node_items", params, static_cast<double>(j.new_node_items), "items", {},
                 extra);
        std::fprintf(stderr,
                     "join of a 4th node under load (%s): listening after %.2f s, all see 4 after %.2f s, "
                     "handoffs done after %.2f s (%s; max in progress seen %ld)\n"
                     "  throughput before %.0f ops/s, during %.0f (x%.2f; worst 1 s %.0f), after %.0f\n"
                     "  failed requests %llu (%llu during the join) of %llu; the new node holds %ld items "
                     "(fair share %zu)\n",
                     c.name().c_str(), j.listening_s, j.all_alive_s, j.ready_s,
                     j.ready_s < 0 ? "NOT within the timeout" : "ok", j.handoffs_max, j.before_ops,
                     j.during_ops, j.before_ops > 0 ? j.during_ops / j.before_ops : 0.0, j.min_1s_ops,
                     j.after_ops, static_cast<unsigned long long>(j.failed_total),
                     static_cast<unsigned long long>(j.failed_during),
                     static_cast<unsigned long long>(j.requests_total), j.new_node_items, cfg->keys * 3 / 4);
      }
    }

    const rss_result base_rss = measure_rss("memcached", cfg->memcached, *cfg);
    const rss_result ours_rss = measure_rss("dhtkit", cfg->dhtkit, *cfg, cfg->dhtkit_flags);
    const char* const names[2] = {"memcached", "dhtkit"};
    const rss_result* const rss[2] = {&base_rss, &ours_rss};
    for (int s = 0; s < 2; ++s)
      std::fprintf(stderr, "%-10s RSS %7.1f MiB after %zu items of %zu bytes (loaded in %.1f s)\n", names[s],
                   rss[s]->rss_mib, cfg->rss_items, cfg->value_size, rss[s]->load_s);
    std::snprintf(params, sizeof params, "\"items\":%zu,\"value_bytes\":%zu,\"memory_limit_mb\":1024",
                  cfg->rss_items, cfg->value_size);
    out.emit("rss/loaded", params, ours_rss.rss_mib, "MiB", {cfg->baseline_name.c_str(), base_rss.rss_mib});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cache_load: %s\n", e.what());
    return 1;
  }
  return 0;
}
