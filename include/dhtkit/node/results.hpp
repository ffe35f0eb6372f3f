/// @file
/// What the Asio node's operations complete with: how many replicas took a
/// write, or what a read found, next to the std::error_code that says whether
/// it succeeded. On failure the counts say how far it got (quorum_not_reached:
/// `acks` of `required`), so a caller can tell one slow replica from none.
///
/// @code
/// // node.async_put("user:42", value, context, [](std::error_code ec, dhtkit::put_result r) {
/// //   if (ec) std::printf("%s\n", r.describe(ec).c_str());   // "quorum not reached: 1 of 2 ..."
/// // });
/// dhtkit::put_result r;
/// r.acks = 1;
/// r.required = 2;
/// std::string why = r.describe(dhtkit::errc::quorum_not_reached);
/// @endcode
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/replication/versioned_value.hpp"

namespace dhtkit {

/// The outcome of async_put / async_erase beside its error code: replicas
/// that acknowledged the write, and how many were required (W).
struct put_result {
  std::uint32_t acks = 0;      ///< replicas that acknowledged before the outcome
  std::uint32_t required = 0;  ///< W for this request

  /// One line for logs, given the error the operation completed with.
  std::string describe(std::error_code ec = {}) const {
    if (!ec) return "stored on " + std::to_string(acks) + " replicas (W=" + std::to_string(required) + ")";
    return ec.message() + ": " + std::to_string(acks) + " of " + std::to_string(required) +
           " required replicas acknowledged";
  }
};

/// The outcome of async_get beside its error code: the live versions found
/// (siblings when writes were concurrent), the causal context to pass to the
/// next put of the key, and how many replicas replied out of R.
struct get_result {
  std::vector<versioned_value> siblings{};  ///< empty: not found, or deleted
  version_vector context{};                 ///< pass to the next put or erase of this key
  std::uint32_t replies = 0;                ///< replicas that replied before the outcome
  std::uint32_t required = 0;               ///< R for this request

  /// One line for logs, given the error the operation completed with.
  std::string describe(std::error_code ec = {}) const {
    if (!ec)
      return std::to_string(siblings.size()) + " version(s) from " + std::to_string(replies) + " replicas";
    return ec.message() + ": " + std::to_string(replies) + " of " + std::to_string(required) +
           " required replicas replied";
  }
};

}  // namespace dhtkit
