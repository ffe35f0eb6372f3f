// Hinted handoff: a fallback offers the keys it holds for a down owner back to it,
// every handoff_interval, and drops its copy once the owner acknowledged a state that
// covers it; hints past hint_max_age are dropped.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handoff(time_point now) {
  handoffs_.clear();  // an offer unanswered for a whole interval is made again
  std::size_t offered = 0;
  std::vector<std::pair<std::string, node_id>> expired;
  for (const auto& [k, created] : hints_.all()) {
    if (created + config_.hint_max_age <= now) {
      expired.push_back(k);
      continue;
    }
    if (offered >= config_.handoff_batch || !healthy(k.second, now) || down_.contains(k.second)) continue;
    auto entry = store_.get(k.first);
    if (!entry) {
      expired.push_back(k);
      continue;
    }
    const std::uint64_t req = handoff_flag | next_handoff_id_++;
    send(k.second, detail::repl::replicate{req, k.first, *entry, node_id{}});
    handoffs_.emplace(req, handoff_offer{k.first, k.second, std::move(*entry)});
    ++offered;
  }
  for (const auto& k : expired) {
    hints_.remove(k.first, k.second);
    ++stats_.hints_expired;
    drop_if_orphan(k.first);
  }
}

// A fallback keeps a hinted key only while it has a hint for it, or while the
// may_drop hook says a rebalancing still needs the copy here.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::drop_if_orphan(const std::string& key) {
  if (hints_.has_key(key) || is_true_replica(key, self_, config_.n)) return;
  if (may_drop_ && !may_drop_(key)) return;
  store_.remove(key);
  touched(key);
}

}  // namespace dhtkit
