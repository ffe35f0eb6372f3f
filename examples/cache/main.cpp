// dhtkit-cache: a memcached-compatible cache server on one node.
//
//   dhtkit-cache -p 11211 -m 64 -t 4      # then any memcached client
//   dhtkit-cache --help                   # every flag
//
// The protocol (examples/cache/protocol) turns bytes into store operations;
// the store (dhtkit/cache/store.hpp) is a dhtkit component; this program adds
// the sockets, threads and command line (examples/cache/server).
#include <cstdio>
#include <exception>

#include "server/options.hpp"
#include "server/server.hpp"

int main(int argc, char** argv) {
  int exit_code = 0;
  const auto opt = dhtkit_cache::parse_command_line(argc, argv, exit_code);
  if (!opt) return exit_code;
  try {
    dhtkit_cache::server server(*opt);
    if (const auto error = server.listen()) {
      std::fprintf(stderr, "dhtkit-cache: %s\n", error->c_str());
      return 1;
    }
    return server.run();
  } catch (const std::exception& e) {
    // An invalid store configuration (std::invalid_argument naming the field), or no memory.
    std::fprintf(stderr, "dhtkit-cache: %s\n", e.what());
    return 1;
  }
}
