// SWIM membership on the deterministic simulator.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/membership/config.hpp"
#include "dhtkit/membership/detail/broadcast_queue.hpp"
#include "dhtkit/membership/detail/formulas.hpp"
#include "dhtkit/membership/swim.hpp"
#include "support/catch.hpp"
#include "support/membership_cluster.hpp"
#include "support/seeds.hpp"

using namespace dhtkit;
using namespace dhtkit::membership;
using dhtkit::test::membership_cluster;

TEST_CASE("membership: a group forms via one seed", "[membership]") {
  for (std::uint64_t seed : dhtkit::test::seeds(5)) {
    DHTKIT_SEED_SCOPE(seed);
    membership_cluster c(seed, 16, swim_config::lan());
    REQUIRE(c.form(millis(10), seconds(60)));
    REQUIRE(c.run_checked(seconds(30)));
    CHECK(c.converged());
  }
}
