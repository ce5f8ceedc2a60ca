#pragma once
// Exponential backoff with jitter for reconnecting to the database: 50ms doubling to 5s.
#include <algorithm>
#include <chrono>
#include <random>

namespace docket {

class ReconnectDelay {
 public:
  /// The next wait; each call doubles the base up to the cap. Full jitter in [base/2, base].
  std::chrono::milliseconds next() {
    const auto base = current_;
    current_ = std::min(current_ * 2, kMax);
    std::uniform_int_distribution<long long> pick(base.count() / 2, base.count());
    return std::chrono::milliseconds(pick(rng_));
  }
  void reset() { current_ = kMin; }
  bool failing() const { return current_ > kMin; }

 private:
  static constexpr std::chrono::milliseconds kMin{50};
  static constexpr std::chrono::milliseconds kMax{5000};
  std::chrono::milliseconds current_{kMin};
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace docket
