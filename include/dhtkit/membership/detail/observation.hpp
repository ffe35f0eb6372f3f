// basic_swim's observation: lookups of the member list for users and tests,
// and the invariant check the simulator tests run on every core.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
std::size_t basic_swim<Address>::live_count() const noexcept {
  return count(member_state::alive) + count(member_state::suspect);
}

template <class Address>
std::optional<typename basic_swim<Address>::member_type> basic_swim<Address>::find(node_id id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return to_member(members_[it->second]);
}

template <class Address>
std::optional<member_state> basic_swim<Address>::state_of(node_id id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return members_[it->second].state;
}

template <class Address>
std::vector<typename basic_swim<Address>::member_type> basic_swim<Address>::members() const {
  std::vector<member_type> out;
  out.reserve(members_.size());
  for (const record& r : members_) out.push_back(to_member(r));
  return out;
}

template <class Address>
bool basic_swim<Address>::check_invariants() const {
  std::size_t counts[4] = {};
  if (members_.empty() || members_[0].id != self_id()) return false;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    auto it = index_.find(members_[i].id);
    if (it == index_.end() || it->second != i) return false;
    ++counts[static_cast<std::size_t>(members_[i].state)];
    if (members_[i].metadata.size() > config_.max_metadata_bytes) return false;
  }
  if (index_.size() != members_.size() || members_.size() > config_.max_members) return false;
  for (std::size_t s = 0; s < 4; ++s)
    if (counts[s] != counts_[s]) return false;
  for (const auto& [id, s] : suspicions_) {
    auto it = index_.find(id);
    if (it == index_.end() || members_[it->second].state != member_state::suspect) return false;
  }
  return counts_[1] == suspicions_.size() + (self().state == member_state::suspect ? 1 : 0) &&
         relays_.size() <= config_.max_pending_relays &&
         outbox_.messages.size() <= config_.max_outbox_messages;
}

template <class Address>
typename basic_swim<Address>::record* basic_swim<Address>::find_record(node_id id) {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &members_[it->second];
}

template <class Address>
typename basic_swim<Address>::member_type basic_swim<Address>::to_member(const record& r) {
  return member_type{r.id, r.address, r.incarnation, r.state, r.metadata, r.state_changed};
}

}  // namespace dhtkit::membership
