// basic_swim's random choice of members (helpers, gossip targets, push-pull
// peers), drawn from the core's seeded engine so runs replay.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

// Appends up to k distinct member indices (never self) satisfying `ok`.
// Rejection sampling keeps a pick O(k) in large groups; small groups (or
// bad luck) fall back to a scan.
template <class Address>
template <class Pred>
void basic_swim<Address>::pick_random(std::size_t k, std::vector<std::size_t>& out, Pred ok) {
  const std::size_t n = members_.size();
  if (k == 0 || n < 2) return;
  if (n > 4 * k + 16) {
    for (std::size_t attempt = 0; attempt < 8 * k + 16 && out.size() < k; ++attempt) {
      const std::size_t i = 1 + rng_.below(n - 1);
      if (ok(members_[i]) && std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
    }
    if (out.size() == k) return;
  }
  candidates_.clear();
  for (std::size_t i = 1; i < n; ++i)
    if (ok(members_[i]) && std::find(out.begin(), out.end(), i) == out.end()) candidates_.push_back(i);
  while (out.size() < k && !candidates_.empty()) {
    const std::size_t j = rng_.below(candidates_.size());
    out.push_back(candidates_[j]);
    candidates_[j] = candidates_.back();
    candidates_.pop_back();
  }
}

template <class Address>
template <class Pred>
std::optional<std::size_t> basic_swim<Address>::pick_one(Pred ok) {
  picked_.clear();
  pick_random(1, picked_, ok);
  if (picked_.empty()) return std::nullopt;
  return picked_[0];
}

}  // namespace dhtkit::membership
