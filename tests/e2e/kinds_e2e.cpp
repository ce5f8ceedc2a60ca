// What operators set stays set, and what they are told is true, with real processes: the CLI's
// warning for unserved work and strict mode's refusal, a kind's default queue, an operator's limit
// across worker restarts, and retention by the rule stored in the database with two workers.
#include <csignal>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {

docket::test::RunResult docket_cli(TestDatabase& db, std::vector<std::string> args) {
  args.insert(args.begin(), DOCKET_BIN);
  return run(args, {{"DATABASE_URL", db.url()}, {"DOCKET_LOG_LEVEL", "warn"}});
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const char* const kImportWorker = R"(
[worker]
queues = ["default", "imports"]
shutdown_timeout = "5s"

[kinds.import]
command = ["/bin/true"]
queue = "imports"
max_running = 5
)";

}  // namespace

TEST(Kinds, CliWarnsOnStderrForUnservedWorkAndStrictModeExits2) {
  auto db = PgCluster::shared().fresh_database();
  auto r = docket_cli(*db, {"enqueue", "imprt"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string id = trimmed(r.out);
  EXPECT_EQ(r.out, id + "\n");  // stdout: the id only
  EXPECT_EQ(db->scalar("SELECT kind FROM docket.jobs WHERE id = " + id), "imprt");
  EXPECT_NE(r.err.find("warning: job " + id + ": no live worker runs kind imprt"), std::string::npos) << r.err;
  r = docket_cli(*db, {"enqueue", "imprt", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out).at("warnings"), Json::array({"no live worker runs kind imprt"}));

  db->query("INSERT INTO docket.kinds (kind, seen_at) VALUES ('import', now())");
  db->query("ALTER DATABASE " + db->name() + " SET docket.strict_kinds = on");
  r = docket_cli(*db, {"enqueue", "imprt2"});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("kind \"imprt2\" is not run by any worker that ever started"), std::string::npos) << r.err;
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'imprt2'"), 0);
  r = docket_cli(*db, {"enqueue", "import"});
  EXPECT_EQ(r.status, 0) << r.err;  // a registered kind still goes in (with its warning: no live worker)
  EXPECT_NE(r.err.find("no live worker runs kind import"), std::string::npos) << r.err;
}

TEST(Kinds, AnOperatorsLimitSurvivesWorkerRestartsUntilResetAndTheKindsQueueIsServed) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(*db, dir, kImportWorker, "first");
  ASSERT_TRUE(
      wait_until([&] { return db->count("SELECT count(*) FROM docket.workers WHERE dead_at IS NULL") > 0; }, 30s))
      << w->log_text();
  ASSERT_TRUE(
      wait_until([&] { return db->scalar("SELECT max_running FROM docket.kinds WHERE kind = 'import'") == "5"; }, 10s))
      << w->log_text();
  EXPECT_EQ(db->scalar("SELECT limit_source FROM docket.kinds WHERE kind = 'import'"), "config");

  // The kind's default queue: an enqueue that names none lands in imports, which this worker claims.
  auto r = docket_cli(*db, {"enqueue", "import"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  const std::string id = trimmed(r.out);
  EXPECT_EQ(db->scalar("SELECT queue FROM docket.jobs WHERE id = " + id), "imports");
  ASSERT_TRUE(
      wait_until([&] { return db->scalar("SELECT state FROM docket.jobs WHERE id = " + id) == "completed"; }, 20s))
      << w->log_text();

  r = docket_cli(*db, {"limit", "import", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("source: operator"), std::string::npos) << r.out;
  // A deploy: the worker restarts with max_running = 5 in its TOML. The operator's 3 holds, and
  // the worker says why it did not apply its own value.
  w->signal(SIGTERM);
  ASSERT_EQ(w->wait(20s), 0) << w->log_text();
  auto w2 = start_docket_worker(*db, dir, kImportWorker, "second");
  ASSERT_TRUE(wait_until([&] { return w2->log_text().find("kind.limit_kept") != std::string::npos; }, 30s))
      << w2->log_text();
  EXPECT_NE(w2->log_text().find("config_max_running=5"), std::string::npos) << w2->log_text();
  EXPECT_EQ(db->scalar("SELECT max_running || '/' || limit_source FROM docket.kinds WHERE kind = 'import'"),
            "3/operator");
  r = docket_cli(*db, {"limit"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("SOURCE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("operator"), std::string::npos) << r.out;
  // Reset: the config value applies again at once, and the next restart logs its change.
  r = docket_cli(*db, {"limit", "import", "--reset"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("at most 5 import jobs run at once (source: config)"), std::string::npos) << r.out;
  EXPECT_EQ(db->scalar("SELECT max_running || '/' || limit_source FROM docket.kinds WHERE kind = 'import'"),
            "5/config");
  w2->signal(SIGTERM);
  ASSERT_EQ(w2->wait(20s), 0) << w2->log_text();
  std::string seven = kImportWorker;
  seven.replace(seven.find("max_running = 5"), 15, "max_running = 7");
  auto w3 = start_docket_worker(*db, dir, seven, "third");
  ASSERT_TRUE(wait_until([&] { return w3->log_text().find("kind.limit_changed") != std::string::npos; }, 30s))
      << w3->log_text();
  const std::string log = w3->log_text();
  EXPECT_NE(log.find("max_running=7"), std::string::npos) << log;
  EXPECT_NE(log.find("previous=5"), std::string::npos) << log;
  EXPECT_NE(log.find("source=config"), std::string::npos) << log;
  // Bad input to the command exits 2 and changes nothing.
  r = docket_cli(*db, {"limit", "import", "4", "--reset"});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_EQ(db->scalar("SELECT max_running FROM docket.kinds WHERE kind = 'import'"), "7");
  w3->signal(SIGTERM);
  EXPECT_EQ(w3->wait(20s), 0) << w3->log_text();
}

TEST(Kinds, AFinishedBacklogOfManyBatchesIsPrunedInOnePassNotOneBatchPerInterval) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  // 23,000 completed jobs past the default retention (24 h): almost five prune batches (5,000).
  db->query(
      "INSERT INTO docket.jobs (kind, state, finished_at) SELECT 'report', 'completed', now() - interval '2 days'"
      "  FROM generate_series(1, 23000)");
  // The first prune comes about 5 s after start (a quarter of the interval), the next 20 s later.
  auto worker = start_docket_worker(*db, dir, R"(
[worker]
prune_interval = "20s"
[kinds.report]
command = ["/bin/true"]
)",
                                    "pruner");
  ASSERT_TRUE(wait_until([&] { return worker->log_text().find("job.pruned") != std::string::npos; }, 30s))
      << worker->log_text();
  // One batch per interval would leave 18,000 rows for the next 20 s: they go in one pass.
  ASSERT_TRUE(wait_until([&] { return db->count("SELECT count(*) FROM docket.jobs") == 0; }, 12s))
      << db->count("SELECT count(*) FROM docket.jobs") << " left\n"
      << worker->log_text();
  // The last call's line is written after its commit: wait for it rather than race it.
  ASSERT_TRUE(wait_until([&] { return worker->log_text().find("job.pruned count=3000") != std::string::npos; }, 5s))
      << worker->log_text();
  const std::string log = worker->log_text();
  int full = 0;
  for (auto at = log.find("job.pruned count=5000"); at != std::string::npos;
       at = log.find("job.pruned count=5000", at + 1)) {
    const auto next = at + std::string("job.pruned count=5000").size();
    if (next >= log.size() || !std::isdigit(static_cast<unsigned char>(log[next]))) ++full;
  }
  EXPECT_EQ(full, 4) << log;
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->log_text();
}

TEST(Kinds, TwoWorkersWithDifferentRetentionEachPruneOnlyByTheStoredRule) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  // One worker keeps its report kind's completed jobs 1 s; the other sets nothing for import.
  auto reports = start_docket_worker(*db, dir, R"(
[worker]
prune_interval = "1s"
[kinds.report]
command = ["/bin/true"]
retain_completed = "1s"
)",
                                     "reports");
  auto imports = start_docket_worker(*db, dir, R"(
[worker]
prune_interval = "1s"
[kinds.import]
command = ["/bin/true"]
)",
                                     "imports");
  ASSERT_TRUE(
      wait_until([&] { return db->count("SELECT count(*) FROM docket.workers WHERE dead_at IS NULL") == 2; }, 30s))
      << reports->log_text() << imports->log_text();
  db->query(
      "INSERT INTO docket.jobs (kind, state, finished_at) SELECT k, 'completed', now() - interval '1 minute' "
      "  FROM unnest('{report,import}'::text[]) k, generate_series(1, 20)");
  ASSERT_TRUE(wait_until([&] { return db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'report'") == 0; }, 20s))
      << reports->log_text();
  // Both workers pruned meanwhile (1 s cycles); import's history is untouched by report's rule.
  std::this_thread::sleep_for(2500ms);  // more prune cycles of both workers: still nothing of import goes
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'import'"), 20);
  // docket stats shows each kind's retention.
  const auto r = docket_cli(*db, {"stats", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const Json stats = Json::parse(r.out);
  std::map<std::string, Json> kinds;
  for (const auto& k : stats.at("kinds")) kinds[k.at("kind")] = k;
  EXPECT_EQ(kinds["report"].at("retain_completed_s"), 1.0) << r.out;
  EXPECT_EQ(kinds["import"].at("retain_completed_s"), 86400.0) << r.out;
  EXPECT_EQ(kinds["import"].at("retain_failed_s"), 7 * 86400.0) << r.out;
  reports->signal(SIGTERM);
  imports->signal(SIGTERM);
  EXPECT_EQ(reports->wait(20s), 0);
  EXPECT_EQ(imports->wait(20s), 0);
}
