// dhtkit-cache's command line: memcached's flags where the meaning is the same,
// parsed with CLI11.
//
// Differences from memcached, on purpose:
//   - -l defaults to 127.0.0.1, not every address: a cache has no
//     authentication, so opening it to the network must be a decision;
//   - -l takes one IP address (memcached also takes host names and lists);
//   - -p 0 binds a free port and prints it (memcached refuses it); tests use it;
//   - --idle-timeout is a flag of its own (memcached: -o idle_timeout=N);
//   - --request-timeout bounds how long one request may take to arrive
//     (memcached has no such bound);
//   - --metrics-port serves Prometheus metrics (memcached has none; its
//     operators run memcached_exporter, which works with dhtkit-cache too);
//   - -o takes only the ssl_* options of -Z (below), and an ssl_* option
//     without -Z is an error rather than ignored; --ssl-handshake-timeout is
//     dhtkit-cache's own (memcached has no handshake deadline).
// Bad values end the program with a message and exit status 64 (EX_USAGE),
// as memcached does for most of them.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>

#ifdef DHTKIT_CACHE_KEYRING
#include "dhtkit/security/keyring_file.hpp"
#endif

namespace dhtkit_cache {

#ifndef DHTKIT_VERSION_STRING
#define DHTKIT_VERSION_STRING "0.0.0"
#endif

// The memcached version dhtkit-cache speaks (what clients parse), then dhtkit's own.
inline constexpr const char* server_version = "1.6.18 dhtkit-cache/" DHTKIT_VERSION_STRING;

// Clients over TLS: -Z and memcached's -o ssl_* options (server/tls_context.hpp).
struct client_tls_options {
  bool enabled = false;    // -Z: every client connection is TLS
  std::string chain_cert;  // ssl_chain_cert: the server's certificate chain, PEM (required with -Z)
  std::string key;         // ssl_key: its private key, PEM; empty: the key is in chain_cert
  std::string ca_cert;     // ssl_ca_cert: CAs client certificates are checked against; empty: none
  int verify_mode = 0;     // ssl_verify_mode: 0 none, 1 request, 2 require, 3 once (memcached's)
  std::string ciphers;     // ssl_ciphers: an OpenSSL cipher list (TLS 1.2); empty: OpenSSL's default
  int min_version = 2;     // ssl_min_version: 0..3 for TLS 1.0..1.3 (memcached's default, 1.2)
  std::size_t handshake_timeout_s = 5;  // --ssl-handshake-timeout: a client's handshake must end by then
};

struct options {
  std::uint16_t port = 11211;
  std::string listen = "127.0.0.1";
  std::size_t memory_mb = 64;
  bool disable_evictions = false;  // -M
  std::size_t max_connections = 1024;
  int threads = 4;
  std::size_t max_item_size = 1 << 20;  // -I, bytes
  int verbosity = 0;
  bool enable_shutdown = false;    // -A
  bool disable_flush_all = false;  // -F
  std::size_t idle_timeout_s = 0;  // 0: never
  int metrics_port = -1;           // --metrics-port; -1: no metrics endpoint, 0: a free port
  std::string metrics_listen;      // --metrics-listen; empty: the -l address

  // --request-timeout: seconds a request may take to arrive whole; 0: never.
  // 30 s: what a 1 MiB item needs at 35 KB/s, while a client trickling a
  // byte a second (slowloris) holds a connection slot at most that long.
  std::size_t request_timeout_s = 30;

  // A node of a cluster (cluster/engine.hpp) when cluster_port >= 0.
  int cluster_port = -1;                // --cluster-port: UDP gossip and TCP data; 0 picks free ports
  std::string cluster_name;             // --name; empty: "<-l>:<cluster port>"
  std::string cluster_advertise;        // --cluster-advertise; empty: -l and the cluster port
  std::vector<std::string> join;        // --join host:port,...; empty: found a cluster
  std::string placement = "one-hop";    // --placement one-hop|chord
  std::uint32_t replicas = 3;           // --replicas N: copies of every key
  std::uint32_t read_quorum = 1;        // --read-quorum R: replicas a read consults (1: the coordinator's)
  std::uint32_t write_quorum = 2;       // --write-quorum W: acknowledgements before a write's reply
  std::string cluster_profile = "lan";  // --cluster-profile lan|wan|local: failure detection and timeouts
  // Mutual TLS between nodes (all three or none; empty: the stream lane is plain TCP).
  std::string cluster_tls_cert;  // --cluster-tls-cert: PEM, this node's certificate (naming --name), then
                                 // intermediates
  std::string cluster_tls_key;   // --cluster-tls-key: PEM, its private key
  std::string cluster_tls_ca;    // --cluster-tls-ca: PEM, the CA every node's certificate chains to

  client_tls_options client_tls;  // -Z, -o ssl_*

  // --gossip-keyring FILE: seal the cluster's UDP gossip (cluster/gossip_keyring.hpp); empty: in clear.
  std::string gossip_keyring;
  std::vector<std::vector<std::byte>> gossip_keys;  // the file's keys, primary first, read at start

  bool clustered() const { return cluster_port >= 0; }
  bool cluster_tls() const { return !cluster_tls_cert.empty(); }
  // Keys the replicated storage holds (it has no LRU yet): about what -m
  // holds at 128 bytes an item; past it new keys answer SERVER_ERROR.
  std::size_t cluster_max_keys() const { return std::max<std::size_t>(1024, memory_limit_bytes() / 128); }

  std::size_t memory_limit_bytes() const { return memory_mb << 20; }
};

// Exit statuses: 0 after --help / -V, 64 for a bad command line.
inline constexpr int exit_usage = 64;

// "1m", "512k", "1048576": memcached's -I syntax (binary units, no suffix = bytes).
inline std::optional<std::size_t> parse_size(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::size_t value = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const std::size_t digit = static_cast<std::size_t>(text[i] - '0');
    if (value > (std::numeric_limits<std::size_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (i == 0) return std::nullopt;
  unsigned shift = 0;
  if (i + 1 == text.size()) {
    switch (text[i]) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      default:
        return std::nullopt;
    }
  } else if (i != text.size()) {
    return std::nullopt;
  }
  if (value > (std::numeric_limits<std::size_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

// memcached's -o ssl_* options ("name=value" each) into tls; an error message
// naming the option otherwise.
inline std::optional<std::string> parse_tls_options(const std::vector<std::string>& extended,
                                                    client_tls_options& tls) {
  const auto small_number = [](const std::string& v, int max) -> std::optional<int> {
    if (v.size() != 1 || v[0] < '0' || v[0] > '0' + max) return std::nullopt;
    return v[0] - '0';
  };
  for (const std::string& item : extended) {
    const auto eq = item.find('=');
    const std::string name = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? std::string() : item.substr(eq + 1);
    if (name.rfind("ssl_", 0) != 0)
      return "-o " + item + ": dhtkit-cache takes only the ssl_* options of -Z here (see --help)";
    if (eq == std::string::npos || value.empty()) return "-o " + name + ": needs a value (" + name + "=...)";
    if (name == "ssl_chain_cert") {
      tls.chain_cert = value;
    } else if (name == "ssl_key") {
      tls.key = value;
    } else if (name == "ssl_ca_cert") {
      tls.ca_cert = value;
    } else if (name == "ssl_ciphers") {
      tls.ciphers = value;
    } else if (name == "ssl_verify_mode") {
      const auto mode = small_number(value, 3);
      if (!mode) return "-o ssl_verify_mode=" + value + ": 0 (none), 1 (request), 2 (require) or 3 (once)";
      tls.verify_mode = *mode;
    } else if (name == "ssl_min_version") {
      const auto version = small_number(value, 3);
      if (!version) return "-o ssl_min_version=" + value + ": 0 (TLS 1.0), 1 (1.1), 2 (1.2) or 3 (1.3)";
      tls.min_version = *version;
    } else {
      return "-o " + name +
             ": not supported (dhtkit-cache takes ssl_chain_cert, ssl_key, ssl_ca_cert, ssl_verify_mode, "
             "ssl_ciphers and ssl_min_version)";
    }
  }
  if (!tls.enabled && !extended.empty()) return "-o ssl_*: TLS options without -Z (--enable-ssl)";
  if (!tls.enabled) return std::nullopt;
  if (tls.chain_cert.empty())
    return "-Z: needs -o ssl_chain_cert=FILE (and ssl_key=FILE unless the key is in it)";
  if (tls.verify_mode > 0 && tls.ca_cert.empty())
    return "-o ssl_verify_mode=" + std::to_string(tls.verify_mode) +
           ": needs -o ssl_ca_cert=FILE, the CAs client certificates are checked against";
  return std::nullopt;
}

// Parses argv. Returns the options, or nothing with `exit_code` set (0 after
// --help or -V, exit_usage after a message on stderr).
inline std::optional<options> parse_command_line(int argc, char** argv, int& exit_code) {
  options opt;
  std::string item_size = "1m";
  std::vector<std::string> extended;
  bool show_version = false;
  CLI::App app{
      "dhtkit-cache: a memcached-compatible cache server (text and meta protocols) built on dhtkit.\n"
      "Flags mean what memcached's do, except where noted.",
      "dhtkit-cache"};
  app.get_formatter()->column_width(30);
  app.add_option("-p,--port", opt.port,
                 "TCP port to listen on (default: 11211). 0 picks a free port and prints it "
                 "(memcached does not accept 0)")
      ->check(CLI::Range(0, 65535));
  app.add_option("-l,--listen", opt.listen,
                 "IP address to listen on (default: 127.0.0.1). Not every address by default, unlike "
                 "memcached: the cache has no authentication. Use 0.0.0.0 or :: deliberately");
  app.add_option("-m,--memory-limit", opt.memory_mb,
                 "item memory in megabytes: keys, values, metadata and index, as the store counts "
                 "them (default: 64)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_flag("-M,--disable-evictions", opt.disable_evictions,
               "return an error when memory is exhausted instead of evicting");
  app.add_option("-c,--conn-limit", opt.max_connections,
                 "max simultaneous client connections (default: 1024); past it a new client gets "
                 "'ERROR Too many open connections' and is closed")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("-t,--threads", opt.threads, "number of worker threads (default: 4, at most 256)")
      ->check(CLI::Range(1, 256));
  app.add_option("-I,--max-item-size", item_size,
                 "max item size, bytes or with a k/m suffix (default: 1m, min: 1k, max: 1024m, at most "
                 "half of -m)");
  app.add_flag("-v,--verbose", opt.verbosity,
               "log to stderr: -v errors, warnings and connection limits, -vv also every connection "
               "(default: errors and the listening line only)");
  app.add_flag("-A,--enable-shutdown", opt.enable_shutdown, "enable the text protocol's 'shutdown' command");
  app.add_flag("-F,--disable-flush-all", opt.disable_flush_all,
               "disable the flush_all command (it then answers an error)");
  app.add_option("--idle-timeout", opt.idle_timeout_s,
                 "close a connection after this many seconds without traffic; 0: never (default: 0; "
                 "memcached: -o idle_timeout)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{30} * 24 * 3600));
  app.add_option("--request-timeout", opt.request_timeout_s,
                 "close a connection whose request (command line and value) is still incomplete this "
                 "many seconds after the server began waiting for the rest; 0: never (default: 30; "
                 "memcached has no such bound)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{30} * 24 * 3600));
  auto* metrics_port =
      app.add_option("--metrics-port", opt.metrics_port,
#ifdef DHTKIT_CACHE_METRICS
                     "serve Prometheus metrics on http://ADDRESS:PORT/metrics (default: off; 0 picks a free "
#else
                     "not in this build (dhtkit-cache was built without prometheus-cpp): refused. Otherwise: "
                     "serve Prometheus metrics on http://ADDRESS:PORT/metrics (default: off; 0 picks a free "
#endif
                     "port and prints it)")
          ->check(CLI::Range(0, 65535));
  app.add_option("--metrics-listen", opt.metrics_listen,
                 "IPv4 address of the metrics endpoint (default: the -l address)")
      ->needs(metrics_port);
  auto* cluster_port =
      app.add_option("--cluster-port", opt.cluster_port,
                     "run as a node of a cluster: the port other nodes reach this one at, UDP (membership) "
                     "and TCP (data) (default: off, a single server; 0 picks free ports)")
          ->check(CLI::Range(0, 65535));
  app.add_option("--join", opt.join,
                 "nodes of the cluster to join, host:port of their --cluster-port, comma separated "
                 "(default: none, this node founds a cluster others join)")
      ->delimiter(',')
      ->needs(cluster_port);
  app.add_option("--name", opt.cluster_name,
                 "this node's name, unique in the cluster; a restarted node keeps its name "
                 "(default: the -l address and the cluster port)")
      ->needs(cluster_port);
  app.add_option("--cluster-advertise", opt.cluster_advertise,
                 "the address:port other nodes reach this one at, when -l is 0.0.0.0 (default: -l and "
                 "--cluster-port)")
      ->needs(cluster_port);
  app.add_option("--placement", opt.placement,
                 "how keys are placed: one-hop (every node knows the ring; default) or chord (finger "
                 "tables, for large churning clusters)")
      ->check(CLI::IsMember({"one-hop", "chord"}))
      ->needs(cluster_port);
  app.add_option("--replicas", opt.replicas, "N: copies of every key (default: 3)")
      ->check(CLI::Range(1, 7))
      ->needs(cluster_port);
  app.add_option("--read-quorum", opt.read_quorum,
                 "R: replicas a read waits for (default: 1, the key's coordinator)")
      ->check(CLI::Range(1, 7))
      ->needs(cluster_port);
  app.add_option("--write-quorum", opt.write_quorum,
                 "W: replicas that must take a write before its reply (default: 2)")
      ->check(CLI::Range(1, 7))
      ->needs(cluster_port);
  app.add_option("--cluster-profile", opt.cluster_profile,
                 "timeouts and failure detection: lan (one data centre; default), wan, or local (one "
                 "machine, tests: failures detected in a second or two)")
      ->check(CLI::IsMember({"lan", "wan", "local"}))
      ->needs(cluster_port);
  app.add_flag("-Z,--enable-ssl", opt.client_tls.enabled,
#ifdef DHTKIT_CACHE_TLS
               "every client connection is TLS (as memcached's -Z); needs -o ssl_chain_cert"
#else
               "not in this build (dhtkit-cache was built without OpenSSL): refused. Otherwise: every "
               "client connection is TLS (as memcached's -Z)"
#endif
  );
  app.add_option("-o,--extended", extended,
                 "memcached's TLS options, comma separated NAME=VALUE: ssl_chain_cert (certificate chain, "
                 "PEM), ssl_key (private key, PEM; default: in ssl_chain_cert), ssl_ca_cert (CAs for "
                 "client certificates), ssl_verify_mode (0 none (default), 1 request, 2 require, 3 once), "
                 "ssl_ciphers (OpenSSL cipher list), ssl_min_version (0..3: TLS 1.0..1.3, default 2)")
      ->delimiter(',');
  app.add_option("--ssl-handshake-timeout", opt.client_tls.handshake_timeout_s,
                 "with -Z, close a client whose TLS handshake is not done after this many seconds "
                 "(default: 5; counted in ssl_handshake_errors)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{3600}));
  const std::string tls_note =
#ifdef DHTKIT_CACHE_TLS
      "";
#else
      " (not in this build: dhtkit-cache was built without OpenSSL, refused)";
#endif
  app.add_option("--cluster-tls-cert", opt.cluster_tls_cert,
                 "mutual TLS between nodes: this node's certificate, PEM, then any intermediates; it must "
                 "name the node (--name as a DNS subject alternative name, or the common name). Needs "
                 "--cluster-tls-key and --cluster-tls-ca (default: none, nodes talk plain TCP)" +
                     tls_note)
      ->needs(cluster_port);
  app.add_option("--cluster-tls-key", opt.cluster_tls_key,
                 "the private key of --cluster-tls-cert, PEM, unencrypted" + tls_note)
      ->needs(cluster_port);
  app.add_option("--cluster-tls-ca", opt.cluster_tls_ca,
                 "the CA certificate(s), PEM, every node's certificate must chain to; a peer with any other "
                 "certificate, or none, is refused" +
                     tls_note)
      ->needs(cluster_port);
  app.add_option("--gossip-keyring", opt.gossip_keyring,
                 "seal the cluster's UDP gossip with AES-GCM keys from FILE: one base64 key (16, 24 or 32 "
                 "bytes) per line, the first one sealing, every one accepted; SIGHUP reads the file again "
                 "(key rotation). Every node needs the same keys (default: gossip in clear, anyone who "
                 "reaches the cluster port can join)")
      ->type_name("FILE")
      ->needs(cluster_port);
  app.add_flag("-V,--version", show_version, "print the version and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    exit_code = 0;
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dhtkit-cache: %s\nRun with --help for the flags.\n", e.what());
    exit_code = exit_usage;
    return std::nullopt;
  }
  if (show_version) {
    std::printf("dhtkit-cache %s (memcached %s compatible)\n", DHTKIT_VERSION_STRING, "1.6");
    exit_code = 0;
    return std::nullopt;
  }

  auto fail = [&](const std::string& message) -> std::optional<options> {
    std::fprintf(stderr, "dhtkit-cache: %s\n", message.c_str());
    exit_code = exit_usage;
    return std::nullopt;
  };
  const auto size = parse_size(item_size);
  if (!size) return fail("-I " + item_size + ": not a size (bytes, or a number with a k or m suffix)");
  if (*size < 1024) return fail("-I " + item_size + ": the max item size cannot be below 1k");
  if (*size > (std::size_t{1} << 30))
    return fail("-I " + item_size + ": the max item size cannot exceed 1024m");
  if (*size > opt.memory_limit_bytes() / 2)
    return fail("-I " + item_size + ": the max item size cannot exceed half of -m (" +
                std::to_string(opt.memory_mb) + " MB)");
  opt.max_item_size = *size;
  std::error_code ec;
  (void)asio::ip::make_address(opt.listen, ec);
  if (ec) return fail("-l " + opt.listen + ": not an IP address");
  if (opt.metrics_port >= 0) {
    // Debian's civetweb (under prometheus-cpp) cannot bind one IPv6 address:
    // refuse it here rather than fail at start with civetweb's "null context".
    const bool given = !opt.metrics_listen.empty();
    if (!given) opt.metrics_listen = opt.listen;
    const auto address = asio::ip::make_address(opt.metrics_listen, ec);
    if (ec) return fail("--metrics-listen " + opt.metrics_listen + ": not an IP address");
    if (address.is_v6())
      return fail(std::string(given ? "--metrics-listen " : "-l ") + opt.metrics_listen +
                  ": the metrics endpoint takes an IPv4 address (prometheus-cpp's web server cannot bind "
                  "a single IPv6 one); give --metrics-listen an IPv4 address");
  }
#ifndef DHTKIT_CACHE_METRICS
  if (opt.metrics_port >= 0)
    return fail(
        "--metrics-port: this dhtkit-cache was built without prometheus-cpp (Debian: prometheus-cpp-dev)");
#endif
  if (opt.clustered()) {
    if (opt.read_quorum > opt.replicas || opt.write_quorum > opt.replicas)
      return fail("--read-quorum and --write-quorum cannot exceed --replicas (" +
                  std::to_string(opt.replicas) + ")");
    const bool wildcard = asio::ip::make_address(opt.listen).is_unspecified();
    if (wildcard && opt.cluster_advertise.empty())
      return fail("-l " + opt.listen +
                  " with --cluster-port: give --cluster-advertise, the address:port "
                  "other nodes reach this one at");
    if (opt.cluster_name.empty() && opt.cluster_port == 0)
      return fail("--cluster-port 0 needs --name (the default name is made of the port)");
    if (opt.cluster_name.empty()) opt.cluster_name = opt.listen + ":" + std::to_string(opt.cluster_port);
    if (opt.cluster_name.size() > 200) return fail("--name: at most 200 bytes");
    const int tls_files =
        !opt.cluster_tls_cert.empty() + !opt.cluster_tls_key.empty() + !opt.cluster_tls_ca.empty();
    if (tls_files != 0 && tls_files != 3)
      return fail(
          "--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together: give all three or none");
#ifndef DHTKIT_CACHE_TLS
    if (tls_files != 0)
      return fail("--cluster-tls-cert: this dhtkit-cache was built without OpenSSL (Debian: libssl-dev)");
#endif
    if (!opt.gossip_keyring.empty()) {
#ifdef DHTKIT_CACHE_KEYRING
      auto file = dhtkit::read_keyring_file(opt.gossip_keyring);
      if (!file.ok()) return fail("--gossip-keyring " + file.error);
      opt.gossip_keys = std::move(file.keys);
#else
      return fail("--gossip-keyring: this dhtkit-cache was built without OpenSSL (Debian: libssl-dev)");
#endif
    }
  }
  if (auto error = parse_tls_options(extended, opt.client_tls)) return fail(*error);
#ifndef DHTKIT_CACHE_TLS
  if (opt.client_tls.enabled)
    return fail("-Z: this dhtkit-cache was built without OpenSSL (Debian: libssl-dev)");
#endif
  if (opt.verbosity > 2) opt.verbosity = 2;
  return opt;
}

}  // namespace dhtkit_cache
