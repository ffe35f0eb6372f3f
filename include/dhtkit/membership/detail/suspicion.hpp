// basic_swim's suspicion: the timeout a suspect has to refute (Lifeguard's
// dynamic one, shrinking with independent confirmations), its expiry into
// dead, and this node's own refutation.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
void basic_swim<Address>::start_suspicion(const record& m, node_id from, time_point now) {
  suspicion s;
  s.start = now;
  const std::size_t n = live_count();
  s.min = detail::suspicion_min_timeout(config_.suspicion_multiplier, n, config_.probe_interval);
  if (config_.dynamic_suspicion) {
    s.max = s.min * static_cast<duration::rep>(config_.suspicion_max_timeout_multiplier);
    // memberlist: k = multiplier - 2 confirmations expected, none in a tiny group.
    s.k = config_.suspicion_multiplier > 2 ? config_.suspicion_multiplier - 2 : 0;
    if (n < s.k + 2) s.k = 0;
  } else {
    s.max = s.min;
    s.k = 0;
  }
  s.first = from;
  s.deadline = now + detail::suspicion_timeout(s.min, s.max, 0, s.k);
  suspicions_[m.id] = std::move(s);
}

// True if `from` is a new independent confirmation.
template <class Address>
bool basic_swim<Address>::confirm(suspicion& s, node_id from) {
  if (s.k == 0 || s.confirmers.size() >= s.k || from == s.first) return false;
  if (std::find(s.confirmers.begin(), s.confirmers.end(), from) != s.confirmers.end()) return false;
  s.confirmers.push_back(from);
  s.deadline = s.start + detail::suspicion_timeout(s.min, s.max, s.confirmers.size(), s.k);
  return true;
}

template <class Address>
void basic_swim<Address>::expire_suspicions(time_point now) {
  expired_.clear();
  for (const auto& [id, s] : suspicions_)
    if (now >= s.deadline) expired_.push_back(id);
  std::sort(expired_.begin(), expired_.end());  // unordered_map order must not leak into the run
  for (node_id id : expired_) {
    record* m = find_record(id);
    assert(m != nullptr && m->state == member_state::suspect);
    suspicions_.erase(id);
    set_state(*m, member_state::dead, now);
    emit(event_kind::dead, *m, now);
    enqueue(make_update(*m, self_id()));
  }
}

template <class Address>
void basic_swim<Address>::refute(std::uint32_t accused, time_point now) {
  record& me = self();
  me.incarnation = std::max(me.incarnation, accused) + 1;
  ++stats_.refutations;
  if (config_.local_health) awareness_.apply_delta(1);
  enqueue(make_update(me, me.id));
  (void)now;
}

}  // namespace dhtkit::membership
