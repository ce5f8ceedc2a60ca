#include <gtest/gtest.h>

#include "core/text.hpp"
#include "db/array.hpp"
#include "docket/job.hpp"
#include "docket/time.hpp"
#include "executors/executors.hpp"
#include "executors/fetch.hpp"

using namespace docket;

TEST(ArrayLiteral, QuotesAndEscapesEveryElement) {
  EXPECT_EQ(db::int_array({1, 2, 3}), "{1,2,3}");
  EXPECT_EQ(db::int_array({}), "{}");
  EXPECT_EQ(db::text_array(std::vector<std::optional<std::string>>{"a", std::nullopt, "b\"c\\d", "{,}", "NULL"}),
            R"({"a",NULL,"b\"c\\d","{,}","NULL"})");
  const std::vector<std::string> tricky = {"plain", "with space", "quote\"", "back\\slash", "comma,brace}", ""};
  EXPECT_EQ(db::parse_text_array(db::text_array(tricky)), tricky);
}

TEST(Timestamps, ParseRfc3339WithZones) {
  const auto utc = parse_timestamp("2026-11-21T10:00:00Z");
  ASSERT_TRUE(utc);
  const auto plus2 = parse_timestamp("2026-11-21T12:00:00+02:00");
  ASSERT_TRUE(plus2);
  EXPECT_EQ(*utc, *plus2);
  const auto frac = parse_timestamp("2026-11-21 10:00:00.25Z");
  ASSERT_TRUE(frac);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(*frac - *utc).count(), 250);
  EXPECT_EQ(format_timestamp(*utc), "2026-11-21T10:00:00.000000Z");
  EXPECT_FALSE(parse_timestamp("2026-11-21T10:00:00"));  // no zone: ambiguous
  EXPECT_FALSE(parse_timestamp("tomorrow"));
  EXPECT_FALSE(parse_timestamp("2026-13-01T00:00:00Z"));
}

TEST(Timestamps, OnlyTheFixedDigitsOfRfc3339AreAccepted) {
  // sscanf's %d took signs and spaces: these used to parse into some other instant.
  for (const char* text : {"2026-01-01T-1:-1:-1Z", "-001-01-01T00:00:00Z", "2026-1-01T00:00:00Z",
                           "2026-01-01T 1:00:00Z", "+202-01-01T00:00:00Z", "2026-01-01T00:00:00+-5:00",
                           "2026-01-01T00:00:00+05", "2026-01-01T00:00:00+99:99", "2026-01-01T00:00:00+05:00x"}) {
    EXPECT_FALSE(parse_timestamp(text)) << text;
  }
  EXPECT_TRUE(parse_timestamp("2026-01-01T00:00:00-05:30"));
  // The documented range, [1970-01-01, 2200-01-01) UTC, checked in seconds before the clock's
  // nanoseconds could overflow (UBSan, fuzz_enqueue).
  EXPECT_FALSE(parse_timestamp("1013-11-21T10:00:00Z"));
  EXPECT_FALSE(parse_timestamp("9999-12-31T23:59:59Z"));
  EXPECT_FALSE(parse_timestamp("2200-01-01T00:00:00Z"));
  EXPECT_TRUE(parse_timestamp("2199-12-31T23:59:59Z"));
  EXPECT_FALSE(parse_run_at("+99999d"));
  EXPECT_TRUE(parse_run_at("+36500d"));
}

TEST(Timestamps, RunAtAcceptsDelays) {
  const auto before = Clock::now();
  const auto t = parse_run_at("+30s");
  ASSERT_TRUE(t);
  EXPECT_GE(*t - before, std::chrono::seconds(29));
  EXPECT_TRUE(parse_run_at("in 10m"));
  EXPECT_FALSE(parse_run_at("soon"));
}

TEST(JobState, NamesRoundTrip) {
  for (const auto& name : job_state_names()) {
    const auto s = parse_job_state(name);
    ASSERT_TRUE(s);
    EXPECT_EQ(to_string(*s), name);
  }
  EXPECT_FALSE(parse_job_state("done"));
}

TEST(CleanText, ReplacesNulAndInvalidBytesAndCutsOnCharacterBoundaries) {
  using namespace docket;
  EXPECT_EQ(clean_text(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(clean_text("caf\xE9"), "caf\xEF\xBF\xBD");                            // Latin-1
  EXPECT_EQ(clean_text("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(clean_text("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // an overlong '/'
  std::string e;
  for (int i = 0; i < 10; ++i) e += "\xC3\xA9";                             // 20 bytes of U+00E9
  EXPECT_EQ(clean_text(e, 10, Keep::head), "\xC3\xA9\xC3\xA9\xC3\xA9...");  // 7 bytes of room: 3 characters
  EXPECT_EQ(clean_text(e, 10, Keep::tail), "...\xC3\xA9\xC3\xA9\xC3\xA9");
  EXPECT_EQ(clean_text(e.substr(1), 100), "\xEF\xBF\xBD" + e.substr(2));  // a tail that starts mid-character
  EXPECT_EQ(clean_text(std::string(1 << 20, 'x'), 100, Keep::tail).size(), 100u);
}

TEST(CleanText, JsonNulEscapesBecomeReplacementCharactersButEscapedBackslashesStay) {
  using namespace docket;
  EXPECT_EQ(clean_json_text(R"({"a":"x\u0000y","b":"\\u0000","c":"\\\u0000"})"),
            R"({"a":"x\ufffdy","b":"\\u0000","c":"\\\ufffd"})");
}

TEST(RetryAfter, IsClampedToADayAndNeverOverflows) {
  using namespace docket;
  EXPECT_EQ(parse_retry_after("120"), Millis(120000));
  EXPECT_EQ(parse_retry_after("3153600000"), kMaxRetryDelay);               // 100 years
  EXPECT_EQ(parse_retry_after("99999999999999999999999"), kMaxRetryDelay);  // beyond a long long
  EXPECT_EQ(parse_retry_after("Fri, 01 Jan 2126 00:00:00 GMT"), kMaxRetryDelay);
  EXPECT_EQ(parse_retry_after("soon"), std::nullopt);
}

TEST(RetryAfter, AnHttpDateCountsFromTheServersDateNotTheWorkersClock) {
  using namespace docket;
  // Long past by this machine's clock, 2 minutes ahead by the server's.
  EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2020 00:02:00 GMT", "Wed, 01 Jan 2020 00:00:00 GMT"), Millis(120000));
  EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2020 00:02:00 GMT", "Wed, 01 Jan 2020 00:03:00 GMT"), Millis(0));
  // Without a readable Date header: the worker's clock (that date is long past).
  EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2020 00:02:00 GMT", "yesterday"), Millis(0));
  EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2020 00:02:00 GMT"), Millis(0));
}

TEST(HttpUrl, OriginsAreLowercasedAndUserinfoIsRefused) {
  using namespace docket;
  EXPECT_EQ(parse_http_url("http://API.example.com:8080/x?y")->origin, "http://api.example.com:8080");
  EXPECT_EQ(parse_http_url("https://a.example/")->target, "/");
  EXPECT_FALSE(parse_http_url("http://user:pw@evil.example/"));
  EXPECT_FALSE(parse_http_url("ftp://a.example/"));
  EXPECT_FALSE(parse_http_url(std::string("http://a.example/x\0y", 20)));
  EXPECT_FALSE(parse_http_url("http://a.example/x\r\nHost: evil"));
  EXPECT_EQ(resolve_url("http://a.example/list?page=1", "//b.example/p"), "http://b.example/p");
  EXPECT_EQ(resolve_url("http://a.example/v1/list?page=1", "next?page=2"), "http://a.example/v1/next?page=2");
}
