/// @file
/// Time as the protocol cores see it.
///
/// Cores never read a clock: every call that needs the time is handed `now`.
/// The simulator produces time points from its virtual clock, the Asio driver
/// from std::chrono::steady_clock; both use the same types, so a core runs
/// unchanged on either.
///
/// @code
/// dhtkit::time_point t0{};                      // the simulator's epoch
/// dhtkit::time_point t1 = t0 + dhtkit::millis(500);
/// dhtkit::steady_clock_source clock;            // what a real driver uses
/// dhtkit::time_point now = clock.now();
/// @endcode
#pragma once

#include <chrono>
#include <concepts>

namespace dhtkit {

/// Durations, in nanoseconds.
using duration = std::chrono::nanoseconds;
/// A time on the driver's clock: steady_clock's, or the simulator's virtual one.
using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

constexpr duration millis(std::int64_t ms) noexcept { return std::chrono::milliseconds(ms); }
constexpr duration micros(std::int64_t us) noexcept { return std::chrono::microseconds(us); }
constexpr duration seconds(std::int64_t s) noexcept { return std::chrono::seconds(s); }

/// Something that can tell the time: the real clock for drivers on sockets, a
/// virtual one for the simulator.
template <class C>
concept clock_source = requires(C& c) {
  { c.now() } -> std::same_as<time_point>;
};

/// The real clock, for drivers on sockets: std::chrono::steady_clock.
struct steady_clock_source {
  time_point now() const noexcept {
    return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
  }
};

static_assert(clock_source<steady_clock_source>);

}  // namespace dhtkit
