// basic_node_core: SWIM events -> the peer directory -> a settled placement
// -> range moves for the handoff, and the node's own join / leave states.
#pragma once

#include <algorithm>

#include "dhtkit/node/node_core.hpp"

namespace dhtkit {

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::on_member_event(
    const membership::member_event<Endpoint>& e, time_point now) {
  using membership::event_kind;
  using membership::member_state;
  if (e.id == self_) {
    if (e.kind == event_kind::conflict) {
      // Another live node claims our name. Before we joined, this join is
      // refused; after, the other node is the one refused by the members (SWIM
      // keeps the first address), so count it and carry on.
      emit_member(node_event_kind::member_conflict, self_);
      if (state_ == node_state::joining) fail_join(errc::name_in_use, now);
    }
    return;
  }
  switch (e.kind) {
    case event_kind::joined:
    case event_kind::updated:
    case event_kind::alive: {
      const bool known = peers_.contains(e.id);
      refresh_peer(e.id, now);
      if (!peers_.contains(e.id)) return;  // not a node of ours (no valid metadata)
      replica_.mark_alive(e.id);
      handoff_.mark_alive(e.id);
      if constexpr (routed) router_.mark_alive(e.id);
      if (e.kind == event_kind::joined || !known) emit_member(node_event_kind::member_joined, e.id);
      if (e.kind == event_kind::alive) emit_member(node_event_kind::member_alive, e.id);
      schedule_settle(now);
      if constexpr (routed) {
        if (state_ != node_state::idle && !founding_ && router_.state() == chord::router_state::idle)
          (void)router_.join(peers_.at(e.id).packet, now);
      }
      break;
    }
    case event_kind::suspect:
      if (auto it = peers_.find(e.id); it != peers_.end()) {
        it->second.state = member_state::suspect;
        emit_member(node_event_kind::member_suspect, e.id);
      }
      break;
    case event_kind::dead:
    case event_kind::left:
      if (auto it = peers_.find(e.id); it != peers_.end()) {
        const bool left = e.kind == event_kind::left;
        it->second.state = left ? member_state::left : member_state::dead;
        it->second.dead_since = now;
        replica_.mark_dead(e.id);
        handoff_.mark_dead(e.id);
        if constexpr (routed) router_.mark_dead(e.id);
        emit_member(left ? node_event_kind::member_left : node_event_kind::member_dead, e.id);
        // A dead member keeps its ranges for dead_member_grace (tick()
        // settles when it ends); one that left hands them over now.
        it->second.grace_pending = !left;
        schedule_settle(now);
      }
      break;
    case event_kind::conflict:
      emit_member(node_event_kind::member_conflict, e.id);
      break;
  }
}

// Reads a member's address and metadata from SWIM into the directory. A
// member without valid node metadata is not one of ours and is left out.
template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::refresh_peer(node_id id, time_point) {
  auto m = swim_.find(id);
  if (!m) return;
  auto meta = detail::node::decode_meta<Endpoint>(m->metadata);
  if (!meta || node_id::from_name(meta->name) != id) {
    ++stats_.foreign_members;
    return;
  }
  // An endpoint another member used (a reused port or address) now belongs
  // to this one: the other's entry no longer names it.
  for (auto* map : {&by_packet_, &by_stream_}) {
    const Endpoint& ep = map == &by_packet_ ? m->address : meta->stream;
    if (auto b = map->find(ep); b != map->end() && b->second != id) {
      const node_id other = b->second;
      map->erase(b);
      if (!is_live(other)) peers_.erase(other);
    }
  }
  peer_entry& p = peers_[id];
  if (p.has_meta) {
    if (auto b = by_packet_.find(p.packet); b != by_packet_.end() && b->second == id) by_packet_.erase(b);
    if (auto b = by_stream_.find(p.stream); b != by_stream_.end() && b->second == id) by_stream_.erase(b);
  }
  p.packet = m->address;
  p.stream = meta->stream;
  p.name = meta->name;
  p.state = m->state;
  p.draining = meta->draining();
  p.weight = std::max<std::uint32_t>(1, meta->weight);
  p.has_meta = true;
  p.dead_since.reset();
  p.grace_pending = false;
  by_packet_[p.packet] = id;
  by_stream_[p.stream] = id;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::schedule_settle(time_point at) {
  const time_point when = at + config_.placement_settle;
  if (!settle_at_ || when < *settle_at_) settle_at_ = when;
}

template <class Endpoint, placement Placement, storage Storage>
bool basic_node_core<Endpoint, Placement, Storage>::is_live(node_id id) const {
  if (id == self_) return state_ == node_state::joined || state_ == node_state::leaving;
  auto it = peers_.find(id);
  return it != peers_.end() && (it->second.state == membership::member_state::alive ||
                                it->second.state == membership::member_state::suspect);
}

// Who the placement is built from: live members that are not draining, and
// dead ones still within dead_member_grace (their writes go to fallbacks with
// hints meanwhile, so a quick restart moves nothing).
template <class Endpoint, placement Placement, storage Storage>
std::vector<placement_member> basic_node_core<Endpoint, Placement, Storage>::placement_members(
    time_point now) const {
  std::vector<placement_member> out;
  if (state_ == node_state::joining || state_ == node_state::joined) out.push_back({self_, 1});
  for (const auto& [id, p] : peers_) {
    if (p.draining) continue;
    const bool live =
        p.state == membership::member_state::alive || p.state == membership::member_state::suspect;
    const bool in_grace = p.state == membership::member_state::dead && p.dead_since &&
                          now < *p.dead_since + config_.dead_member_grace;
    if (live || in_grace) out.push_back({id, p.weight});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::settle(time_point now) {
  settle_at_.reset();
  if (state_ == node_state::idle || state_ == node_state::left) return;
  if (state_ == node_state::joining && !founding_) {
    // Joined once SWIM brought us another member's state.
    bool any = false;
    for (const auto& [id, p] : peers_) any = any || is_live(id);
    if (!any) return;
  }
  const std::vector<placement_member> members = placement_members(now);
  std::vector<range_move> moves;
  const std::uint64_t before = placement_.version();
  if (!settled_once_ && !founding_) {
    // A joiner (or a restarted node) has no earlier placement: it takes the
    // cluster as it is without itself as the one before, so its moves say
    // which ranges it takes from whom -- and whom to ask for them, and to read
    // from meanwhile (previous holders).
    std::vector<placement_member> others;
    for (const placement_member& m : members)
      if (m.id != self_) others.push_back(m);
    std::vector<range_move> ignored;
    placement_.set_members(others, ignored, now);
  }
  placement_.set_members(members, moves, now);
  if constexpr (requires { placement_.expire_history(now); }) {
    // History names previous holders for reads during a handoff; a version
    // older than the handoff's own bound is no use.
    placement_.expire_history(now - config_.handoff.not_ready_timeout * 2);
  }
  const bool first = !settled_once_;
  settled_once_ = true;
  if (placement_.version() != before || first) {
    ++stats_.placement_changes;
    node_event ev;
    ev.kind = node_event_kind::placement_changed;
    ev.placement_version = placement_.version();
    ev.fingerprint = placement_.fingerprint();
    out_.events.push_back(std::move(ev));
    std::vector<key_range> gained, lost;
    for (const range_move& m : moves) {
      const bool was = std::find(m.before.begin(), m.before.end(), self_) != m.before.end();
      const bool is = std::find(m.after.begin(), m.after.end(), self_) != m.after.end();
      if (is && !was) gained.push_back(m.range);
      if (was && !is) lost.push_back(m.range);
    }
    if constexpr (requires { store_.set_actor(node_id{}); }) {
      // Ranges lost are handed off and dropped here. Should one come back,
      // this node would coordinate its keys again without the versions it
      // numbered before; numbering new ones under the same name would make
      // their clocks cover those old versions, and peers would drop them.
      // A new name for new writes keeps old and new versions apart.
      if (!lost.empty())
        store_.set_actor(node_id{mix64(store_.actor().value ^ mix64(placement_.version() ^ actor_salt_))});
    }
    emit_ranges(node_event_kind::range_gained, std::move(gained));
    emit_ranges(node_event_kind::range_lost, std::move(lost));
    handoff_.on_placement(moves, founding_ && first, now, [this](node_id id) { return is_live(id); });
  }
  std::uint64_t held = 0;  // O(units), once per settle
  for (std::size_t u = 0; u < placement_.unit_count(); ++u)
    held += placement_.holds(self_, placement_.unit_at(u).begin) ? 1 : 0;
  stats_.ranges_held = held;
  if (state_ == node_state::leaving) drain_settled_ = true;
  if (state_ == node_state::joining) {
    state_ = node_state::joined;
    join_deadline_.reset();
    out_.status.push_back({node_state::joined, {}});
  }
  update_gauges();
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::emit_member(node_event_kind kind, node_id id) {
  node_event ev;
  ev.kind = kind;
  ev.member = id;
  if (auto it = peers_.find(id); it != peers_.end()) ev.name = it->second.name;
  if (id == self_) ev.name = config_.name;
  ev.placement_version = placement_.version();
  out_.events.push_back(std::move(ev));
}

// One event per run of adjacent ranges: a join moves hundreds of partitions,
// which a listener wants as a few arcs.
template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::emit_ranges(node_event_kind kind,
                                                                std::vector<key_range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const key_range& a, const key_range& b) { return a.begin < b.begin; });
  std::vector<key_range> runs;
  for (const key_range& r : ranges) {
    if (!runs.empty() && runs.back().end == r.begin && runs.back().begin != runs.back().end)
      runs.back().end = r.end;
    else
      runs.push_back(r);
  }
  for (const key_range& r : runs) {
    node_event ev;
    ev.kind = kind;
    ev.range = r;
    ev.placement_version = placement_.version();
    out_.events.push_back(std::move(ev));
  }
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::update_gauges() {
  using membership::member_state;
  stats_.members_alive = swim_.count(member_state::alive);
  stats_.members_suspect = swim_.count(member_state::suspect);
  stats_.members_dead = swim_.count(member_state::dead);
  stats_.members_left = swim_.count(member_state::left);
  stats_.placement_version = placement_.version();
  stats_.placement_fingerprint = placement_.fingerprint();
  stats_.ops_pending = ops_.size();
  const auto& h = handoff_.stats();
  stats_.ranges_pending = h.units_pending;
  stats_.ranges_outbound = h.units_outbound;
  stats_.handoff_bytes_in_flight = h.bytes_in_flight;
  stats_.hints_pending = hints_.size();
  stats_.handoff_bytes_sent = h.bytes_sent;
  stats_.handoff_bytes_received = h.bytes_received;
  stats_.handoff_keys_sent = h.keys_sent;
  stats_.handoff_keys_received = h.keys_received;
  stats_.ranges_dropped = h.units_dropped;
  stats_.keys_dropped = h.keys_dropped;
  const auto& r = replica_.stats();
  stats_.read_repairs = r.read_repairs;
  stats_.ae_keys_repaired = r.ae_keys_repaired;
  stats_.hints_stored = r.hints_stored;
  stats_.hints_handed_off = r.hints_handed_off;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::fail_join(std::error_code ec, time_point) {
  // Refused: go silent. Never call SWIM's leave here -- a `left` update about
  // this id would be believed and evict the legitimate owner of the name.
  silenced_ = true;
  state_ = node_state::left;
  join_deadline_.reset();
  settle_at_.reset();
  out_.status.push_back({node_state::left, ec});
  for (auto& [id, op] : ops_) fail_op(id, op, ec);
  ops_.clear();
  by_replica_.clear();
  by_lookup_.clear();
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::finish_leave(std::error_code ec) {
  state_ = node_state::left;
  silenced_ = true;
  leave_deadline_.reset();
  swim_leave_at_.reset();
  settle_at_.reset();
  out_.status.push_back({node_state::left, ec});
  for (auto& [id, op] : ops_) fail_op(id, op, errc::shut_down);
  ops_.clear();
  by_replica_.clear();
  by_lookup_.clear();
}

template <class Endpoint, placement Placement, storage Storage>
std::vector<node_id> basic_node_core<Endpoint, Placement, Storage>::live_members() const {
  std::vector<node_id> out;
  if (is_live(self_)) out.push_back(self_);
  for (const auto& [id, p] : peers_)
    if (is_live(id)) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dhtkit
