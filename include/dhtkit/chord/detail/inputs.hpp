// Chord router: what a driver calls -- receive, tick, next_wakeup,
// take_outbox, and a failure detector's verdicts.
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
std::error_code basic_router<Address>::receive(const Address& from, std::span<const std::byte> bytes,
                                               time_point now) {
  if (state_ == router_state::idle || state_ == router_state::left) return errc::not_joined;
  // The same checks codec_.decode(bytes) makes, in two steps so that a
  // dispatcher's envelope takes the second alone.
  auto env = wire::decode_envelope(bytes, codec_.limits());
  if (!env) {
    last_now_ = std::max(last_now_, now);
    ++stats_.messages_received;
    ++stats_.rejected;
    return env.error();
  }
  return receive(from, *env, now);
}

template <class Address>
std::error_code basic_router<Address>::receive(const Address& from, const wire::envelope& env,
                                               time_point now) {
  if (state_ == router_state::idle || state_ == router_state::left) return errc::not_joined;
  last_now_ = std::max(last_now_, now);
  ++stats_.messages_received;
  auto decoded = codec_.decode(env);
  if (!decoded) {
    ++stats_.rejected;
    return decoded.error();
  }
  const node_id sender = decoded->sender;
  if (sender == self_.id) {  // our own id from elsewhere: a loop or an impostor
    ++stats_.rejected;
    return errc::duplicate_node;
  }
  const std::error_code ec =
      std::visit([&](auto& m) { return handle(from, sender, m, now); }, decoded->message);
  check_invariants();
  return ec;
}

template <class Address>
void basic_router<Address>::tick(time_point now) {
  expire_requests(now);
  while (!dead_order_.empty() && dead_since_.front() + config_.dead_peer_ttl <= now) {
    dead_.erase(dead_order_.front());
    dead_order_.pop_front();
    dead_since_.pop_front();
  }
  if (state_ != router_state::joined) return;
  if (now >= next_stabilize_) {
    next_stabilize_ = now + jittered(config_.stabilize_period);
    if (!stabilizing_) start_stabilize(now);
  }
  if (now >= next_fix_) {
    next_fix_ = now + config_.fix_fingers_period;
    fix_fingers(now);
  }
  if (now >= next_check_pred_) {
    next_check_pred_ = now + config_.check_predecessor_period;
    if (pred_ && !pending_check_pred_) {
      if (auto req = request(pred_->id, pred_->address, req_kind::check_predecessor, 0, now))
        send(pred_->address, detail::state_request{*req});
    }
  }
  check_invariants();
}

template <class Address>
std::optional<time_point> basic_router<Address>::next_wakeup() const noexcept {
  std::optional<time_point> t;
  if (state_ == router_state::joined) t = std::min({next_stabilize_, next_fix_, next_check_pred_});
  if (!requests_.empty()) {
    const time_point deadline = requests_.begin()->second.deadline;
    t = t ? std::min(*t, deadline) : deadline;
  }
  return t;
}

template <class Address>
auto basic_router<Address>::take_outbox() -> outbox_type {
  outbox_type out = std::move(out_);
  out_.clear();  // a moved-from vector is valid but unspecified
  return out;
}

template <class Address>
void basic_router<Address>::mark_dead(node_id id) {
  if (id == self_.id) return;
  suspect(id);
  check_invariants();
}

template <class Address>
void basic_router<Address>::mark_alive(node_id id) {
  forget_dead(id);
}

}  // namespace dhtkit::chord
