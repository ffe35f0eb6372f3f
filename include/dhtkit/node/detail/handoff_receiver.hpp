// handoff_manager, receiving side: offers, chunks, cancels. Included by
// node/handoff.hpp. Nothing a peer sends is trusted: every bound and position
// is checked before the store is touched, and a refused message changes
// nothing but a counter.
#pragma once

namespace dhtkit {

template <storage Storage, placement Placement>
std::error_code handoff_manager<Storage, Placement>::refuse(node_id to, std::uint64_t session, errc reason,
                                                            std::uint64_t& counter) {
  ++counter;
  detail::handoff::reply r;
  r.session = session;
  r.status = static_cast<std::uint8_t>(detail::handoff::reply_status::refuse);
  r.reason = static_cast<std::uint16_t>(reason);
  send(to, r);
  return reason;
}

template <storage Storage, placement Placement>
std::error_code handoff_manager<Storage, Placement>::on_offer(node_id from, const detail::handoff::offer& m) {
  using detail::handoff::reply_status;
  const key_range range{m.begin, m.end};
  // Two nodes may cut chord units differently while they converge: a range
  // inside one of our units is fine.
  if (!detail::handoff::range_inside(placement_.unit_of(m.begin), range))
    return refuse(from, m.session, errc::placement_mismatch, stats_.refused.range_mismatch);
  if (!placement_.holds(self_, m.begin))
    return refuse(from, m.session, errc::placement_mismatch, stats_.refused.not_held);
  detail::handoff::reply r;
  r.session = m.session;
  r.credit = static_cast<std::uint16_t>(cfg_.window);
  // A repeated offer (our reply was lost) gets the same answer; an older
  // session of this source for the range is replaced.
  if (auto it = receiving_.find({from, m.session}); it != receiving_.end()) {
    r.status = static_cast<std::uint8_t>(reply_status::accept);
    r.resume_from = it->second.range.begin + it->second.covered;
    send(from, r);
    return {};
  }
  std::erase_if(receiving_,
                [&](const auto& kv) { return kv.second.source == from && kv.second.range.begin == m.begin; });
  const bool pending = pending_at(m.begin) != nullptr;
  const auto cursor = journal_.cursor(m.begin, from);
  const bool resumable =
      cursor && cursor->generation == m.generation &&
      detail::handoff::offset_in(range, cursor->covered_until) <= detail::handoff::unit_size(range);
  if (m.keys == 0) {  // a source with nothing for us: done at once
    source_done(range, from);
    r.status = static_cast<std::uint8_t>(reply_status::have);
    send(from, r);
    return {};
  }
  // A holder that is already ready still takes the stream: being ready says
  // it holds the unit, not that it holds every version the leaver has (a
  // write acknowledged by two nodes that both leave lives on them alone), and
  // the leaver drops its copy once we answer. Merging what we have is a no-op.
  (void)pending;
  if (receiving_.size() >= cfg_.max_inbound_sessions)
    return refuse(from, m.session, errc::queue_full, stats_.refused.too_many_sessions);
  in_session s;
  s.id = m.session;
  s.range = range;
  s.source = from;
  s.generation = m.generation;
  s.covered = resumable ? detail::handoff::offset_in(range, cursor->covered_until) : 0;
  receiving_.emplace(std::make_pair(from, m.session), s);
  r.status = static_cast<std::uint8_t>(reply_status::accept);
  r.resume_from = range.begin + s.covered;
  send(from, r);
  return {};
}

template <storage Storage, placement Placement>
std::error_code handoff_manager<Storage, Placement>::on_chunk(node_id from, const detail::handoff::chunk& m) {
  using detail::handoff::offset_in;
  auto it = receiving_.find({from, m.session});
  if (it == receiving_.end()) {
    // Unknown here (we restarted, or cancelled it): tell the sender at once
    // so it offers again instead of waiting out its retries.
    ++stats_.refused.unknown_session;
    detail::handoff::cancel c;
    c.session = m.session;
    c.reason = static_cast<std::uint16_t>(errc::unknown_peer);
    send(from, c);
    return errc::unknown_peer;
  }
  in_session& s = it->second;
  const std::uint64_t size = detail::handoff::unit_size(s.range);
  const std::uint64_t lo = offset_in(s.range, m.from_pos), hi = offset_in(s.range, m.through_pos);
  if (lo >= size || hi >= size || lo > hi) {
    ++stats_.refused.malformed_chunk;
    return errc::invalid_argument;
  }
  bool one_position = true;
  std::optional<std::uint64_t> first_off;
  for (const auto& e : m.entries) {
    if (e.key.empty() || e.key.size() > bounds_.max_key_size) {
      ++stats_.refused.malformed_chunk;
      return errc::invalid_argument;
    }
    for (const versioned_value& v : e.entry.siblings()) {
      if (v.value.size() > bounds_.max_value_size) {
        ++stats_.refused.malformed_chunk;
        return errc::invalid_argument;
      }
    }
    const std::uint64_t off = offset_in(s.range, placement_.position(e.key));
    if (off < lo || off > hi) {
      ++stats_.refused.out_of_range;
      return errc::placement_mismatch;
    }
    if (!first_off) first_off = off;
    one_position = one_position && off == *first_off;
  }
  // Only keys sharing one position may exceed chunk_keys (a chunk never splits a position).
  if (m.entries.size() > cfg_.chunk_keys && !one_position) {
    ++stats_.refused.malformed_chunk;
    return errc::limit_exceeded;
  }
  ++stats_.chunks_received;
  if (lo > s.covered) return {};  // an earlier chunk was lost: the sender goes back to `covered`
  detail::handoff::ack a;
  a.session = m.session;
  a.seq = m.seq;
  for (const auto& e : m.entries) {
    auto merged = store_.merge(e.key, e.entry);
    if (!merged) {
      ++stats_.refused.merge_failed;
      a.status = static_cast<std::uint16_t>(merged.error().value());
      a.covered_until = s.range.begin + s.covered;
      receiving_.erase(it);
      send(from, a);
      return merged.error();
    }
    ++stats_.keys_received;
  }
  s.covered = std::max(s.covered, hi + 1);
  if (!journal_.set_cursor(s.range.begin, from, handoff_cursor{s.range.begin + s.covered, s.generation}))
    ++stats_.journal_full;
  a.covered_until = s.range.begin + s.covered;
  a.complete = m.final && s.covered == size;
  if (a.complete) {
    const key_range r = s.range;
    receiving_.erase(it);
    source_done(r, from);
  }
  send(from, a);
  return {};
}

template <storage Storage, placement Placement>
std::error_code handoff_manager<Storage, Placement>::on_cancel(node_id from, const detail::handoff::cancel& m,
                                                               time_point now) {
  if (receiving_.erase({from, m.session}) > 0) return {};
  if (auto it = sending_.find(m.session); it != sending_.end() && it->second.target == from) {
    finish(m.session, false, now);
    return {};
  }
  return {};  // a cancel of a session already gone: nothing to do
}

}  // namespace dhtkit
