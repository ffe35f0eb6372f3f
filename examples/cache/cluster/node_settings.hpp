// The DHT node's configuration for a dhtkit-cache cluster node, from the
// command line: where it listens, whom it joins, its name, N/R/W, the
// bounds that must hold the largest item (-I) in one message, and mutual TLS
// on the stream lane (--cluster-tls-*).
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>

#include "dhtkit/node/config.hpp"
#include "server/options.hpp"
#ifdef DHTKIT_CACHE_TLS
#include "dhtkit/security/tls.hpp"
#endif

namespace dhtkit_cache::cluster {

inline dhtkit::node_config make_node_config(const options& opt) {
  dhtkit::node_config c = opt.cluster_profile == "wan"     ? dhtkit::node_config::wan()
                          : opt.cluster_profile == "local" ? dhtkit::node_config::local()
                                                           : dhtkit::node_config::lan();
  c.name = opt.cluster_name;
  const std::string host = opt.listen.find(':') != std::string::npos ? "[" + opt.listen + "]" : opt.listen;
  c.listen = host + ":" + std::to_string(opt.cluster_port);
  c.advertise = opt.cluster_advertise;
  c.seeds = opt.join;
  c.replication.n = opt.replicas;
  c.replication.r = opt.read_quorum;
  c.replication.w = opt.write_quorum;
  c.replication.max_n = std::max(c.replication.max_n, opt.replicas);
  c.placement.n = opt.replicas;
  c.placement.list_length = c.replication.max_n;
  // One record (the item, its key and 42 bytes of header) or one forwarded
  // request (the item's command line and data) in one message.
  const std::size_t largest = opt.max_item_size + 64 * 1024;
  c.replication.max_value_size = std::max(c.replication.max_value_size, largest);
  c.stream_max_message = std::max(c.stream_max_message, largest + c.replication.max_key_size + 4096);
  c.replication.limits.max_message_size =
      std::max(c.replication.limits.max_message_size, c.stream_max_message);
  c.replication.limits.max_string_size = std::max(c.replication.limits.max_string_size, c.stream_max_message);
  // A replica has this long to take a megabyte (an unoptimized build takes
  // a few hundred milliseconds over loopback), a request this long in all.
  c.replication.replica_timeout =
      std::max(c.replication.replica_timeout, dhtkit::duration(dhtkit::millis(250)));
  c.replication.request_timeout =
      std::max(c.replication.request_timeout, dhtkit::duration(dhtkit::seconds(1)));
  // Anti-entropy hashes every key a node shares with its peer in the slice it
  // compares (its values included), on the node's one thread; at the
  // library's pace (a slice every 200 ms) a node holding 100,000 items spent
  // a third of a core on it and a cache node's requests waited behind it.
  // Handoff, hints and read repair carry the writes; anti-entropy is the
  // backstop, so once every 5 s is enough.
  c.replication.anti_entropy_interval =
      std::max(c.replication.anti_entropy_interval, dhtkit::duration(dhtkit::seconds(5)));
  c.max_pending_ops = 16384;  // client operations in progress: one per command being replicated
  c.replication.max_pending = 16384;
#ifdef DHTKIT_CACHE_TLS
  // Loaded and checked here, so a bad file or a --name the certificate does
  // not carry stops the node before it binds anything (std::invalid_argument,
  // printed by main).
  if (opt.cluster_tls()) {
    auto tls = dhtkit::tls_security::create({opt.cluster_tls_cert, opt.cluster_tls_key, opt.cluster_tls_ca});
    if (!tls->local_identity().has_name(c.name))
      throw std::invalid_argument("--name " + c.name + " is not a name of --cluster-tls-cert " +
                                  opt.cluster_tls_cert + " (it names " + tls->local_identity().describe() +
                                  "): a node's certificate must carry its name, as a DNS subject alternative "
                                  "name or the common name");
    c.stream_security = std::move(tls);
  }
#endif
  return c;
}

}  // namespace dhtkit_cache::cluster
