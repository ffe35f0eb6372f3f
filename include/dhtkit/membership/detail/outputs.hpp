// basic_swim's outputs: everything that leaves the core goes through here --
// messages encoded into the bounded outbox (send), events (emit), and updates
// queued for piggybacking (enqueue, with the buddy system's suspicion first).
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
typename basic_swim<Address>::outbox_type basic_swim<Address>::take_outbox() {
  outbox_type out = std::move(outbox_);
  outbox_.clear();
  return out;
}

template <class Address>
void basic_swim<Address>::emit(event_kind kind, const record& m, time_point now,
                               const Address& conflict_address) {
  if (outbox_.events.size() >= config_.max_outbox_messages) {
    ++stats_.outbox_dropped;
    return;
  }
  outbox_.events.push_back(event_type{kind, m.id, m.address, m.incarnation, now, conflict_address});
}

template <class Address>
typename basic_swim<Address>::update basic_swim<Address>::make_update(const record& m, node_id from) {
  update u{m.id, m.address, m.incarnation, static_cast<std::uint8_t>(m.state), from, {}};
  if (m.state == member_state::alive) u.metadata = m.metadata;
  return u;
}

template <class Address>
void basic_swim<Address>::enqueue(update u) {
  const node_id subject = u.id;
  const std::size_t size = detail::encoded_size(u, scratch_);
  queue_.push(subject, std::move(u), size);
}

template <class Address>
std::uint32_t basic_swim<Address>::retransmit_limit() const noexcept {
  return std::max<std::uint32_t>(1, detail::retransmit_limit(config_.retransmit_multiplier, live_count()));
}

// Bytes left for piggybacked updates in a message whose other fields are `msg`'s.
template <class Address>
template <class Msg>
std::size_t basic_swim<Address>::gossip_budget(const Msg& msg) {
  const std::size_t base = wire::header_size + 1 + detail::encoded_size(msg, scratch_);
  return base >= config_.max_message_size ? 0 : config_.max_message_size - base;
}

template <class Address>
template <class Msg>
void basic_swim<Address>::send(const Address& to, const Msg& msg) {
  if (outbox_.messages.size() >= config_.max_outbox_messages) {
    ++stats_.outbox_dropped;
    return;
  }
  auto bytes = codec_.encode(msg, self_id());
  if (!bytes) {
    // Only reachable if the packing arithmetic were wrong: count, do not send.
    assert(false && "swim: encoded message over the configured limits");
    ++stats_.outbox_dropped;
    return;
  }
  ++stats_.messages_sent;
  stats_.bytes_sent += bytes->size();
  outbox_.messages.push_back(dhtkit::outgoing_message<Address>{to, std::move(*bytes)});
}

// Lifeguard's buddy system: a member we suspect is told so first, so it can
// refute. memberlist does this on probes only; here every message with room
// for updates carries it, because the refutation it provokes comes straight
// back to us -- the one member that needs it (a refutation gossip missed is
// what turns a suspicion into a false DEAD). Returns the budget left.
template <class Address>
std::size_t basic_swim<Address>::add_buddy(node_id to, std::size_t budget, std::vector<update>& out) {
  if (!config_.buddy_system) return budget;
  const record* m = find_record(to);
  if (m == nullptr || m->state != member_state::suspect) return budget;
  update u = make_update(*m, self_id());
  const std::size_t size = detail::encoded_size(u, scratch_);
  if (size > budget) return budget;
  out.push_back(std::move(u));
  return budget - size;
}

}  // namespace dhtkit::membership
