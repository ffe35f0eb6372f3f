// What every connection of dhtkit-cache shares: the store, the settings the
// server was started with, the counters `stats` reports, the clock and the
// hooks a command may pull (shutdown). The server builds one; each session
// holds a reference to it.
//
//   dhtkit::cache::store store;
//   dhtkit_cache::server_context ctx{.store = store,
//                                    .settings = {},
//                                    .counters = {},
//                                    .now = [] { return dhtkit::cache::rel_time{2}; },
//                                    .process_started_unix = std::time(nullptr) - 2,
//                                    .request_shutdown = [] {},
//                                    .verbosity = {0}};
//   dhtkit_cache::session s(ctx);
//
// The clock is injected, as everywhere in dhtkit: now() is memcached's
// rel_time (whole seconds since the start, the server starts it at 2 as
// memcached does), and process_started_unix + now() is the unix time. Tests
// hand in a fake clock to test expiry without sleeping.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "dhtkit/cache/store.hpp"
#include "protocol/cluster_hooks.hpp"

namespace dhtkit_cache {

// Everything `stats settings` reports, as the command line set it.
struct server_settings {
  bool allow_shutdown = false;         // -A: the `shutdown` command is obeyed
  std::size_t max_connections = 1024;  // -c
  int threads = 4;                     // -t
  int verbosity = 0;                   // -v / -vv at start (the live level is server_context::verbosity)
  std::uint16_t port = 11211;          // -p
  std::string listen = "127.0.0.1";    // -l
  std::size_t idle_timeout_s = 0;      // close connections idle this long; 0: never
  bool flush_enabled = true;           // -F turns flush_all off
  std::size_t memory_limit = std::size_t{64} << 20;  // -m, bytes
  std::size_t max_item_size = std::size_t{1} << 20;  // -I, bytes (the store enforces it too)
  bool evictions = true;                             // -M turns eviction off
  // Clients over TLS (-Z): `stats` then reports ssl_handshake_errors and
  // `stats settings` these, under memcached's names.
  bool ssl_enabled = false;    // -Z
  std::string ssl_chain_cert;  // -o ssl_chain_cert
  std::string ssl_key;         // -o ssl_key; empty: the key is in ssl_chain_cert
  std::string ssl_ca_cert;     // -o ssl_ca_cert; empty: none
  std::string ssl_ciphers;     // -o ssl_ciphers; empty: OpenSSL's default
  int ssl_verify_mode = 0;     // -o ssl_verify_mode: 0 none, 1 request, 2 require, 3 once
  int ssl_min_version = 2;     // -o ssl_min_version: 0..3 for TLS 1.0..1.3
  // `version` replies "VERSION " + this. Clients (pymemcache, libmemcached)
  // read the first token as memcached's version, so it starts with the 1.6
  // release whose behaviour dhtkit-cache follows.
  std::string version = "1.6.18 dhtkit-cache/0.1.0";

  // Close a connection whose request has been arriving this long without
  // being complete (a client trickling bytes); 0: never. See options.hpp.
  std::size_t request_timeout_s = 30;
};

// Counters `stats` reports. The server counts connections and bytes; the
// sessions count commands (each session adds its own tallies here at the end
// of every process() call, so a hot get loop does not bounce these cache
// lines between threads on every command).
struct server_counters {
  std::atomic<std::uint64_t> curr_connections{0}, total_connections{0}, rejected_connections{0};
  std::atomic<std::uint64_t> ssl_handshake_errors{0};  // -Z: handshakes that failed or timed out
  std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0};
  std::atomic<std::uint64_t> cmd_get{0}, cmd_set{0}, cmd_flush{0}, cmd_touch{0}, cmd_meta{0};
  std::atomic<std::uint64_t> get_hits{0}, get_misses{0};
  std::atomic<std::uint64_t> delete_misses{0}, delete_hits{0};
  std::atomic<std::uint64_t> incr_misses{0}, incr_hits{0}, decr_misses{0}, decr_hits{0};
  std::atomic<std::uint64_t> cas_misses{0}, cas_hits{0}, cas_badval{0};
  std::atomic<std::uint64_t> touch_hits{0}, touch_misses{0};
};

struct server_context {
  dhtkit::cache::store& store;
  server_settings settings;
  server_counters counters;
  std::function<dhtkit::cache::rel_time()> now;  // seconds since start (memcached's current_time)
  std::int64_t process_started_unix = 0;         // unix time at rel_time 0
  std::function<void()> request_shutdown;        // an accepted `shutdown` (only with allow_shutdown)
  std::atomic<int> verbosity{0};                 // set by the `verbosity` command
  // A node of a cluster: sessions hand their commands on one key (and
  // flush_all) to it instead of running them on store. nullptr: one server.
  cluster_hooks* cluster = nullptr;
};

}  // namespace dhtkit_cache
