// handoff_manager: construction, placement changes, readiness, liveness,
// dirty tracking and the driver calls. Included by node/handoff.hpp.
#pragma once

#include <algorithm>
#include <utility>
#include <variant>

namespace dhtkit {

template <storage Storage, placement Placement>
handoff_manager<Storage, Placement>::handoff_manager(node_id self, handoff_config cfg, wire_limits limits,
                                                     Storage& store, handoff_journal& journal,
                                                     const Placement& placement, handoff_limits bounds)
    : self_(self),
      cfg_(cfg),
      bounds_(bounds),
      store_(store),
      journal_(journal),
      placement_(placement),
      codec_(limits) {
  cfg_.validate();
  if (bounds_.n < 1 || bounds_.max_key_size < 1)
    throw std::invalid_argument("dhtkit::handoff_limits: n and max_key_size must be at least 1");
  bucket_.configure(cfg_.rate_bytes_per_second, cfg_.chunk_bytes);
  refresh_gauges();
}

template <storage Storage, placement Placement>
template <class F>
void handoff_manager<Storage, Placement>::visit(std::uint64_t begin, std::uint64_t end, F&& f) const {
  if constexpr (requires { store_.visit_range(begin, end, f); }) {
    store_.visit_range(begin, end, f);
  } else {
    bool more = true;  // no early exit in the concept: skip the rest
    store_.for_each_in_range(begin, end, [&](std::string_view k, const versioned_entry& e) {
      if (more) more = f(k, e);
    });
  }
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::any_keys(const key_range& r) const {
  if constexpr (requires { store_.any_in_range(r.begin, r.end); }) {
    return store_.any_in_range(r.begin, r.end);
  } else {
    bool found = false;
    visit(r.begin, r.end, [&](std::string_view, const versioned_entry&) {
      found = true;
      return false;
    });
    return found;
  }
}

template <storage Storage, placement Placement>
const handoff_pending* handoff_manager<Storage, Placement>::pending_at(std::uint64_t pos) const {
  const auto& p = journal_.pending();
  if (p.empty()) return nullptr;
  auto it = p.upper_bound(pos);
  // The unit holding pos starts at or before it, or is the last one wrapping past 2^64.
  const auto& cand = it == p.begin() ? *p.rbegin() : *std::prev(it);
  return cand.second.range.contains(pos) ? &cand.second : nullptr;
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::make_ready(std::uint64_t unit_begin, bool by_timeout) {
  auto* p = journal_.find_pending(unit_begin);
  if (p == nullptr) return;
  const key_range r = p->range;
  journal_.clear_pending(unit_begin);
  if (by_timeout) ++stats_.ready_by_timeout;
  out_.events.push_back(handoff_event{handoff_event_kind::unit_ready, r, node_id{}});
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::source_done(const key_range& range, node_id source) {
  const handoff_pending* p = pending_at(range.begin);
  if (p == nullptr) return;
  auto* q = journal_.find_pending(p->range.begin);
  std::erase(q->sources, source);
  if (q->sources.empty()) make_ready(q->range.begin, false);
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::on_placement(std::span<const range_move> moves, bool founding,
                                                       time_point now,
                                                       const std::function<bool(node_id)>& is_live) {
  // Liveness is read once here and kept up to date by mark_dead / mark_alive.
  dead_.clear();
  auto note = [&](node_id id) {
    if (id != self_ && !is_live(id)) dead_.insert(id);
  };
  for (const placement_member& m : placement_.members()) note(m.id);
  for (const range_move& mv : moves) {
    for (node_id id : mv.before) note(id);
    for (node_id id : mv.after) note(id);
  }
  auto has = [](const std::vector<node_id>& v, node_id id) {
    return std::find(v.begin(), v.end(), id) != v.end();
  };
  for (const range_move& mv : moves) {
    const bool in_before = has(mv.before, self_), in_after = has(mv.after, self_);
    std::vector<node_id> leavers, joiners;
    for (node_id id : mv.before)
      if (!has(mv.after, id)) leavers.push_back(id);
    for (node_id id : mv.after)
      if (!has(mv.before, id) && live(id)) joiners.push_back(id);
    std::optional<node_id> copier;
    for (node_id id : mv.before)
      if (id == self_ || live(id)) {
        copier = id;
        break;
      }
    if (in_after && !in_before) {
      journal_.clear_cursors(mv.range.begin);  // gained afresh: an old stream's cursor means nothing now
      std::vector<node_id> sources;
      for (node_id id : leavers)
        if (live(id)) sources.push_back(id);
      // No live leaver: every previous holder still holds the unit (a cluster
      // smaller than n growing), so quorums still meet one of them -- serve at
      // once rather than wait on a copier that may never have seen this move.
      if (founding || mv.before.empty() || sources.empty()) {
        make_ready(mv.range.begin, false);
      } else if (!journal_.set_pending(mv.range, now, std::move(sources))) {
        ++stats_.journal_full;  // cannot wait for it durably: serve it, anti-entropy fills it
      }
    } else if (!in_after) {
      journal_.clear_pending(mv.range.begin);  // not held: readiness no longer matters
    }
    if (in_before && !in_after && !any_keys(mv.range)) offer_empty(mv.range, joiners);
    if (leavers.empty() && copier == self_ && in_after && !joiners.empty()) {
      if (!any_keys(mv.range)) {
        offer_empty(mv.range, joiners);
      } else {
        out_unit& u = units_[mv.range.begin];
        u = out_unit{};
        u.range = mv.range;
        u.copier = true;
        u.copier_targets = joiners;
      }
    }
  }
  next_scan_ = now;  // reconcile right away
  scan(now);
  start_sessions(now);
  refresh_gauges();
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::mark_dead(node_id id) {
  if (id == self_ || !dead_.insert(id).second) return;
  std::vector<std::uint64_t> now_ready;
  for (auto& [begin, p] : journal_.pending()) {
    std::erase(p.sources, id);
    if (p.sources.empty()) now_ready.push_back(begin);
  }
  for (std::uint64_t b : now_ready) make_ready(b, false);
  std::vector<std::uint64_t> gone;
  for (const auto& [sid, s] : sending_)
    if (s.target == id) gone.push_back(sid);
  for (std::uint64_t sid : gone) {
    ++stats_.sessions_failed;
    out_.events.push_back(handoff_event{handoff_event_kind::session_failed, sending_[sid].range, id});
    sending_.erase(sid);
  }
  std::erase_if(receiving_, [&](const auto& kv) { return kv.second.source == id; });
  refresh_gauges();
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::mark_alive(node_id id) {
  dead_.erase(id);
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::note_write(std::uint64_t pos) {
  // Any stream of the unit may already be past pos (or a receiver's durable
  // cursor may be, for a stream not restarted yet): remember it.
  auto& outbound = journal_.outbound_units();
  if (outbound.empty()) return;
  auto it = outbound.upper_bound(pos);
  const auto& cand = it == outbound.begin() ? *outbound.rbegin() : *std::prev(it);
  if (!cand.second.range.contains(pos)) return;
  const std::uint64_t begin = cand.first;
  handoff_outbound* o = journal_.find_outbound(begin);
  if (auto u = units_.find(begin); u != units_.end()) u->second.done.clear();  // they lack this write
  if (!journal_.add_dirty(*o, pos, cfg_.max_dirty_keys)) restart_unit(begin);
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::ready(std::uint64_t pos) const {
  return pending_at(pos) == nullptr;
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::may_drop(std::uint64_t pos) const {
  // A key of a unit this node does not hold is the handoff's to move and
  // drop (the next scan makes it a leaver unit), as is one of a unit streaming now.
  if (!placement_.holds(self_, pos)) return false;
  if (units_.empty()) return true;
  auto it = units_.upper_bound(pos);
  const auto& cand = it == units_.begin() ? *units_.rbegin() : *std::prev(it);
  return !cand.second.range.contains(pos);
}

template <storage Storage, placement Placement>
std::error_code handoff_manager<Storage, Placement>::receive(node_id from, const wire::envelope& env,
                                                             time_point now) {
  ++stats_.messages_received;
  auto decoded = codec_.decode(env);
  if (!decoded) {
    ++stats_.rejected;
    return decoded.error();
  }
  std::error_code ec;
  std::visit(
      [&](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, detail::handoff::offer>) {
          ec = on_offer(from, m);
        } else if constexpr (std::is_same_v<M, detail::handoff::reply>) {
          on_reply(from, m, now);
        } else if constexpr (std::is_same_v<M, detail::handoff::chunk>) {
          stats_.bytes_received += env.payload.size() + wire::header_size;
          ec = on_chunk(from, m);
        } else if constexpr (std::is_same_v<M, detail::handoff::ack>) {
          on_ack(from, m, now);
        } else {
          ec = on_cancel(from, m, now);
        }
      },
      decoded->message);
  if (ec) ++stats_.rejected;
  start_sessions(now);
  refresh_gauges();
  return ec;
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::tick(time_point now) {
  last_now_ = now;
  std::vector<std::uint64_t> expired;
  for (const auto& [begin, p] : journal_.pending())
    if (now >= p.since + cfg_.not_ready_timeout) expired.push_back(begin);
  for (std::uint64_t b : expired) make_ready(b, true);
  check_timeouts(now);
  if (!next_scan_ || now >= *next_scan_) scan(now);
  start_sessions(now);
  std::vector<std::uint64_t> ids;
  for (const auto& [id, s] : sending_) ids.push_back(id);
  for (std::uint64_t id : ids)
    if (auto it = sending_.find(id); it != sending_.end()) pump(it->second, now);
  drop_some();
  refresh_gauges();
}

template <storage Storage, placement Placement>
std::optional<time_point> handoff_manager<Storage, Placement>::next_wakeup() const noexcept {
  std::optional<time_point> at = next_scan_;
  auto earliest = [&](time_point t) {
    if (!at || t < *at) at = t;
  };
  for (const auto& [b, p] : journal_.pending()) earliest(p.since + cfg_.not_ready_timeout);
  bool rate_blocked = false;
  for (const auto& [id, s] : sending_) {
    if (s.phase == detail::handoff::out_phase::offered) {
      earliest(s.offered_at + cfg_.chunk_timeout);
    } else if (!s.flight.empty()) {
      earliest(s.flight.front().sent_at + cfg_.chunk_timeout);
    }
    rate_blocked = rate_blocked || wants_to_send(s);
  }
  // Only a bucket in debt holds a chunk back (pump sends otherwise), so this
  // never asks for a tick in the past.
  if (rate_blocked && bucket_.in_debt()) earliest(bucket_.ready_at());
  if (drop_pending_) earliest(last_now_);  // drop_batch keys per tick until the unit is empty
  return at;
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::wants_to_send(const out_session& s) const {
  if (s.phase != detail::handoff::out_phase::streaming || s.flight.size() >= s.credit) return false;
  const std::uint64_t size = detail::handoff::unit_size(s.range);
  if (s.cursor < size) return true;
  if (s.acked < size) return false;
  if (!s.final_sent && s.flight.empty()) return true;
  if (const auto* o = journal_.find_outbound(s.range.begin))
    for (std::uint64_t p : o->dirty)
      if (s.dirty_sent.count(p) == 0) return true;
  return false;
}

template <storage Storage, placement Placement>
handoff_outbox handoff_manager<Storage, Placement>::take_outbox() {
  handoff_outbox o = std::move(out_);
  out_.clear();
  return o;
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::idle() const {
  if (!sending_.empty() || !receiving_.empty()) return false;
  for (std::size_t i = 0; i < placement_.unit_count(); ++i) {
    const key_range r = placement_.unit_at(i);
    if (!placement_.holds(self_, r.begin) && any_keys(r)) return false;
  }
  return true;
}

template <storage Storage, placement Placement>
template <class Msg>
bool handoff_manager<Storage, Placement>::send(node_id to, const Msg& m) {
  auto bytes = codec_.encode(m, self_);
  if (!bytes) {
    ++stats_.outbox_dropped;
    return false;
  }
  if constexpr (std::is_same_v<Msg, detail::handoff::chunk>) stats_.bytes_sent += bytes->size();
  out_.messages.push_back(outgoing_message<node_id>{to, std::move(*bytes)});
  ++stats_.messages_sent;
  return true;
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::refresh_gauges() {
  stats_.units_pending = journal_.pending().size();
  stats_.units_outbound = units_.size();
  std::uint64_t b = 0;
  for (const auto& [id, s] : sending_) b += s.bytes_in_flight();
  stats_.bytes_in_flight = b;
}

}  // namespace dhtkit
