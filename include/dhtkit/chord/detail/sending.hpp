// Chord router: sending -- encoding into the bounded outbox, pending requests
// with their deadlines, and the jittered maintenance timers.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
template <class Msg>
void basic_router<Address>::send(const Address& to, const Msg& msg) {
  if (out_.messages.size() >= config_.max_outbox_messages) {
    ++stats_.outbox_dropped;
    return;
  }
  auto bytes = codec_.encode(msg, self_.id);
  if (!bytes) return;  // cannot happen for lists within the configured bounds
  out_.messages.push_back(outgoing_message<Address>{to, std::move(*bytes)});
  ++stats_.messages_sent;
}

template <class Address>
std::optional<std::uint64_t> basic_router<Address>::request(node_id target, const Address& address,
                                                            req_kind kind, std::uint64_t context,
                                                            time_point now, bool check_target) {
  if (requests_.size() >= config_.max_pending_requests) {
    ++stats_.requests_refused;
    return std::nullopt;
  }
  const std::uint64_t id = next_request_++;
  // Deadlines are now + one fixed timeout and now never decreases, so the
  // map's id order is deadline order: expiry scans only what expired.
  const time_point deadline = std::max(now + config_.request_timeout, last_deadline_);
  last_deadline_ = deadline;
  requests_.emplace(id, pending_request{kind, target, check_target, address, context, deadline});
  if (kind == req_kind::check_predecessor) pending_check_pred_ = true;
  return id;
}

template <class Address>
duration basic_router<Address>::jittered(duration period) {
  const auto span = static_cast<std::uint64_t>(period.count() / 2);
  return period - duration(static_cast<std::int64_t>(span / 2)) +
         duration(static_cast<std::int64_t>(rng_.below(span + 1)));
}

template <class Address>
void basic_router<Address>::start_timers(time_point now) {
  // Spread the first round over a period so simultaneous starts do not sync.
  next_stabilize_ = now + duration(static_cast<std::int64_t>(
                              rng_.below(static_cast<std::uint64_t>(config_.stabilize_period.count()) + 1)));
  next_fix_ = now + duration(static_cast<std::int64_t>(
                        rng_.below(static_cast<std::uint64_t>(config_.fix_fingers_period.count()) + 1)));
  next_check_pred_ = now + config_.check_predecessor_period;
}

}  // namespace dhtkit::chord
