// Test support for the dhtkit-cache protocol tests: a store, a server_context
// on a fake clock, and helpers that feed a session bytes (whole, or split)
// and collect its replies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dhtkit/cache/store.hpp"
#include "protocol/server_context.hpp"
#include "protocol/session.hpp"

namespace cache_test {

// A fixed unix time for the fake clock: exptimes above 30 days are measured
// against it, so tests do not depend on today's date.
inline constexpr std::int64_t started_unix = 1'700'000'000;

struct fixture {
  explicit fixture(dhtkit::cache::store_config cfg = {})
      : store(cfg),
        ctx{.store = store,
            .settings = {},
            .counters = {},
            .now = [this] { return clock; },
            .process_started_unix = started_unix,
            .request_shutdown = [this] { ++shutdowns; },
            .verbosity = {0}} {}

  dhtkit::cache::store store;
  dhtkit::cache::rel_time clock = 2;  // as the server's clock starts
  int shutdowns = 0;
  dhtkit_cache::server_context ctx;
};

struct run_result {
  std::string out;
  bool closed = false;
};

// Feeds `chunks` one after the other into s, processing after each (and
// until it needs input again), as a server would.
inline void feed(dhtkit_cache::session& s, std::string_view bytes, std::size_t chunk, run_result& r) {
  while (!bytes.empty() && !r.closed) {
    const std::size_t room = s.input_room();
    if (room == 0) {
      r.closed = true;  // what the server does: nothing to say and no room
      return;
    }
    const std::size_t n = std::min({bytes.size(), chunk, room});
    s.receive(bytes.substr(0, n));
    bytes.remove_prefix(n);
    for (;;) {
      // Each call's output is "sent" (moved to r.out), as a server does
      // before it calls again after output_full.
      std::string out;
      const auto st = s.process(out);
      r.out += out;
      if (st == dhtkit_cache::session_status::close) {
        r.closed = true;
        break;
      }
      if (st == dhtkit_cache::session_status::need_input) break;
    }
  }
}

inline run_result run(fixture& f, std::string_view bytes, std::size_t chunk = SIZE_MAX) {
  dhtkit_cache::session s(f.ctx);
  run_result r;
  feed(s, bytes, chunk, r);
  return r;
}

}  // namespace cache_test
