// flush_all for a whole cluster: the engine's two rounds over every live
// member, and what one node does when a flush reaches it (engine.hpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "cluster/engine.hpp"

namespace dhtkit_cache::cluster {

// flush_all, in two rounds so that every node ends with the same flush
// stamp, above every write any of them had acknowledged before it:
//  1. each live member applies the flush at max(stamp, its own clock) and
//     answers the stamp it applied;
//  2. the highest of those goes to all of them again, applied exactly and
//     observed by their clocks.
// Writes that raced the flush may be flushed or not, as on one memcached; a
// write sent after the OK is above the stamp on every node. A delayed flush
// needs one round: its stamp is its time. SERVER_ERROR names how many nodes
// applied it when some did not answer in time.
template <class Node>
void engine<Node>::flush_all(const deferred_request& r, std::function<void(std::string)> done) {
  const std::uint64_t wall = coordinator_state::wall_ms();
  std::uint64_t stamp = 0, at_ms = 0;
  if (r.flush_unix > 0 && static_cast<std::uint64_t>(r.flush_unix) * 1000 > wall) {
    at_ms = static_cast<std::uint64_t>(r.flush_unix) * 1000;
    stamp = at_ms << hybrid_clock::logical_bits;
  }
  pending_flush p;
  p.done = std::move(done);
  p.noreply = r.noreply;
  p.at_ms = at_ms;
  p.round = at_ms == 0 ? 1 : 2;
  p.stamp = apply_flush(stamp, at_ms);
  flush_round(next_id_++, std::move(p));
}

template <class Node>
void engine<Node>::flush_round(std::uint64_t id, pending_flush p) {
  auto live = node_->core().live_members();
  std::erase(live, node_->id());
  forward_message m;
  m.kind = p.round == 1 || p.at_ms != 0 ? forward_kind::flush : forward_kind::flush_exact;
  m.id = id;
  m.flush_stamp = p.stamp;
  m.flush_at_ms = p.at_ms;
  const auto bytes = encode_forward(m);
  p.members = live.size() + 1;
  p.waiting = 0;
  p.deadline = std::chrono::steady_clock::now() + forward_timeout();
  for (const auto member : live)
    if (!node_->send_application(member, bytes)) ++p.waiting;
  if (p.waiting == 0) return flush_round_done(id, std::move(p));
  flushes_[id] = std::move(p);
}

template <class Node>
void engine<Node>::flush_round_done(std::uint64_t id, pending_flush p) {
  if (p.round == 1) {
    p.round = 2;
    p.stamp = apply_flush(p.stamp, 0, true);
    return flush_round(id, std::move(p));
  }
  p.done(p.noreply ? std::string() : "OK\r\n");
}

// Applies a flush here; returns the stamp it applied (for an immediate
// flush's first round, at least this node's clock: it covers every write
// it coordinated).
template <class Node>
std::uint64_t engine<Node>::apply_flush(std::uint64_t stamp, std::uint64_t at_ms, bool exact) {
  if (at_ms == 0 || at_ms <= coordinator_state::wall_ms()) {
    if (at_ms == 0 && !exact) stamp = std::max(stamp, state_.clock.now(coordinator_state::wall_ms()));
    state_.clock.observe(stamp);
    state_.applied_flush = std::max(state_.applied_flush, stamp);
    // memcached keeps one flush time: a flush_all replaces a delayed one
    // still to come (a test resets a server that way).
    delayed_flush_.reset();
  } else {
    // Not observed by the clock: that would stamp every write until then in
    // the future, and so above the flush meant to remove it.
    delayed_flush_ = {stamp, at_ms};  // a later flush_all with a delay replaces it, as in memcached
  }
  return stamp;
}

}  // namespace dhtkit_cache::cluster
