// Test helper: drive an asio::io_context until a condition holds or a bound of
// wall time passes. The condition is checked after every handler and at least
// every 50 ms, so one that changes without a handler running is seen too.
#pragma once

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>

namespace dhtkit::test {

template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return done();
    io.restart();
    io.run_one_for(
        std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(50)));
  }
  return true;
}

}  // namespace dhtkit::test
