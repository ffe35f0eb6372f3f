// Merkle anti-entropy: one exchange per interval with one peer over one slice of the
// ring, roots first, descending into differing subtrees, then the entries of the
// differing buckets both ways; equal subtrees confirm tombstones for collection.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage, replica_placement Placement>
std::uint32_t basic_replica<Storage, Placement>::ranges() const noexcept {
  return 1u << config_.ae_range_bits;
}

template <storage Storage, replica_placement Placement>
std::uint64_t basic_replica<Storage, Placement>::range_begin(std::uint32_t range) const noexcept {
  return config_.ae_range_bits == 0 ? 0 : std::uint64_t{range} << (64 - config_.ae_range_bits);
}

template <storage Storage, replica_placement Placement>
std::uint64_t basic_replica<Storage, Placement>::range_end(std::uint32_t range) const noexcept {
  return range + 1 == ranges() ? 0 : range_begin(range + 1);
}

// f(key, position, entry) for the keys of `range` that both we and `peer` replicate.
template <storage Storage, replica_placement Placement>
template <class F>
void basic_replica<Storage, Placement>::shared_keys(std::uint32_t range, node_id peer, F&& f) const {
  store_.for_each_in_range(range_begin(range), range_end(range),
                           [&](std::string_view key, const versioned_entry& e) {
                             const std::uint64_t pos = placement_.position(key);
                             const auto& pl = placement_.replicas(pos, config_.n);
                             bool me = false, them = false;
                             for (const node_id& x : pl) me = me || x == self_, them = them || x == peer;
                             if (me && them) f(key, pos, e);
                           });
}

template <storage Storage, replica_placement Placement>
std::uint64_t basic_replica<Storage, Placement>::digest(std::string_view key, const versioned_entry& e) {
  std::uint64_t h = xxh64(key);
  auto mix = [&](std::uint64_t v) { h = mix64(h ^ v); };
  for (const auto& c : e.context().entries()) mix(c.node.value), mix(c.counter);
  for (const versioned_value& v : e.siblings()) {
    mix(v.version.node.value);
    mix(v.version.counter);
    mix(v.tombstone ? 1 : 2);
    mix(static_cast<std::uint64_t>(v.expires_at.time_since_epoch().count()));
    mix(xxh64(std::string_view(reinterpret_cast<const char*>(v.value.data()), v.value.size())));
  }
  return h;
}

template <storage Storage, replica_placement Placement>
merkle_tree basic_replica<Storage, Placement>::build_tree(std::uint32_t range, node_id peer) const {
  merkle_tree t(config_.merkle, range_begin(range), config_.ae_range_bits);
  shared_keys(range, peer, [&](std::string_view key, std::uint64_t pos, const versioned_entry& e) {
    if (!e.empty()) t.insert(pos, digest(key, e));  // markers are not compared, only shipped
  });
  return t;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::start_anti_entropy(time_point now) {
  if (session_ && session_->started + config_.ae_session_timeout > now) return;
  session_.reset();
  const auto& nodes = placement_.peers();
  if (nodes.size() < 2) return;
  // Walk (range, peer) pairs; skip peers believed down.
  for (std::size_t tries = 0; tries < nodes.size() * ranges(); ++tries) {
    ++ae_cursor_;
    const node_id peer = nodes[ae_cursor_ % nodes.size()];
    const auto range = static_cast<std::uint32_t>((ae_cursor_ / nodes.size()) % ranges());
    if (peer == self_ || !healthy(peer, now)) continue;
    ae_session s;
    s.id = next_session_++;
    s.peer = peer;
    s.range = range;
    s.level = 0;
    s.sent = {0};
    s.started = now;
    const merkle_tree t = build_tree(range, peer);
    send(peer, detail::repl::ae_hashes{s.id, range, 0, {0}, {t.root()}});
    session_ = std::move(s);
    ++stats_.ae_sessions;
    return;
  }
}

template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::valid_range(std::uint32_t range) const noexcept {
  return range < ranges();
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::ae_hashes& m, time_point) {
  const merkle_tree probe(config_.merkle, 0, config_.ae_range_bits);
  if (!valid_range(m.range) || m.level > probe.depth() || m.index.size() != m.hash.size() ||
      m.index.size() > config_.ae_max_descend * probe.fanout())
    return (void)++stats_.rejected;
  for (std::uint32_t i : m.index)
    if (i >= probe.width(m.level)) return (void)++stats_.rejected;
  const merkle_tree t = build_tree(m.range, from);
  detail::repl::ae_diff reply{m.session, m.range, m.level, {}};
  for (std::size_t i = 0; i < m.index.size(); ++i)
    if (t.hash(m.level, m.index[i]) != m.hash[i]) reply.differing.push_back(m.index[i]);
  send(from, reply);
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::ae_diff& m, time_point now) {
  if (!session_ || session_->id != m.session || session_->peer != from || session_->range != m.range ||
      session_->level != m.level)
    return;
  ae_session& s = *session_;
  // A strictly increasing subset of what we sent (s.sent is increasing): so
  // at most s.sent.size() entries, and no duplicate to make us repeat work.
  for (std::size_t i = 0; i < m.differing.size(); ++i) {
    if ((i > 0 && m.differing[i] <= m.differing[i - 1]) ||
        !std::binary_search(s.sent.begin(), s.sent.end(), m.differing[i]))
      return (void)++stats_.rejected;
  }
  const merkle_tree t = build_tree(s.range, from);
  confirm_equal(s, m.differing, t, now);
  if (m.differing.empty()) {
    session_.reset();
    return;
  }
  if (m.level == t.depth()) {
    s.buckets.assign(m.differing.begin(),
                     m.differing.begin() +
                         static_cast<std::ptrdiff_t>(std::min(m.differing.size(), config_.ae_max_buckets)));
    detail::repl::ae_push push{s.id, s.range, s.buckets, entries_of(s.range, from, s.buckets, t)};
    stats_.ae_keys_sent += push.entries.size();
    send(from, push);
    return;
  }
  detail::repl::ae_hashes next{s.id, s.range, m.level + 1, {}, {}};
  const std::size_t descend = std::min(m.differing.size(), config_.ae_max_descend);
  for (std::size_t i = 0; i < descend; ++i) {
    for (std::uint32_t c = m.differing[i] * t.fanout(); c < (m.differing[i] + 1) * t.fanout(); ++c) {
      next.index.push_back(c);
      next.hash.push_back(t.hash(m.level + 1, c));
    }
  }
  s.level = m.level + 1;
  s.sent = next.index;
  send(from, next);
}

template <storage Storage, replica_placement Placement>
std::vector<detail::repl::key_entry> basic_replica<Storage, Placement>::entries_of(
    std::uint32_t range, node_id peer, const std::vector<std::uint32_t>& buckets,
    const merkle_tree& t) const {
  std::vector<detail::repl::key_entry> out;
  shared_keys(range, peer, [&](std::string_view key, std::uint64_t pos, const versioned_entry& e) {
    if (out.size() >= config_.ae_max_keys) return;
    if (std::find(buckets.begin(), buckets.end(), t.bucket_of(pos)) != buckets.end())
      out.push_back({std::string(key), e});
  });
  return out;
}

// Tombstone-only keys under subtrees the peer reported equal are confirmed by it.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::confirm_equal(const ae_session& s,
                                                      const std::vector<std::uint32_t>& differing,
                                                      const merkle_tree& t, time_point now) {
  const auto replicas_needed = config_.n - 1;
  shared_keys(s.range, s.peer, [&](std::string_view key, std::uint64_t pos, const versioned_entry& e) {
    if (e.empty()) return;
    for (const versioned_value& v : e.siblings())
      if (!v.tombstone) return;
    const std::uint32_t a = t.ancestor(s.level, t.bucket_of(pos));
    if (std::find(s.sent.begin(), s.sent.end(), a) == s.sent.end()) return;
    if (std::find(differing.begin(), differing.end(), a) != differing.end()) return;
    tomb_state& ts = tombs_[std::string(key)];
    ts.confirmed.insert(s.peer);
    const auto pl = replicas_of(key, config_.n);
    std::size_t others = 0;
    for (const node_id& x : pl) others += (x != self_ && ts.confirmed.contains(x)) ? 1 : 0;
    if (others >= std::min<std::size_t>(replicas_needed, pl.size() - 1) && !ts.settled_at)
      ts.settled_at = now;
  });
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::merge_entries(node_id from, std::uint32_t range,
                                                      const std::vector<detail::repl::key_entry>& entries) {
  for (const auto& ke : entries) {
    if (!valid_key(ke.key) || !valid_entry(ke.entry)) {
      ++stats_.rejected;
      continue;
    }
    const std::uint64_t pos = placement_.position(ke.key);
    const std::uint64_t b = range_begin(range);
    if (config_.ae_range_bits != 0 && ((pos - b) >> (64 - config_.ae_range_bits)) != 0) {
      ++stats_.rejected;
      continue;
    }
    if (!is_true_replica(ke.key, self_, config_.n) || !is_true_replica(ke.key, from, config_.n)) {
      ++stats_.rejected;
      continue;
    }
    auto changed = store_.merge(ke.key, ke.entry);
    if (changed && *changed) {
      ++stats_.ae_keys_repaired;
      changed_by_merge(ke.key);
    }
  }
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::ae_push& m, time_point) {
  const merkle_tree t(config_.merkle, valid_range(m.range) ? range_begin(m.range) : 0, config_.ae_range_bits);
  if (!valid_range(m.range) || m.buckets.size() > config_.ae_max_buckets ||
      m.entries.size() > config_.ae_max_keys)
    return (void)++stats_.rejected;
  for (std::uint32_t b : m.buckets)
    if (b >= t.buckets()) return (void)++stats_.rejected;
  merge_entries(from, m.range, m.entries);
  detail::repl::ae_pull reply{m.session, m.range, entries_of(m.range, from, m.buckets, t)};
  stats_.ae_keys_sent += reply.entries.size();
  send(from, reply);
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::ae_pull& m, time_point) {
  if (!session_ || session_->id != m.session || session_->peer != from || session_->range != m.range) return;
  if (m.entries.size() > config_.ae_max_keys) return (void)++stats_.rejected;
  merge_entries(from, m.range, m.entries);
  session_.reset();
}

}  // namespace dhtkit
