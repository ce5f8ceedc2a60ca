// Schedules with real worker processes: one job per slot while workers are SIGKILLed and
// restarted, and slots enqueued promptly.
#include <csignal>
#include <cstdlib>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

// 3 workers, a schedule @every 1s for `rounds` x `every`, one worker SIGKILLed and restarted every
// `every`. No leader: any live worker's tick enqueues the slot, once.
void every_second_while_workers_are_killed(int rounds, std::chrono::seconds every) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(start_test_worker(*db, dir, "s" + std::to_string(i), {"--concurrency", "4", "--lease", "3s"}));
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wait_registered(*db, "s" + std::to_string(i))) << workers[i]->log_text();
  db->query("SELECT docket.schedule('tick', '@every 1s', 'test.count', on_overlap => 'allow')");
  const auto started = std::chrono::steady_clock::now();
  int kills = 0;
  for (int round = 1; round <= rounds; ++round) {
    std::this_thread::sleep_until(started + round * every);
    auto& victim = workers[static_cast<std::size_t>(round % 3)];
    victim->signal(SIGKILL);
    victim->wait(5s);
    ++kills;
    victim = start_test_worker(*db, dir, "s" + std::to_string(round % 3) + "-" + std::to_string(round),
                               {"--concurrency", "4", "--lease", "3s"});
  }
  db->query("SELECT docket.pause_schedule('tick')");
  const double seconds = seconds_since(started);
  // Slots are whole seconds: count those from the first slot to the last.
  const auto [jobs, span, twice] = schedule_slots(*db, "tick");
  const auto r = db->query(
      "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), "
      "max(ms) FROM (SELECT extract(epoch FROM inserted_at - scheduled_for) * 1000 AS ms FROM docket.jobs "
      "WHERE schedule = 'tick') x");
  std::cout << "schedule: " << jobs << " jobs over " << seconds << " s with " << kills
            << " SIGKILLs; enqueue lateness p50 " << r[0][0].as<double>() << " ms, p99 " << r[0][1].as<double>()
            << " ms, max " << r[0][2].as<double>() << " ms\n";
  EXPECT_EQ(twice, 0) << "a slot got two jobs";
  EXPECT_EQ(jobs, span) << "a slot between the first and the last got no job";
  EXPECT_NEAR(static_cast<double>(jobs), static_cast<double>(rounds * every.count()), 2.0);
  EXPECT_LT(r[0][1].as<double>(), 1000.0) << "p99 lateness";
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) w->wait(20s);
}

}  // namespace

// make test: 40 s with a SIGKILL every 4 s (as many kills as the full scenario, closer together).
TEST(ScheduleProcess, EverySecondForFortySecondsWhileWorkersAreKilledGivesOneJobPerSlot) {
  every_second_while_workers_are_killed(10, 4s);
}

// The scenario, 120 s with a SIGKILL every 10 s: `make test-scale` (DOCKET_TEST_LONG=1), to
// keep two minutes of one test out of CI's `make test`.
TEST(ScheduleLong, EverySecondForTwoMinutesWhileWorkersAreKilledGivesOneJobPerSlot) {
  if (std::getenv("DOCKET_TEST_LONG") == nullptr) GTEST_SKIP() << "the 2-minute run is in make test-scale";
  every_second_while_workers_are_killed(12, 10s);
}

TEST(ScheduleProcess, CliManagesSchedulesAndRefusesBadOnesWithExitTwo) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  const std::map<std::string, std::string> env = {{"DATABASE_URL", db->url()}, {"DOCKET_LOG_LEVEL", "warn"}};
  const auto docket = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DOCKET_BIN);
    return docket::test::run(args, env);
  };
  struct Bad {
    std::vector<std::string> args;
    std::string message;
  };
  for (const auto& c : std::vector<Bad>{
           {{"schedule", "add", "s", "61 * * * *", "scrape"}, "out of range 0-59"},
           {{"schedule", "add", "s", "@hourly", "scrape", "--tz", "Mars/Olympus"}, "Mars/Olympus"},
           {{"schedule", "add", "s", "@hourly", "scarpe"}, "kind scarpe"},
           {{"schedule", "add", "s", "@hourly", "scrape", "{not json"}, "args"},
           {{"schedule", "add", "s", "@hourly", "scrape", "--spread", "soon"}, "--spread"},
           {{"schedule", "add", "s", "@hourly", "scrape", "--on-missed", "never"}, "on_missed"},
       }) {
    const auto r = docket(c.args);
    EXPECT_EQ(r.status, 2) << c.args[3] << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules"), 0);

  auto r = docket({"schedule", "add", "project-42", "0 */4 * * *", "scrape", "{\"project_id\": 42}", "--spread", "4h",
                   "--tz", "Europe/Lisbon"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("next run"), std::string::npos);
  r = docket({"schedules", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const Json rows = Json::parse(r.out);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].at("tz"), "Europe/Lisbon");
  EXPECT_EQ(rows[0].at("args").at("project_id"), 42);
  r = docket({"schedule", "run", "project-42"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(db->scalar("SELECT schedule FROM docket.jobs WHERE id = " + r.out.substr(0, r.out.find('\n'))),
            "project-42");
  EXPECT_EQ(docket({"schedule", "pause", "project-42"}).status, 0);
  EXPECT_EQ(db->scalar("SELECT enabled FROM docket.schedules"), "f");
  EXPECT_EQ(docket({"schedule", "resume", "project-42"}).status, 0);
  EXPECT_EQ(db->scalar("SELECT enabled FROM docket.schedules"), "t");
  EXPECT_EQ(docket({"schedule", "rm", "project-42"}).status, 0);
  EXPECT_EQ(docket({"schedule", "rm", "project-42"}).status, 3);
  EXPECT_EQ(docket({"schedule", "pause", "project-42"}).status, 3);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules"), 0);
}

// [schedules.NAME] in TOML: `docket migrate --config` applies and prunes, a worker's start applies,
// an operator's pause survives both, a refused file changes nothing, docket stats shows them.
TEST(ScheduleProcess, TomlSchedulesAreDeployedByMigrateAndWorkersAndShownByStats) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const std::map<std::string, std::string> env = {{"DATABASE_URL", db->url()}, {"DOCKET_LOG_LEVEL", "warn"}};
  const auto toml = [&](const std::string& schedules) {
    const std::string text = "[worker]\nname = \"cfg\"\n[kinds.tick]\nbuiltin = \"noop\"\n" + schedules;
    docket::test::write_file(dir / "docket.toml", text);
    return text;
  };
  const auto docket = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {DOCKET_BIN, "--config", (dir / "docket.toml").string()});
    return docket::test::run(args, env);
  };
  db->query("INSERT INTO docket.kinds (kind) VALUES ('tick')");
  db->query("SELECT docket.schedule('mine', '@daily', 'tick')");  // run-time: no deploy touches it
  const std::string mine = db->scalar("SELECT to_jsonb(s)::text FROM docket.schedules s WHERE name = 'mine'");
  toml(
      "[schedules.nightly]\ncron = \"30 2 * * *\"\nkind = \"tick\"\ntz = \"Europe/Lisbon\"\nargs = { n = 1 }\n"
      "[schedules.mine]\ncron = \"@hourly\"\nkind = \"tick\"\n");
  auto r = docket({"migrate"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("schedules: 1 applied, 0 deleted, 1 left alone"), std::string::npos) << r.out;
  EXPECT_EQ(
      db->scalar("SELECT source || ' ' || tz || ' ' || (args->>'n') FROM docket.schedules WHERE name = 'nightly'"),
      "config Europe/Lisbon 1");
  EXPECT_EQ(db->scalar("SELECT to_jsonb(s)::text FROM docket.schedules s WHERE name = 'mine'"), mine);
  // The operator pauses it; a worker's start and another migrate leave the pause alone.
  ASSERT_EQ(docket({"schedule", "pause", "nightly"}).status, 0);
  auto worker = start_docket_worker(*db, dir,
                                    toml("[schedules.nightly]\ncron = \"30 2 * * *\"\nkind = \"tick\"\n"
                                         "tz = \"Europe/Lisbon\"\nargs = { n = 2 }\n"),
                                    "docket");
  ASSERT_TRUE(wait_registered(*db, "cfg")) << worker->log_text();
  ASSERT_TRUE(wait_until(
      [&] { return db->scalar("SELECT args->>'n' FROM docket.schedules WHERE name = 'nightly'") == "2"; }, 10s))
      << worker->log_text();
  EXPECT_EQ(db->scalar("SELECT enabled FROM docket.schedules WHERE name = 'nightly'"), "f");
  ASSERT_EQ(docket({"migrate"}).status, 0);
  EXPECT_EQ(db->scalar("SELECT enabled FROM docket.schedules WHERE name = 'nightly'"), "f");
  // docket stats lists schedules with their next run and last job state.
  r = docket({"stats"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("SCHEDULES: 1 enabled, 1 paused, 0 late"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nightly"), std::string::npos) << r.out;
  // A refused schedule: exit 2 naming it and the field, nothing changed (not even the prune).
  const std::string before =
      db->scalar("SELECT string_agg(to_jsonb(s)::text, ',' ORDER BY name) FROM docket.schedules s");
  toml("[schedules.bad]\ncron = \"61 * * * *\"\nkind = \"tick\"\n");
  r = docket({"migrate"});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("schedules.bad: cron: 61 in the minute field is out of range"), std::string::npos) << r.err;
  toml("[schedules.bad]\ncron = \"@hourly\"\nkind = \"tikc\"\n");
  r = docket({"migrate"});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("schedules.bad.kind \"tikc\" is not a kind of this file"), std::string::npos) << r.err;
  EXPECT_EQ(db->scalar("SELECT string_agg(to_jsonb(s)::text, ',' ORDER BY name) FROM docket.schedules s"), before);
  // Removed from the file: migrate deletes it (an empty [schedules] declares "none"); run-time stays.
  toml("[schedules]\n");
  r = docket({"migrate"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("schedules: 0 applied, 1 deleted"), std::string::npos) << r.out;
  EXPECT_EQ(db->scalar("SELECT string_agg(name, ',') FROM docket.schedules"), "mine");
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s).value_or(-1), 0) << worker->log_text();
}
