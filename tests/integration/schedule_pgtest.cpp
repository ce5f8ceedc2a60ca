// Schedules against a real database: the cron evaluator over years of slots (DST, leap days),
// validation, spread, missed-slot and overlap policies, and one job per slot under concurrent ticks.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "pg.hpp"

using docket::test::PgCluster;
using docket::test::TestDatabase;

namespace {

/// Every slot of `cron` in `tz` from `from` for `count` slots, as "YYYY-MM-DD HH:MI" local times
/// and UTC instants, computed by docket.cron_next in one statement.
std::vector<std::pair<std::string, std::string>> slots(TestDatabase& db, const std::string& cron, const std::string& tz,
                                                       const std::string& from, int count) {
  const auto r =
      db.query("WITH RECURSIVE s(n, at) AS (SELECT 1, docket.cron_next('" + cron + "', '" + tz + "', '" + from +
               "'::timestamptz) UNION ALL SELECT n + 1, docket.cron_next('" + cron + "', '" + tz +
               "', at) FROM s WHERE n < " + std::to_string(count) + ") SELECT to_char(at AT TIME ZONE '" + tz +
               "', 'YYYY-MM-DD HH24:MI'), to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM s ORDER BY n");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& row : r) out.emplace_back(row[0].c_str(), row[1].c_str());
  return out;
}

/// The SQLSTATE and message of a statement that must fail.
std::pair<std::string, std::string> failure(TestDatabase& db, const std::string& sql) {
  try {
    db.query(sql);
  } catch (const pqxx::sql_error& e) {
    return {e.sqlstate(), e.what()};
  }
  return {"", "no error"};
}

}  // namespace

TEST(Cron, DailyAcrossDstRunsOncePerDayForSixYears) {
  auto db = PgCluster::shared().fresh_database();
  for (const std::string tz : {"Europe/Lisbon", "America/New_York"}) {
    SCOPED_TRACE(tz);
    const auto s = slots(*db, "30 2 * * *", tz, "2024-01-01T00:00:00Z", 6 * 365 + 2);
    std::set<std::string> days;
    std::string previous_utc;
    int shifted = 0;
    for (const auto& [local, utc] : s) {
      EXPECT_TRUE(days.insert(local.substr(0, 10)).second) << "two slots on " << local;
      EXPECT_LT(previous_utc, utc);
      previous_utc = utc;
      // 02:30 every day; on a spring-forward day 02:30 does not exist and runs at 03:30.
      if (local.substr(11) == "03:30") {
        ++shifted;
      } else {
        EXPECT_EQ(local.substr(11), "02:30") << local;
      }
    }
    // New York springs forward at 02:00 (02:30 is skipped once a year, 2024-2029); Lisbon at
    // 01:00 UTC, from 01:00 to 02:00 local, so its 02:30 always exists.
    EXPECT_EQ(shifted, tz == "America/New_York" ? 6 : 0);
    // One slot every local day from 2024-01-01 on, leap days included.
    EXPECT_TRUE(days.contains("2024-02-29"));
    EXPECT_TRUE(days.contains("2028-02-29"));
    EXPECT_EQ(days.size(), s.size());
    EXPECT_EQ(*days.begin(), "2024-01-01");
  }
}

TEST(Cron, SkippedLocalTimesRunAtTheShiftedInstantAndRepeatedOnesOnce) {
  auto db = PgCluster::shared().fresh_database();
  // New York springs forward at 02:00 on 2026-03-08: 02:30 local does not exist.
  auto s = slots(*db, "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2);
  EXPECT_EQ(s[0].first, "2026-03-08 03:30");
  EXPECT_EQ(s[0].second, "2026-03-08 07:30");
  EXPECT_EQ(s[1].first, "2026-03-09 02:30");
  // Lisbon springs forward at 01:00 on 2026-03-29 (01:xx does not exist) and falls back at 02:00
  // on 2026-10-25 (01:xx happens twice).
  s = slots(*db, "30 1 * * *", "Europe/Lisbon", "2026-03-28T12:00:00Z", 2);
  EXPECT_EQ(s[0].first, "2026-03-29 02:30");
  EXPECT_EQ(s[1].first, "2026-03-30 01:30");
  s = slots(*db, "30 1 * * *", "Europe/Lisbon", "2026-10-24T12:00:00Z", 2);
  EXPECT_EQ(s[0].first, "2026-10-25 01:30");
  EXPECT_EQ(s[1].first, "2026-10-26 01:30");  // the repeated 01:30 ran once
  // Hourly across New York's fall-back: 23 distinct slots in the 25-hour day, none twice.
  s = slots(*db, "0 * * * *", "America/New_York", "2026-11-01T04:00:00Z", 30);
  std::set<std::string> utc;
  for (const auto& [local, at] : s) EXPECT_TRUE(utc.insert(at).second) << at;
}

TEST(Cron, FieldsRangesStepsNamesAndMacros) {
  auto db = PgCluster::shared().fresh_database();
  auto s = slots(*db, "*/15 9-17 * * MON-FRI", "UTC", "2026-11-27T17:50:00Z", 3);  // a Friday evening
  EXPECT_EQ(s[0].first, "2026-11-30 09:00");
  EXPECT_EQ(s[1].first, "2026-11-30 09:15");
  s = slots(*db, "0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 2);
  EXPECT_EQ(s[0].first, "2028-02-29 00:00");
  EXPECT_EQ(s[1].first, "2032-02-29 00:00");
  // Both day fields restricted: the 13th OR a Friday (Vixie cron).
  s = slots(*db, "0 0 13 * 5", "UTC", "2026-11-01T00:00:00Z", 4);
  EXPECT_EQ(s[0].first, "2026-11-06 00:00");
  EXPECT_EQ(s[1].first, "2026-11-13 00:00");
  EXPECT_EQ(s[2].first, "2026-11-20 00:00");
  s = slots(*db, "@weekly", "UTC", "2026-11-27T00:00:00Z", 1);
  EXPECT_EQ(s[0].first, "2026-11-29 00:00");  // Sunday
  s = slots(*db, "0 12 * * 7", "UTC", "2026-11-27T00:00:00Z", 1);
  EXPECT_EQ(s[0].first, "2026-11-29 12:00");  // 7 is Sunday too
  s = slots(*db, "@every 5m", "UTC", "2026-11-27T00:02:00Z", 2);
  EXPECT_EQ(s[0].first, "2026-11-27 00:05");
  EXPECT_EQ(s[1].first, "2026-11-27 00:10");
  s = slots(*db, "0 0 1 JAN,jul *", "UTC", "2026-02-01T00:00:00Z", 2);
  EXPECT_EQ(s[0].first, "2026-07-01 00:00");
  EXPECT_EQ(s[1].first, "2027-01-01 00:00");
  s = slots(*db, "5/20 * * * *", "UTC", "2026-11-27T00:00:00Z", 3);
  EXPECT_EQ(s[2].first, "2026-11-27 00:45");
}

TEST(Schedules, BadInputNamesTheFieldAndWritesNothing) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  struct Case {
    std::string call;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"docket.schedule('s', '61 * * * *', 'scrape')", "out of range 0-59"},
      {"docket.schedule('s', '* * *', 'scrape')", "it needs 5"},
      {"docket.schedule('s', '@fortnightly', 'scrape')", "unknown macro"},
      {"docket.schedule('s', '@every 0s', 'scrape')", "between 1 second"},
      {"docket.schedule('s', '*/0 * * * *', 'scrape')", "step"},
      {"docket.schedule('s', 'x * * * *', 'scrape')", "minute field"},
      {"docket.schedule('s', '0 0 30 2 *', 'scrape')", "no slot"},
      {"docket.schedule('s', '@hourly', 'scrape', tz => 'Mars/Olympus')", "tz \"Mars/Olympus\""},
      {"docket.schedule('s', '@hourly', 'scrape', tz => 'foo+3')", "IANA"},
      {"docket.schedule('s', '@hourly', 'scarpe')", "kind scarpe is not run by any worker"},
      {"docket.schedule('s', '@hourly', 'scrape', on_overlap => 'sometimes')", "on_overlap must be"},
      {"docket.schedule('s', '@hourly', 'scrape', on_missed => 'never')", "on_missed must be"},
      {"docket.schedule('s', '@hourly', 'scrape', spread => '-1 hour')", "spread must be"},
      {"docket.schedule('', '@hourly', 'scrape')", "name must be"},
      {"docket.schedule('s', '@hourly', 'scrape', args => '[1]')", "args must be a JSON object"},
      {"docket.schedule('s', '@hourly', 'scrape', priority => 5000)", "priority"},
  };
  for (const auto& c : cases) {
    const auto [state, message] = failure(*db, "SELECT docket.schedule" + c.call.substr(15));
    EXPECT_EQ(state, "22023") << c.call << ": " << message;
    EXPECT_NE(message.find(c.message), std::string::npos) << c.call << ": " << message;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  // Unknown names answer P0002.
  for (const char* call :
       {"docket.pause_schedule('nope')", "docket.resume_schedule('nope')", "docket.run_schedule_now('nope')"}) {
    EXPECT_EQ(failure(*db, std::string("SELECT ") + call).first, "P0002") << call;
  }
}

TEST(Schedules, SpreadPlacesManySchedulesEvenlyAcrossTheWindow) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  db->query(
      "SELECT docket.schedule('project-' || g, '0 */4 * * *', 'scrape', jsonb_build_object('project_id', g), "
      "spread => '4 hours') FROM generate_series(1, 2000) g");
  // Offsets into the 4-hour window, in 16 buckets of 15 minutes: each holds 125 +/- 40%.
  const auto r = db->query(
      "SELECT floor(extract(epoch FROM docket.schedule_offset(name, spread)) / 900)::int AS bucket, count(*) "
      "FROM docket.schedules GROUP BY 1 ORDER BY 1");
  ASSERT_EQ(r.size(), 16U);
  for (const auto& row : r) {
    EXPECT_GT(row[1].as<int>(), 75) << "bucket " << row[0].c_str();
    EXPECT_LT(row[1].as<int>(), 175) << "bucket " << row[0].c_str();
  }
  // The offset is a function of the name: the same on every host and after every upsert.
  const std::string before = db->scalar("SELECT next_run_at FROM docket.schedules WHERE name = 'project-7'");
  db->query("SELECT docket.schedule('project-7', '0 */4 * * *', 'scrape', '{\"project_id\": 7}', spread => '4 hours')");
  EXPECT_EQ(db->scalar("SELECT next_run_at FROM docket.schedules WHERE name = 'project-7'"), before);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules WHERE next_run_at < next_slot "
                      "OR next_run_at >= next_slot + interval '4 hours'"),
            0);
}

TEST(Schedules, MissedSlotPoliciesAfterAnOutage) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('k')");
  // A yearly schedule whose fleet was down for five years: its slots (Jan 1) all passed long ago.
  for (const std::string policy : {"skip", "latest", "all"}) {
    db->query("SELECT docket.schedule('" + policy + "', '0 0 1 1 *', 'k', on_missed => '" + policy +
              "', on_overlap => 'allow')");
    db->query(
        "UPDATE docket.schedules SET next_slot = now() - interval '5 years', "
        "next_run_at = now() - interval '5 years' WHERE name = '" +
        policy + "'");
  }
  db->query("SELECT * FROM docket.schedule_tick()");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'skip'"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'latest'"), 1);
  EXPECT_EQ(db->scalar("SELECT scheduled_for = (SELECT max(x) FROM generate_series(date_trunc('year', now() - interval "
                       "'5 years') + interval '1 year', now(), interval '1 year') x) FROM docket.jobs "
                       "WHERE schedule = 'latest'"),
            "t");
  const long long all = db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'all'");
  EXPECT_GE(all, 5);
  EXPECT_LE(all, 6);
  // Afterwards each waits for its next slot in the future; the skipped ones are counted.
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules WHERE next_run_at <= now()"), 0);
  EXPECT_GE(db->count("SELECT skipped FROM docket.schedules WHERE name = 'skip'"), 5);
}

TEST(Schedules, OverlapPoliciesAndRunNow) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('k')");
  for (const std::string policy : {"skip", "allow", "replace"}) {
    db->query("SELECT docket.schedule('" + policy + "', '@every 1h', 'k', on_overlap => '" + policy + "')");
  }
  int seconds_ago = 10;
  const auto make_due = [&] {
    const std::string at = "date_trunc('second', now()) - interval '" + std::to_string(seconds_ago--) + " s'";
    db->query("UPDATE docket.schedules SET next_slot = " + at + ", next_run_at = " + at);
    db->query("SELECT * FROM docket.schedule_tick()");
  };
  make_due();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 3);
  make_due();  // the first jobs are still available: unfinished
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'skip'"), 1);
  EXPECT_EQ(db->count("SELECT skipped FROM docket.schedules WHERE name = 'skip'"), 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'allow' AND state = 'available'"), 2);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'replace' AND state = 'cancelled'"), 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'replace' AND state = 'available'"), 1);

  // Run now: a job at once, no slot, and the next slot stays where it was.
  const std::string next = db->scalar("SELECT next_run_at FROM docket.schedules WHERE name = 'skip'");
  const std::string id = db->scalar("SELECT docket.run_schedule_now('skip')");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(
      db->scalar("SELECT schedule || ' ' || coalesce(scheduled_for::text, 'none') FROM docket.jobs WHERE id = " + id),
      "skip none");
  EXPECT_EQ(db->scalar("SELECT next_run_at FROM docket.schedules WHERE name = 'skip'"), next);

  // A slot that already has its job is not run again.
  ++seconds_ago;
  make_due();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'allow'"), 2);

  // Pause, unschedule inside a transaction that rolls back, unschedule for good.
  db->query("SELECT docket.pause_schedule('allow')");
  make_due();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'allow'"), 2);
  db->query("BEGIN; SELECT docket.unschedule('replace'); ROLLBACK");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules WHERE name = 'replace'"), 1);
  EXPECT_EQ(db->scalar("SELECT docket.unschedule('replace')"), "t");
  EXPECT_EQ(db->scalar("SELECT docket.unschedule('replace')"), "f");
}

TEST(Schedules, ConcurrentTicksEnqueueEachSlotExactlyOnce) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('k')");
  db->query("SELECT docket.schedule('s' || g, '@every 1s', 'k', on_overlap => 'allow') FROM generate_series(1, 40) g");
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> tickers;
  for (int i = 0; i < 6; ++i) {
    tickers.emplace_back([&] {
      pqxx::connection c(db->url());
      while (!stop) {
        try {
          pqxx::nontransaction tx(c);
          tx.exec("SELECT * FROM docket.schedule_tick()");
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(4));
  stop = true;
  for (auto& t : tickers) t.join();
  EXPECT_EQ(errors.load(), 0);
  // Per schedule: consecutive seconds, each once.
  EXPECT_EQ(db->count("SELECT count(*) FROM (SELECT schedule, scheduled_for FROM docket.jobs "
                      "GROUP BY 1, 2 HAVING count(*) > 1) d"),
            0);
  EXPECT_EQ(db->count("SELECT count(*) FROM (SELECT schedule FROM docket.jobs GROUP BY schedule HAVING "
                      "count(*) <> extract(epoch FROM max(scheduled_for) - min(scheduled_for)) + 1) gaps"),
            0);
  EXPECT_EQ(db->count("SELECT count(DISTINCT schedule) FROM docket.jobs"), 40);
  EXPECT_GE(db->count("SELECT min(n) FROM (SELECT count(*) AS n FROM docket.jobs GROUP BY schedule) x"), 3);
}
