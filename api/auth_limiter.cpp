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

std::chrono::seconds AuthLimiter::wait_in(Table& t, const std::string& key, Clock::time_point now, bool* failed) {
  const auto it = t.buckets.find(key);
  if (it == t.buckets.end()) return std::chrono::seconds{0};
  refill(it->second, t.burst, t.refill, now);
  if (failed != nullptr) *failed = it->second.tokens < t.burst;
  return wait(it->second, t.refill);
}

void AuthLimiter::take(Table& t, const std::string& key, Clock::time_point now, std::size_t max) {
  auto it = t.buckets.find(key);
  if (it == t.buckets.end()) {
    if (t.buckets.size() >= max) {
      // A full bucket remembers nothing: forget those first, then the one that failed longest ago.
      for (auto i = t.buckets.begin(); i != t.buckets.end();) {
        refill(i->second, t.burst, t.refill, now);
        i = i->second.tokens >= t.burst ? t.buckets.erase(i) : std::next(i);
      }
      if (t.buckets.size() >= max) {
        t.buckets.erase(std::min_element(t.buckets.begin(), t.buckets.end(),
                                         [](const auto& a, const auto& b) { return a.second.at < b.second.at; }));
      }
    }
    it = t.buckets.emplace(key, Bucket{t.burst, now}).first;
  }
  refill(it->second, t.burst, t.refill, now);
  it->second.tokens = std::max(0.0, it->second.tokens - 1);
}

std::chrono::seconds AuthLimiter::retry_after(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  refill(global_, settings_.global_burst, settings_.global_refill, now);
  bool has_failed = false;
  auto w = std::max(wait_in(addresses_, address, now, &has_failed), wait_in(networks_, network_key(address), now));
  // The global cap holds back only addresses with a failure not yet forgotten: an attack spread
  // over many networks spends it, and a client that presents the right token never fails.
  if (has_failed) w = std::max(w, wait(global_, settings_.global_refill));
  return w;
}

void AuthLimiter::failed(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  refill(global_, settings_.global_burst, settings_.global_refill, now);
  global_.tokens = std::max(0.0, global_.tokens - 1);
  take(addresses_, address, now, settings_.max_addresses);
  take(networks_, network_key(address), now, settings_.max_addresses);
}

std::size_t AuthLimiter::addresses() const {
  std::lock_guard lock(mutex_);
  return addresses_.buckets.size();
}

std::size_t AuthLimiter::networks() const {
  std::lock_guard lock(mutex_);
  return networks_.buckets.size();
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

std::string network_key(const std::string& key) {
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(key.substr(0, key.find('/')), ec);
  if (ec) return key;
  if (a.is_v4()) {
    auto bytes = a.to_v4().to_bytes();
    bytes[3] = 0;
    return boost::asio::ip::make_address_v4(bytes).to_string() + "/24";
  }
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 6, bytes.end(), 0);
  return boost::asio::ip::make_address_v6(bytes).to_string() + "/48";
}

}  // namespace docket::api
