// receive() and one handle() per request/reply message: what a replica does with each
// message, after checking it against its configuration (everything from the network
// is untrusted). The anti-entropy messages are handled in anti_entropy.hpp.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

// The bytes are checked as an envelope here and decoded by the overload
// below, the one a dispatcher that already checked the envelope calls.
template <storage Storage, replica_placement Placement>
std::error_code basic_replica<Storage, Placement>::receive(const node_id& from,
                                                           std::span<const std::byte> bytes, time_point now) {
  auto env = wire::decode_envelope(bytes, codec_.limits());
  if (!env) {
    ++stats_.messages_received;
    ++stats_.rejected;
    return env.error();
  }
  return receive(from, *env, now);
}

template <storage Storage, replica_placement Placement>
std::error_code basic_replica<Storage, Placement>::receive(const node_id& from, const wire::envelope& env,
                                                           time_point now) {
  ++stats_.messages_received;
  auto decoded = codec_.decode(env);
  if (!decoded) {
    ++stats_.rejected;
    return decoded.error();
  }
  if (decoded->sender != from || from == self_) {
    ++stats_.rejected;
    return errc::invalid_argument;
  }
  if (!placement_.is_member(from)) {
    ++stats_.rejected;
    return errc::not_a_member;
  }
  suspect_.erase(from);  // it is alive
  // The handlers count what they refuse; the count going up is how receive()
  // learns of it, and reject() / a refused forward leave the reason they sent.
  const std::uint64_t rejected_before = stats_.rejected;
  rejection_ = {};
  std::visit([&](auto& m) { handle(from, m, now); }, decoded->message);
  if (stats_.rejected == rejected_before) return {};
  return rejection_ ? rejection_ : make_error_code(errc::invalid_argument);
}

template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::valid_key(const std::string& key) const {
  return !key.empty() && key.size() <= config_.max_key_size;
}

template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::valid_entry(const versioned_entry& e) const {
  for (const versioned_value& v : e.siblings())
    if (v.value.size() > config_.max_value_size) return false;
  return true;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::replicate& m,
                                               time_point now) {
  if (!valid_key(m.key) || !valid_entry(m.entry)) return reject(from, m.request, errc::invalid_argument);
  if (m.hinted_for != node_id{}) {
    const bool owner = is_true_replica(m.key, self_, config_.n);
    // A stand-in: the named owner must be a true replica of the key and we must not be.
    if (owner || m.hinted_for == self_ || !is_true_replica(m.key, m.hinted_for, config_.max_n))
      return reject(from, m.request, errc::invalid_argument);
    if (auto ec = hints_.add(m.key, m.hinted_for, now)) return reject(from, m.request, ec);
    ++stats_.hints_stored;
  } else if (!is_true_replica(m.key, self_, config_.max_n)) {
    return reject(from, m.request, errc::not_a_member);
  }
  auto changed = store_.merge(m.key, m.entry);
  if (!changed) {
    if (m.hinted_for != node_id{} && !store_.get(m.key)) hints_.remove(m.key, m.hinted_for);
    return reject(from, m.request, changed.error());
  }
  if (*changed) changed_by_merge(m.key);
  if (m.request != 0) send(from, detail::repl::replicate_ack{m.request, 0});
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::reject(node_id from, std::uint64_t request, std::error_code ec) {
  ++stats_.rejected;
  rejection_ = ec;
  if (request != 0) send(from, detail::repl::replicate_ack{request, static_cast<std::uint16_t>(ec.value())});
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::replicate_ack& m,
                                               time_point now) {
  if (m.request & handoff_flag) {
    auto it = handoffs_.find(m.request);
    if (it == handoffs_.end()) return;
    handoff_offer offer = std::move(it->second);
    handoffs_.erase(it);
    if (m.status != 0 || offer.owner != from) return;
    // A hinted write that arrived after the offer was sent is not in what the
    // owner acknowledged: keep the hint (and the copy) for the next offer.
    if (auto local = store_.get(offer.key); local && offer.sent.would_change(*local)) return;
    if (hints_.remove(offer.key, offer.owner)) ++stats_.hints_handed_off;
    drop_if_orphan(offer.key);
    return;
  }
  auto it = puts_.find(m.request);
  if (it == puts_.end()) return;
  put_op& p = it->second;
  for (auto& t : p.targets) {
    if (t.node != from || t.acked) continue;
    if (m.status != 0) {
      t.sent_at = now - config_.replica_timeout;  // refused: replace it at the next tick
      return;
    }
    t.acked = true;
    ++p.acks;
    check_put(it->first, p);
    return;
  }
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::read_request& m,
                                               time_point) {
  if (!valid_key(m.key)) return (void)++stats_.rejected;
  detail::repl::read_reply reply;
  reply.request = m.request;
  if (!placement_.ready(placement_.position(m.key))) {
    // Still receiving this range: what the store holds may be missing
    // acknowledged writes, so the coordinator asks a previous holder instead.
    reply.status = static_cast<std::uint16_t>(errc::not_ready);
  } else if (auto e = store_.get(m.key)) {
    reply.found = true;
    reply.entry = std::move(*e);
  }
  send(from, reply);
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::read_reply& m,
                                               time_point now) {
  auto it = gets_.find(m.request);
  if (it == gets_.end() || !valid_entry(m.entry)) return;
  if (!m.found && !m.entry.empty()) return (void)++stats_.rejected;
  if (m.status != 0) {
    // not_ready is the only refusal a replica sends, and it carries no entry.
    if (m.status != static_cast<std::uint16_t>(errc::not_ready) || m.found) return (void)++stats_.rejected;
    on_not_ready(it->first, it->second, from, now);
    check_get(it->first, it->second, now);
    return;
  }
  on_read_reply(it->first, it->second, from, m.found ? std::optional<versioned_entry>(m.entry) : std::nullopt,
                now);
  check_get(it->first, it->second, now);
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::forward_put& m,
                                               time_point now) {
  const duration timeout(m.timeout);
  auto refuse = [&](std::error_code ec) {
    ++stats_.rejected;
    rejection_ = ec;
    send(from, detail::repl::forward_reply{m.request, static_cast<std::uint16_t>(ec.value()), 0, m.w});
  };
  if (!valid_key(m.key) || m.value.size() > config_.max_value_size || m.n < 1 || m.n > config_.max_n ||
      m.w < 1 || m.w > m.n || !valid_timeout(timeout) || (m.tombstone && !m.value.empty()))
    return refuse(errc::invalid_argument);
  if (!is_true_replica(m.key, self_, m.n)) return refuse(errc::not_a_member);
  if (pending() >= config_.max_pending) return refuse(errc::limit_exceeded);
  // A duplicated forward must not become a second write (a second dot, a false sibling).
  const auto origin = std::make_pair(from, m.request);
  if (seen_forwards_.contains(origin)) {
    // Its accept may have been lost: say again that we have it, if still at work.
    for (const auto& pending_put : puts_)
      if (pending_put.second.origin == origin) send(from, detail::repl::forward_accept{m.request});
    return;
  }
  seen_forwards_.insert(origin);
  seen_order_.push_back(origin);
  if (seen_order_.size() > config_.max_pending) {
    seen_forwards_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  const request_id id = next_id_++;
  coordinate(id, m.key, m.value, m.tombstone, m.context, time_point(duration(m.expires_at)), m.n, m.w,
             now + timeout, now, std::make_pair(from, m.request));
  // Numbered and stored, outcome pending: the forwarder must not pass it on
  // (that would number the same write twice).
  if (puts_.contains(id)) send(from, detail::repl::forward_accept{m.request});
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::forward_accept& m,
                                               time_point) {
  auto it = forwards_.find(m.request);
  if (it == forwards_.end()) return;
  const auto& tried = it->second.tried;
  if (std::find(tried.begin(), tried.end(), from) == tried.end()) return (void)++stats_.rejected;
  it->second.accepted = true;
  it->second.to = from;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::handle(node_id from, const detail::repl::forward_reply& m,
                                               time_point) {
  auto it = forwards_.find(m.request);
  if (it == forwards_.end()) return;
  // Request ids are sequential: another member must not be able to complete it.
  const auto& tried = it->second.tried;
  if (std::find(tried.begin(), tried.end(), from) == tried.end()) return (void)++stats_.rejected;
  // Success short of the quorum asked for is a contradiction (found by
  // replication_fuzz: it completed the put as stored on 0 of W replicas):
  // no answer; the forward waits for a real one or its deadline.
  if (m.status == 0 && m.acks < it->second.message.w) return (void)++stats_.rejected;
  std::error_code ec;
  if (m.status != 0) ec = std::error_code(m.status, error_category());
  complete_put(it->first, it->second.message.key, ec, m.acks, it->second.message.w);
  forwards_.erase(it);
}

}  // namespace dhtkit
