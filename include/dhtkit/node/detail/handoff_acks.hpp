// handoff_manager, sending side after the offer: replies, acks, go-back-N
// timeouts, the end of a session, restarts on dirty overflow and the drop.
// Included by node/handoff.hpp.
#pragma once

namespace dhtkit {

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::on_reply(node_id from, const detail::handoff::reply& m,
                                                   time_point now) {
  using detail::handoff::reply_status;
  auto it = sending_.find(m.session);
  if (it == sending_.end() || it->second.target != from ||
      it->second.phase != detail::handoff::out_phase::offered)
    return;  // stale or repeated
  out_session& s = it->second;
  if (m.status == static_cast<std::uint8_t>(reply_status::have)) return finish(m.session, true, now);
  if (m.status != static_cast<std::uint8_t>(reply_status::accept)) {
    ++stats_.offers_refused_by_peer;
    return finish(m.session, false, now);
  }
  const std::uint64_t off = detail::handoff::offset_in(s.range, m.resume_from);
  s.cursor = s.acked = off <= detail::handoff::unit_size(s.range) ? off : 0;
  s.credit = std::clamp<std::uint32_t>(m.credit, 1, cfg_.window);
  s.phase = detail::handoff::out_phase::streaming;
  s.retries = 0;
  pump(s, now);
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::on_ack(node_id from, const detail::handoff::ack& m,
                                                 time_point now) {
  auto it = sending_.find(m.session);
  if (it == sending_.end() || it->second.target != from) return;
  out_session& s = it->second;
  if (m.status != 0) return finish(m.session, false, now);  // the receiver's store refused: back off
  bool progressed = false;
  bool final_acked = false;
  handoff_outbound* o = journal_.find_outbound(s.range.begin);
  while (!s.flight.empty() && s.flight.front().seq <= m.seq) {
    const auto& c = s.flight.front();
    s.acked = std::max(s.acked, std::min(c.through_off, detail::handoff::unit_size(s.range)));
    final_acked = final_acked || c.final;
    s.flight.pop_front();
    progressed = true;
  }
  if (progressed) s.retries = 0;
  if (m.complete && final_acked) {
    bool dirty_left = false;
    if (o != nullptr)
      for (std::uint64_t p : o->dirty) dirty_left = dirty_left || s.dirty_sent.count(p) == 0;
    if (!dirty_left) return finish(m.session, true, now);
    s.final_sent = false;  // written after the final went out: send those, then a new final
  }
  pump(s, now);
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::finish(std::uint64_t id, bool ok, time_point now) {
  auto it = sending_.find(id);
  if (it == sending_.end()) return;
  const out_session s = std::move(it->second);
  sending_.erase(it);
  auto u = units_.find(s.range.begin);
  if (ok) {
    ++stats_.sessions_completed;
    out_.events.push_back(handoff_event{handoff_event_kind::session_done, s.range, s.target});
    if (u == units_.end()) return;
    u->second.done.insert(s.target);
    u->second.retry_at.erase(s.target);
    bool all = true;
    for (node_id t : targets_of(u->second)) all = all && u->second.done.count(t) > 0;
    if (all)
      if (handoff_outbound* o = journal_.find_outbound(s.range.begin))
        while (!o->dirty.empty()) journal_.erase_dirty(*o, *o->dirty.begin());
    return;
  }
  ++stats_.sessions_failed;
  out_.events.push_back(handoff_event{handoff_event_kind::session_failed, s.range, s.target});
  if (u != units_.end()) u->second.retry_at[s.target] = now + cfg_.retry_backoff;
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::check_timeouts(time_point now) {
  std::vector<std::uint64_t> failed;
  for (auto& [id, s] : sending_) {
    const bool offered = s.phase == detail::handoff::out_phase::offered;
    if (!offered && s.flight.empty()) continue;
    const time_point since = offered ? s.offered_at : s.flight.front().sent_at;
    if (now < since + cfg_.chunk_timeout) continue;
    if (++s.retries > cfg_.max_retries) {
      failed.push_back(id);
      continue;
    }
    ++stats_.resends;
    if (offered) {
      detail::handoff::offer m;
      m.session = s.id;
      m.begin = s.range.begin;
      m.end = s.range.end;
      m.generation = s.generation;
      m.keys = 1;
      send(s.target, m);
      s.offered_at = now;
      continue;
    }
    // Go-back-N: everything after the acknowledged cursor goes again.
    for (const auto& c : s.flight)
      for (std::uint64_t p : c.dirty) s.dirty_sent.erase(p);
    s.flight.clear();
    s.cursor = s.acked;
    s.final_sent = false;
  }
  for (std::uint64_t id : failed) {
    detail::handoff::cancel c;
    c.session = id;
    c.reason = static_cast<std::uint16_t>(errc::timed_out);
    send(sending_[id].target, c);
    finish(id, false, now);
  }
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::restart_unit(std::uint64_t unit_begin) {
  handoff_outbound* o = journal_.find_outbound(unit_begin);
  if (o == nullptr) return;
  journal_.restart(*o);
  ++stats_.restarts;
  // Every stream of the unit starts over from the unit's start under the new
  // generation, so no receiver resumes past a write we could not remember.
  std::vector<std::uint64_t> ids;
  for (const auto& [id, s] : sending_)
    if (s.range.begin == unit_begin) ids.push_back(id);
  for (std::uint64_t id : ids) {
    detail::handoff::cancel c;
    c.session = id;
    c.reason = static_cast<std::uint16_t>(errc::limit_exceeded);
    send(sending_[id].target, c);
    sending_.erase(id);
  }
  if (auto u = units_.find(unit_begin); u != units_.end()) {
    u->second.done.clear();
    u->second.retry_at.clear();
  }
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::drop_some() {
  drop_pending_ = false;
  std::size_t budget = cfg_.drop_batch;
  std::vector<std::uint64_t> emptied;
  for (auto& [begin, u] : units_) {
    if (u.copier || budget == 0) continue;
    const auto targets = targets_of(u);
    if (targets.empty()) continue;  // nobody to hand it to yet: keep it
    bool all = true;
    for (node_id t : targets) all = all && u.done.count(t) > 0;
    bool busy = false;
    for (const auto& [id, s] : sending_) busy = busy || s.range.begin == begin;
    if (!all || busy) continue;
    if (placement_.holds(self_, begin)) continue;  // flipped back: keep it, the next scan stops the drop
    std::vector<std::string> keys;
    visit(u.range.begin, u.range.end, [&](std::string_view key, const versioned_entry&) {
      keys.emplace_back(key);
      return keys.size() < budget;
    });
    for (const auto& k : keys)
      if (store_.remove(k)) ++stats_.keys_dropped;
    budget -= keys.size();
    if (!any_keys(u.range)) {
      emptied.push_back(begin);
    } else {
      drop_pending_ = true;
    }
  }
  for (std::uint64_t b : emptied) {
    ++stats_.units_dropped;
    out_.events.push_back(handoff_event{handoff_event_kind::unit_dropped, units_[b].range, node_id{}});
    units_.erase(b);
    journal_.drop_outbound(b);
  }
}

}  // namespace dhtkit
