/// @file
/// Lamport clock: a scalar logical clock whose timestamps are consistent with
/// causality (if event e1 happened before e2, then L(e1) < L(e2)) and, with the
/// node id as tie-break, totally ordered. Use it where a cheap total order of
/// events that respects causality is enough: last-writer-wins registers,
/// ordering log entries, breaking ties between concurrent proposals. It cannot
/// tell concurrent events apart from ordered ones; that needs a vector clock
/// (vector_clock.hpp).
///
/// @code
/// dhtkit::lamport_clock a{dhtkit::node_id{1}};
/// dhtkit::lamport_clock b{dhtkit::node_id{2}};
/// dhtkit::result<dhtkit::lamport_timestamp> sent = a.send();  // stamp an outgoing message
/// if (sent) {
///   dhtkit::result<dhtkit::lamport_timestamp> got = b.receive(*sent);
///   // got holds b's timestamp for the delivery: *sent < *got
/// }
/// @endcode
///
/// Overflow: the counter is 64 bits and is never allowed to wrap or saturate.
/// A tick() or send() at the maximum, or a receive() whose result would have
/// to exceed it, is refused with errc::limit_exceeded and leaves the clock
/// unchanged. Saturating would hand out equal times to causally ordered events
/// and silently break the clock condition; wrapping would invert it. Honest
/// counting never gets there (2^64 events), so in practice only a corrupt or
/// hostile peer's timestamp can trigger it, and refusing that message is the
/// right answer.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"

namespace dhtkit {

/// A Lamport time plus the node that issued it. Ordered by time, then by node,
/// so two distinct events never compare equal (each node issues each time at
/// most once): a total order that extends happened-before.
struct lamport_timestamp {
  std::uint64_t time = 0;
  node_id node{};

  friend constexpr auto operator<=>(const lamport_timestamp&, const lamport_timestamp&) = default;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(time, node);
  }
};

/// One node's Lamport clock: stamps local events, sends and deliveries.
class lamport_clock {
 public:
  static constexpr std::uint64_t max_time = std::numeric_limits<std::uint64_t>::max();

  /// `time` restores a clock persisted across a restart; a node that restarts
  /// from 0 after issuing timestamps could issue the same timestamp twice.
  explicit lamport_clock(node_id self, std::uint64_t time = 0) noexcept : self_(self), time_(time) {}

  node_id self() const noexcept { return self_; }

  /// The time of the last event this clock stamped (0 before the first).
  std::uint64_t time() const noexcept { return time_; }

  /// A local event: advances the clock and returns the event's timestamp.
  result<lamport_timestamp> tick() {
    if (time_ == max_time) return errc::limit_exceeded;
    ++time_;
    return lamport_timestamp{time_, self_};
  }

  /// Sending is a local event whose timestamp travels with the message.
  result<lamport_timestamp> send() { return tick(); }

  /// Delivery of a message stamped `stamp`: the clock moves past both its own
  /// time and the sender's, and the delivery event's timestamp is returned.
  result<lamport_timestamp> receive(const lamport_timestamp& stamp) {
    const std::uint64_t seen = stamp.time > time_ ? stamp.time : time_;
    if (seen == max_time) return errc::limit_exceeded;
    time_ = seen + 1;
    return lamport_timestamp{time_, self_};
  }

 private:
  node_id self_;
  std::uint64_t time_;
};

}  // namespace dhtkit
