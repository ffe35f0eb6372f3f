// handoff_manager, sending side: the reconcile scan, starting sessions, and
// cutting chunks (range, dirty, final) under the window and the rate.
// Included by node/handoff.hpp.
#pragma once

namespace dhtkit {

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::scan(time_point now) {
  next_scan_ = now + cfg_.scan_interval;
  // Level-based: whatever this node stores in a unit it does not hold is to
  // be streamed to the unit's holders, whatever happened before (a crash, a
  // flap, a write from a coordinator with an old placement).
  std::map<std::uint64_t, out_unit> next;
  for (std::size_t i = 0; i < placement_.unit_count(); ++i) {
    const key_range r = placement_.unit_at(i);
    auto old = units_.find(r.begin);
    const bool same = old != units_.end() && old->second.range == r;
    if (!placement_.holds(self_, r.begin)) {
      if (!any_keys(r)) continue;
      out_unit u = same && !old->second.copier ? std::move(old->second) : out_unit{};
      u.range = r;
      u.copier = false;
      next.emplace(r.begin, std::move(u));
    } else if (same && old->second.copier) {
      next.emplace(r.begin, std::move(old->second));
    }
  }
  for (auto& [begin, u] : next)
    if (journal_.outbound(u.range) == nullptr) ++stats_.journal_full;
  // Units no longer streamed: their sessions and tracking go.
  std::vector<std::uint64_t> stale;
  for (const auto& [id, s] : sending_) {
    auto it = next.find(s.range.begin);
    if (it == next.end() || !(it->second.range == s.range)) stale.push_back(id);
  }
  for (std::uint64_t id : stale) {
    detail::handoff::cancel c;
    c.session = id;
    c.reason = static_cast<std::uint16_t>(errc::placement_mismatch);
    send(sending_[id].target, c);
    sending_.erase(id);
  }
  std::vector<std::uint64_t> untracked;
  for (const auto& [begin, o] : journal_.outbound_units())
    if (!next.count(begin)) untracked.push_back(begin);
  for (std::uint64_t b : untracked) journal_.drop_outbound(b);
  units_ = std::move(next);
  // Cursors of units this node no longer holds would resume a later,
  // unrelated stream: forget them.
  std::vector<std::uint64_t> unheld;
  for (const auto& [k, c] : journal_.cursors())
    if (!placement_.holds(self_, k.first)) unheld.push_back(k.first);
  for (std::uint64_t b : unheld) journal_.clear_cursors(b);
}

template <storage Storage, placement Placement>
std::vector<node_id> handoff_manager<Storage, Placement>::targets_of(const out_unit& u) const {
  std::vector<node_id> t;
  if (u.copier) {
    for (node_id id : u.copier_targets)
      if (live(id) && placement_.holds(id, u.range.begin)) t.push_back(id);
  } else {
    for (node_id id : placement_.preference_list(u.range.begin, bounds_.n))
      if (live(id)) t.push_back(id);
  }
  return t;
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::start_sessions(time_point now) {
  std::vector<std::uint64_t> finished_copies;
  for (auto& [begin, u] : units_) {
    const auto targets = targets_of(u);
    bool all_done = true;
    for (node_id t : targets) {
      if (u.done.count(t)) continue;
      all_done = false;
      bool busy = false;
      for (const auto& [id, s] : sending_) busy = busy || (s.target == t && s.range == u.range);
      if (busy || sending_.size() >= cfg_.max_outbound_sessions) continue;
      if (auto r = u.retry_at.find(t); r != u.retry_at.end() && now < r->second) continue;
      handoff_outbound* o = journal_.find_outbound(begin);
      if (o == nullptr) continue;
      out_session s;
      s.id = journal_.next_serial();
      s.range = u.range;
      s.target = t;
      s.generation = o->generation;
      s.offered_at = now;
      detail::handoff::offer m;
      m.session = s.id;
      m.begin = u.range.begin;
      m.end = u.range.end;
      m.generation = s.generation;
      m.keys = 1;  // at least one: the receiver answers zero-key offers with `have`
      if (!send(t, m)) continue;
      ++stats_.sessions_started;
      sending_.emplace(s.id, std::move(s));
    }
    if (u.copier && all_done) finished_copies.push_back(begin);
  }
  for (std::uint64_t b : finished_copies) {
    units_.erase(b);
    journal_.drop_outbound(b);
  }
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::offer_empty(const key_range& r, const std::vector<node_id>& to) {
  // Fire and forget: if it is lost the joiner waits out not_ready_timeout.
  for (node_id t : to) {
    detail::handoff::offer m;
    m.session = journal_.next_serial();
    m.begin = r.begin;
    m.end = r.end;
    if (send(t, m)) ++stats_.empty_offers;
  }
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::pump(out_session& s, time_point now) {
  if (s.phase != detail::handoff::out_phase::streaming) return;
  const std::uint64_t size = detail::handoff::unit_size(s.range);
  while (s.flight.size() < s.credit && bucket_.can_send(now)) {
    if (s.cursor < size) {
      if (!send_range_chunk(s, now)) return;
      continue;
    }
    if (s.acked < size) return;  // dirty keys go once every range chunk is acknowledged
    if (send_dirty_chunk(s, now)) continue;
    if (!s.final_sent && s.flight.empty()) send_final(s, now);
    return;
  }
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::send_range_chunk(out_session& s, time_point now) {
  using detail::handoff::offset_in;
  detail::handoff::chunk c;
  c.session = s.id;
  c.seq = s.next_seq++;
  c.from_pos = s.range.begin + s.cursor;
  std::vector<std::uint64_t> offs;  // offset of each entry, to cut at a position boundary
  std::size_t bytes = detail::handoff::chunk_overhead;
  std::optional<std::uint64_t> through;
  visit(c.from_pos, s.range.end, [&](std::string_view key, const versioned_entry& e) {
    const std::uint64_t off = offset_in(s.range, placement_.position(key));
    const std::size_t sz = detail::handoff::entry_wire_size(key.size(), e);
    if (!c.entries.empty() && (bytes + sz > cfg_.chunk_bytes || c.entries.size() >= cfg_.chunk_keys)) {
      if (off != offs.back()) {
        through = off - 1;  // everything before this position is in the chunk
        return false;
      }
      if (offs.front() != off) {  // the full chunk ends inside this position: cut before it
        while (offs.back() == off) {
          offs.pop_back();
          c.entries.pop_back();
        }
        through = off - 1;
        return false;
      }
      // one position alone exceeds the limits: it goes whole
    }
    c.entries.push_back(detail::handoff::key_entry{std::string(key), e});
    offs.push_back(off);
    bytes += sz;
    return true;
  });
  const std::uint64_t size = detail::handoff::unit_size(s.range);
  const std::uint64_t hi = through ? *through : size - 1;
  c.through_pos = s.range.begin + hi;
  handoff_outbound* o = journal_.find_outbound(s.range.begin);
  c.final = hi + 1 == size && (o == nullptr || o->dirty.empty()) && s.dirty_sent.empty();
  const std::size_t keys = c.entries.size();
  if (!send(s.target, c)) {
    finish(s.id, false, now);
    return false;
  }
  const std::size_t wire = out_.messages.back().bytes.size();
  bucket_.take(wire);
  s.flight.push_back(detail::handoff::in_flight{c.seq, hi + 1, {}, wire, c.final, now});
  s.cursor = hi + 1;
  s.final_sent = c.final;
  ++stats_.chunks_sent;
  stats_.keys_sent += keys;
  return true;
}

template <storage Storage, placement Placement>
bool handoff_manager<Storage, Placement>::send_dirty_chunk(out_session& s, time_point now) {
  using detail::handoff::offset_in;
  handoff_outbound* o = journal_.find_outbound(s.range.begin);
  if (o == nullptr) return false;
  detail::handoff::chunk c;
  c.session = s.id;
  std::vector<std::uint64_t> carried;
  std::size_t bytes = detail::handoff::chunk_overhead;
  std::uint64_t lo = ~std::uint64_t{0}, hi = 0;
  for (std::uint64_t pos : o->dirty) {
    if (s.dirty_sent.count(pos) || !s.range.contains(pos)) continue;
    if (!carried.empty() && (bytes >= cfg_.chunk_bytes || c.entries.size() >= cfg_.chunk_keys)) break;
    visit(pos, pos + 1, [&](std::string_view key, const versioned_entry& e) {
      c.entries.push_back(detail::handoff::key_entry{std::string(key), e});
      bytes += detail::handoff::entry_wire_size(key.size(), e);
      return true;
    });
    carried.push_back(pos);
    lo = std::min(lo, offset_in(s.range, pos));
    hi = std::max(hi, offset_in(s.range, pos));
  }
  if (carried.empty()) return false;
  // Behind the receiver's cursor already, so [lo, hi] moves no cursor: it only carries these positions.
  c.seq = s.next_seq++;
  c.from_pos = s.range.begin + lo;
  c.through_pos = s.range.begin + hi;
  const std::size_t keys = c.entries.size();
  if (!send(s.target, c)) {
    finish(s.id, false, now);
    return false;
  }
  const std::size_t wire = out_.messages.back().bytes.size();
  bucket_.take(wire);
  for (std::uint64_t p : carried) s.dirty_sent.insert(p);
  s.flight.push_back(detail::handoff::in_flight{c.seq, s.cursor, std::move(carried), wire, false, now});
  ++stats_.chunks_sent;
  stats_.keys_sent += keys;
  return true;
}

template <storage Storage, placement Placement>
void handoff_manager<Storage, Placement>::send_final(out_session& s, time_point now) {
  detail::handoff::chunk c;
  c.session = s.id;
  c.seq = s.next_seq++;
  c.final = true;
  // It covers the unit's last position, so it carries the keys stored there.
  c.from_pos = c.through_pos = s.range.end - 1;
  visit(c.from_pos, s.range.end, [&](std::string_view key, const versioned_entry& e) {
    c.entries.push_back(detail::handoff::key_entry{std::string(key), e});
    return true;
  });
  if (!send(s.target, c)) return finish(s.id, false, now);
  const std::size_t wire = out_.messages.back().bytes.size();
  bucket_.take(wire);
  s.flight.push_back(detail::handoff::in_flight{c.seq, s.cursor, {}, wire, true, now});
  s.final_sent = true;
  ++stats_.chunks_sent;
  stats_.keys_sent += c.entries.size();
}

}  // namespace dhtkit
