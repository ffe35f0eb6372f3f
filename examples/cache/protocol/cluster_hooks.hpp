// What a session hands to the cluster when dhtkit-cache runs as one node of a
// cluster (examples/cache/cluster): the requests it does not run itself, and
// what `stats` reports about the cluster.
//
// A single memcached runs every command against its own memory. A cluster
// node cannot: a command on one key runs at that key's coordinator (the first
// live node of its preference list), where commands on the key are
// serialized and the outcome replicated. So the session still parses and
// frames every request exactly as a single server does (errors in the
// request itself are answered at once, as before), and hands each well
// framed command on one key over as a deferred_request: the request's bytes
// as a single memcached would read them, which the coordinator feeds to a
// session of its own. The reply comes back as bytes and takes the request's
// place in the connection's reply order.
//
//   struct hooks : dhtkit_cache::cluster_hooks { ... };   // examples/cache/cluster/engine.hpp
//   ctx.cluster = &my_hooks;                               // server_context
//   // session.process(out) now returns session_status::deferred for `get k`,
//   // and take_deferred() gives {keyed, "k", "get k\r\n"}.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace dhtkit_cache {

// A request a session does not run itself (see the top of this file).
struct deferred_request {
  enum class kind : std::uint8_t {
    keyed,      // a command on one key: runs at the key's coordinator
    flush_all,  // flush_all: applies to every node of the cluster
    replica,    // `stats replica <key>`: this node's own copy of the key, read where it is asked
  };
  kind what = kind::keyed;
  std::string key{};     // keyed: the key as stored (meta's base64 key decoded)
  std::string bytes{};   // the request as a single memcached reads it: line "\r\n" [data "\r\n"]
  bool noreply = false;  // text noreply: the client wants no reply, not even an error
  // One key of a multiget (get/gets/gat/gats with several keys): its reply's
  // trailing "END\r\n" is dropped; the session writes the one END after the last key.
  bool strip_end = false;
  std::int64_t flush_unix = 0;  // flush_all: when it takes effect (unix seconds; 0: now)
};

// The cluster as a session sees it. Every function may be called from any
// thread (each client connection runs on one of the server's worker threads).
class cluster_hooks {
 public:
  virtual ~cluster_hooks() = default;
  // Runs `request` (at its coordinator, or on every node for flush_all) and
  // calls done(reply) exactly once, on any thread: the bytes a single
  // memcached would have replied ("" when it replies nothing).
  virtual void dispatch(deferred_request request, std::function<void(std::string reply)> done) = 0;
  // "STAT name value\r\n" lines about the cluster: appended before END by
  // `stats`, and the whole reply (with END) of `stats cluster`.
  virtual std::string stats_lines() const = 0;
  // Items (and their bytes) this node holds as a replica: `stats` reports
  // them as curr_items and bytes, in place of the session's own store.
  virtual std::uint64_t items() const = 0;
  virtual std::uint64_t item_bytes() const = 0;
};

}  // namespace dhtkit_cache
