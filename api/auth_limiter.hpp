#pragma once
// Failed token attempts per client address and per network, with a cap for every address that has
// failed: a brute force against the API tokens (bearer headers, the dashboard's sign-in) gets a few
// guesses a minute per address and per network, and a few per second in all, then 429 with
// Retry-After until its bucket refills. An address that has not failed lately is never held back by
// other networks' failures, so a distributed attack cannot lock out the clients that hold a token.
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
  double per_network_burst = 30;                        ///< failures a /24 (IPv6: /48) may make in a row
  std::chrono::milliseconds per_network_refill{2'000};  ///< one more every 2 s (30 a minute)
  double global_burst = 100;                            ///< failures all addresses together may make in a row
  std::chrono::milliseconds global_refill{500};         ///< one more every 0.5 s (2 a second)
  std::size_t max_addresses = 10'000;                   ///< addresses (and networks) remembered at most
};

/// Token buckets of failures: one per client address (an IPv6 client's /64 network), one per
/// network (IPv4 /24, IPv6 /48), and one global that only holds back addresses with a failure.
class AuthLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Settings = AuthLimiterSettings;

  explicit AuthLimiter(Settings settings = {}) : settings_(settings) {}
  /// Before a presented token is checked: zero to check it, else how long the address must wait.
  /// `address` is a limiter_key().
  std::chrono::seconds retry_after(const std::string& address, Clock::time_point now = Clock::now());
  /// A presented token matched none: takes one failure from the address's, its network's and the
  /// global bucket.
  void failed(const std::string& address, Clock::time_point now = Clock::now());
  /// Addresses remembered now (at most Settings::max_addresses).
  std::size_t addresses() const;
  /// Networks remembered now (at most Settings::max_addresses).
  std::size_t networks() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point at;
  };
  /// The bucket refilled up to `now` for `burst` and `refill`.
  static void refill(Bucket& b, double burst, std::chrono::milliseconds refill, Clock::time_point now);
  /// Seconds until the bucket holds one failure again (at least 1), or 0 when it holds one now.
  static std::chrono::seconds wait(const Bucket& b, std::chrono::milliseconds refill);
  /// Buckets per key with their burst and refill, at most max_addresses of them.
  struct Table {
    double burst;
    std::chrono::milliseconds refill;
    std::map<std::string, Bucket> buckets;
  };
  /// The wait of `key`'s bucket in `t` (0 when it has none), refilled to `now`; `failed` is set
  /// when the key has a bucket that is not full, i.e. a failure not yet forgotten.
  static std::chrono::seconds wait_in(Table& t, const std::string& key, Clock::time_point now, bool* failed = nullptr);
  /// Takes one failure from `key`'s bucket in `t`, making room for it within `max` entries.
  static void take(Table& t, const std::string& key, Clock::time_point now, std::size_t max);

  Settings settings_;
  mutable std::mutex mutex_;
  Bucket global_{settings_.global_burst, Clock::time_point{}};
  Table addresses_{settings_.per_address_burst, settings_.per_address_refill, {}};
  Table networks_{settings_.per_network_burst, settings_.per_network_refill, {}};
};

/// The key a client is limited under: the IPv4 address, or an IPv6 address's /64 network (one host
/// usually owns a whole /64); IPv4-mapped IPv6 addresses count as IPv4.
std::string limiter_key(const std::string& address);

/// The network of a limiter_key(): its IPv4 /24 or IPv6 /48 (one site), or the key itself when it
/// is not an address.
std::string network_key(const std::string& key);

}  // namespace docket::api
