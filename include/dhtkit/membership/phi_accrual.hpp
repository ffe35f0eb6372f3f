/// @file
/// The phi accrual failure detector (Hayashibara, Defago, Yared, Katayama,
/// 2004), as Akka and Cassandra use it.
///
/// Instead of a yes/no verdict it gives a suspicion level phi for any
/// heartbeat stream: phi = -log10(P(a heartbeat arrives later than now)),
/// where the inter-arrival times are modelled as a normal distribution fitted
/// to a sliding window of the last samples. phi = 1 means a 10 % chance the
/// member is fine, phi = 8 (the usual threshold) one in 10^8. It is pure: it
/// is given time points, never reads a clock.
///
/// @code
/// dhtkit::membership::phi_accrual detector;       // Akka's defaults, threshold 8
/// dhtkit::time_point t{};
/// for (int i = 0; i < 10; ++i) detector.heartbeat(t += dhtkit::seconds(1));
/// double calm = detector.phi(t + dhtkit::millis(500));   // well below 1
/// bool up = detector.is_available(t + dhtkit::seconds(10));  // false: phi far above 8
/// @endcode
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dhtkit/core/time.hpp"

namespace dhtkit::membership {

/// Configuration of phi_accrual, with Akka's defaults.
struct phi_accrual_config {
  /// phi at or above which the member counts as down. Akka and Cassandra: 8.
  double threshold = 8.0;
  /// Sliding window of inter-arrival samples. Akka: 1000.
  std::size_t max_samples = 1000;
  /// Floor of the standard deviation, so a perfectly regular stream does not
  /// make phi explode on the first few milliseconds of delay. Akka: 100 ms.
  duration min_std_deviation = millis(100);
  /// Added to the mean: a pause this long is not yet suspicious (GC, a busy
  /// peer). Akka: 3 s.
  duration acceptable_pause = seconds(3);
  /// The interval assumed before the first real sample (seeds the window with
  /// mean = this, standard deviation = this / 4, as Akka does). Akka: 1 s.
  duration first_heartbeat_estimate = seconds(1);

  void validate() const {
    auto fail = [](const char* why) {
      throw std::invalid_argument(std::string("dhtkit::membership::phi_accrual_config: ") + why);
    };
    if (!(threshold > 0.0)) fail("threshold must be positive");
    if (max_samples < 1 || max_samples > (1U << 20)) fail("max_samples must be in [1, 2^20]");
    if (min_std_deviation <= duration::zero()) fail("min_std_deviation must be positive");
    if (acceptable_pause < duration::zero()) fail("acceptable_pause must not be negative");
    if (first_heartbeat_estimate <= duration::zero()) fail("first_heartbeat_estimate must be positive");
  }
};

/// The phi accrual failure detector for one heartbeat stream (see phi_accrual.hpp).
class phi_accrual {
 public:
  explicit phi_accrual(phi_accrual_config config = {}) : config_((config.validate(), config)) {
    samples_.reserve(std::min<std::size_t>(config_.max_samples, 64));
  }

  /// Records a heartbeat arriving at `now`. A time before the previous
  /// heartbeat (a reordered or replayed report) is ignored.
  void heartbeat(time_point now) {
    if (last_ && now < *last_) return;
    if (last_) {
      add_sample(to_ms(now - *last_));
    } else {
      // Akka: seed the window so phi is meaningful from the first heartbeat.
      const double mean = to_ms(config_.first_heartbeat_estimate);
      const double sd = mean / 4;
      add_sample(mean - sd);
      add_sample(mean + sd);
    }
    last_ = now;
  }

  /// The suspicion level at `now`; 0 before the first heartbeat.
  double phi(time_point now) const {
    if (!last_ || samples_.empty()) return 0.0;
    const double n = static_cast<double>(samples_.size());
    const double mean = sum_ / n + to_ms(config_.acceptable_pause);
    const double variance = std::max(0.0, sum_sq_ / n - (sum_ / n) * (sum_ / n));
    const double sd = std::max(std::sqrt(variance), to_ms(config_.min_std_deviation));
    const double elapsed = to_ms(now - *last_);
    // Akka's logistic approximation of the normal CDF (error < 0.0002).
    const double y = (elapsed - mean) / sd;
    const double e = std::exp(-y * (1.5976 + 0.070566 * y * y));
    if (elapsed > mean) return -std::log10(e / (1.0 + e));
    return -std::log10(1.0 - 1.0 / (1.0 + e));
  }

  bool is_available(time_point now) const { return phi(now) < config_.threshold; }

  std::size_t samples() const noexcept { return samples_.size(); }
  /// Mean and standard deviation of the window, in milliseconds.
  double mean_ms() const noexcept {
    return samples_.empty() ? 0.0 : sum_ / static_cast<double>(samples_.size());
  }
  double std_deviation_ms() const noexcept {
    if (samples_.empty()) return 0.0;
    const double n = static_cast<double>(samples_.size());
    return std::sqrt(std::max(0.0, sum_sq_ / n - (sum_ / n) * (sum_ / n)));
  }
  std::optional<time_point> last_heartbeat() const noexcept { return last_; }
  const phi_accrual_config& config() const noexcept { return config_; }

 private:
  static double to_ms(duration d) noexcept { return std::chrono::duration<double, std::milli>(d).count(); }

  void add_sample(double ms) {
    if (samples_.size() < config_.max_samples) {
      samples_.push_back(ms);
    } else {
      const double old = samples_[next_];
      sum_ -= old;
      sum_sq_ -= old * old;
      samples_[next_] = ms;
      next_ = (next_ + 1) % config_.max_samples;
    }
    sum_ += ms;
    sum_sq_ += ms * ms;
  }

  phi_accrual_config config_;
  std::vector<double> samples_;  // a ring buffer once full
  std::size_t next_ = 0;
  double sum_ = 0;
  double sum_sq_ = 0;
  std::optional<time_point> last_;
};

}  // namespace dhtkit::membership
