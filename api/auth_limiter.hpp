#pragma once
// Failed token attempts per client address, with a cap for everybody: a brute force against the
// API tokens (bearer headers, the dashboard's sign-in) gets a few guesses a minute per address
// and a few per second in all, then 429 with Retry-After until its bucket refills.
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

namespace docket::api {

/// How many failures a bucket holds and how fast it refills.
struct AuthLimiterSettings {
  double per_address_burst = 10;                        ///< failures an address may make in a row
  std::chrono::milliseconds per_address_refill{6'000};  ///< one more every 6 s (10 a minute)
  double global_burst = 100;                            ///< failures all addresses together may make in a row
  std::chrono::milliseconds global_refill{500};         ///< one more every 0.5 s (2 a second)
  std::size_t max_addresses = 10'000;                   ///< addresses remembered at most
};

/// Token buckets of failures, one per client address (an IPv6 client's /64 network) and one global.
class AuthLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Settings = AuthLimiterSettings;

  explicit AuthLimiter(Settings settings = {}) : settings_(settings) {}
  /// Before a presented token is checked: zero to check it, else how long the address must wait.
  std::chrono::seconds retry_after(const std::string& address, Clock::time_point now = Clock::now());
  /// A presented token matched none: takes one failure from the address's bucket and the global one.
  void failed(const std::string& address, Clock::time_point now = Clock::now());
  /// Addresses remembered now (at most Settings::max_addresses).
  std::size_t addresses() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point at;
  };
  /// The bucket refilled up to `now` for `burst` and `refill`.
  static void refill(Bucket& b, double burst, std::chrono::milliseconds refill, Clock::time_point now);
  /// Seconds until the bucket holds one failure again (at least 1), or 0 when it holds one now.
  static std::chrono::seconds wait(const Bucket& b, std::chrono::milliseconds refill);

  Settings settings_;
  mutable std::mutex mutex_;
  Bucket global_{settings_.global_burst, Clock::time_point{}};
  std::map<std::string, Bucket> addresses_;
};

/// The key a client is limited under: the IPv4 address, or an IPv6 address's /64 network (one host
/// usually owns a whole /64); IPv4-mapped IPv6 addresses count as IPv4.
std::string limiter_key(const std::string& address);

}  // namespace docket::api
