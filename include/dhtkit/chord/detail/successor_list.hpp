// Chord router: the successor list -- validating a peer's list, Zave's
// reconcile, and the debug-build invariants.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

// A list from `sender` is acceptable if it is short enough, never names
// the sender, and runs strictly clockwise from it (which rules out
// duplicates and loops). It may name this node: that is where it wraps.
template <class Address>
bool basic_router<Address>::valid_list(node_id sender, const std::vector<peer_type>& list,
                                       std::size_t max) const {
  if (list.size() > max) return false;
  std::uint64_t last = 0;
  for (const auto& p : list) {
    const std::uint64_t d = detail::distance(sender.value, p.id.value);
    if (d == 0 || d <= last) return false;
    last = d;
  }
  return true;
}

// Zave's reconcile: head + list minus its last entry, cut where the list
// wraps around to this node, without peers known dead, at most r long.
template <class Address>
auto basic_router<Address>::reconcile(const peer_type& head, const std::vector<peer_type>& list) const
    -> std::vector<peer_type> {
  std::vector<peer_type> out;
  out.reserve(r_);
  out.push_back(head);
  std::uint64_t last = detail::distance(self_.id.value, head.id.value);
  for (const auto& p : list) {
    if (out.size() >= r_) break;
    // Stop where the list passes this node (named or not): beyond is behind us.
    const std::uint64_t d = detail::distance(self_.id.value, p.id.value);
    if (d == 0 || d <= last) break;
    if (dead_.contains(p.id)) continue;
    out.push_back(p);
    last = d;
  }
  return out;
}

template <class Address>
void basic_router<Address>::check_invariants() const {
#ifndef NDEBUG
  assert(succ_.size() <= r_);
  std::uint64_t last = 0;
  for (const auto& p : succ_) {
    const std::uint64_t d = detail::distance(self_.id.value, p.id.value);
    assert(d != 0 && d > last && "successor list must run strictly clockwise and never name this node");
    last = d;
  }
  assert(!pred_ || pred_->id != self_.id);
  assert(requests_.size() <= config_.max_pending_requests);
  assert(lookups_.size() <= config_.max_pending_lookups);
#endif
}

}  // namespace dhtkit::chord
