// The phi accrual estimator, alone.
#include <cmath>

#include "dhtkit/membership/phi_accrual.hpp"
#include "support/catch.hpp"

using namespace dhtkit;
using dhtkit::membership::phi_accrual;
using dhtkit::membership::phi_accrual_config;

TEST_CASE("phi accrual: header example", "[phi_accrual]") {
  dhtkit::membership::phi_accrual detector;  // Akka's defaults, threshold 8
  dhtkit::time_point t{};
  for (int i = 0; i < 10; ++i) detector.heartbeat(t += dhtkit::seconds(1));
  double calm = detector.phi(t + dhtkit::millis(500));       // well below 1
  bool up = detector.is_available(t + dhtkit::seconds(10));  // false: phi far above 8
  CHECK(calm < 1.0);
  CHECK(!up);
}

TEST_CASE("phi accrual: phi grows with silence and follows the distribution", "[phi_accrual]") {
  phi_accrual_config config;
  config.acceptable_pause = duration::zero();
  phi_accrual d(config);
  CHECK(d.phi(time_point{} + seconds(100)) == 0.0);  // nothing heard yet
  time_point t{};
  for (int i = 0; i < 200; ++i) d.heartbeat(t += (i % 2 ? millis(900) : millis(1100)));
  CHECK(std::abs(d.mean_ms() - 1000.0) < 5.0);
  CHECK(std::abs(d.std_deviation_ms() - 100.0) < 5.0);
  // At the mean, phi = -log10(0.5) = 0.30; one and three deviations later it
  // is -log10 of the normal tail (0.159 and 0.00135).
  CHECK(d.phi(t + millis(1000)) == Approx(0.301).margin(0.01));
  CHECK(d.phi(t + millis(1100)) == Approx(-std::log10(0.1587)).margin(0.02));
  CHECK(d.phi(t + millis(1300)) == Approx(-std::log10(0.00135)).margin(0.1));  // logistic approximation
  double previous = 0;
  for (int ms = 0; ms <= 3000; ms += 100) {
    const double p = d.phi(t + millis(ms));
    CHECK(p >= previous);
    previous = p;
  }
  CHECK(!d.is_available(t + millis(2000)));  // 10 sigma late
}

TEST_CASE("phi accrual: bounded window, acceptable pause, out-of-order input, bad config", "[phi_accrual]") {
  phi_accrual_config config;
  config.max_samples = 10;
  phi_accrual d(config);
  time_point t{};
  for (int i = 0; i < 100; ++i) d.heartbeat(t += millis(100));
  CHECK(d.samples() == 10);
  CHECK(d.mean_ms() == Approx(100.0));
  // The 3 s acceptable pause keeps phi low over a pause far beyond the mean.
  CHECK(d.is_available(t + seconds(2)));
  CHECK(!d.is_available(t + seconds(5)));
  d.heartbeat(t - seconds(1));  // from the past: ignored
  CHECK(*d.last_heartbeat() == t);
  config.threshold = 0;
  CHECK_THROWS_AS(phi_accrual(config), std::invalid_argument);
  config = {};
  config.max_samples = 0;
  CHECK_THROWS_AS(phi_accrual(config), std::invalid_argument);
}
