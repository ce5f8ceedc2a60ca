#include "auth_limiter.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cmath>
#include <iterator>

namespace docket::api {

void AuthLimiter::refill(Bucket& b, double burst, std::chrono::milliseconds refill, Clock::time_point now) {
  if (now > b.at) {
    const double gained = std::chrono::duration<double, std::milli>(now - b.at).count() / refill.count();
    b.tokens = std::min(burst, b.tokens + gained);
    b.at = now;
  }
}

std::chrono::seconds AuthLimiter::wait(const Bucket& b, std::chrono::milliseconds refill) {
  if (b.tokens >= 1) return std::chrono::seconds{0};
  const double ms = (1 - b.tokens) * static_cast<double>(refill.count());
  return std::chrono::seconds{std::max<long long>(1, static_cast<long long>(std::ceil(ms / 1000)))};
}

std::chrono::seconds AuthLimiter::retry_after(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  refill(global_, settings_.global_burst, settings_.global_refill, now);
  auto own = std::chrono::seconds{0};
  if (const auto it = addresses_.find(address); it != addresses_.end()) {
    refill(it->second, settings_.per_address_burst, settings_.per_address_refill, now);
    own = wait(it->second, settings_.per_address_refill);
  }
  return std::max(own, wait(global_, settings_.global_refill));
}

void AuthLimiter::failed(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  refill(global_, settings_.global_burst, settings_.global_refill, now);
  global_.tokens = std::max(0.0, global_.tokens - 1);
  auto it = addresses_.find(address);
  if (it == addresses_.end()) {
    if (addresses_.size() >= settings_.max_addresses) {
      // A full bucket remembers nothing: forget those first, then the one that failed longest ago.
      for (auto i = addresses_.begin(); i != addresses_.end();) {
        refill(i->second, settings_.per_address_burst, settings_.per_address_refill, now);
        i = i->second.tokens >= settings_.per_address_burst ? addresses_.erase(i) : std::next(i);
      }
      if (addresses_.size() >= settings_.max_addresses) {
        addresses_.erase(std::min_element(addresses_.begin(), addresses_.end(),
                                          [](const auto& a, const auto& b) { return a.second.at < b.second.at; }));
      }
    }
    it = addresses_.emplace(address, Bucket{settings_.per_address_burst, now}).first;
  }
  refill(it->second, settings_.per_address_burst, settings_.per_address_refill, now);
  it->second.tokens = std::max(0.0, it->second.tokens - 1);
}

std::size_t AuthLimiter::addresses() const {
  std::lock_guard lock(mutex_);
  return addresses_.size();
}

std::string limiter_key(const std::string& address) {
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(address, ec);
  if (ec) return address;
  if (a.is_v4()) return a.to_string();
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return boost::asio::ip::make_address_v6(bytes).to_string() + "/64";
}

}  // namespace docket::api
