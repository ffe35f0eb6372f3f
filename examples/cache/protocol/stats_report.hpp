// The `stats` family: `stats`, `stats settings`, `stats items`, `stats slabs`
// and `stats reset`, with the fields that mean something for dhtkit-cache, in
// the order memcached 1.6.18 lists them (clients and dashboards look fields
// up by name; tools that diff two servers' output see the same order).
//
//   dhtkit_cache::write_stats(env, dhtkit_cache::tokenize("stats"), out);
//   // out == "STAT pid 4242\r\nSTAT uptime 10\r\n...END\r\n"
//
// Left out: what describes memcached's own machinery (libevent, slab
// classes and their pages, the LRU crawler and maintainer threads, extstore,
// kernel TLS). With -Z, TLS's fields appear under memcached's names. `stats items` reports the store as one
// item class, 1, as memcached does when every item fits its smallest class; `stats slabs` reports only the
// totals. Unknown sub-commands answer ERROR, as memcached does. A node of a cluster (server_context::cluster)
// adds `stats cluster` and appends the same lines to `stats`.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void stat(std::string& out, std::string_view name, std::string_view value) {
  out.append("STAT ");
  out.append(name);
  out.push_back(' ');
  out.append(value);
  out.append("\r\n");
}
inline void stat(std::string& out, std::string_view name, std::uint64_t value) {
  out.append("STAT ");
  out.append(name);
  out.push_back(' ');
  append_number(out, value);
  out.append("\r\n");
}
inline std::uint64_t load(const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); }

inline std::string seconds_text(const timeval& tv) {
  std::string s;
  append_number(s, static_cast<std::uint64_t>(tv.tv_sec));
  s.push_back('.');
  std::string us;
  append_number(us, static_cast<std::uint64_t>(tv.tv_usec));
  s.append(6 - std::min<std::size_t>(6, us.size()), '0');
  s.append(us);
  return s;
}

inline void general_stats(command_env& env, std::string& out) {
  const server_counters& c = env.ctx.counters;
  const auto st = env.ctx.store.stats();
  stat(out, "pid", static_cast<std::uint64_t>(::getpid()));
  stat(out, "uptime", env.now);
  stat(out, "time", static_cast<std::uint64_t>(env.ctx.process_started_unix + env.now));
  stat(out, "version",
       std::string_view(env.ctx.settings.version).substr(0, env.ctx.settings.version.find(' ')));
  stat(out, "pointer_size", std::uint64_t{8 * sizeof(void*)});
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  stat(out, "rusage_user", seconds_text(usage.ru_utime));
  stat(out, "rusage_system", seconds_text(usage.ru_stime));
  stat(out, "max_connections", env.ctx.settings.max_connections);
  stat(out, "curr_connections", load(c.curr_connections));
  stat(out, "total_connections", load(c.total_connections));
  stat(out, "rejected_connections", load(c.rejected_connections));
  stat(out, "connection_structures", load(c.curr_connections));
  stat(out, "cmd_get", load(c.cmd_get));
  stat(out, "cmd_set", load(c.cmd_set));
  stat(out, "cmd_flush", load(c.cmd_flush));
  stat(out, "cmd_touch", load(c.cmd_touch));
  stat(out, "cmd_meta", load(c.cmd_meta));
  stat(out, "get_hits", load(c.get_hits));
  stat(out, "get_misses", load(c.get_misses));
  stat(out, "get_expired", st.get_expired);
  stat(out, "get_flushed", st.get_flushed);
  stat(out, "delete_misses", load(c.delete_misses));
  stat(out, "delete_hits", load(c.delete_hits));
  stat(out, "incr_misses", load(c.incr_misses));
  stat(out, "incr_hits", load(c.incr_hits));
  stat(out, "decr_misses", load(c.decr_misses));
  stat(out, "decr_hits", load(c.decr_hits));
  stat(out, "cas_misses", load(c.cas_misses));
  stat(out, "cas_hits", load(c.cas_hits));
  stat(out, "cas_badval", load(c.cas_badval));
  stat(out, "touch_hits", load(c.touch_hits));
  stat(out, "touch_misses", load(c.touch_misses));
  stat(out, "store_too_large", st.too_large);
  stat(out, "store_no_memory", st.out_of_memory);
  stat(out, "bytes_read", load(c.bytes_read));
  stat(out, "bytes_written", load(c.bytes_written));
  stat(out, "limit_maxbytes", st.limit_maxbytes);
  stat(out, "accepting_conns", std::uint64_t{1});
  stat(out, "threads", static_cast<std::uint64_t>(env.ctx.settings.threads));
  stat(out, "hash_bytes", st.index_bytes);
  // Where memcached lists it, and as memcached only with TLS on.
  if (env.ctx.settings.ssl_enabled) stat(out, "ssl_handshake_errors", load(c.ssl_handshake_errors));
  // A cluster node reports what it holds as a replica, not what this
  // session's store holds.
  const cluster_hooks* cluster = env.ctx.cluster;
  stat(out, "bytes", cluster != nullptr ? cluster->item_bytes() : st.bytes);
  stat(out, "curr_items", cluster != nullptr ? cluster->items() : st.curr_items);
  stat(out, "total_items", st.total_items);
  stat(out, "expired_unfetched", st.expired_unfetched);
  stat(out, "evicted_unfetched", st.evicted_unfetched);
  stat(out, "evictions", st.evictions);
  stat(out, "reclaimed", st.reclaimed);
}

inline void settings_stats(command_env& env, std::string& out) {
  const server_settings& s = env.ctx.settings;
  stat(out, "maxbytes", static_cast<std::uint64_t>(s.memory_limit));
  stat(out, "maxconns", static_cast<std::uint64_t>(s.max_connections));
  stat(out, "tcpport", std::uint64_t{s.port});
  stat(out, "udpport", std::uint64_t{0});
  stat(out, "inter", s.listen);
  stat(out, "verbosity", static_cast<std::uint64_t>(env.ctx.verbosity.load(std::memory_order_relaxed)));
  stat(out, "evictions", s.evictions ? "on" : "off");
  stat(out, "shutdown_command", s.allow_shutdown ? "yes" : "no");
  stat(out, "num_threads", static_cast<std::uint64_t>(s.threads));
  stat(out, "cas_enabled", "yes");
  stat(out, "binding_protocol", "ascii");
  stat(out, "item_size_max", static_cast<std::uint64_t>(s.max_item_size));
  stat(out, "flush_enabled", s.flush_enabled ? "yes" : "no");
  stat(out, "idle_timeout", static_cast<std::uint64_t>(s.idle_timeout_s));
  if (s.ssl_enabled) {
    // memcached's names and forms: NULL for a file not given, the version as tlsv1.N.
    const auto or_null = [](const std::string& v) { return v.empty() ? std::string_view("NULL") : v; };
    static constexpr std::string_view versions[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    stat(out, "ssl_enabled", "yes");
    stat(out, "ssl_chain_cert", or_null(s.ssl_chain_cert));
    stat(out, "ssl_key", or_null(s.ssl_key));
    stat(out, "ssl_verify_mode", static_cast<std::uint64_t>(s.ssl_verify_mode));
    stat(out, "ssl_ciphers", or_null(s.ssl_ciphers));
    stat(out, "ssl_ca_cert", or_null(s.ssl_ca_cert));
    stat(out, "ssl_min_version", versions[static_cast<std::size_t>(s.ssl_min_version) & 3]);
  }
}

inline void items_stats(command_env& env, std::string& out) {
  const auto st = env.ctx.store.stats();
  if (st.curr_items == 0) return;  // memcached lists only classes holding items
  stat(out, "items:1:number", st.curr_items);
  stat(out, "items:1:mem_requested", st.bytes);
  stat(out, "items:1:evicted", st.evictions);
  stat(out, "items:1:outofmemory", st.out_of_memory);
  stat(out, "items:1:reclaimed", st.reclaimed);
  stat(out, "items:1:expired_unfetched", st.expired_unfetched);
  stat(out, "items:1:evicted_unfetched", st.evicted_unfetched);
}

inline void slabs_stats(command_env& env, std::string& out) {
  const auto st = env.ctx.store.stats();
  stat(out, "active_slabs", std::uint64_t{st.curr_items > 0 ? 1u : 0u});
  stat(out, "total_malloced", st.memory_used);
}

inline void reset_stats(command_env& env) {
  server_counters& c = env.ctx.counters;
  for (auto* a : {&c.total_connections, &c.rejected_connections,
                  &c.bytes_read,        &c.bytes_written,
                  &c.cmd_get,           &c.cmd_set,
                  &c.cmd_flush,         &c.cmd_touch,
                  &c.cmd_meta,          &c.get_hits,
                  &c.get_misses,        &c.delete_misses,
                  &c.delete_hits,       &c.incr_misses,
                  &c.incr_hits,         &c.decr_misses,
                  &c.decr_hits,         &c.cas_misses,
                  &c.cas_hits,          &c.cas_badval,
                  &c.touch_hits,        &c.touch_misses})
    a->store(0, std::memory_order_relaxed);
  env.tally = command_tally{};
  env.ctx.store.reset_stats();
}

}  // namespace detail

// Writes the reply to a `stats ...` line (t[0] == "stats").
inline void write_stats(command_env& env, const token_list& t, std::string& out) {
  // This session's own tallies first, so its stats include its commands.
  env.tally.flush(env.ctx.counters);
  if (t.size() == 1) {
    detail::general_stats(env, out);
    if (env.ctx.cluster != nullptr) out.append(env.ctx.cluster->stats_lines());
  } else if (t.size() == 2 && t[1] == "cluster" && env.ctx.cluster != nullptr) {
    out.append(env.ctx.cluster->stats_lines());
  } else if (t.size() == 2 && t[1] == "settings") {
    detail::settings_stats(env, out);
  } else if (t.size() == 2 && t[1] == "items") {
    detail::items_stats(env, out);
  } else if (t.size() == 2 && t[1] == "slabs") {
    detail::slabs_stats(env, out);
  } else if (t.size() == 2 && t[1] == "reset") {
    detail::reset_stats(env);
    out.append("RESET\r\n");
    return;
  } else {
    out.append("ERROR\r\n");
    return;
  }
  out.append("END\r\n");
}

}  // namespace dhtkit_cache
