#include <gtest/gtest.h>

#include "db/array.hpp"
#include "docket/job.hpp"
#include "docket/time.hpp"

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
  // Clock holds 1678..2261; past that the conversion overflowed (UBSan, fuzz_enqueue).
  EXPECT_FALSE(parse_timestamp("1013-11-21T10:00:00Z"));
  EXPECT_FALSE(parse_timestamp("9999-12-31T23:59:59Z"));
  EXPECT_TRUE(parse_timestamp("2200-01-01T00:00:00Z"));
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
