// The trust boundary without a database: timestamps (range, calendar, offsets, fractions), the
// enqueue request rules the API applies before merging, UTF-8, JSON paths in errors, and the
// submitter's answer-by-position check.
#include <gtest/gtest.h>

#include "docket/config.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "docket/time.hpp"
#include "errors.hpp"
#include "requests.hpp"
#include "submitter.hpp"

using namespace docket;

namespace {

std::int64_t micros_of(const std::string& text) {
  const auto t = parse_timestamp(text);
  if (!t) return -1;
  return std::chrono::duration_cast<std::chrono::microseconds>(t->time_since_epoch()).count();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(TimestampRange, EdgesAreExactAndNothingWraps) {
  EXPECT_EQ(micros_of("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(micros_of("1969-12-31T23:59:59Z"), -1);
  EXPECT_EQ(micros_of("1970-01-01T00:30:00+01:00"), -1);  // 1969-12-31T23:30Z
  EXPECT_EQ(micros_of("2199-12-31T23:59:59.999999Z"), 7258118399999999LL);
  EXPECT_EQ(micros_of("2200-01-01T00:00:00Z"), -1);
  EXPECT_EQ(micros_of("2200-01-01T00:30:00+01:00"), 7258116600000000LL);  // 2199-12-31T23:30Z
  // Beyond a nanosecond time_point these used to wrap: 9999 ran at once, 1600 waited until 2184.
  EXPECT_EQ(micros_of("9999-12-31T23:59:59Z"), -1);
  EXPECT_EQ(micros_of("1600-01-01T00:00:00Z"), -1);
  EXPECT_EQ(micros_of("2262-04-12T00:00:00Z"), -1);
}

TEST(TimestampRange, CalendarDatesOnly) {
  EXPECT_EQ(micros_of("2026-02-30T00:00:00Z"), -1);
  EXPECT_EQ(micros_of("2026-02-29T00:00:00Z"), -1);  // 2026 is not a leap year
  EXPECT_EQ(micros_of("2100-02-29T00:00:00Z"), -1);  // nor is 2100
  EXPECT_EQ(micros_of("2028-02-29T12:00:00Z"), 1835438400000000LL);
  EXPECT_EQ(micros_of("2000-02-29T00:00:00Z"), 951782400000000LL);
  EXPECT_EQ(micros_of("2026-04-31T00:00:00Z"), -1);
  EXPECT_EQ(micros_of("2026-00-10T00:00:00Z"), -1);
  EXPECT_EQ(micros_of("2026-01-00T00:00:00Z"), -1);
  EXPECT_EQ(micros_of("2026-01-01T24:00:00Z"), -1);
  EXPECT_EQ(micros_of("2026-01-01T23:60:00Z"), -1);
  EXPECT_EQ(micros_of("2026-01-01T23:59:60Z"), -1);
}

TEST(TimestampRange, OffsetsAreHoursAndMinutes) {
  EXPECT_EQ(micros_of("2026-01-01T00:00:00+99:99"), -1);
  EXPECT_EQ(micros_of("2026-01-01T00:00:00+24:00"), -1);
  EXPECT_EQ(micros_of("2026-01-01T00:00:00+05"), -1);
  EXPECT_EQ(micros_of("2026-01-01T00:00:00+0530"), -1);
  EXPECT_EQ(micros_of("2026-01-01T23:59:00+23:59"), micros_of("2026-01-01T00:00:00Z"));
  EXPECT_EQ(micros_of("2026-01-01T00:00:00-23:59"), micros_of("2026-01-01T23:59:00Z"));
  EXPECT_EQ(micros_of("2026-01-01T05:30:00+05:30"), micros_of("2026-01-01T00:00:00z"));
}

TEST(TimestampRange, FractionalSecondsAndStrictShape) {
  const auto base = micros_of("2026-11-21T10:00:00Z");
  EXPECT_EQ(micros_of("2026-11-21T10:00:00.5Z") - base, 500000);
  EXPECT_EQ(micros_of("2026-11-21T10:00:00.000001Z") - base, 1);
  EXPECT_EQ(micros_of("2026-11-21T10:00:00.123456789Z") - base, 123456);  // nanoseconds: truncated
  EXPECT_EQ(micros_of("2026-11-21T10:00:00.1234567890Z"), -1);            // more than 9 digits
  EXPECT_EQ(micros_of("2026-11-21T10:00:00.Z"), -1);
  EXPECT_EQ(micros_of(" 2026-11-21T10:00:00Z"), -1);
  EXPECT_EQ(micros_of("2026-11-21T10:00:00Z "), -1);
  EXPECT_EQ(micros_of("2026-1-21T10:00:00Z"), -1);
  EXPECT_EQ(micros_of("+2026-11-21T10:00:00Z"), -1);
  EXPECT_EQ(format_timestamp(*parse_timestamp("2026-11-21T10:00:00.25+01:00")), "2026-11-21T09:00:00.250000Z");
}

TEST(TimestampRange, DelaysStayInRangeAndErrorsNameTheField) {
  EXPECT_TRUE(parse_run_at("+1d"));
  EXPECT_FALSE(parse_run_at("+100000d"));  // past 2200: used to overflow the clock
  EXPECT_FALSE(parse_run_at("+1e15ms"));
  const auto message = error_of([] { parse_time_field("2026-02-30T00:00:00Z", "run_at", false); });
  EXPECT_EQ(message,
            "run_at must be an RFC 3339 timestamp with a zone, like 2026-11-21T10:00:00Z, between "
            "1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z; got \"2026-02-30T00:00:00Z\"");
  EXPECT_NE(error_of([] { parse_time_field("+100000d", "--run-at", true); }).find("--run-at must be"),
            std::string::npos);
}

TEST(EnqueueRules, RefusedBeforeTheDatabaseWithTheFieldNamed) {
  const auto check = [](EnqueueRequest r) { return error_of([&] { check_enqueue_request(r, "jobs[2]."); }); };
  EXPECT_EQ(check({.kind = "ok"}), "(no error)");
  EXPECT_EQ(check({.kind = std::string(200, 'k')}), "(no error)");
  std::string two_hundred_e_acute;
  for (int i = 0; i < 200; ++i) two_hundred_e_acute += "\xC3\xA9";  // 200 characters, 400 bytes
  EXPECT_EQ(check({.kind = two_hundred_e_acute}), "(no error)");
  EXPECT_EQ(check({.kind = ""}), "jobs[2].kind must be a non-empty string of at most 200 printable characters");
  EXPECT_EQ(check({.kind = std::string(201, 'k')}),
            "jobs[2].kind must be a non-empty string of at most 200 printable characters");
  EXPECT_EQ(check({.kind = "k", .queue = "q\x01"}),
            "jobs[2].queue must be a non-empty string of at most 200 printable characters");
  EXPECT_EQ(check({.kind = "k", .args = Json::array()}), "jobs[2].args must be a JSON object, got array");
  EXPECT_EQ(check({.kind = "k", .priority = 1001}),
            "jobs[2].priority must be between 0 (runs first) and 1000, got 1001");
  EXPECT_EQ(check({.kind = "k", .max_retries = -1}), "jobs[2].max_retries must be >= 0, got -1");
  EXPECT_EQ(check({.kind = "k", .unique_key = ""}), "jobs[2].unique_key must be 1 to 1000 characters");
  EXPECT_EQ(check({.kind = "k", .unique_key = std::string(1001, 'u')}),
            "jobs[2].unique_key must be 1 to 1000 characters");
  EXPECT_EQ(check({.kind = "k", .unique_key = std::string("\xC3\x28")}),
            "jobs[2].unique_key must be valid UTF-8 without NUL characters");
  EXPECT_EQ(check({.kind = "k", .run_at = Clock::time_point(kMaxTime)}),
            "jobs[2].run_at must be between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z");
  EXPECT_EQ(check({.kind = "k", .run_at = Clock::time_point(kMaxTime) - std::chrono::seconds(1)}), "(no error)");
}

TEST(EnqueueRules, Utf8IsCheckedStrictly) {
  EXPECT_TRUE(valid_utf8("plain ascii"));
  EXPECT_TRUE(valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(valid_utf8("\xFF"));
  EXPECT_FALSE(valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // a UTF-16 surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // beyond U+10FFFF
  EXPECT_FALSE(valid_utf8("ok\x80"));
}

TEST(BoundedJsonPaths, NumberErrorsNameTheField) {
  std::string error;
  EXPECT_FALSE(try_parse_json(R"({"kind":"k","args":{"n":1e400}})", "body", &error));
  EXPECT_NE(error.find("at args.n: "), std::string::npos) << error;
  EXPECT_FALSE(try_parse_json(R"({"args":{"list":[1,2,123456789012345678901234567890]}})", "body", &error));
  EXPECT_NE(error.find("at args.list[2]: integer 123456789012345678901234567890 does not fit in 64 bits"),
            std::string::npos)
      << error;
  EXPECT_FALSE(try_parse_json(R"({"a":[{"b":1},{"c":-1e999}]})", "body", &error));
  EXPECT_NE(error.find("at a[1].c: "), std::string::npos) << error;
}

TEST(SubmitterAnswers, AnAnswerForAnotherRequestIsRefused) {
  JobRecord job;
  job.id = 7;
  job.kind = "import";
  job.unique_key = "file-1";
  const Submitted answer{job, false};
  EXPECT_NO_THROW(api::check_answer({.kind = "import", .unique_key = "file-1"}, answer, 0));
  EXPECT_NO_THROW(api::check_answer({.kind = "report", .unique_key = "file-1"}, answer, 0));  // the key spans kinds
  EXPECT_NO_THROW(api::check_answer({.kind = "import"}, answer, 0));  // a crawl kind's implicit key
  EXPECT_THROW(api::check_answer({.kind = "import", .unique_key = "file-2"}, answer, 3), Error);
  const Submitted created{job, true};
  EXPECT_NO_THROW(api::check_answer({.kind = "import", .unique_key = "file-1"}, created, 0));
  EXPECT_THROW(api::check_answer({.kind = "report", .unique_key = "file-1"}, created, 3), Error);
  JobRecord plain = job;
  plain.unique_key.reset();
  EXPECT_THROW(api::check_answer({.kind = "import"}, Submitted{plain, false}, 3), Error);  // not created, no key
  JobRecord none;
  EXPECT_THROW(api::check_answer({.kind = ""}, Submitted{none, true}, 0), Error);
}

TEST(IdempotencyKey, EmptyOrInvalidUtf8IsABadRequest) {
  // httplib 0.11 drops a header whose value is empty before we see it; the check is here for any
  // server that passes it on.
  const auto status_of = [](const std::optional<std::string>& key) {
    try {
      api::parse_enqueue(R"({"kind":"k"})", key);
    } catch (const api::ApiError& e) {
      return std::to_string(e.status()) + " " + e.what();
    }
    return std::string("ok");
  };
  EXPECT_EQ(status_of(std::string()), "400 the Idempotency-Key header is empty; send 1 to 1000 characters");
  EXPECT_EQ(status_of(std::string("\xFF\xFE")), "400 the Idempotency-Key header must be valid UTF-8");
  EXPECT_EQ(status_of(std::string("k\0y", 3)), "422 Idempotency-Key must not contain NUL characters");
  EXPECT_EQ(status_of(std::string("file-1")), "ok");
  EXPECT_EQ(status_of(std::nullopt), "ok");
}

TEST(ApiTimeouts, ConfigReadsAndChecksThem) {
  const Config defaults = Config::parse("", "t");
  EXPECT_EQ(defaults.api.statement_timeout, Millis(5000));
  EXPECT_EQ(defaults.api.lock_timeout, Millis(2000));
  Config c = Config::parse("[api]\nstatement_timeout = \"3s\"\nlock_timeout = \"500ms\"\n", "t");
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.api.statement_timeout, Millis(3000));
  EXPECT_EQ(c.api.lock_timeout, Millis(500));
  c.apply_env({"DOCKET_API_LOCK_TIMEOUT=1s"});
  EXPECT_EQ(c.api.lock_timeout, Millis(1000));
  const auto error = [](const std::string& toml) {
    try {
      Config::parse(toml, "t").validate();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(error("[api]\nlock_timeout = \"10s\"\n"),
            "api.lock_timeout must be at least 10ms and at most api.statement_timeout");
  EXPECT_EQ(error("[api]\nstatement_timeout = \"10ms\"\n"), "api.statement_timeout must be between 100ms and 1h");
}
