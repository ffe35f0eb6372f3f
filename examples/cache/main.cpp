// dhtkit-cache: a memcached-compatible cache server, alone or as a node of a
// cluster.
//
//   dhtkit-cache -p 11211 -m 64 -t 4                                  # one server
//   dhtkit-cache -p 11211 --cluster-port 7946 --name a                # founds a cluster
//   dhtkit-cache -p 11212 --cluster-port 7947 --name b --join 127.0.0.1:7946
//   dhtkit-cache --help                                               # every flag
//
// The protocol (examples/cache/protocol) turns bytes into store operations;
// the store (dhtkit/cache/store.hpp) is a dhtkit component; the server
// (examples/cache/server) adds the sockets, threads and command line; in a
// cluster, the engine (examples/cache/cluster) runs each command on its
// key's coordinator over a dhtkit::node.
#include <cstdio>
#include <exception>
#include <memory>

#include "cluster/engine.hpp"
#include "server/options.hpp"
#include "server/server.hpp"

int main(int argc, char** argv) {
  int exit_code = 0;
  const auto opt = dhtkit_cache::parse_command_line(argc, argv, exit_code);
  if (!opt) return exit_code;
  try {
    dhtkit_cache::server server(*opt);
    // Declared after the server, so destroyed before it: the engine uses the server's context.
    std::unique_ptr<dhtkit_cache::cluster::cluster_engine> cluster;
    if (opt->clustered()) {
      cluster = dhtkit_cache::cluster::make_cluster_engine(*opt, server.context());
      std::fprintf(stderr, "dhtkit-cache: cluster node %s, joining %s\n", cluster->describe().c_str(),
                   opt->join.empty() ? "no one (founding a cluster)" : "the cluster");
      std::fflush(stderr);
      if (const auto error = cluster->join()) {
        std::fprintf(stderr, "dhtkit-cache: %s\n", error->c_str());
        return 1;
      }
      std::fprintf(stderr, "dhtkit-cache: cluster: joined as %s\n", opt->cluster_name.c_str());
      server.context().cluster = cluster.get();
      server.on_first_signal([&cluster](std::function<void()> stop) {
        cluster->leave([stop = std::move(stop)](const std::string& outcome) {
          std::fprintf(stderr, "dhtkit-cache: cluster: %s\n", outcome.c_str());
          std::fflush(stderr);
          stop();
        });
      });
    }
    if (const auto error = server.listen()) {
      std::fprintf(stderr, "dhtkit-cache: %s\n", error->c_str());
      return 1;
    }
    return server.run();
  } catch (const std::exception& e) {
    // An invalid store or node configuration (std::invalid_argument naming the
    // field), a cluster port that cannot be bound, or no memory.
    std::fprintf(stderr, "dhtkit-cache: %s\n", e.what());
    return 1;
  }
}
