// Chord router: timeouts -- expiring pending requests and what each kind of
// unanswered request means; matching replies to requests.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
void basic_router<Address>::expire_requests(time_point now) {
  last_now_ = std::max(last_now_, now);
  while (!requests_.empty() && requests_.begin()->second.deadline <= now) {
    const pending_request req = requests_.begin()->second;
    requests_.erase(requests_.begin());
    on_timeout(req, now);
  }
}

template <class Address>
void basic_router<Address>::on_timeout(const pending_request& req, time_point now) {
  ++stats_.timeouts;
  if (req.check_target) missed(req.target);
  switch (req.kind) {
    case req_kind::stabilize_successor:
      // Retry at once with the next successor (suspect() dropped this one).
      stabilizing_ = false;
      if (state_ == router_state::joined) start_stabilize(now);
      break;
    case req_kind::stabilize_candidate:
      finish_stabilize();
      break;
    case req_kind::check_predecessor:
      pending_check_pred_ = false;
      break;
    case req_kind::route:
    case req_kind::verify: {
      auto it = lookups_.find(req.context);
      if (it == lookups_.end()) break;
      lookup_state& s = it->second;
      ++s.timeouts;
      if (s.timeouts > config_.max_timeouts_per_lookup) {
        complete(s, self_, s.why == purpose::join ? std::error_code(errc::timed_out) : errc::lookup_failed);
      } else if (req.kind == req_kind::route) {
        route_next(s, now);
      } else {
        // One lost message must not make the owner's successor the
        // answer: ask the same owner again until it has missed
        // failure_threshold requests (verify_next then skips it as dead).
        // A redirect target gets one try per redirect: the node that
        // named it answered. (An owner found dead here is still a
        // redirect target if its successor names it: this node's misses
        // count across requests, so it may have been one lost message.)
        if (s.redirect == s.owner_index) {
          s.silent.push_back(s.owners[s.owner_index].id);
          s.redirect.reset();
          ++s.owner_index;
        }
        verify_next(s, now);
      }
      break;
    }
  }
}

// Takes the pending request a reply answers, if the reply is from whom it
// was sent to; if not, `rejected` says so (a stale reply is not rejected).
template <class Address>
auto basic_router<Address>::take_request(std::uint64_t id, node_id sender, const Address& from,
                                         std::error_code& rejected) -> std::optional<pending_request> {
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    ++stats_.stale_replies;
    return std::nullopt;
  }
  const pending_request& req = it->second;
  if (req.check_target ? req.target != sender : !(req.address == from)) {
    ++stats_.rejected;
    rejected = errc::invalid_argument;
    return std::nullopt;
  }
  pending_request out = req;
  requests_.erase(it);
  if (out.kind == req_kind::check_predecessor) pending_check_pred_ = false;
  return out;
}

}  // namespace dhtkit::chord
