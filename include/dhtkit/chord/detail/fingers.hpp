// Chord router: fingers -- fix_fingers and what a finger lookup's answer
// fills in; fingers only make lookups short.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
std::uint64_t basic_router<Address>::finger_start(std::uint64_t self, std::size_t i) {
  return self + (std::uint64_t{1} << i);
}

template <class Address>
void basic_router<Address>::fix_fingers(time_point now) {
  if (succ_.empty()) {
    fingers_ = {};
    return;
  }
  const std::uint64_t self = self_.id.value;
  std::size_t launched = 0;
  for (std::size_t step = 0; step < identifier_bits && launched < config_.fingers_per_fix; ++step) {
    const std::size_t i = next_finger_;
    next_finger_ = (next_finger_ + 1) % identifier_bits;
    const std::uint64_t start = finger_start(self, i);
    if (detail::in_half_open(start, self, succ_.front().id.value)) {
      fingers_[i] = succ_.front();
      continue;
    }
    if (finger_lookup_pending_) break;
    auto l = new_lookup(start, purpose::finger);
    if (!l) break;
    lookup_state& s = lookups_.at(*l);
    s.finger = i;
    finger_lookup_pending_ = true;
    ++stats_.finger_lookups;
    ++launched;
    begin_lookup(s, now);
  }
}

template <class Address>
void basic_router<Address>::on_finger_found(std::size_t i, const peer_type& owner) {
  const std::uint64_t self = self_.id.value;
  if (owner.id == self_.id) {
    fingers_[i].reset();
    return;
  }
  fingers_[i] = owner;
  // Later fingers whose start is also at or before the owner are the owner too.
  const std::uint64_t start_i = finger_start(self, i);
  const std::uint64_t reach = detail::distance(start_i, owner.id.value);
  for (std::size_t j = i + 1; j < identifier_bits; ++j) {
    if (detail::distance(start_i, finger_start(self, j)) > reach) break;
    fingers_[j] = owner;
    if (next_finger_ == j) next_finger_ = (j + 1) % identifier_bits;
  }
}

}  // namespace dhtkit::chord
