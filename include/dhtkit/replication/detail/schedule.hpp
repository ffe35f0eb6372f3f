// When the replica has work: tick() and next_wakeup(), side by side because
// they must agree -- next_wakeup() is derived from what tick() and the
// functions it calls test against `now`, so a driver that ticks only then
// does what one ticking every millisecond would.
//
// tick() has work at:
//   - a put's deadline, and sent_at + replica_timeout of each of its targets
//     neither acknowledged nor replaced (tick_puts; a refused target's sent_at
//     is moved back so that it is due at once);
//   - the same for a get (tick_gets) and, for a forward, its deadline and,
//     until accepted, sent_at + replica_timeout (tick_forwards);
//   - next_handoff_ and next_ae_, the periodic rounds: hinted handoff, then
//     anti-entropy with tombstone collection. Everything else tick() looks at
//     -- an anti-entropy session's timeout, tombstones' grace, markers' TTL,
//     suspicions expiring -- is only read inside those rounds, so it adds no
//     time of its own.
// The rounds are left out (rounds_idle) only when neither can do anything:
// no hints and no offer outstanding, no anti-entropy session, no peer that is
// not marked dead, no tombstone or marker tracked and no marker in storage.
// Both round times are reported together, never one alone, so their phases
// stay what per-millisecond ticking would give them. Leaving the idle state
// takes a call (put, get, a message, mark_alive), after which next_wakeup()
// reports the overdue round times and the rounds restart at once.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::tick(time_point now) {
  tick_puts(now);
  tick_gets(now);
  tick_forwards(now);
  if (now >= next_handoff_) {
    next_handoff_ = now + config_.handoff_interval;
    handoff(now);
  }
  if (now >= next_ae_) {
    next_ae_ = now + config_.anti_entropy_interval;
    collect_garbage(now);
    start_anti_entropy(now);
  }
}

template <storage Storage, replica_placement Placement>
std::optional<time_point> basic_replica<Storage, Placement>::next_wakeup() const noexcept {
  std::optional<time_point> at;
  auto consider = [&](time_point t) {
    if (!at || t < *at) at = t;
  };
  for (const auto& entry : puts_) {
    const put_op& p = entry.second;
    consider(p.deadline);
    for (const put_target& t : p.targets)
      if (!t.acked && !t.replaced) consider(t.sent_at + config_.replica_timeout);
  }
  for (const auto& entry : gets_) {
    const get_op& g = entry.second;
    consider(g.deadline);
    for (const get_target& t : g.targets)
      if (!t.replied && !t.replaced) consider(t.sent_at + config_.replica_timeout);
  }
  for (const auto& entry : forwards_) {
    const forward_op& f = entry.second;
    consider(f.deadline);
    if (!f.accepted) consider(f.sent_at + config_.replica_timeout);
  }
  if (!rounds_idle()) {
    consider(next_handoff_);
    consider(next_ae_);
  }
  return at;
}

template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::rounds_idle() const noexcept {
  // Hinted handoff: hints to offer or expire, offers to forget.
  if (hints_.size() != 0 || !handoffs_.empty()) return false;
  // Anti-entropy: a session to time out, or a peer to start one with (a
  // suspected peer counts: its suspicion ends by itself).
  if (session_) return false;
  for (const node_id& n : placement_.peers())
    if (n != self_ && !down_.contains(n)) return false;
  // Tombstone collection: tombstones waiting for their grace, markers for
  // their TTL, or markers in storage not yet tracked (after a restart).
  if (!tombs_.empty() || !markers_.empty()) return false;
  if (!marker_scan_due_) return true;
  bool marker_stored = false;
  for (std::uint32_t r = 0; r < ranges() && !marker_stored; ++r)
    store_.for_each_in_range(range_begin(r), range_end(r), [&](std::string_view, const versioned_entry& e) {
      marker_stored = marker_stored || e.empty();
    });
  // None stored: none can appear before the next merge or restart. One
  // stored is tracked by the next collection round, which this keeps due.
  if (!marker_stored) marker_scan_due_ = false;
  return !marker_stored;
}

}  // namespace dhtkit
