// Chord router: liveness -- which peers this node takes for dead (misses in a
// row, a verdict, a leave), for how long, and recovering a successor when the
// list runs empty.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
void basic_router<Address>::suspect(node_id id) {
  if (!dead_.contains(id)) {
    if (dead_order_.size() >= config_.max_dead_peers) {
      dead_.erase(dead_order_.front());
      dead_order_.pop_front();
      dead_since_.pop_front();
    }
    dead_.insert(id);
    dead_order_.push_back(id);
    dead_since_.push_back(last_now_);
  }
  std::erase_if(succ_, [&](const peer_type& p) { return p.id == id; });
  for (auto& f : fingers_)
    if (f && f->id == id) f.reset();
  if (pred_ && pred_->id == id) pred_.reset();
  if (state_ == router_state::joined && succ_.empty()) recover_successor();
}

template <class Address>
void basic_router<Address>::forget_dead(node_id id) {
  misses_.erase(id);
  if (dead_.erase(id) == 0) return;
  for (std::size_t i = 0; i < dead_order_.size(); ++i) {
    if (dead_order_[i] == id) {
      dead_order_.erase(dead_order_.begin() + static_cast<std::ptrdiff_t>(i));
      dead_since_.erase(dead_since_.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
}

// One more unanswered request to `id`: dead at failure_threshold in a row.
template <class Address>
void basic_router<Address>::missed(node_id id) {
  if (dead_.contains(id)) return;
  if (misses_.size() >= config_.max_dead_peers) misses_.clear();
  if (++misses_[id] >= config_.failure_threshold) {
    misses_.erase(id);
    suspect(id);
  }
}

// The successor list ran empty: fall back to the nearest live finger, else
// the predecessor; with neither the node is alone and owns the circle.
template <class Address>
void basic_router<Address>::recover_successor() {
  std::optional<peer_type> best;
  auto consider = [&](const std::optional<peer_type>& p) {
    if (!p || p->id == self_.id || dead_.contains(p->id)) return;
    if (!best ||
        detail::distance(self_.id.value, p->id.value) < detail::distance(self_.id.value, best->id.value))
      best = p;
  };
  for (const auto& f : fingers_) consider(f);
  consider(pred_);
  if (best) {
    succ_.push_back(*best);
  } else if (!pred_) {
    announce_range(self_.id.value);
  }
}

}  // namespace dhtkit::chord
