// Chord router: ranges -- the predecessor and the range (predecessor, self]
// this node owns, reported as range events (the data-handoff hook), bounded
// when the driver does not drain them.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
void basic_router<Address>::set_predecessor(const peer_type& p) {
  pred_ = p;
  announce_range(p.id.value);
}

template <class Address>
void basic_router<Address>::announce_range(std::uint64_t start) {
  change_range(true, start);
}

// The range event taking this node from owning (from, self] (or nothing,
// !had) to owning (to, self] (or nothing, !has); none if nothing changed.
template <class Address>
std::optional<range_event> basic_router<Address>::range_change(bool had, std::uint64_t from, bool has,
                                                               std::uint64_t to) const {
  const std::uint64_t self = self_.id.value;
  if (!had && !has) return std::nullopt;
  if (!had) return range_event{true, to, self};
  if (!has) return range_event{false, from, self};
  if (from == to) return std::nullopt;
  // The new start lies inside the old range: the part before it is lost.
  if (detail::in_open(to, from, self)) return range_event{false, from, to};
  return range_event{true, to, from};
}

// Records the new range and reports the change. Events the driver has not
// drained are bounded: past max_pending_range_events they are replaced by
// their net change since the last drain (same final ownership), so a
// driver that never drains ranges, or a peer that moves the predecessor
// one step at a time, cannot grow the outbox without bound.
template <class Address>
void basic_router<Address>::change_range(bool known, std::uint64_t start) {
  if (out_.ranges.size() != ranges_mark_) {  // drained (or edited) since our last event
    ranges_first_ = out_.ranges.size();
    base_known_ = range_known_;
    base_start_ = range_start_;
  }
  if (auto e = range_change(range_known_, range_start_, known, start)) out_.ranges.push_back(*e);
  range_known_ = known;
  range_start_ = start;
  if (out_.ranges.size() - ranges_first_ > config_.max_pending_range_events) {
    out_.ranges.resize(ranges_first_);
    if (auto e = range_change(base_known_, base_start_, range_known_, range_start_))
      out_.ranges.push_back(*e);
  }
  ranges_mark_ = out_.ranges.size();
}

}  // namespace dhtkit::chord
