// Chord router: the lifecycle -- create a ring, join one through a bootstrap,
// leave it handing off to both neighbours.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
void basic_router<Address>::create(time_point now) {
  if (state_ != router_state::idle) return;
  state_ = router_state::joined;
  succ_.clear();
  pred_.reset();
  start_timers(now);
  announce_range(self_.id.value);
}

template <class Address>
std::error_code basic_router<Address>::join(const Address& bootstrap, time_point now) {
  if (state_ != router_state::idle) return errc::invalid_argument;
  state_ = router_state::joining;
  last_now_ = std::max(last_now_, now);
  auto l = new_lookup(self_.id.value, purpose::join);
  if (!l) {
    state_ = router_state::idle;
    return l.error();
  }
  lookup_state& s = lookups_.at(*l);
  s.bootstrap = bootstrap;
  route_next(s, now);
  return {};
}

template <class Address>
std::error_code basic_router<Address>::leave(time_point now) {
  (void)now;
  if (state_ != router_state::joined) return errc::not_joined;
  detail::leave_notice<Address> notice{self_, pred_.has_value(), pred_.value_or(peer_type{}), succ_};
  if (!succ_.empty()) send(succ_.front().address, notice);
  if (pred_ && (succ_.empty() || pred_->id != succ_.front().id)) send(pred_->address, notice);
  change_range(false, 0);
  fail_all_lookups(errc::shut_down);
  requests_.clear();
  succ_.clear();
  pred_.reset();
  fingers_ = {};
  state_ = router_state::left;
  out_.status.push_back(status_event{status_kind::left, {}});
  return {};
}

}  // namespace dhtkit::chord
