// Seeds for randomized tests.
//
// A randomized test runs a range of seeds; when one fails, the seed is in the
// failure message together with the command that replays exactly that seed:
//
//   for (std::uint64_t seed : dhtkit::test::seeds(200)) {
//     DHTKIT_SEED_SCOPE(seed);     // printed with any failing assertion below
//     run_scenario(seed);
//   }
//
// DHTKIT_SEED=<n> in the environment replaces the range with that one seed;
// DHTKIT_SEEDS=<count> changes how many seeds a test runs.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/catch.hpp"

namespace dhtkit::test {

inline std::vector<std::uint64_t> seeds(std::uint64_t default_count, std::uint64_t first = 1) {
  if (const char* one = std::getenv("DHTKIT_SEED")) return {std::strtoull(one, nullptr, 10)};
  std::uint64_t count = default_count;
  if (const char* n = std::getenv("DHTKIT_SEEDS")) count = std::strtoull(n, nullptr, 10);
  std::vector<std::uint64_t> out;
  out.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

}  // namespace dhtkit::test

#define DHTKIT_SEED_SCOPE(seed)                                                       \
  INFO("seed " << (seed) << " (replay: DHTKIT_SEED=" << (seed) << " <test binary> \"" \
               << Catch::getResultCapture().getCurrentTestName() << "\")")
