// Chord router: stabilize, rectify and leave notices -- Zave's corrected ring
// maintenance (see the opening comment of router.hpp).
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
void basic_router<Address>::start_stabilize(time_point now) {
  ++stats_.stabilizations;
  if (!succ_.empty()) {
    const peer_type s = succ_.front();
    if (auto req = request(s.id, s.address, req_kind::stabilize_successor, 0, now)) {
      stabilizing_ = true;
      send(s.address, detail::state_request{*req});
    }
  } else if (pred_) {
    // Alone with a predecessor: a one-node ring someone joined. It is the
    // candidate successor (it lies between self and self), adopted if live.
    if (auto req = request(pred_->id, pred_->address, req_kind::stabilize_candidate, 0, now)) {
      stabilizing_ = true;
      send(pred_->address, detail::state_request{*req});
    }
  }
}

template <class Address>
void basic_router<Address>::finish_stabilize() {
  stabilizing_ = false;
  walk_steps_ = 0;
  if (!succ_.empty()) send(succ_.front().address, detail::rectify<Address>{self_});
}

template <class Address>
void basic_router<Address>::on_stabilize_reply(const peer_type& s, const detail::state_reply<Address>& m,
                                               time_point now) {
  if (succ_.empty() || succ_.front().id != s.id) {  // the list changed meanwhile
    stabilizing_ = false;
    return;
  }
  succ_ = reconcile(s, m.successors);
  if (m.has_predecessor && m.predecessor.id != self_.id && m.predecessor.id != s.id &&
      !dead_.contains(m.predecessor.id) &&
      detail::in_open(m.predecessor.id.value, self_.id.value, s.id.value)) {
    // Zave: adopt it only if it is live, i.e. once it answers.
    const peer_type p = m.predecessor;
    if (auto req = request(p.id, p.address, req_kind::stabilize_candidate, 0, now)) {
      send(p.address, detail::state_request{*req});
      return;
    }
  }
  finish_stabilize();
}

template <class Address>
void basic_router<Address>::on_candidate_reply(const peer_type& p, const detail::state_reply<Address>& m,
                                               time_point now) {
  const bool still_between =
      succ_.empty() || detail::in_open(p.id.value, self_.id.value, succ_.front().id.value);
  if (still_between) {
    succ_ = reconcile(p, m.successors);
    // If p's own predecessor is between too, this node is an appendage far
    // from its place (a join answered by a ring still forming): go on
    // walking back now, each step adopted only once it answers, instead of
    // one step per stabilization round (bounded by max_hops per round).
    if (m.has_predecessor && m.predecessor.id != self_.id && m.predecessor.id != p.id &&
        !dead_.contains(m.predecessor.id) &&
        detail::in_open(m.predecessor.id.value, self_.id.value, p.id.value) &&
        ++walk_steps_ < config_.max_hops) {
      const peer_type q = m.predecessor;
      if (auto req = request(q.id, q.address, req_kind::stabilize_candidate, 0, now)) {
        send(q.address, detail::state_request{*req});
        return;
      }
    }
  }
  finish_stabilize();
}

template <class Address>
void basic_router<Address>::on_rectify(const peer_type& n) {
  if (state_ != router_state::joined) return;
  if (!pred_ || dead_.contains(pred_->id) || detail::in_open(n.id.value, pred_->id.value, self_.id.value)) {
    if (!pred_ || pred_->id != n.id) set_predecessor(n);
  }
}

template <class Address>
void basic_router<Address>::on_leave(const node_id sender, const detail::leave_notice<Address>& m) {
  const bool was_successor = !succ_.empty() && succ_.front().id == sender;
  const bool was_predecessor = pred_ && pred_->id == sender;
  // Remember it as gone first so nothing below re-adopts it.
  suspect(sender);
  if (was_successor) {
    std::vector<peer_type> list;
    for (const auto& p : m.successors) {
      if (list.size() >= r_ || p.id == self_.id) break;
      if (!dead_.contains(p.id)) list.push_back(p);
    }
    if (!list.empty()) {
      const peer_type head = list.front();
      list.erase(list.begin());
      succ_ = reconcile(head, list);
    }
    if (!succ_.empty()) send(succ_.front().address, detail::rectify<Address>{self_});
  }
  if (was_predecessor && m.has_predecessor && m.predecessor.id != self_.id &&
      !dead_.contains(m.predecessor.id))
    set_predecessor(m.predecessor);
  if (succ_.empty() && !pred_) announce_range(self_.id.value);
}

}  // namespace dhtkit::chord
