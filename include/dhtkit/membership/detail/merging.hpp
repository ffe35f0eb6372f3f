// basic_swim's merging of updates: validation, the precedence of incarnations
// and states (alive, suspect, dead, left) that decides whether an update
// changes the member list, and the bookkeeping of records (state counts,
// eviction, reaping the long dead).
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
void basic_swim<Address>::set_state(record& m, member_state s, time_point now) {
  --counts_[static_cast<std::size_t>(m.state)];
  ++counts_[static_cast<std::size_t>(s)];
  m.state = s;
  m.state_changed = now;
}

template <class Address>
bool basic_swim<Address>::valid(const update& u) const {
  return u.id.value != 0 && u.state <= detail::max_wire_state && !(u.address == Address{}) &&
         u.incarnation != std::numeric_limits<std::uint32_t>::max() &&
         u.metadata.size() <= config_.max_metadata_bytes;
}

// False (and counted) when u jumps the incarnation implausibly far.
template <class Address>
bool basic_swim<Address>::plausible(const record& m, const update& u) {
  if (u.incarnation > m.incarnation && u.incarnation - m.incarnation > config_.max_incarnation_jump) {
    ++stats_.rejected_updates;
    return false;
  }
  return true;
}

template <class Address>
void basic_swim<Address>::merge(const update& u, bool from_push_pull, time_point now) {
  if (!valid(u)) {
    ++stats_.rejected_updates;
    return;
  }
  if (from_push_pull && u.state != static_cast<std::uint8_t>(member_state::alive) && u.id != self_id()) {
    // memberlist's mergeState skips members whose state it already agrees
    // with. A full state is a copy of what its sender heard, not a probe the
    // sender made: counted as a confirmation it would shrink Lifeguard's
    // suspicion timeout (and be re-gossiped as one) with no new evidence.
    if (const record* m = find_record(u.id); m != nullptr && m->state != member_state::alive) return;
  }
  if (u.id == self_id() && u.address != self().address &&
      (u.state == static_cast<std::uint8_t>(member_state::alive) ||
       u.state == static_cast<std::uint8_t>(member_state::suspect))) {
    // Someone knows a live member with our id at another address: another
    // process has our id. Refuting would outbid the legitimate owner (if that
    // is the other one) and make the two fight over the id, so report it and
    // leave the decision to the user. Dead or left at another address is our
    // own previous life elsewhere, refuted below as after any restart.
    on_conflict(self(), u.address, now);
    return;
  }
  switch (static_cast<detail::wire_state>(u.state)) {
    case detail::wire_state::alive:
      on_alive(u, now);
      break;
    case detail::wire_state::suspect:
      on_suspect(u, now);
      break;
    case detail::wire_state::dead:
      if (from_push_pull) {
        // memberlist: another node's full state saying "dead" only makes us
        // suspect, so the member gets its chance to refute -- otherwise two
        // halves of a healed partition would kill each other.
        update s = u;
        s.state = static_cast<std::uint8_t>(member_state::suspect);
        s.from = self_id();
        on_suspect(s, now);
      } else {
        on_dead(u, now);
      }
      break;
    case detail::wire_state::left:
      on_dead(u, now);
      break;
  }
}

template <class Address>
void basic_swim<Address>::on_alive(const update& u, time_point now) {
  if (u.id == self_id()) {
    // Someone says we are alive with a newer incarnation than ours (our
    // previous life, before a restart): outbid it, or our updates look stale.
    if (!leaving_ && u.incarnation > self().incarnation) {
      if (u.incarnation - self().incarnation > config_.max_incarnation_jump) {
        ++stats_.rejected_updates;
        return;
      }
      refute(u.incarnation, now);
    }
    return;
  }
  record* m = find_record(u.id);
  if (m == nullptr) {
    if (members_.size() >= config_.max_members && !evict_one()) {
      ++stats_.rejected_full;
      return;
    }
    members_.push_back(
        record{u.id, u.address, u.incarnation, member_state::alive, u.metadata, now, time_point{}});
    index_.emplace(u.id, members_.size() - 1);
    ++counts_[static_cast<std::size_t>(member_state::alive)];
    // SWIM: a new member goes to a random place in the rest of this pass.
    if (probe_order_.size() < 2 * config_.max_members) {
      const std::size_t at = probe_pos_ + rng_.below(probe_order_.size() - probe_pos_ + 1);
      probe_order_.insert(probe_order_.begin() + static_cast<std::ptrdiff_t>(at), u.id);
    }
    emit(event_kind::joined, members_.back(), now);
    enqueue(u);
    return;
  }
  if (is_live(m->state) && u.address != m->address) {
    // A live member cannot move: someone else claims its id (memberlist's
    // address conflict). A dead or left one may come back elsewhere. Checked
    // at any incarnation, as memberlist does: a second process starts at 0,
    // no higher than the owner's.
    ++stats_.rejected_updates;
    on_conflict(*m, u.address, now);
    return;
  }
  if (u.incarnation <= m->incarnation) {
    ++stats_.stale_updates;
    return;
  }
  if (!plausible(*m, u)) return;
  const member_state before = m->state;
  const bool meta_changed = m->metadata != u.metadata;
  m->incarnation = u.incarnation;
  m->address = u.address;
  m->metadata = u.metadata;
  if (before != member_state::alive) set_state(*m, member_state::alive, now);
  suspicions_.erase(m->id);
  if (before == member_state::suspect) {
    emit(event_kind::alive, *m, now);
  } else if (before == member_state::dead || before == member_state::left) {
    emit(event_kind::joined, *m, now);
  } else if (meta_changed) {
    emit(event_kind::updated, *m, now);
  }
  enqueue(u);
}

// Every claim is counted; the event at most once per member per probe
// interval, since the impostor's updates keep coming with every message it
// sends and every state it pushes.
template <class Address>
void basic_swim<Address>::on_conflict(record& m, const Address& claimed, time_point now) {
  ++stats_.conflicts;
  if (now < m.conflict_quiet_until) return;
  m.conflict_quiet_until = now + config_.probe_interval;
  emit(event_kind::conflict, m, now, claimed);
}

// An accusation of ourselves older than our incarnation means our
// refutation has not reached everyone: send it again (without raising).
template <class Address>
void basic_swim<Address>::rebroadcast_self() {
  accused_ = true;
  if (!leaving_ && !queue_.contains(self_id())) enqueue(make_update(self(), self_id()));
}

template <class Address>
void basic_swim<Address>::on_suspect(const update& u, time_point now) {
  record* m = find_record(u.id);
  if (m == nullptr) return;  // nothing to suspect: we never saw it alive
  if (u.incarnation < m->incarnation) {
    ++stats_.stale_updates;
    if (m->id == self_id()) rebroadcast_self();
    return;
  }
  if (!plausible(*m, u)) return;
  if (m->id == self_id()) {
    if (!leaving_) refute(u.incarnation, now);
    accused_ = true;
    return;
  }
  if (auto it = suspicions_.find(m->id); it != suspicions_.end()) {
    if (u.incarnation == m->incarnation && confirm(it->second, u.from)) enqueue(u);
    return;
  }
  if (m->state != member_state::alive) return;
  m->incarnation = u.incarnation;
  set_state(*m, member_state::suspect, now);
  start_suspicion(*m, u.from, now);
  emit(event_kind::suspect, *m, now);
  enqueue(update{m->id, m->address, m->incarnation, u.state, u.from, {}});
}

template <class Address>
void basic_swim<Address>::on_dead(const update& u, time_point now) {
  record* m = find_record(u.id);
  if (m == nullptr) return;
  if (u.incarnation < m->incarnation) {
    ++stats_.stale_updates;
    if (m->id == self_id()) rebroadcast_self();
    return;
  }
  if (!plausible(*m, u)) return;
  if (m->state == member_state::dead || m->state == member_state::left) return;
  if (m->id == self_id()) {
    if (!leaving_) refute(u.incarnation, now);
    accused_ = true;
    return;
  }
  // Only the member itself can leave; "left" said by anyone else is "dead".
  const bool left = u.state == static_cast<std::uint8_t>(member_state::left) && u.from == u.id;
  m->incarnation = u.incarnation;
  suspicions_.erase(m->id);
  set_state(*m, left ? member_state::left : member_state::dead, now);
  emit(left ? event_kind::left : event_kind::dead, *m, now);
  enqueue(update{m->id, m->address, m->incarnation, static_cast<std::uint8_t>(m->state), u.from, {}});
}

// Makes room for a new member by forgetting the longest-dead one.
template <class Address>
bool basic_swim<Address>::evict_one() {
  std::size_t victim = 0;
  for (std::size_t i = 1; i < members_.size(); ++i) {
    if (is_live(members_[i].state)) continue;
    if (victim == 0 || members_[i].state_changed < members_[victim].state_changed) victim = i;
  }
  if (victim == 0) return false;
  remove(victim);
  return true;
}

template <class Address>
void basic_swim<Address>::remove(std::size_t i) {
  assert(i != 0 && !is_live(members_[i].state));
  --counts_[static_cast<std::size_t>(members_[i].state)];
  queue_.erase(members_[i].id);
  index_.erase(members_[i].id);
  if (i != members_.size() - 1) {
    members_[i] = std::move(members_.back());
    index_[members_[i].id] = i;
  }
  members_.pop_back();
}

template <class Address>
void basic_swim<Address>::reap(time_point now) {
  for (std::size_t i = members_.size(); i-- > 1;) {
    if (!is_live(members_[i].state) && now - members_[i].state_changed >= config_.dead_retention) remove(i);
  }
}

}  // namespace dhtkit::membership
