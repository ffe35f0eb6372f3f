// basic_swim's probing: SWIM's failure detector proper -- one probe per
// period round-robin over a reshuffled list, ping-req through k helpers when
// the direct ping times out, Lifeguard's local health from missed acks and
// nacks, and the relays this node runs for other members' ping-reqs.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
std::optional<node_id> basic_swim<Address>::next_probe_target() {
  for (std::size_t attempts = 0; attempts <= probe_order_.size() + 1; ++attempts) {
    if (probe_pos_ >= probe_order_.size()) {
      probe_order_.clear();
      for (std::size_t i = 1; i < members_.size(); ++i)
        if (is_live(members_[i].state)) probe_order_.push_back(members_[i].id);
      for (std::size_t i = probe_order_.size(); i > 1; --i)
        std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
      probe_pos_ = 0;
      if (probe_order_.empty()) return std::nullopt;
    }
    const node_id id = probe_order_[probe_pos_++];
    if (const record* m = find_record(id); m != nullptr && m->id != self_id() && is_live(m->state)) return id;
  }
  return std::nullopt;
}

template <class Address>
void basic_swim<Address>::start_probe(time_point now) {
  if (probe_.active) finish_probe(now);
  const duration interval =
      config_.local_health ? awareness_.scale(config_.probe_interval) : config_.probe_interval;
  next_probe_at_ = now + interval;
  const auto target = next_probe_target();
  if (!target) return;
  const record& m = *find_record(*target);
  ++stats_.probes;
  probe_ = probe{};
  probe_.active = true;
  probe_.target = m.id;
  probe_.seq = rng_.next();
  probe_.direct_deadline =
      now + (config_.local_health ? awareness_.scale(config_.probe_timeout) : config_.probe_timeout);
  probe_.end = now + interval;
  ping_msg ping{probe_.seq, m.id, {}};
  queue_.take(add_buddy(m.id, gossip_budget(ping), ping.gossip), retransmit_limit(), ping.gossip);
  ++stats_.pings_sent;
  send(m.address, ping);
}

template <class Address>
void basic_swim<Address>::send_ping_reqs(time_point now) {
  probe_.indirect_sent = true;
  const record* target = find_record(probe_.target);
  if (target == nullptr) return;
  const node_id target_id = target->id;
  picked_.clear();
  pick_random(config_.indirect_checks, picked_,
              [&](const record& m) { return m.state == member_state::alive && m.id != target_id; });
  for (std::size_t i : picked_) {
    const record& helper = members_[i];
    probe_.helpers.push_back(helper.id);
    probe_.nacked.push_back(false);
    ping_req_msg req{probe_.seq, target->id, target->address, {}};
    queue_.take(gossip_budget(req), retransmit_limit(), req.gossip);
    ++stats_.ping_reqs_sent;
    send(helper.address, req);
  }
  (void)now;
}

template <class Address>
void basic_swim<Address>::finish_probe(time_point now) {
  probe_.active = false;
  if (probe_.acked) return;
  if (!probe_.indirect_sent) send_ping_reqs(now);  // a stretched tick skipped the deadline
  if (config_.local_health) {
    // Lifeguard: missing nacks mean the problem may be ours, not the target's.
    if (config_.nacks && !probe_.helpers.empty()) {
      const auto nacks = static_cast<int>(std::count(probe_.nacked.begin(), probe_.nacked.end(), true));
      awareness_.apply_delta(static_cast<int>(probe_.helpers.size()) - nacks);
    } else {
      awareness_.apply_delta(1);
    }
  }
  record* m = find_record(probe_.target);
  if (m == nullptr || !is_live(m->state)) return;
  ++stats_.probe_failures;
  on_suspect(
      update{
          m->id, m->address, m->incarnation, static_cast<std::uint8_t>(member_state::suspect), self_id(), {}},
      now);
}

template <class Address>
void basic_swim<Address>::expire_relays(time_point now) {
  for (std::size_t i = 0; i < relays_.size();) {
    relay& r = relays_[i];
    if (!r.nack_sent && now >= r.nack_at) {
      r.nack_sent = true;
      ++stats_.nacks_sent;
      send(r.origin, nack_msg{r.origin_seq});
    }
    if (now >= r.expire) {
      relays_[i] = std::move(relays_.back());
      relays_.pop_back();
    } else {
      ++i;
    }
  }
}

}  // namespace dhtkit::membership
