// Chord router: lookups -- the public lookup() and the iterative routing behind
// it (candidates, the owner check, redirects to a skipped predecessor,
// completion of client, finger and join lookups).
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
result<lookup_id> basic_router<Address>::lookup(std::uint64_t key, time_point now) {
  if (state_ != router_state::joined) return errc::not_joined;
  auto l = new_lookup(key, purpose::client);
  if (!l) return l.error();
  ++stats_.lookups_started;
  begin_lookup(lookups_.at(*l), now);
  return *l;
}

template <class Address>
result<lookup_id> basic_router<Address>::new_lookup(std::uint64_t key, purpose why) {
  if (lookups_.size() >= config_.max_pending_lookups) return errc::limit_exceeded;
  const lookup_id id = next_lookup_++;
  lookup_state& s = lookups_[id];
  s.id = id;
  s.key = key;
  s.why = why;
  return id;
}

// The nodes this one knows in (self, key), closest to the key first.
template <class Address>
auto basic_router<Address>::closest_preceding(std::uint64_t key, std::size_t count) const
    -> std::vector<peer_type> {
  std::vector<peer_type> found;
  auto consider = [&](const peer_type& p) {
    if (p.id == self_.id || dead_.contains(p.id)) return;
    if (!detail::in_open(p.id.value, self_.id.value, key)) return;
    for (const auto& q : found)
      if (q.id == p.id) return;
    found.push_back(p);
  };
  for (const auto& f : fingers_)
    if (f) consider(*f);
  for (const auto& p : succ_) consider(p);
  std::sort(found.begin(), found.end(), [key](const peer_type& a, const peer_type& b) {
    return detail::distance(a.id.value, key) < detail::distance(b.id.value, key);
  });
  if (found.size() > count) found.resize(count);
  return found;
}

template <class Address>
void basic_router<Address>::begin_lookup(lookup_state& s, time_point now) {
  const std::uint64_t self = self_.id.value;
  if (succ_.empty()) {  // alone: this node owns the circle
    complete(s, self_, {});
    return;
  }
  if (pred_ && detail::in_half_open(s.key, pred_->id.value, self)) {
    complete(s, self_, {});
    return;
  }
  if (detail::in_half_open(s.key, self, succ_.front().id.value)) {
    start_verify(s, succ_, now);
    return;
  }
  if (detail::in_half_open(s.key, self, succ_.back().id.value)) {
    s.span_owner = self_;
    s.span = succ_;
  }
  s.candidates = closest_preceding(s.key, config_.max_lookup_candidates);
  route_next(s, now);
}

template <class Address>
void basic_router<Address>::route_next(lookup_state& s, time_point now) {
  if (s.bootstrap) {
    const Address a = *s.bootstrap;
    s.bootstrap.reset();
    if (auto req = request(node_id{}, a, req_kind::route, s.id, now, /*check_target=*/false)) {
      send(a, detail::find_request{*req, s.key});
      return;
    }
    complete(s, self_, errc::lookup_failed);
    return;
  }
  if (s.hops >= config_.max_hops) {
    complete(s, self_, errc::lookup_failed);
    return;
  }
  while (!s.candidates.empty()) {
    const peer_type c = s.candidates.front();
    s.candidates.erase(s.candidates.begin());
    if (dead_.contains(c.id) || std::find(s.tried.begin(), s.tried.end(), c.id) != s.tried.end()) continue;
    if (s.span_owner && !detail::in_open(c.id.value, s.span_owner->id.value, s.key)) break;
    s.tried.push_back(c.id);
    if (auto req = request(c.id, c.address, req_kind::route, s.id, now)) {
      send(c.address, detail::find_request{*req, s.key});
      return;
    }
    break;
  }
  if (s.span_owner) {
    // Every node left between the span's owner and the key is dead.
    std::vector<peer_type> owners;
    const std::uint64_t from = s.span_owner->id.value;
    for (const auto& p : s.span)
      if (detail::distance(from, p.id.value) >= detail::distance(from, s.key)) owners.push_back(p);
    s.span_owner.reset();
    if (!owners.empty()) {
      start_verify(s, owners, now);
      return;
    }
  }
  // A join whose bootstrap never answered: say so.
  const bool no_answer = s.why == purpose::join && s.hops == 0 && s.timeouts != 0;
  complete(s, self_, no_answer ? std::error_code(errc::timed_out) : std::error_code(errc::lookup_failed));
}

template <class Address>
void basic_router<Address>::start_verify(lookup_state& s, const std::vector<peer_type>& owners,
                                         time_point now) {
  s.verifying = true;
  s.owners = owners;
  s.owner_index = 0;
  s.redirect.reset();
  if (!config_.verify_owner && s.why != purpose::join) {
    complete(s, owners.front(), {});
    return;
  }
  verify_next(s, now);
}

template <class Address>
void basic_router<Address>::verify_next(lookup_state& s, time_point now) {
  while (s.owner_index < s.owners.size()) {
    const peer_type o = s.owners[s.owner_index];
    if (o.id == self_.id) {
      complete(s, self_, s.why == purpose::join ? std::error_code(errc::duplicate_node) : std::error_code{});
      return;
    }
    if (dead_.contains(o.id) && s.redirect != s.owner_index) {
      ++s.owner_index;
      continue;
    }
    if (auto req = request(o.id, o.address, req_kind::verify, s.id, now)) {
      send(o.address, detail::state_request{*req});
      return;
    }
    break;
  }
  complete(s, self_, errc::lookup_failed);
}

template <class Address>
std::error_code basic_router<Address>::on_route_reply(lookup_state& s, const peer_type& from,
                                                      const detail::find_reply<Address>& m, time_point now) {
  ++s.hops;
  if (m.done) {
    // The sender's successor list (or itself when alone): runs clockwise
    // from it, and the sender says "done" only when the key lies in
    // (sender, nodes[0]]; a list that does not cover the key is broken.
    std::vector<peer_type> owners;
    if (m.nodes.size() == 1 && m.nodes.front().id == from.id) {
      owners.push_back(from);
    } else if (!m.nodes.empty() && valid_list(from.id, m.nodes, config_.max_successor_list_length) &&
               detail::in_half_open(s.key, from.id.value, m.nodes.front().id.value)) {
      owners = m.nodes;
    } else {
      ++stats_.rejected;
      route_next(s, now);
      return errc::invalid_argument;
    }
    start_verify(s, owners, now);
    return {};
  }
  std::error_code ec;
  if (m.nodes.size() > config_.lookup_candidates ||
      !valid_list(from.id, m.successors, config_.max_successor_list_length)) {
    ++stats_.rejected;
    ec = errc::invalid_argument;
  } else {
    if (!m.successors.empty() && detail::in_half_open(s.key, from.id.value, m.successors.back().id.value) &&
        (!s.span_owner || detail::in_open(from.id.value, s.span_owner->id.value, s.key))) {
      s.span_owner = from;
      s.span = m.successors;
    }
    // Only nodes strictly closer to the key than the sender: progress, no loops.
    for (const auto& p : m.nodes) {
      if (p.id == self_.id || !detail::in_open(p.id.value, from.id.value, s.key)) continue;
      add_candidate(s, p);
    }
  }
  route_next(s, now);
  return ec;
}

template <class Address>
void basic_router<Address>::add_candidate(lookup_state& s, const peer_type& p) {
  for (const auto& q : s.candidates)
    if (q.id == p.id) return;
  const auto closer = [&](const peer_type& a, const peer_type& b) {
    return detail::distance(a.id.value, s.key) < detail::distance(b.id.value, s.key);
  };
  s.candidates.insert(std::upper_bound(s.candidates.begin(), s.candidates.end(), p, closer), p);
  if (s.candidates.size() > config_.max_lookup_candidates) s.candidates.pop_back();
}

// Whether a lookup verifying owner o should ask o's predecessor p instead:
// p lies in [key, o), has not been silent failure_threshold times in this
// lookup, and the redirects stay bounded.
template <class Address>
bool basic_router<Address>::may_redirect(const lookup_state& s, const peer_type& p,
                                         const peer_type& o) const {
  return p.id != o.id && s.redirects < config_.max_successor_list_length &&
         static_cast<std::size_t>(std::count(s.silent.begin(), s.silent.end(), p.id)) <
             config_.failure_threshold &&
         detail::distance(s.key, p.id.value) < detail::distance(s.key, o.id.value);
}

template <class Address>
void basic_router<Address>::redirect_to(lookup_state& s, const peer_type& p) {
  ++s.redirects;
  s.owners.insert(s.owners.begin() + static_cast<std::ptrdiff_t>(s.owner_index), p);
  s.redirect = s.owner_index;
}

template <class Address>
void basic_router<Address>::on_verify_reply(lookup_state& s, const peer_type& o,
                                            const detail::state_reply<Address>& m, time_point now) {
  // The owner candidate answered, but is it the owner? The list that named
  // it may have skipped its predecessor: the namer had not adopted a new
  // node yet, or this node took the predecessor for dead after lost
  // messages. If o's predecessor p lies in [key, o), p owns the key as far
  // as o knows; ask p (even if taken for dead here), and keep o as the
  // answer once p has not replied failure_threshold times. Each redirect
  // moves strictly closer to the key or to a silent p, and their number is
  // bounded besides.
  if (s.why != purpose::join && m.has_predecessor && may_redirect(s, m.predecessor, o)) {
    redirect_to(s, m.predecessor);
    verify_next(s, now);
    return;
  }
  if (s.why == purpose::join) {
    if (!valid_list(o.id, m.successors, config_.max_successor_list_length)) {
      complete(s, self_, errc::lookup_failed);
      return;
    }
    succ_ = reconcile(o, m.successors);
  }
  complete(s, o, {});
}

template <class Address>
void basic_router<Address>::complete(lookup_state& s, const peer_type& owner, std::error_code ec) {
  const lookup_state done = std::move(s);
  lookups_.erase(done.id);
  switch (done.why) {
    case purpose::client: {
      lookup_result<Address> r;
      r.id = done.id;
      r.key = done.key;
      r.error = ec;
      if (!ec) r.owner = owner;
      r.hops = done.hops;
      r.timeouts = done.timeouts;
      out_.lookups.push_back(std::move(r));
      if (ec) {
        ++stats_.lookups_failed;
      } else {
        ++stats_.lookups_succeeded;
      }
      break;
    }
    case purpose::finger:
      finger_lookup_pending_ = false;
      if (!ec && state_ == router_state::joined) on_finger_found(done.finger, owner);
      break;
    case purpose::join:
      if (state_ != router_state::joining) break;
      if (ec) {
        state_ = router_state::idle;
        succ_.clear();
        out_.status.push_back(status_event{status_kind::join_failed, ec});
      } else {
        state_ = router_state::joined;
        if (succ_.empty() || succ_.front().id != owner.id) succ_ = {owner};
        out_.status.push_back(status_event{status_kind::joined, {}});
        start_timers(last_now_);
        send(owner.address, detail::rectify<Address>{self_});
      }
      break;
  }
}

template <class Address>
void basic_router<Address>::fail_all_lookups(std::error_code ec) {
  std::vector<lookup_id> ids;
  for (const auto& [id, s] : lookups_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (lookup_id id : ids) {
    auto it = lookups_.find(id);
    if (it != lookups_.end()) complete(it->second, self_, ec);
  }
}

}  // namespace dhtkit::chord
