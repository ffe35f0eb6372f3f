// Chord router: message handlers -- one handle() per message type, each
// returning what receive() returns: {} when taken (acted on or not),
// invalid_argument for content the router rejects (counted in stats().rejected).
//
// Out-of-line member definitions of dhtkit::chord::basic_router, kept apart
// so that router.hpp stays short enough to read first. Included at the end
// of dhtkit/chord/router.hpp; include that, not this.
#pragma once

namespace dhtkit::chord {

template <class Address>
std::error_code basic_router<Address>::handle(const Address& from, node_id sender,
                                              const detail::state_request& m, time_point) {
  if (state_ != router_state::joined) return {};
  forget_dead(sender);
  detail::state_reply<Address> reply;
  reply.request = m.request;
  reply.has_predecessor = pred_.has_value();
  if (pred_) reply.predecessor = *pred_;
  reply.successors = succ_;
  send(from, reply);
  return {};
}

template <class Address>
std::error_code basic_router<Address>::handle(const Address& from, node_id sender,
                                              const detail::state_reply<Address>& m, time_point now) {
  std::error_code ec;
  auto req = take_request(m.request, sender, from, ec);
  if (!req) return ec;
  const peer_type p{sender, req->address};
  if (!valid_list(sender, m.successors, config_.max_successor_list_length) ||
      (m.has_predecessor && m.predecessor.id == sender) || req->kind == req_kind::route) {
    // A hostile or broken answer, or a state reply to a routing request,
    // is no answer (else the lookup would wait forever for a request
    // already taken); nor does it clear the sender's misses, or a peer
    // answering only garbage would never be taken for dead.
    ++stats_.rejected;
    on_timeout(*req, now);
    return errc::invalid_argument;
  }
  forget_dead(sender);
  switch (req->kind) {
    case req_kind::stabilize_successor:
      on_stabilize_reply(p, m, now);
      break;
    case req_kind::stabilize_candidate:
      on_candidate_reply(p, m, now);
      break;
    case req_kind::check_predecessor:
      break;
    case req_kind::verify:
      if (auto it = lookups_.find(req->context); it != lookups_.end()) on_verify_reply(it->second, p, m, now);
      break;
    case req_kind::route:
      break;  // handled above
  }
  return {};
}

template <class Address>
std::error_code basic_router<Address>::handle(const Address&, node_id sender,
                                              const detail::rectify<Address>& m, time_point) {
  if (m.self.id != sender) {
    ++stats_.rejected;
    return errc::invalid_argument;
  }
  forget_dead(sender);
  on_rectify(m.self);
  return {};
}

template <class Address>
std::error_code basic_router<Address>::handle(const Address& from, node_id sender,
                                              const detail::find_request& m, time_point) {
  if (state_ != router_state::joined) return {};
  forget_dead(sender);
  detail::find_reply<Address> reply;
  reply.request = m.request;
  if (succ_.empty()) {
    reply.done = true;
    reply.nodes = {self_};
  } else if (detail::in_half_open(m.key, self_.id.value, succ_.front().id.value)) {
    reply.done = true;
    reply.nodes = succ_;
  } else {
    reply.nodes = closest_preceding(m.key, config_.lookup_candidates);
    if (detail::in_half_open(m.key, self_.id.value, succ_.back().id.value)) reply.successors = succ_;
  }
  send(from, reply);
  return {};
}

template <class Address>
std::error_code basic_router<Address>::handle(const Address& from, node_id sender,
                                              const detail::find_reply<Address>& m, time_point now) {
  std::error_code ec;
  auto req = take_request(m.request, sender, from, ec);
  if (!req) return ec;
  if (req->kind != req_kind::route) {
    // A routing reply to a state request (stabilize, check_predecessor,
    // verify): no answer, else stabilize or the lookup would stall forever.
    ++stats_.rejected;
    on_timeout(*req, now);
    return errc::invalid_argument;
  }
  forget_dead(sender);
  auto it = lookups_.find(req->context);
  if (it == lookups_.end()) return {};
  return on_route_reply(it->second, peer_type{sender, req->address}, m, now);
}

template <class Address>
std::error_code basic_router<Address>::handle(const Address&, node_id sender,
                                              const detail::leave_notice<Address>& m, time_point) {
  if (m.self.id != sender || !valid_list(sender, m.successors, config_.max_successor_list_length) ||
      (m.has_predecessor && m.predecessor.id == sender)) {
    ++stats_.rejected;
    return errc::invalid_argument;
  }
  if (state_ != router_state::joined) return {};
  on_leave(sender, m);
  return {};
}

}  // namespace dhtkit::chord
