// dhtkit-cache's Prometheus endpoint (--metrics-port): the text exposition
// format on http://ADDRESS:PORT/metrics, served by prometheus-cpp's exposer
// (Debian: prometheus-cpp-dev), not by an HTTP server of our own.
//
//   metrics_endpoint m(ctx, {&worker1.metrics, &worker2.metrics});
//   if (auto error = m.start("127.0.0.1", 0)) ...;   // port 0: a free one
//   m.port();                                       // where it listens
//
// Nothing is counted twice for it: a scrape reads the counters `stats`
// already keeps (server_counters, the store's stats) and the workers'
// command_metrics, and builds the families then. The request path pays only
// for command_metrics, and only when the endpoint is on.
//
// Names follow Prometheus' conventions: a dhtkit_cache_ prefix, base units
// in the name (_bytes, _seconds), _total on counters. `stats reset` zeroes
// the memcached counters these mirror (hits, misses, evictions, ...); to
// Prometheus that is a counter reset, which rate() and increase() handle.
// The per-command counters are never reset.
//
// A scrape reads each counter once, while workers go on counting: a
// histogram's _count and _sum, and commands_total, may be a few commands
// apart within one scrape (the buckets and _count always agree).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/command_metrics.hpp"
#include "protocol/server_context.hpp"

namespace dhtkit_cache {

namespace detail {

// Series exported from the start, at zero, so that rate() sees their first
// increment and an alert on errors has a series to read before any error.
// Other pairs appear once they have happened: 27 commands by 13 outcomes
// would be mostly zeros nobody reads.
struct command_outcome {
  command_kind command;
  reply_outcome outcome;
};
inline constexpr command_outcome always_exported[] = {
    {command_kind::get, reply_outcome::hit},           {command_kind::get, reply_outcome::miss},
    {command_kind::get, reply_outcome::client_error},  {command_kind::set, reply_outcome::stored},
    {command_kind::set, reply_outcome::noreply},       {command_kind::set, reply_outcome::client_error},
    {command_kind::set, reply_outcome::server_error},  {command_kind::delete_, reply_outcome::deleted},
    {command_kind::delete_, reply_outcome::not_found}, {command_kind::mg, reply_outcome::hit},
    {command_kind::mg, reply_outcome::miss},           {command_kind::ms, reply_outcome::stored},
    {command_kind::ms, reply_outcome::server_error},   {command_kind::other, reply_outcome::error},
};
inline constexpr command_kind always_timed[] = {command_kind::get, command_kind::set, command_kind::mg,
                                                command_kind::ms};

inline bool exported_at_zero(command_kind k, reply_outcome o) {
  for (const auto& p : always_exported)
    if (p.command == k && p.outcome == o) return true;
  return false;
}

inline bool timed_at_zero(command_kind k) {
  for (const auto t : always_timed)
    if (t == k) return true;
  return false;
}

inline prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

inline void add_value(prometheus::MetricFamily& f, double value,
                      std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

inline prometheus::MetricFamily counter(std::string name, std::string help, double value) {
  auto f = family(std::move(name), std::move(help), prometheus::MetricType::Counter);
  add_value(f, value);
  return f;
}

inline prometheus::MetricFamily gauge(std::string name, std::string help, double value) {
  auto f = family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
  add_value(f, value);
  return f;
}

}  // namespace detail

// Builds every family on each scrape (prometheus-cpp calls Collect() from its
// HTTP thread).
class metrics_collector : public prometheus::Collectable {
 public:
  metrics_collector(server_context& ctx, std::vector<const command_metrics*> workers)
      : ctx_(ctx), workers_(std::move(workers)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using detail::counter;
    using detail::gauge;
    const auto load = [](const std::atomic<std::uint64_t>& a) {
      return static_cast<double>(a.load(std::memory_order_relaxed));
    };
    const server_counters& c = ctx_.counters;
    const auto st = ctx_.store.stats();
    std::vector<prometheus::MetricFamily> out;
    out.push_back(commands());
    out.push_back(durations());
    out.push_back(counter("dhtkit_cache_get_hits_total", "Keys found by get, gets, gat, gats and mg",
                          load(c.get_hits)));
    out.push_back(counter("dhtkit_cache_get_misses_total", "Keys not found by get, gets, gat, gats and mg",
                          load(c.get_misses)));
    out.push_back(gauge("dhtkit_cache_items", "Items stored now", static_cast<double>(st.curr_items)));
    out.push_back(counter("dhtkit_cache_items_stored_total", "Items stored since start",
                          static_cast<double>(st.total_items)));
    out.push_back(gauge("dhtkit_cache_item_bytes", "Memory the items take, allocation rounding included",
                        static_cast<double>(st.bytes)));
    out.push_back(gauge("dhtkit_cache_memory_used_bytes", "Items plus the hash index: what -m bounds",
                        static_cast<double>(st.memory_used)));
    out.push_back(gauge("dhtkit_cache_memory_limit_bytes", "The memory limit (-m)",
                        static_cast<double>(st.limit_maxbytes)));
    out.push_back(counter("dhtkit_cache_evictions_total", "Live items dropped to make room",
                          static_cast<double>(st.evictions)));
    out.push_back(counter("dhtkit_cache_items_reclaimed_total", "Expired or flushed items freed",
                          static_cast<double>(st.reclaimed)));
    out.push_back(counter("dhtkit_cache_out_of_memory_total", "Writes refused for lack of memory (-M)",
                          static_cast<double>(st.out_of_memory)));
    out.push_back(counter("dhtkit_cache_too_large_total", "Writes refused as larger than -I",
                          static_cast<double>(st.too_large)));
    out.push_back(gauge("dhtkit_cache_connections", "Client connections open now", load(c.curr_connections)));
    out.push_back(counter("dhtkit_cache_connections_total", "Client connections accepted since start",
                          load(c.total_connections)));
    out.push_back(counter("dhtkit_cache_connections_rejected_total", "Client connections refused past -c",
                          load(c.rejected_connections)));
    out.push_back(gauge("dhtkit_cache_connections_limit", "The connection limit (-c)",
                        static_cast<double>(ctx_.settings.max_connections)));
    if (ctx_.settings.ssl_enabled)
      out.push_back(
          counter("dhtkit_cache_tls_handshake_errors_total",
                  "Client TLS handshakes that failed or timed out (-Z; stats' ssl_handshake_errors)",
                  load(c.ssl_handshake_errors)));
    out.push_back(counter("dhtkit_cache_read_bytes_total", "Bytes read from clients", load(c.bytes_read)));
    out.push_back(
        counter("dhtkit_cache_written_bytes_total", "Bytes written to clients", load(c.bytes_written)));
    // memcached's `uptime` stat, the same number `stats` reports.
    out.push_back(gauge("dhtkit_cache_uptime_seconds", "Seconds since the server started, as stats' uptime",
                        static_cast<double>(ctx_.now())));
    return out;
  }

 private:
  prometheus::MetricFamily commands() const {
    auto f = detail::family("dhtkit_cache_commands_total",
                            "Commands run, by command and by how the reply began (outcome)",
                            prometheus::MetricType::Counter);
    for (std::size_t k = 0; k < command_kinds; ++k)
      for (std::size_t o = 0; o < reply_outcomes; ++o) {
        std::uint64_t n = 0;
        for (const command_metrics* w : workers_)
          n += w->count(static_cast<command_kind>(k), static_cast<reply_outcome>(o));
        if (n != 0 || detail::exported_at_zero(static_cast<command_kind>(k), static_cast<reply_outcome>(o)))
          detail::add_value(
              f, static_cast<double>(n),
              {{"command", std::string(command_names[k])}, {"outcome", std::string(outcome_names[o])}});
      }
    return f;
  }

  prometheus::MetricFamily durations() const {
    auto f = detail::family("dhtkit_cache_command_duration_seconds",
                            "Time the server spent on a command, network and value upload excluded",
                            prometheus::MetricType::Histogram);
    for (std::size_t k = 0; k < command_kinds; ++k) {
      const auto kind = static_cast<command_kind>(k);
      prometheus::ClientMetric m;
      std::uint64_t cumulative = 0;
      std::uint64_t sum_ns = 0;
      for (std::size_t b = 0; b <= latency_bounds_ns.size(); ++b) {
        for (const command_metrics* w : workers_) cumulative += w->bucket(kind, b);
        if (b < latency_bounds_ns.size())
          m.histogram.bucket.push_back({cumulative, static_cast<double>(latency_bounds_ns[b]) * 1e-9});
      }
      if (cumulative == 0 && !detail::timed_at_zero(kind)) continue;
      for (const command_metrics* w : workers_) sum_ns += w->duration_sum_ns(kind);
      // The serializer adds the +Inf bucket from sample_count.
      m.histogram.sample_count = cumulative;
      m.histogram.sample_sum = static_cast<double>(sum_ns) * 1e-9;
      m.label = {{"command", std::string(command_names[k])}};
      f.metric.push_back(std::move(m));
    }
    return f;
  }

  server_context& ctx_;
  std::vector<const command_metrics*> workers_;
};

// The HTTP side: prometheus-cpp's exposer (civetweb, two threads of its own).
class metrics_endpoint {
 public:
  metrics_endpoint(server_context& ctx, std::vector<const command_metrics*> workers)
      : collector_(std::make_shared<metrics_collector>(ctx, std::move(workers))) {}

  // Binds address:port (port 0: a free one); an error message on failure.
  std::optional<std::string> start(const std::string& address, std::uint16_t port) {
    const std::string where =
        (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" + std::to_string(port);
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(where, 1);
      exposer_->RegisterCollectable(collector_);
    } catch (const std::exception& e) {
      exposer_.reset();
      return "cannot serve metrics on " + where + ": " + e.what();
    }
    const auto ports = exposer_->GetListeningPorts();
    if (ports.empty()) return "cannot serve metrics on " + where + ": no listening port";
    port_ = static_cast<std::uint16_t>(ports.front());
    return std::nullopt;
  }

  std::uint16_t port() const { return port_; }

 private:
  std::shared_ptr<metrics_collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::uint16_t port_ = 0;
};

}  // namespace dhtkit_cache
