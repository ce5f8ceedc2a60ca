// The failed-token limiter without a network: its per-address, per-network and global buckets on a
// made-up clock, its memory bound under many addresses, and the keys (IPv6 by /64, networks by /24
// and /48).
#include <gtest/gtest.h>

#include "auth_limiter.hpp"

using docket::api::AuthLimiter;
using docket::api::limiter_key;
using docket::api::network_key;
using namespace std::chrono_literals;

TEST(AuthLimiterUnit, AnAddressGetsItsBurstThenWaitsForItsRefill) {
  AuthLimiter limiter;
  const auto t0 = AuthLimiter::Clock::time_point{} + 1h;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(limiter.retry_after("10.0.0.1", t0), 0s) << i;
    limiter.failed("10.0.0.1", t0);
  }
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0), 6s);  // one failure back every 6 s
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0 + 5s), 1s);
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0 + 6s), 0s);
  EXPECT_EQ(limiter.retry_after("10.0.0.2", t0), 0s);  // another address is not held back
  limiter.failed("10.0.0.1", t0 + 6s);
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0 + 6s), 6s);    // the refilled one is spent again
  EXPECT_EQ(limiter.retry_after("10.0.0.1", t0 + 2min), 0s);  // a quiet address is forgiven
}

TEST(AuthLimiterUnit, TheGlobalCapHoldsBackAddressesThatFailedAndMemoryStaysBounded) {
  AuthLimiter limiter;
  const auto t0 = AuthLimiter::Clock::time_point{} + 1h;
  // 100 failures from 100 networks at one instant: the global burst is spent.
  for (int i = 0; i < 100; ++i) limiter.failed("10.1." + std::to_string(i) + ".1", t0);
  EXPECT_EQ(limiter.retry_after("10.1.5.1", t0), 1s);  // one that failed waits for the global refill
  EXPECT_EQ(limiter.retry_after("10.1.5.1", t0 + 500ms), 0s);
  // An address that has not failed is not held back by the others' failures: a distributed attack
  // cannot lock out the clients holding a token.
  EXPECT_EQ(limiter.retry_after("10.9.9.9", t0), 0s);
  EXPECT_EQ(limiter.retry_after("10.1.5.2", t0), 0s);  // its network failed once of its 30
  // 30 addresses of one /24, a failure each: the network's burst is spent, its other addresses wait
  // for the network's refill (one every 2 s), other networks do not.
  AuthLimiter nets;
  for (int i = 0; i < 30; ++i) nets.failed("10.2.0." + std::to_string(i), t0);
  EXPECT_EQ(nets.retry_after("10.2.0.200", t0), 2s);
  EXPECT_EQ(nets.retry_after("10.2.0.200", t0 + 2s), 0s);
  EXPECT_EQ(nets.retry_after("10.2.1.200", t0), 0s);
  EXPECT_EQ(nets.networks(), 1u);
  // 100,000 addresses, a failure each, 1 ms apart: never more than max_addresses remembered.
  AuthLimiter small(AuthLimiter::Settings{.max_addresses = 1000});
  for (int i = 0; i < 100'000; ++i) {
    small.failed(
        "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256),
        t0 + i * 1ms);
    ASSERT_LE(small.addresses(), 1000u);
    ASSERT_LE(small.networks(), 1000u);
  }
  // Once every bucket has refilled, a new failure forgets them all.
  small.failed("10.200.0.1", t0 + 100'000ms + 1min);
  EXPECT_EQ(small.addresses(), 1u);
}

TEST(AuthLimiterUnit, KeysAreIpv4AddressesAndIpv6Networks) {
  EXPECT_EQ(limiter_key("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(limiter_key("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(limiter_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(limiter_key("2001:db8:1:2:ffff::9"), limiter_key("2001:db8:1:2::1"));
  EXPECT_NE(limiter_key("2001:db8:1:3::1"), limiter_key("2001:db8:1:2::1"));
  EXPECT_EQ(limiter_key(""), "");  // an unknown address is one key of its own
  EXPECT_EQ(network_key("192.0.2.7"), "192.0.2.0/24");
  EXPECT_EQ(network_key(limiter_key("2001:db8:1:2:aaaa::1")), "2001:db8:1::/48");
  EXPECT_EQ(network_key(limiter_key("2001:db8:1:ffff::1")), "2001:db8:1::/48");
  EXPECT_NE(network_key(limiter_key("2001:db8:2::1")), "2001:db8:1::/48");
  EXPECT_EQ(network_key("unknown"), "unknown");
}
