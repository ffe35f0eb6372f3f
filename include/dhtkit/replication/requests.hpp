/// @file
/// What a client request to a replica looks like from outside: the per-request
/// options, the id put / erase / get return, the completion each one ends with,
/// and the outbox that carries completions and messages to the driver.
///
/// @code
/// dhtkit::request_options quick;
/// quick.timeout = dhtkit::millis(50);                   // this request only
/// quick.w = 1;                                          // one acknowledgement is enough
/// // dhtkit::request_id id = replica.put(key, value, context, now, quick);
/// // later, in take_outbox().puts: {id, key, error, acks, required}
/// dhtkit::put_completion done;
/// done.required = 1;
/// std::string text = done.describe();                   // "stored on 0 replicas (W=1)"
/// @endcode
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/replication/versioned_value.hpp"

namespace dhtkit {

/// Per-request overrides of the configured N, R, W and timeout. A request with
/// n outside [1, max_n], r or w outside [1, n], or a timeout outside
/// (0, 10 * request_timeout] fails at once with errc::invalid_argument (the
/// bound on the timeout is the one a true replica applies to a forwarded put,
/// and it keeps deadlines far from time_point overflow).
struct request_options {
  std::optional<std::uint32_t> n, r, w;
  std::optional<duration> timeout;
};

/// Names a client request from its call to its completion.
using request_id = std::uint64_t;

/// The outcome of a put or delete this node coordinated.
struct put_completion {
  request_id id = 0;
  std::string key;
  std::error_code error;       ///< quorum_not_reached, timed_out, too_many_siblings, invalid_argument, ...
  std::uint32_t acks = 0;      ///< replicas that acknowledged before the outcome
  std::uint32_t required = 0;  ///< W
  std::string describe() const {
    if (!error) return "stored on " + std::to_string(acks) + " replicas (W=" + std::to_string(required) + ")";
    return error.message() + ": " + std::to_string(acks) + " of " + std::to_string(required) +
           " required replicas acknowledged";
  }
};

/// The outcome of a get this node coordinated: the siblings found, or why none.
struct get_completion {
  request_id id = 0;
  std::string key;
  std::error_code error;
  std::uint32_t replies = 0;
  std::uint32_t required = 0;             ///< R
  std::vector<versioned_value> siblings;  ///< live versions only; empty: not found or deleted
  version_vector context;                 ///< pass to the next put of this key
  std::string describe() const {
    if (!error)
      return std::to_string(siblings.size()) + " version(s) from " + std::to_string(replies) + " replicas";
    return error.message() + ": " + std::to_string(replies) + " of " + std::to_string(required) +
           " required replicas replied";
  }
};

/// What the replica's calls produced, for the driver.
///
/// Messages (dhtkit::outgoing_message<node_id>: `to`, encoded `bytes`) from
/// message_outbox, and the completions of this node's client requests.
struct replica_outbox : message_outbox<node_id> {
  std::vector<put_completion> puts;
  std::vector<get_completion> gets;
  void clear() {
    messages.clear();
    puts.clear();
    gets.clear();
  }
  bool empty() const noexcept { return messages.empty() && puts.empty() && gets.empty(); }
};

}  // namespace dhtkit
