// What a kind's row in docket.kinds decides, on a real database: the warning for work no live
// worker would run, strict mode, the kind's default queue, the quota's source and retention.
#include <gtest/gtest.h>

#include "db/session.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

/// A live worker row running `kinds` from `queues` (what a starting worker registers).
void live_worker(test::TestDatabase& db, const std::string& queues, const std::string& kinds) {
  db.query("INSERT INTO docket.workers (name, queues, kinds) VALUES ('w', '" + queues + "', '" + kinds + "')");
}

/// The SQLSTATE and message a statement fails with ("" when it succeeds), on a new connection (so
/// it sees database-level settings made after the test's own connection opened).
std::pair<std::string, std::string> failure(test::TestDatabase& db, const std::string& sql) {
  try {
    pqxx::connection c(db.url());
    pqxx::nontransaction tx(c);
    tx.exec(sql);
    return {"", ""};
  } catch (const pqxx::sql_error& e) {
    return {e.sqlstate(), e.what()};
  }
}

}  // namespace

TEST(Kinds, EnqueueAnswersWarnWhenNoLiveWorkerWouldRunTheJob) {
  auto db = PgCluster::shared().fresh_database();
  live_worker(*db, "{default}", "{import}");
  // A dead worker that ran everything does not count.
  db->query(
      "INSERT INTO docket.workers (name, queues, kinds, heartbeat_at, dead_at) "
      "VALUES ('gone', '{default,nobody}', '{import,imprt}', now() - interval '1 hour', now())");
  Client client(db->url());
  EXPECT_EQ(client.enqueue({.kind = "import"}).warning, std::nullopt);
  EXPECT_EQ(client.enqueue({.kind = "imprt"}).warning, "no live worker runs kind imprt");
  EXPECT_EQ(client.enqueue({.kind = "import", .queue = "nobody"}).warning, "no live worker claims queue nobody");
  live_worker(*db, "{other}", "{report}");
  EXPECT_EQ(client.enqueue({.kind = "report"}).warning, "no live worker runs kind report in queue default");
  const auto batch = client.submit_many({{.kind = "import"}, {.kind = "imprt"}, {.kind = "report", .queue = "other"}});
  ASSERT_EQ(batch.size(), 3U);
  EXPECT_EQ(batch[0].warning, std::nullopt);
  EXPECT_EQ(batch[1].warning, "no live worker runs kind imprt");
  EXPECT_EQ(batch[2].warning, std::nullopt);
  // The warning is only a warning: every job was written.
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 7);
  // Not on docket.enqueue's own path: the SQL function's plan does not read the workers.
  EXPECT_EQ(db->scalar("SELECT prosrc LIKE '%docket.workers%' FROM pg_proc WHERE proname = 'enqueue_job'"), "f");
}

TEST(Kinds, StrictModeRefusesKindsNoWorkerRegisteredOnEverySqlPath) {
  auto db = PgCluster::shared().fresh_database();
  db->query("ALTER DATABASE " + db->name() + " SET docket.strict_kinds = on");
  // A kind an operator only gave a limit to is not registered; one a worker registered is.
  db->query("SELECT docket.set_limit('typo', 1)");
  db::Session worker(db->url(), "test");
  db::WorkerRow row;
  row.name = "w";
  row.kinds = {"import"};
  row.queues = {"default"};
  worker.register_worker(row);
  const std::string expected =
      "kind \"imprt\" is not run by any worker that ever started (docket.kinds) and docket.strict_kinds is on";
  for (const std::string sql : {"SELECT docket.enqueue('imprt')", "SELECT docket.enqueue_job('imprt')"}) {
    const auto [state, message] = failure(*db, sql);
    EXPECT_EQ(state, "22023") << sql;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  auto [state, message] = failure(*db, R"(SELECT * FROM docket.enqueue_many('[{"kind":"import"},{"kind":"typo"}]'))");
  EXPECT_EQ(state, "22023");
  EXPECT_NE(message.find("jobs[1].kind \"typo\" is not run by any worker"), std::string::npos) << message;
  // The C++ client: single, bulk (the COPY path defers to the function) and submit.
  Client client(db->url());
  for (const auto& call :
       std::vector<std::function<void()>>{[&] { client.enqueue({.kind = "imprt"}); },
                                          [&] {
                                            client.enqueue_many({{.kind = "import"}, {.kind = "imprt"}});
                                          },
                                          [&] { client.submit_many({{.kind = "imprt"}}); }}) {
    try {
      call();
      ADD_FAILURE() << "strict mode let an unregistered kind in";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find("is not run by any worker that ever started"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);  // nothing written by any refusal
  // Registered kinds still go in, on every path, and a bad setting is an error naming it.
  EXPECT_GT(client.enqueue({.kind = "import"}).id, 0);
  EXPECT_EQ(client.enqueue_many({{.kind = "import"}, {.kind = "import"}}).size(), 2U);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 3);
  std::tie(state, message) = failure(*db, "SET docket.strict_kinds = 'maybe'; SELECT docket.enqueue('import')");
  EXPECT_EQ(state, "22023");
  EXPECT_NE(message.find("setting docket.strict_kinds must be on or off, got \"maybe\""), std::string::npos);
  // Off (the default) lets any kind in.
  db->query("ALTER DATABASE " + db->name() + " RESET docket.strict_kinds");
  Client relaxed(db->url());
  EXPECT_GT(relaxed.enqueue({.kind = "imprt"}).id, 0);
}

TEST(Kinds, AnEnqueueWithoutAQueueLandsInTheKindsQueue) {
  auto db = PgCluster::shared().fresh_database();
  db::Session worker(db->url(), "test");
  worker.seed_kind({.kind = "import", .queue = "imports"});
  Client client(db->url());
  const auto queue_of = [&](std::int64_t id) { return client.job(id)->queue; };
  EXPECT_EQ(queue_of(client.enqueue({.kind = "import"}).id), "imports");
  EXPECT_EQ(queue_of(client.enqueue({.kind = "import", .queue = "urgent"}).id), "urgent");
  EXPECT_EQ(queue_of(client.enqueue({.kind = "other"}).id), "default");
  // Bulk: the COPY path defers kinds with a queue to docket.enqueue_many; submit_many too.
  const auto many = client.enqueue_many({{.kind = "import"}, {.kind = "other"}, {.kind = "import", .queue = "x"}});
  EXPECT_EQ(queue_of(many[0].id), "imports");
  EXPECT_EQ(queue_of(many[1].id), "default");
  EXPECT_EQ(queue_of(many[2].id), "x");
  EXPECT_EQ(client.submit_many({{.kind = "import"}})[0].job.queue, "imports");
  const auto plain = client.enqueue_many({{.kind = "other"}, {.kind = "other"}});
  EXPECT_EQ(queue_of(plain[1].id), "default");
  // SQL: a queue not given, or NULL, is the kind's; enqueue_many's slow path (taken for a
  // priority of 1.0, which the one-statement fast path cannot cast) resolves it the same way.
  const auto sql_queue = [&](const std::string& call) {
    return db->scalar("SELECT queue FROM docket.jobs WHERE id = " + db->scalar("SELECT " + call));
  };
  EXPECT_EQ(sql_queue("docket.enqueue('import')"), "imports");
  EXPECT_EQ(sql_queue("docket.enqueue('import', '{}', NULL)"), "imports");
  EXPECT_EQ(sql_queue("id FROM docket.enqueue_many('[{\"kind\":\"import\",\"unique_key\":\"k1\"}]')"), "imports");
  EXPECT_EQ(sql_queue("id FROM docket.enqueue_many('[{\"kind\":\"import\",\"priority\":1.0}]')"), "imports");
  // A schedule without a queue enqueues into the kind's queue.
  db->query("SELECT docket.schedule('s', '* * * * *', 'import')");
  EXPECT_EQ(sql_queue("docket.run_schedule_now('s')"), "imports");
  // An empty queue given explicitly is still an error naming the field, with nothing written.
  const auto before = db->count("SELECT count(*) FROM docket.jobs");
  EXPECT_EQ(failure(*db, "SELECT docket.enqueue('import', '{}', '')").first, "22023");
  EXPECT_THROW(client.enqueue({.kind = "import", .queue = ""}), InvalidInput);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), before);
}

TEST(Kinds, AnOperatorsLimitSurvivesConfigSeedsUntilReset) {
  auto db = PgCluster::shared().fresh_database();
  db::Session worker(db->url(), "test");
  auto r = worker.seed_kind({.kind = "import", .max_running = 5});
  EXPECT_FALSE(r.existed);
  EXPECT_EQ(r.after, 5);
  EXPECT_EQ(r.source, "config");
  Client client(db->url());
  client.set_limit("import", 3);
  // A worker restart with the TOML's 5: the operator's 3 holds, and the seed says so.
  r = worker.seed_kind({.kind = "import", .max_running = 5});
  EXPECT_EQ(r.before, 3);
  EXPECT_EQ(r.after, 3);
  EXPECT_EQ(r.source, "operator");
  EXPECT_EQ(r.config_max_running, 5);
  auto limits = client.limits();
  ASSERT_EQ(limits.size(), 1U);
  EXPECT_EQ(limits[0].max_running, 3);
  EXPECT_EQ(limits[0].source, "operator");
  EXPECT_EQ(limits[0].config_max_running, 5);
  // An operator's "no limit" holds too.
  client.set_limit("import", std::nullopt);
  EXPECT_EQ(worker.seed_kind({.kind = "import", .max_running = 5}).after, std::nullopt);
  // Reset: the TOML value applies again, and the next seed may change it.
  EXPECT_TRUE(client.reset_limit("import"));
  EXPECT_FALSE(client.reset_limit("import"));
  limits = client.limits();
  EXPECT_EQ(limits[0].max_running, 5);
  EXPECT_EQ(limits[0].source, "config");
  r = worker.seed_kind({.kind = "import", .max_running = 7});
  EXPECT_EQ(r.before, 5);
  EXPECT_EQ(r.after, 7);
  // A kind nobody configured: reset leaves no limit. A bad name is refused.
  client.set_limit("adhoc", 2);
  EXPECT_TRUE(client.reset_limit("adhoc"));
  EXPECT_EQ(db->scalar("SELECT coalesce(max_running::text, 'none') || '/' || coalesce(limit_source, 'none') "
                       "FROM docket.kinds WHERE kind = 'adhoc'"),
            "none/none");
  EXPECT_THROW(client.reset_limit(""), InvalidInput);
}

TEST(Kinds, PruneAppliesEachKindsRetentionAndTheDefault) {
  auto db = PgCluster::shared().fresh_database();
  db::Session worker(db->url(), "test");
  // report keeps completed jobs 30 s; import sets nothing (the default: 24 h and 7 days).
  worker.seed_kind({.kind = "report", .retain_completed = std::chrono::seconds(30)});
  db->query(
      "INSERT INTO docket.jobs (kind, state, finished_at) SELECT k, s::docket.job_state, now() - age "
      "  FROM unnest('{report,import,adhoc}'::text[]) k, unnest('{completed,failed,cancelled}'::text[]) s, "
      "       unnest('{1 minute,2 days,8 days}'::interval[]) age");
  EXPECT_EQ(worker.prune(5000), (3 + 1 + 1) + (2 + 1 + 1) * 2);
  const auto left = [&](const std::string& kind) {
    return db->scalar(
        "SELECT string_agg(state || '@' || extract(day FROM now() - finished_at), ',' "
        "ORDER BY state, finished_at DESC) FROM docket.jobs WHERE kind = '" +
        kind + "'");
  };
  // report: completed past 30 s go; failed/cancelled keep the default 7 days.
  EXPECT_EQ(left("report"), "failed@0,failed@2,cancelled@0,cancelled@2");
  // import and a kind with no row at all: the default.
  EXPECT_EQ(left("import"), "completed@0,failed@0,failed@2,cancelled@0,cancelled@2");
  EXPECT_EQ(left("adhoc"), "completed@0,failed@0,failed@2,cancelled@0,cancelled@2");
  // The default lives in the database: changing it applies to every kind without its own.
  db->query("SELECT docket.set_retention(NULL, '30 seconds', '30 seconds')");
  EXPECT_EQ(worker.prune(5000), 4 + 5 + 5);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  EXPECT_EQ(failure(*db, "SELECT docket.set_retention('x', '-1 s', NULL)").first, "22023");
}

TEST(Kinds, OneSeedWritesEveryKindSettingAndARefusedOneWritesNone) {
  auto db = PgCluster::shared().fresh_database();
  db::Session worker(db->url(), "test");
  KindSettings s{
      .kind = "report",
      .max_retries = 4,
      .max_running = 6,
      .crawl_collection = "reports",
      .timeout = std::chrono::seconds(90),
      .queue = "slow",
      .retain_completed = std::chrono::hours(2),
      .retain_failed = std::chrono::hours(3),
      .rate = "10/1m",
      .burst = 5,
      .keyed = {.partition = "args.tenant", .max_running_per_key = 2, .rate_per_key = "3/1s", .burst_per_key = 4},
      .unique =
          KindUnique{.by = {"args.report"},
                     .period = std::chrono::minutes(10),
                     .states = std::vector<std::string>{"available", "scheduled", "running", "retryable", "completed"}},
      .result_ttl = std::chrono::hours(1)};
  const auto r = worker.seed_kind(s);
  EXPECT_FALSE(r.existed);
  EXPECT_EQ(r.after, 6);
  EXPECT_EQ(r.source, "config");
  EXPECT_EQ(r.partition_applied, true);
  EXPECT_EQ(r.partition_source, "config");
  EXPECT_EQ(r.partition, "args.tenant");
  const std::string row_sql =
      "SELECT concat_ws('|', max_retries, max_running, config_max_running, limit_source, crawl_collection, timeout, "
      "queue, retain_completed, retain_failed, rate_limit, rate_period, rate_burst, partition, max_running_per_key, "
      "rate_per_key_limit, rate_per_key_period, rate_per_key_burst, partition_source, unique_by, unique_for, "
      "unique_states, result_ttl) FROM docket.kinds WHERE kind = 'report'";
  const std::string seeded =
      "4|6|6|config|reports|00:01:30|slow|02:00:00|03:00:00|10|00:01:00|5|args.tenant|2|3|00:00:01|4|config|"
      "{args.report}|00:10:00|{available,scheduled,running,retryable,completed}|01:00:00";
  EXPECT_EQ(db->scalar(row_sql), seeded);
  // The same settings with one refused value (each setting's own check): an error naming it, and
  // none of the other values written, not even those checked before it.
  auto bad = s;
  bad.queue = "fast";
  bad.max_running = 9;
  bad.keyed.rate_per_key = "3/fortnight";
  EXPECT_THROW(worker.seed_kind(bad), InvalidInput);
  bad.keyed.rate_per_key = "3/1s";
  bad.unique->states = std::vector<std::string>{"availble"};
  try {
    worker.seed_kind(bad);
    ADD_FAILURE() << "a misspelt unique state was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("availble"), std::string::npos) << e.what();
  }
  EXPECT_EQ(db->scalar(row_sql), seeded);
  // The session still answers, and a nullopt (or a JSON null) leaves every stored value as it is.
  const auto again = worker.seed_kind({.kind = "report"});
  EXPECT_TRUE(again.existed);
  EXPECT_EQ(again.after, 6);
  EXPECT_EQ(again.partition_applied, std::nullopt);
  EXPECT_EQ(db->scalar(row_sql), seeded);
  db->query(R"(SELECT docket.seed_kind('{"kind": "report", "rate": null, "burst": null, "unique_by": null}'))");
  EXPECT_EQ(db->scalar(row_sql), seeded);
}

TEST(Kinds, SeedKindRefusesHostileSettingsNamingTheFieldAndWritesNothing) {
  auto db = PgCluster::shared().fresh_database();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"'[1]'", "kind settings must be a JSON object"},
      {"NULL", "kind settings must be a JSON object"},
      {R"('{"kind": "k", "max_runing": 5}')", "kind setting max_runing is not one docket.seed_kind knows"},
      {R"('{"kind": "k", "max_running": "5"}')", "kind setting max_running must be a JSON number, got string"},
      {R"('{"kind": "k", "max_running": 1.5}')", "kind setting max_running must be a whole number"},
      {R"('{"kind": "k", "max_retries": -1}')", "kind setting max_retries must be a whole number"},
      {R"('{"kind": "k", "burst": 1e300, "rate": "1/s"}')", "kind setting burst must be a whole number"},
      {R"('{"kind": "k", "timeout_s": 1e300}')", "kind setting timeout_s must be a number of seconds"},
      {R"('{"kind": "k", "retain_failed_s": -1}')", "kind setting retain_failed_s must be a number of seconds"},
      {R"('{"kind": "k", "queue": ["a"]}')", "kind setting queue must be a JSON string, got array"},
      {R"('{"kind": "k", "unique_by": [1]}')", "kind setting unique_by must be a list of at most 100 strings"},
      {R"('{"kind": "k", "unique_by": {"a": 1}}')", "kind setting unique_by must be a JSON array, got object"},
      {R"('{"kind": ""}')", "kind must be a non-empty string"},
      {R"('{"max_running": 1}')", "kind must be a non-empty string"},
      {R"('{"kind": "k", "rate": "1/fortnight"}')", "fortnight"},
      {R"('{"kind": "k", "partition": "tenant"}')", "partition"},
      {R"('{"kind": "k", "burst": 5}')", "burst needs a rate"},
      {R"('{"kind": "k", "rate_per_key": "1/s", "partition": null}')", "kind setting rate_per_key needs a partition"},
      {R"('{"kind": "k", "unique_states": ["available"]}')", "need unique.by"},
      {"jsonb_build_object('kind', 'k', 'unique_states', (SELECT jsonb_agg(i::text) FROM generate_series(1, 101) i))",
       "kind setting unique_states must be a list of at most 100 strings"},
      {"jsonb_build_object('kind', 'k', repeat('x', 100000), 1)", "is not one docket.seed_kind knows"},
  };
  for (const auto& [settings, message] : cases) {
    const auto [state, what] = failure(*db, "SELECT docket.seed_kind(" + settings + ")");
    EXPECT_EQ(state, "22023") << settings << ": " << what;
    EXPECT_NE(what.find(message), std::string::npos) << settings << ": " << what;
    EXPECT_LT(what.size(), 2000U) << settings;  // an unknown key is named, not echoed whole
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.kinds"), 0);
  // Still answering: a good seed works.
  EXPECT_EQ(db->scalar("SELECT max_running FROM docket.seed_kind('{\"kind\": \"k\", \"max_running\": 2}')"), "2");
}
