// Schedules declared in TOML, as a deploy applies them (docket migrate, a worker's start): all or
// none, run-time schedules never touched, an operator's pause surviving, removal only by prune.
#include <gtest/gtest.h>

#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

ScheduleSpec config_spec(const std::string& name, const std::string& cron, bool enabled = true) {
  ScheduleSpec s;
  s.name = name;
  s.cron = cron;
  s.kind = "scrape";
  s.args = Json{{"project_id", 42}};
  s.enabled = enabled;
  s.source = "config";
  return s;
}

std::string row(test::TestDatabase& db, const std::string& name) {
  return db.scalar("SELECT coalesce((SELECT to_jsonb(s)::text FROM docket.schedules s WHERE name = '" + name +
                   "'), 'none')");
}

std::string state(test::TestDatabase& db, const std::string& name) {
  return db.scalar("SELECT enabled::text || ' ' || (next_run_at > now())::text FROM docket.schedules WHERE name = '" +
                   name + "'");
}

}  // namespace

TEST(ConfigSchedules, DeployCreatesAndUpdatesButNeverTouchesRunTimeSchedules) {
  auto db = PgCluster::shared().fresh_database();
  Client client(db->url());
  // A fresh database: no worker ever ran "scrape"; the config declares it, so the deploy registers it.
  db->query("INSERT INTO docket.kinds (kind) VALUES ('other')");
  db->query("SELECT docket.schedule('ops', '@daily', 'other')");
  const std::string ops_before = row(*db, "ops");
  ScheduleDeploy d = client.deploy_schedules({config_spec("a", "@hourly"), config_spec("ops", "*/5 * * * *")}, true);
  EXPECT_EQ(d.applied, std::vector<std::string>{"a"});
  EXPECT_EQ(d.runtime, std::vector<std::string>{"ops"});
  EXPECT_TRUE(d.deleted.empty());
  EXPECT_EQ(row(*db, "ops"), ops_before);
  EXPECT_EQ(
      db->scalar("SELECT source || ' ' || cron || ' ' || (args->>'project_id') FROM docket.schedules WHERE name = 'a'"),
      "config @hourly 42");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.kinds WHERE kind = 'scrape'"), 1);
  // Same timing again: the slot it waits for does not move.
  const std::string next = db->scalar("SELECT next_run_at::text FROM docket.schedules WHERE name = 'a'");
  client.deploy_schedules({config_spec("a", "@hourly")}, false);
  EXPECT_EQ(db->scalar("SELECT next_run_at::text FROM docket.schedules WHERE name = 'a'"), next);
  // A job of it, then a deploy without it: kept by a worker's start (no prune), deleted by migrate's.
  const auto job = client.run_schedule_now("a");
  ASSERT_TRUE(job);
  d = client.deploy_schedules({}, false);
  EXPECT_TRUE(d.deleted.empty());
  EXPECT_NE(row(*db, "a"), "none");
  d = client.deploy_schedules({}, true);
  EXPECT_EQ(d.deleted, std::vector<std::string>{"a"});
  EXPECT_EQ(row(*db, "a"), "none");
  EXPECT_EQ(row(*db, "ops"), ops_before);  // prune never deletes a run-time schedule
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE id = " + std::to_string(*job)), 1);
}

TEST(ConfigSchedules, RunTimeUpsertTakesAConfigScheduleOver) {
  auto db = PgCluster::shared().fresh_database();
  Client client(db->url());
  client.deploy_schedules({config_spec("a", "@hourly")}, true);
  ScheduleSpec mine = config_spec("a", "@daily");
  mine.source = "runtime";
  client.schedule(mine);  // PUT /schedules/a, docket schedule add
  const std::string before = row(*db, "a");
  const ScheduleDeploy d = client.deploy_schedules({config_spec("a", "@hourly")}, true);
  EXPECT_EQ(d.runtime, std::vector<std::string>{"a"});
  EXPECT_TRUE(d.deleted.empty());
  EXPECT_EQ(row(*db, "a"), before);
  EXPECT_EQ(db->scalar("SELECT source || ' ' || cron FROM docket.schedules WHERE name = 'a'"), "runtime @daily");
}

TEST(ConfigSchedules, AnOperatorsPauseOrResumeSurvivesDeploysAndAChangedEnabledApplies) {
  auto db = PgCluster::shared().fresh_database();
  Client client(db->url());
  client.deploy_schedules({config_spec("a", "@every 1h", true)}, true);
  EXPECT_EQ(state(*db, "a"), "true true");
  client.pause_schedule("a");
  client.deploy_schedules({config_spec("a", "@every 1h", true)}, true);  // the TOML did not change
  EXPECT_EQ(state(*db, "a"), "false true") << "a deploy undid the operator's pause";
  client.deploy_schedules({config_spec("a", "@every 1h", false)}, true);  // the TOML now says paused
  EXPECT_EQ(state(*db, "a"), "false true");
  // Paused a while: its next slot passed. The TOML enabling it resumes from the next slot after now.
  db->query(
      "UPDATE docket.schedules SET next_slot = now() - interval '3 hours', next_run_at = now() - interval '3 hours'");
  client.deploy_schedules({config_spec("a", "@every 1h", true)}, true);
  EXPECT_EQ(state(*db, "a"), "true true");
  client.deploy_schedules({config_spec("a", "@every 1h", false)}, true);
  EXPECT_EQ(state(*db, "a"), "false true");
  client.resume_schedule("a");  // the operator overrides the TOML until the TOML changes again
  client.deploy_schedules({config_spec("a", "@every 1h", false)}, true);
  EXPECT_EQ(state(*db, "a"), "true true") << "a deploy undid the operator's resume";
}

TEST(ConfigSchedules, ARefusedScheduleNamesItselfAndTheFieldAndNothingIsWritten) {
  auto db = PgCluster::shared().fresh_database();
  Client client(db->url());
  client.deploy_schedules({config_spec("keep", "@hourly")}, true);
  const std::string before = db->scalar("SELECT string_agg(to_jsonb(s)::text, ',') FROM docket.schedules s");
  struct Case {
    ScheduleSpec bad;
    std::string message;
  };
  ScheduleSpec bad_tz = config_spec("bad", "@hourly");
  bad_tz.tz = "Mars/Olympus";
  ScheduleSpec bad_queue = config_spec("bad", "@hourly");
  bad_queue.queue = "";
  ScheduleSpec bad_args = config_spec("bad", "@hourly");
  bad_args.args = Json{{"s", std::string("a\0b", 3)}};
  const std::vector<Case> cases = {
      {config_spec("bad", "61 * * * *"), "schedules.bad: cron: 61 in the minute field is out of range 0-59"},
      {config_spec("bad", "0 0 30 2 *"), "schedules.bad: cron"},
      {bad_tz, "schedules.bad: tz \"Mars/Olympus\" is not a time zone"},
      {bad_queue, "schedules.bad: queue"},
      {bad_args, "args"},
  };
  for (const auto& c : cases) {
    std::string message = "(accepted)";
    try {
      client.deploy_schedules({config_spec("new", "@daily"), c.bad}, true);
    } catch (const InvalidInput& e) {
      message = e.what();
    }
    EXPECT_NE(message.find(c.message), std::string::npos) << message;
    // All or none: neither "new" nor a prune of "keep" happened.
    EXPECT_EQ(db->scalar("SELECT string_agg(to_jsonb(s)::text, ',') FROM docket.schedules s"), before) << c.message;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
}
