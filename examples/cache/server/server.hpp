// The dhtkit-cache server: threads, the listening socket, the connection
// limit, the background sweep, signals and shutdown.
//
// Threads: -t workers, each running an io_context of its own, and the main
// thread running a "control" io_context with the acceptor, the signal set and
// the sweep timer (memcached's layout: a dispatcher hands connections to
// workers round-robin). A connection lives on one worker for its whole life,
// so its handlers never race and need no strand; one io_context per thread
// also keeps each epoll set and handler queue to one thread, where one
// io_context run by t threads would share its queue lock among all of them on
// every completion. The store is the only state the workers share (it shards
// its own locks); counters are relaxed atomics.
//
// Connection limit: the acceptor keeps accepting; a client past -c open
// connections is sent "ERROR Too many open connections\r\n" (what memcached
// sends) and closed at once, so it is never left waiting. Under -Z it is
// closed without the message (a TLS client could not read plaintext).
//
// TLS (-Z): the certificates are loaded when the server is made (a bad file
// throws, and the program exits 1); every accepted connection is then a
// basic_connection<tls_transport>, counted against -c from its handshake on.
//
// Stopping: SIGINT, SIGTERM or the `shutdown` command (with -A) stop every
// io_context; the threads are joined and the connections destroyed before the
// store and the context they use, and run() returns 0.
//
// Metrics (--metrics-port, built with prometheus-cpp): the exposer's own
// thread serves /metrics and reads the counters with relaxed loads; it is
// stopped first, before anything it reads goes.
#pragma once

#include <sys/resource.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "dhtkit/cache/store.hpp"
#include "protocol/server_context.hpp"
#include "protocol/session.hpp"
#include "server/connection.hpp"
#include "server/log.hpp"
#ifdef DHTKIT_CACHE_METRICS
#include "server/metrics.hpp"
#endif
#include "server/options.hpp"
#ifdef DHTKIT_CACHE_TLS
#include "server/tls_context.hpp"
#include "server/tls_transport.hpp"
#endif

namespace dhtkit_cache {

// The store's clock: whole seconds since the server started, plus a start
// offset so that the first second is not 0 (0 means "never" as an exptime,
// and "already expired" needs a time before now). process_started_unix is
// chosen so that process_started_unix + now() is the unix time.
class server_clock {
 public:
  static constexpr dhtkit::cache::rel_time start_offset = 2;
  server_clock()
      : start_(std::chrono::steady_clock::now()),
        started_unix_(static_cast<std::int64_t>(std::time(nullptr)) - start_offset) {}
  dhtkit::cache::rel_time now() const {
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_);
    return static_cast<dhtkit::cache::rel_time>(elapsed.count()) + start_offset;
  }
  std::int64_t started_unix() const { return started_unix_; }

 private:
  std::chrono::steady_clock::time_point start_;
  std::int64_t started_unix_;
};

inline dhtkit::cache::store_config make_store_config(const options& opt) {
  dhtkit::cache::store_config cfg;
  cfg.memory_limit = opt.memory_limit_bytes();
  cfg.max_item_size = opt.max_item_size;
  cfg.evict = !opt.disable_evictions;
  return cfg;
}

inline server_settings make_settings(const options& opt) {
  server_settings s{};
  s.allow_shutdown = opt.enable_shutdown;
  s.max_connections = opt.max_connections;
  s.threads = opt.threads;
  s.verbosity = opt.verbosity;
  s.port = opt.port;
  s.listen = opt.listen;
  s.idle_timeout_s = opt.idle_timeout_s;
  s.request_timeout_s = opt.request_timeout_s;
  s.flush_enabled = !opt.disable_flush_all;
  s.memory_limit = opt.memory_limit_bytes();
  s.max_item_size = opt.max_item_size;
  s.evictions = !opt.disable_evictions;
  s.version = server_version;
  const client_tls_options& tls = opt.client_tls;
  s.ssl_enabled = tls.enabled;
  s.ssl_chain_cert = tls.chain_cert;
  s.ssl_key = tls.key;
  s.ssl_ca_cert = tls.ca_cert;
  s.ssl_ciphers = tls.ciphers;
  s.ssl_verify_mode = tls.verify_mode;
  s.ssl_min_version = tls.min_version;
  return s;
}

// Raises the open-file limit to fit -c connections (plus a margin for the
// listener, epoll and the like) when the hard limit allows; a warning if not.
inline void fit_file_limit(std::size_t connections, const std::atomic<int>& verbosity) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(connections) + 64;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted) {
    const rlim_t raised = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
    rlimit next = lim;
    next.rlim_cur = raised;
    if (setrlimit(RLIMIT_NOFILE, &next) != 0 || raised < wanted)
      log_line(verbosity, log_level::error,
               "warning: the open-file limit (%llu) is below -c %zu plus 64; clients past it are refused "
               "by accept errors",
               static_cast<unsigned long long>(raised), connections);
  }
}

class server {
 public:
  explicit server(const options& opt)
      : opt_(opt),
        store_(make_store_config(opt)),
        ctx_{.store = store_,
             .settings = make_settings(opt),
             .counters = {},
             .now = [this] { return clock_.now(); },
             .process_started_unix = clock_.started_unix(),
             .request_shutdown = [this] { asio::post(control_, [this] { stop(); }); },
             .verbosity = {opt.verbosity}},
        acceptor_(control_),
        signals_(control_, SIGINT, SIGTERM),
        sweep_timer_(control_),
        retry_timer_(control_) {
#ifdef DHTKIT_CACHE_TLS
    if (opt.client_tls.enabled) tls_ = make_client_tls(opt.client_tls);  // throws with the reason
#endif
    for (int i = 0; i < opt.threads; ++i) {
      workers_.push_back(std::make_unique<worker>());
      workers_.back()->shared.measure_commands = opt.metrics_port >= 0;
    }
  }

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  ~server() {
#ifdef DHTKIT_CACHE_METRICS
    metrics_.reset();  // its thread reads ctx_ and the workers
#endif
    stop();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    // The pending accept holds a socket of a worker's io_context: cancel it
    // and let the control context drop it (its handlers see stopping_ and
    // return) before the workers go.
    std::error_code ec;
    acceptor_.close(ec);
    control_.restart();
    control_.poll();
    // Connections still queued in the io_contexts die here, before the store.
    workers_.clear();
  }

  // Binds and listens; an error message on failure.
  std::optional<std::string> listen() {
    std::error_code ec;
    const asio::ip::tcp::endpoint where(asio::ip::make_address(opt_.listen, ec), opt_.port);
    if (ec) return "-l " + opt_.listen + ": " + ec.message();
    const std::string name = describe(where);
    if (acceptor_.open(where.protocol(), ec); ec) return "cannot open a socket: " + ec.message();
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    if (acceptor_.bind(where, ec); ec) return "cannot listen on " + name + ": " + ec.message();
    if (acceptor_.listen(1024, ec); ec) return "cannot listen on " + name + ": " + ec.message();
#ifdef DHTKIT_CACHE_METRICS
    if (opt_.metrics_port >= 0) {
      std::vector<const command_metrics*> shards;
      for (const auto& w : workers_) shards.push_back(&w->shared.metrics);
      metrics_ = std::make_unique<metrics_endpoint>(ctx_, std::move(shards));
      if (auto error = metrics_->start(opt_.metrics_listen, static_cast<std::uint16_t>(opt_.metrics_port)))
        return error;
    }
#endif
    return std::nullopt;
  }

  asio::ip::tcp::endpoint local_endpoint() const {
    std::error_code ec;
    return acceptor_.local_endpoint(ec);
  }

  // Runs until stopped; returns the exit status.
  int run() {
    std::signal(SIGPIPE, SIG_IGN);
    fit_file_limit(opt_.max_connections, ctx_.verbosity);
    wait_signal();
    for (auto& w : workers_) {
      worker* self = w.get();
      w->thread = std::thread([this, self] { run_io(self->io); });
    }
    accept();
    sweep();
    log_line(ctx_.verbosity, log_level::error,
             "listening on %s%s (%d threads, %zu MB, at most %zu connections)",
             describe(local_endpoint()).c_str(), opt_.client_tls.enabled ? " for TLS clients" : "",
             opt_.threads, opt_.memory_mb, opt_.max_connections);
#ifdef DHTKIT_CACHE_METRICS
    if (metrics_) {
      const asio::ip::tcp::endpoint at(asio::ip::make_address(opt_.metrics_listen), metrics_->port());
      log_line(ctx_.verbosity, log_level::error, "metrics on http://%s/metrics", describe(at).c_str());
    }
#endif
    std::fflush(stderr);
    run_io(control_);
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    return 0;
  }

  // From any thread.
  void stop() {
    if (stopping_.exchange(true)) return;
    asio::post(control_, [this] {
      std::error_code ec;
      acceptor_.close(ec);
      signals_.cancel(ec);
      sweep_timer_.cancel();
      retry_timer_.cancel();
    });
    for (auto& w : workers_) {
      w->guard.reset();
      w->io.stop();
    }
    control_.stop();
  }

  server_context& context() { return ctx_; }

  // What the first SIGINT or SIGTERM does instead of stopping at once: a
  // cluster node leaves gracefully and then calls stop (from any thread). A
  // second signal exits at once.
  void on_first_signal(std::function<void(std::function<void()> stop)> f) { first_signal_ = std::move(f); }

 private:
  struct worker {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    worker_shared shared;
    std::thread thread;
  };

  static std::string describe(const asio::ip::tcp::endpoint& e) {
    const std::string host = e.address().to_string();
    return (e.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(e.port());
  }

  // A handler that throws (std::bad_alloc from a session, ...) loses its
  // connection, not the server.
  void run_io(asio::io_context& io) {
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        log_line(ctx_.verbosity, log_level::error, "error in a handler: %s", e.what());
      }
    }
  }

  void wait_signal() {
    signals_.async_wait([this](std::error_code ec, int signal) {
      if (ec) return;
      if (signals_seen_++ > 0) {
        log_line(ctx_.verbosity, log_level::error, "signal %d again, exiting at once", signal);
        std::fflush(stderr);
        std::_Exit(1);
      }
      if (first_signal_) {
        log_line(ctx_.verbosity, log_level::error, "signal %d, leaving the cluster (again to exit at once)",
                 signal);
        wait_signal();
        first_signal_([this] { stop(); });
        return;
      }
      log_line(ctx_.verbosity, log_level::warning, "signal %d, stopping", signal);
      stop();
    });
  }

  void accept() {
    worker& w = *workers_[next_worker_];
    next_worker_ = (next_worker_ + 1) % workers_.size();
    acceptor_.async_accept(w.io, [this, &w](std::error_code ec, asio::ip::tcp::socket socket) {
      if (stopping_) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // Out of file descriptors (or the like): wait a little rather than spin.
        log_line(ctx_.verbosity, log_level::warning, "accept: %s", ec.message().c_str());
        retry_timer_.expires_after(std::chrono::milliseconds(100));
        retry_timer_.async_wait([this](std::error_code e) {
          if (!e && !stopping_) accept();
        });
        return;
      }
      // The next accept first: whatever admit() meets (bad_alloc included),
      // the server keeps accepting.
      accept();
      admit(std::move(socket), w);
    });
  }

  void admit(asio::ip::tcp::socket socket, worker& w) {
    auto& c = ctx_.counters;
    if (c.curr_connections.load(std::memory_order_relaxed) >= opt_.max_connections) {
      c.rejected_connections.fetch_add(1, std::memory_order_relaxed);
      log_line(ctx_.verbosity, log_level::warning, "too many open connections (-c %zu), refusing one",
               opt_.max_connections);
      static constexpr std::string_view message = "ERROR Too many open connections\r\n";
      std::error_code ec;
      socket.non_blocking(true, ec);
      // A fresh socket's send buffer takes these few bytes at once.
      if (!opt_.client_tls.enabled) asio::write(socket, asio::buffer(message), ec);
      socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
      socket.close(ec);
      return;
    }
#ifdef DHTKIT_CACHE_TLS
    if (tls_) {
      auto conn = std::make_shared<basic_connection<tls_transport>>(std::move(socket), ctx_, w.shared, *tls_);
      asio::post(w.io, [conn] { conn->start(); });
      return;
    }
#endif
    auto conn = std::make_shared<connection>(std::move(socket), ctx_, w.shared);  // counts itself
    asio::post(w.io, [conn] { conn->start(); });
  }

  // Reclaims expired items in the background, a bounded number at a time:
  // once a second, or sooner while the last round found a full budget.
  void sweep() {
    static constexpr std::size_t budget = 10000;
    const std::size_t reclaimed = store_.sweep(clock_.now(), budget);
    sweep_timer_.expires_after(reclaimed >= budget ? std::chrono::milliseconds(50) : std::chrono::seconds(1));
    sweep_timer_.async_wait([this](std::error_code ec) {
      if (!ec && !stopping_) sweep();
    });
  }

  options opt_;
#ifdef DHTKIT_CACHE_TLS
  std::unique_ptr<client_tls> tls_;  // -Z; shared by every worker (OpenSSL's context is thread-safe)
#endif
  server_clock clock_;
  dhtkit::cache::store store_;
  server_context ctx_;
  asio::io_context control_{1};
  asio::ip::tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer sweep_timer_;
  asio::steady_timer retry_timer_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::size_t next_worker_ = 0;
  std::atomic<bool> stopping_{false};
  std::function<void(std::function<void()>)> first_signal_;
  int signals_seen_ = 0;
#ifdef DHTKIT_CACHE_METRICS
  std::unique_ptr<metrics_endpoint> metrics_;
#endif
};

}  // namespace dhtkit_cache
