// The hot queries' plans with 100k jobs present: every statement that touches docket.jobs, and
// every statement inside the PL/pgSQL functions it calls, reads the table through an index, never
// a sequential scan, and never walks a whole index of all jobs. Each query is planned as the
// engine plans it: the producer's and completer's sessions pin one generic plan with sequential
// and bitmap scans off; the other sessions plan for their actual arguments.
//
// Plans come from auto_explain (log_nested_statements, log_level NOTICE): what PostgreSQL actually
// ran, including inside functions, not what EXPLAIN of the outer call shows.
#include <gtest/gtest.h>

#include <regex>

#include "db/queries.hpp"
#include "docket/job.hpp"
#include "pg.hpp"

using docket::Json;
using docket::test::PgCluster;

namespace {

/// Collects the server's NOTICE messages of one connection.
class Notices final : public pqxx::errorhandler {
 public:
  explicit Notices(pqxx::connection_base& conn) : pqxx::errorhandler(conn) {}
  bool operator()(const char msg[]) noexcept override {
    try {
      messages.emplace_back(msg);
    } catch (...) {
    }
    return false;
  }
  std::vector<std::string> messages;
};

/// One scan of docket.jobs in a plan.
struct JobsScan {
  std::string node;   ///< Seq Scan, Index Scan, Index Only Scan, Bitmap Heap Scan...
  std::string index;  ///< for index scans
  bool has_cond = false;
  bool under_limit = false;  ///< an ordered scan a LIMIT stops early (keyset pages)
  std::string statement;
};

void collect(const Json& plan, const std::string& statement, bool under_limit, std::vector<JobsScan>& out,
             const std::string& table = "jobs") {
  if (plan.value("Relation Name", "") == table || plan.value("Index Name", "").rfind(table + "_", 0) == 0) {
    out.push_back({plan.value("Node Type", ""), plan.value("Index Name", ""), plan.contains("Index Cond"), under_limit,
                   statement});
  }
  // A set of items (unnest) on the inner side of a nested loop is read again for every outer row.
  if (plan.value("Node Type", "") == "Function Scan" && plan.value("Parent Relationship", "") == "Inner") {
    out.push_back({"Function Scan (inner)", "", false, under_limit, statement});
  }
  under_limit = under_limit || plan.value("Node Type", "") == "Limit";
  if (plan.contains("Plans")) {
    for (const auto& child : plan.at("Plans")) collect(child, statement, under_limit, out, table);
  }
}

/// The scans of docket.<table> in the plans auto_explain logged (JSON notices).
std::vector<JobsScan> logged_scans(const std::vector<std::string>& messages, const std::string& table = "jobs") {
  std::vector<JobsScan> out;
  for (const auto& m : messages) {
    const auto brace = m.find('{');
    if (brace == std::string::npos) continue;
    const Json logged = Json::parse(m.substr(brace), nullptr, false);
    if (logged.is_discarded() || !logged.contains("Plan")) continue;
    collect(logged.at("Plan"), logged.value("Query Text", ""), false, out, table);
  }
  return out;
}

// 100k jobs in every state, two queues, three kinds; a dead worker holding half the running ones.
const char* const kJobs100k = R"sql(
      INSERT INTO docket.workers (id, name, host, pid, queues, kinds, concurrency, heartbeat_at)
      VALUES ('00000000-0000-0000-0000-00000000000a', 'dead', 'h', 1, '{default}', '{a}', 10, now() - interval '1 hour'),
             ('00000000-0000-0000-0000-00000000000b', 'live', 'h', 2, '{default}', '{a}', 10, now());
      INSERT INTO docket.jobs (kind, queue, state, priority, run_at, attempt, started_at, finished_at, worker,
                               unique_key)
      SELECT (ARRAY['a', 'b', 'c'])[1 + g % 3],
             CASE WHEN g % 4 = 0 THEN 'other' ELSE 'default' END,
             s.state::docket.job_state,
             g % 5,
             CASE WHEN s.state IN ('scheduled', 'retryable') THEN now() + interval '1 hour'
                  ELSE now() - interval '1 day' END,
             CASE WHEN s.state = 'available' OR s.state = 'scheduled' THEN 0 ELSE 1 END,
             CASE WHEN s.state IN ('running', 'completed', 'failed', 'cancelled') THEN now() - interval '1 day' END,
             CASE WHEN s.state IN ('completed', 'failed', 'cancelled')
                  THEN now() - (g % 200) * interval '1 hour' END,
             CASE WHEN s.state = 'running'
                  THEN (CASE WHEN g % 2 = 0 THEN '00000000-0000-0000-0000-00000000000a'
                             ELSE '00000000-0000-0000-0000-00000000000b' END)::uuid END,
             CASE WHEN g % 10 = 0 AND s.state IN ('available', 'scheduled') THEN 'key-' || g END
        FROM generate_series(1, 100000) g
        CROSS JOIN LATERAL (SELECT CASE
               WHEN g % 100 < 35 THEN 'available' WHEN g % 100 < 45 THEN 'scheduled'
               WHEN g % 100 < 50 THEN 'retryable' WHEN g % 100 < 53 THEN 'running'
               WHEN g % 100 < 90 THEN 'completed' WHEN g % 100 < 97 THEN 'failed'
               ELSE 'cancelled' END AS state) s;
      INSERT INTO docket.kinds (kind, max_running) VALUES ('c', 1000);
    )sql";

struct Case {
  docket::db::Query query;           ///< schema/queries/NAME.sql: docket::db::q::NAME
  std::vector<std::string> params;   ///< SQL literals, in order
  bool pinned;                       ///< planned as the producer/completer sessions plan it
  std::vector<std::string> indexes;  ///< indexes of docket.jobs the plans must use
  std::string setup;                 ///< SQL run first, in the same (rolled back) transaction
};

/// Loads auto_explain into the session so that every plan (nested statements too) arrives as a
/// JSON notice, from now on or once log_min_duration is set to 0, and plans as the engine does:
/// pinned (the producer and completer) or custom (every other session).
void explain_plans(pqxx::nontransaction& tx, bool pinned, bool log_now) {
  tx.exec("LOAD 'auto_explain'");
  tx.exec(std::string("SET auto_explain.log_min_duration = ") + (log_now ? "0" : "-1") +
          "; SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice;"
          " SET auto_explain.log_format = json; SET client_min_messages = notice");
  tx.exec(pinned ? "SET enable_seqscan = off; SET enable_bitmapscan = off; SET plan_cache_mode = force_generic_plan"
                 : "SET enable_seqscan = on; SET enable_bitmapscan = on; SET plan_cache_mode = force_custom_plan");
}

/// Runs the prepared statement `name` with the case's arguments after its setup, in a
/// transaction rolled back afterwards; `notices` then holds what the statement logged.
void execute_case(pqxx::nontransaction& tx, const std::string& name, const Case& c, Notices& notices) {
  std::string args;
  for (const auto& p : c.params) args += (args.empty() ? "" : ", ") + p;
  tx.exec("BEGIN");
  if (!c.setup.empty()) tx.exec(c.setup);
  notices.messages.clear();
  tx.exec("EXECUTE " + name + (args.empty() ? std::string() : "(" + args + ")"));
  tx.exec("ROLLBACK");
}

/// The scans of docket.jobs in every plan run for the case on `db`.
std::vector<JobsScan> scans_on(docket::test::TestDatabase& db, const Case& c, const std::string& table = "jobs") {
  auto& conn = db.conn();
  Notices notices(conn);
  pqxx::nontransaction tx(conn);
  explain_plans(tx, c.pinned, true);
  tx.exec("PREPARE hot AS " + std::string(c.query.text));
  execute_case(tx, "hot", c, notices);
  tx.exec("DEALLOCATE hot; RESET ALL");
  return logged_scans(notices.messages, table);
}

}  // namespace

class Plans : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = PgCluster::shared().fresh_database().release();
    db_->query(kJobs100k);
    db_->query("VACUUM ANALYZE docket.jobs");
  }
  static void TearDownTestSuite() {
    delete db_;
    db_ = nullptr;
  }

  /// The scans of docket.jobs in every plan run for the case.
  std::vector<JobsScan> scans(const Case& c) { return scans_on(*db_, c); }

  static docket::test::TestDatabase* db_;
};

docket::test::TestDatabase* Plans::db_ = nullptr;

namespace {

const std::string kWorker = "'00000000-0000-0000-0000-00000000000b'";
// Running jobs of the live worker (ids ≡ 50, 51, 52 mod 100 with an odd id are running there).
const std::string kRunningIds = "'{51, 151, 251}'";

const std::vector<Case>& hot_queries() {
  static const std::vector<Case> all = {
      // The worker: claim (open and quota paths), finish, progress.
      Case{docket::db::q::job_claim_open,
           {kWorker, "'{default,other}'", "'{a,b}'", "500"},
           true,
           {"jobs_claim_idx", "jobs_pkey"}},
      Case{docket::db::q::job_claim,
           {kWorker, "'{default,other}'", "'{a,b}'", "500"},
           true,
           {"jobs_claim_idx", "jobs_pkey"}},
      Case{docket::db::q::job_claim,
           {kWorker, "'{default}'", "'{a,c}'", "500"},
           true,
           {"jobs_claim_idx", "jobs_pkey", "jobs_running_idx"}},
      // A kind with a rate (issue 14): the same claim index, the bucket read from the kind's row.
      Case{docket::db::q::job_claim,
           {kWorker, "'{default,other}'", "'{a,b}'", "500"},
           true,
           {"jobs_claim_idx", "jobs_pkey"},
           "SELECT docket.set_rate('b', '1000000/1s')"},
      Case{docket::db::q::job_complete, {kWorker, kRunningIds, "'{1,1,1}'"}, true, {"jobs_pkey"}},
      Case{docket::db::q::job_finish,
           {kWorker, kRunningIds, "'{1,1,1}'", "'{retry,fail,complete}'", "'{1,0,0}'", "'{NULL,NULL,\"{}\"}'",
            "'{boom,boom,NULL}'", "'{20,20,20}'"},
           true,
           {"jobs_pkey"}},
      Case{docket::db::q::job_finish_claim,
           {kWorker, kRunningIds, "'{1,1,1}'", "'{complete,complete,retry}'", "'{0,0,1}'", "'{NULL,NULL,NULL}'",
            "'{NULL,NULL,boom}'", "'{20,20,20}'", "'{default}'", "'{a,c}'", "500"},
           true,
           {"jobs_pkey", "jobs_claim_idx", "jobs_running_idx"}},
      Case{docket::db::q::job_progress, {kWorker, "51", "1", "'{\"done\": 1}'"}, true, {"jobs_pkey"}},
      // The maintainer: promote due jobs, rescue a dead worker's, prune old ones.
      Case{docket::db::q::job_promote,
           {},
           false,
           {"jobs_waiting_idx"},
           "UPDATE docket.jobs SET run_at = now() WHERE id IN (40, 41)"},
      Case{docket::db::q::job_rescue, {}, false, {"jobs_running_idx"}},
      Case{docket::db::q::job_prune, {"5000"}, false, {"jobs_finished_kind_idx"}},
      // Clients and the API.
      Case{docket::db::q::job_get, {"12345"}, false, {"jobs_pkey"}},
      Case{docket::db::q::job_list, {"NULL", "NULL", "NULL", "NULL", "100", "NULL"}, false, {"jobs_pkey"}},
      Case{docket::db::q::job_list, {"NULL", "NULL", "'failed'", "NULL", "100", "NULL"}, false, {}},
      Case{docket::db::q::job_list, {"'a'", "'default'", "'available'", "50000", "100", "NULL"}, false, {}},
      Case{docket::db::q::job_list, {"NULL", "NULL", "NULL", "NULL", "100", "'key-10'"}, false, {"jobs_key_idx"}},
      Case{docket::db::q::job_enqueue,
           {"'a'", "'{}'", "'default'", "0", "NULL", "NULL", "'key-10'", "NULL", "NULL", "NULL", "NULL"},
           false,
           {"jobs_unique_key_idx"}},
      Case{docket::db::q::job_cancel, {"1"}, false, {"jobs_pkey"}},
      Case{docket::db::q::job_retry, {"2"}, false, {"jobs_pkey"}},
      Case{docket::db::q::job_copied_ids, {"99000"}, false, {"jobs_pkey"}},
      Case{docket::db::q::kind_limits, {}, false, {"jobs_running_idx"}}};
  return all;
}

}  // namespace

namespace {

/// The rules every plan of a case must follow.
void check(const Case& c, const std::vector<JobsScan>& found) {
  ASSERT_FALSE(found.empty()) << c.query.name << ": no plan touched docket.jobs (auto_explain did not report?)";
  static const std::regex fence(R"(AND (\w+\.)?attempt = )");
  std::set<std::string> used;
  for (const auto& s : found) {
    used.insert(s.index);
    EXPECT_NE(s.node, "Seq Scan") << c.query.name << " scans docket.jobs sequentially in:\n" << s.statement;
    // A scan of an index without a condition reads every entry, unless a LIMIT stops it (a page
    // of the newest jobs); only the running jobs' index is small by nature (at most the fleet's
    // concurrency).
    if (s.node == "Index Scan" || s.node == "Index Only Scan") {
      EXPECT_TRUE(s.has_cond || s.under_limit || s.index == "jobs_running_idx")
          << c.query.name << " walks all of " << s.index << " in:\n"
          << s.statement;
    }
    // The fenced writes (worker and attempt) find each row by primary key (or by the row address
    // such a probe returned): any other index makes each batch of outcomes walk entries, live and
    // dead, of other jobs; items rescanned per row make a batch quadratic.
    if (s.node != "ModifyTable" && std::regex_search(s.statement, fence)) {
      EXPECT_TRUE(s.index == "jobs_pkey" || s.node == "Tid Scan")
          << c.query.name << " runs a fenced write through " << s.node << " " << s.index << ":\n"
          << s.statement;
    }
  }
  for (const auto& index : c.indexes) {
    EXPECT_TRUE(used.contains(index)) << c.query.name << " does not use " << index;
  }
}

}  // namespace

// One process for every case: the 100k rows are written once.
TEST_F(Plans, HotQueriesUseTheirIndexesAndNeverScanTheJobsTable) {
  for (const Case& c : hot_queries()) {
    SCOPED_TRACE(c.query.name);
    check(c, scans(c));
  }
}

// The producer's and completer's sessions keep the generic plans they made first. Made while the
// table was empty (statistics of an idle moment: nothing running, nothing waiting) and then run
// with 100k jobs present, they must still take their indexes: a plan that trusted "no running
// jobs" walked every running entry per batch of outcomes, 10 s per batch in the bloat benchmark.
TEST(StalePlans, PinnedPlansMadeOnAnEmptyTableStayOnTheirIndexesWhenItFills) {
  auto db = PgCluster::shared().fresh_database();
  db->query("ALTER TABLE docket.jobs SET (autovacuum_enabled = false)");
  db->query("VACUUM ANALYZE docket.jobs");
  pqxx::connection conn(db->url());
  Notices notices(conn);
  pqxx::nontransaction tx(conn);
  explain_plans(tx, true, false);
  std::vector<Case> pinned;
  for (const Case& c : hot_queries()) {
    if (c.pinned) pinned.push_back(c);
  }
  for (std::size_t i = 0; i < pinned.size(); ++i) {
    tx.exec("PREPARE hot" + std::to_string(i) + " AS " + std::string(pinned[i].query.text));
    execute_case(tx, "hot" + std::to_string(i), pinned[i], notices);  // planned now, on the empty table
  }
  db->query(kJobs100k);  // no ANALYZE: the statistics still say empty
  tx.exec("SET auto_explain.log_min_duration = 0");
  for (std::size_t i = 0; i < pinned.size(); ++i) {
    SCOPED_TRACE(pinned[i].query.name);
    execute_case(tx, "hot" + std::to_string(i), pinned[i], notices);
    check(pinned[i], logged_scans(notices.messages));
  }
}

// The ops views (docket stats, GET /stats, /metrics) read the unfinished rows through their
// partial indexes and the finished history only by age through jobs_finished_idx: never a
// sequential scan of the table, whose size is the retention's, not the workload's. The table
// holds what a busy installation keeps: 100k finished jobs over a week, 1,000 waiting, a few running.
TEST(StatsPlans, StatsReadUnfinishedRowsAndRecentHistoryOnly) {
  auto db = PgCluster::shared().fresh_database();
  db->query(
      "INSERT INTO docket.workers (name, queues, kinds) VALUES ('live', '{default}', '{a}');"
      "INSERT INTO docket.jobs (kind, queue, state, run_at, started_at, finished_at, attempt) "
      "SELECT (ARRAY['a', 'b', 'c'])[1 + g % 3], 'default', (ARRAY['completed', 'failed'])[1 + g % "
      "2]::docket.job_state, "
      "       now() - g * interval '6 s', now() - g * interval '6 s', now() - g * interval '6 s', 1 "
      "  FROM generate_series(1, 100000) g;"
      "INSERT INTO docket.jobs (kind, queue, state, run_at) "
      "SELECT (ARRAY['a', 'imprt'])[1 + g % 2], (ARRAY['default', 'other'])[1 + g % 2], "
      "       (ARRAY['available', 'scheduled', 'retryable'])[1 + g % 3]::docket.job_state, now() + (g % 3) * interval "
      "'1 h' "
      "  FROM generate_series(1, 1000) g;"
      "INSERT INTO docket.jobs (kind, state, started_at, worker) SELECT 'a', 'running', now(), id FROM docket.workers");
  db->query("VACUUM ANALYZE docket.jobs");
  for (const auto* q : {&docket::db::q::stats_snapshot, &docket::db::q::queue_summary}) {
    const std::string query(q->name);
    SCOPED_TRACE(query);
    const auto found = scans_on(*db, Case{*q, {}, false, {}});
    ASSERT_FALSE(found.empty());
    std::set<std::string> used;
    for (const auto& s : found) {
      used.insert(s.index);
      EXPECT_NE(s.node, "Seq Scan") << query << " scans docket.jobs sequentially in:\n" << s.statement;
      if (s.index == "jobs_finished_idx") {
        EXPECT_TRUE(s.has_cond) << query << " walks all of the finished history";
      }
      EXPECT_NE(s.index, "jobs_pkey") << query << " walks the primary key";
    }
    EXPECT_TRUE(used.contains("jobs_claim_idx")) << query;
    if (std::string(query) == "stats_snapshot") {
      EXPECT_TRUE(used.contains("jobs_finished_idx"));
    }
  }
}

// 100,000 schedules, 1,000 of them due: a tick finds the due ones through schedules_due_idx
// with a condition on next_run_at, never by reading the schedules that are not due.
TEST(SchedulePlans, TickReadsOnlyDueSchedules) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  db->query(
      "INSERT INTO docket.schedules (name, cron, kind, args, spread, next_slot, next_run_at) "
      "SELECT 'p' || g, '0 */4 * * *', 'scrape', jsonb_build_object('id', g), interval '4 hours', "
      "       now() + (g % 240) * interval '1 minute', now() + (g % 240) * interval '1 minute' "
      "  FROM generate_series(1, 100000) g;"
      "UPDATE docket.schedules SET next_slot = now() - interval '1 s', next_run_at = now() - interval '1 s' "
      " WHERE name IN (SELECT 'p' || g FROM generate_series(1, 100000, 100) g)");
  db->query("VACUUM ANALYZE docket.schedules");
  const auto found = scans_on(*db, Case{docket::db::q::schedule_tick, {}, false, {}}, "schedules");
  ASSERT_FALSE(found.empty());
  bool due_index = false;
  for (const auto& s : found) {
    EXPECT_NE(s.node, "Seq Scan") << "the tick scans docket.schedules in:\n" << s.statement;
    if (s.index == "schedules_due_idx") {
      due_index = true;
      EXPECT_TRUE(s.has_cond || s.under_limit) << "the tick walks every schedule in:\n" << s.statement;
    }
  }
  EXPECT_TRUE(due_index);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule IS NOT NULL"), 0);  // rolled back
}

// The dashboard's own queries on the same busy table: the per-minute chart reads the last hour of
// finished rows by age, and "retry all failed" pages a kind's failed rows by (finished_at, id),
// both through jobs_finished_idx with a condition, never a sequential scan or the primary key.
TEST(DashboardPlans, ChartAndRetryPagesReadByIndex) {
  auto db = PgCluster::shared().fresh_database();
  db->query(
      "INSERT INTO docket.jobs (kind, queue, state, run_at, started_at, finished_at, attempt) "
      "SELECT (ARRAY['a', 'b', 'c'])[1 + g % 3], (ARRAY['default', 'other'])[1 + g % 2], "
      "       (ARRAY['completed', 'failed'])[1 + g % 2]::docket.job_state, "
      "       now() - g * interval '6 s', now() - g * interval '6 s', now() - g * interval '6 s', 1 "
      "  FROM generate_series(1, 100000) g");
  db->query("VACUUM ANALYZE docket.jobs");
  const std::string cursor = db->scalar(
      "SELECT (extract(epoch FROM finished_at) * 1000000)::bigint FROM docket.jobs WHERE state = 'failed' "
      "ORDER BY finished_at LIMIT 1 OFFSET 100");
  for (const Case& c : {Case{docket::db::q::stats_throughput, {"12200"}, false, {"jobs_finished_idx"}},
                        // One kind's failures: the (kind, state, finished_at) index of 0007 serves them best.
                        Case{docket::db::q::job_failed_page,
                             {"'a'", "NULL", "NULL", "500"},
                             false,
                             {"jobs_finished_kind_idx", "jobs_finished_idx"}},
                        Case{docket::db::q::job_failed_page,
                             {"'a'", cursor, "1", "500"},
                             false,
                             {"jobs_finished_kind_idx", "jobs_finished_idx"}}}) {
    SCOPED_TRACE(c.query.name);
    const auto found = scans_on(*db, c);
    ASSERT_FALSE(found.empty());
    for (const auto& s : found) {
      EXPECT_NE(s.node, "Seq Scan") << c.query.name << " scans docket.jobs sequentially in:\n" << s.statement;
      if (s.node == "Bitmap Heap Scan") continue;  // its Bitmap Index Scan child is checked
      EXPECT_NE(std::find(c.indexes.begin(), c.indexes.end(), s.index), c.indexes.end())
          << c.query.name << " " << s.node << " on " << s.index;
      EXPECT_TRUE(s.has_cond) << c.query.name << " walks all of the finished history";
    }
  }
}

namespace {

// 1,000,000 jobs as a busy installation keeps them: 990,010 finished over two common kinds and two
// common queues, a backlog of 9,990 unfinished (6,940 available, 2,000 scheduled, 1,000
// retryable, 50 running), and rare values: kind 'rare' (10 jobs) and queue 'rareq' (10 jobs), one in
// each 100,000 ids, and state 'cancelled' (20 jobs). Kind 'a' runs in queue 'default'
// only, so 'a' with 'other' is an empty combination of two common filters. Loaded without the
// secondary indexes, which are then rebuilt as the migrations made them (seconds, not a minute).
const char* const kMillionJobs = R"sql(
      SET maintenance_work_mem = '256MB';
      CREATE TEMP TABLE saved_indexes AS
        SELECT indexname, indexdef FROM pg_indexes
         WHERE schemaname = 'docket' AND tablename = 'jobs' AND indexname <> 'jobs_pkey';
      DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT indexname FROM saved_indexes LOOP EXECUTE 'DROP INDEX docket.' || quote_ident(r.indexname); END LOOP;
      END $$;
      INSERT INTO docket.workers (id, name, host, pid, queues, kinds, concurrency, heartbeat_at)
      VALUES ('00000000-0000-0000-0000-00000000000b', 'live', 'h', 2, '{default}', '{a}', 10, now());
      INSERT INTO docket.jobs (kind, queue, state, run_at, attempt, started_at, finished_at, worker)
      SELECT CASE WHEN g % 100000 = 7 THEN 'rare' ELSE (ARRAY['a', 'b'])[1 + g % 2] END,
             CASE WHEN g % 100000 = 11 THEN 'rareq' ELSE (ARRAY['default', 'other'])[1 + g % 2] END,
             s.state::docket.job_state,
             CASE WHEN s.state IN ('scheduled', 'retryable') THEN now() + interval '1 hour'
                  ELSE now() - interval '1 day' END,
             CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END,
             CASE WHEN s.state IN ('running', 'completed', 'failed', 'cancelled') THEN now() - interval '1 day' END,
             CASE WHEN s.state IN ('completed', 'failed', 'cancelled') THEN now() - interval '1 hour' END,
             CASE WHEN s.state = 'running' THEN '00000000-0000-0000-0000-00000000000b'::uuid END
        FROM generate_series(1, 1000000) g
        CROSS JOIN LATERAL (SELECT CASE
               WHEN g % 100000 IN (3, 11) THEN 'cancelled' WHEN g % 20000 = 5 THEN 'running'
               WHEN g % 1000 < 7 THEN 'available' WHEN g % 1000 < 9 THEN 'scheduled'
               WHEN g % 1000 < 10 THEN 'retryable' WHEN g % 100 < 5 THEN 'failed'
               ELSE 'completed' END AS state) s;
      DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT indexdef FROM saved_indexes LOOP EXECUTE r.indexdef; END LOOP;
      END $$;
    )sql";

/// Rows of docket.jobs a plan read: what its scans returned and filtered away, for every loop.
long long rows_read(const Json& plan, std::vector<std::string>& scans) {
  long long n = 0;
  const std::string node = plan.value("Node Type", "");
  if (plan.value("Relation Name", "") == "jobs" || plan.value("Index Name", "").rfind("jobs_", 0) == 0) {
    scans.push_back(node + " " + plan.value("Index Name", ""));
    const long long loops = plan.value("Actual Loops", 1LL);
    // A bitmap heap scan reads the rows its index scan found (counted there), plus lossy pages.
    if (node == "Bitmap Heap Scan") {
      n += plan.value("Rows Removed by Index Recheck", 0LL) * loops;
    } else {
      n += (plan.value("Actual Rows", 0LL) + plan.value("Rows Removed by Filter", 0LL)) * loops;
    }
  }
  if (plan.contains("Plans")) {
    for (const auto& child : plan.at("Plans")) n += rows_read(child, scans);
  }
  return n;
}

}  // namespace

// The job list (GET /jobs, `docket jobs`, the dashboard's jobs page) with 1,000,000 jobs: every
// filter the dashboard and the CLI offer, alone and together, reads a page through indexes: never
// a sequential scan, never a walk of the history. A page of finished jobs reads about the page
// (the ordered ranges of jobs_list_*_idx); a page that may hold unfinished jobs reads a page per
// state and at most the backlog on top (a state's backlog when kind or queue filter it; the waiting set is indexed once
// for scheduled and retryable together, so it may be read twice). And each page is exactly what
// a plain query would answer.
TEST(DashboardPlans, JobListReadsAPageNotTheTableWithAMillionJobs) {
  auto db = PgCluster::shared().fresh_database();
  db->query(kMillionJobs);
  db->query("VACUUM ANALYZE docket.jobs");
  const long long backlog = db->count(
      "SELECT count(*) FROM docket.jobs WHERE state IN "
      "('available', 'scheduled', 'retryable', 'running')");
  ASSERT_EQ(backlog, 9'990);
  ASSERT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'rare'"), 10);
  constexpr long long kPage = 100;
  struct ListCase {
    std::string kind, queue, state, after;  ///< SQL literals ("NULL": no filter)
    bool finished_only;                     ///< the page can hold finished jobs only
  };
  const std::vector<ListCase> cases = {
      {"NULL", "NULL", "NULL", "NULL", false},              // the first page, no filter
      {"NULL", "NULL", "NULL", "500000", false},            // a page in the middle
      {"'rare'", "NULL", "NULL", "NULL", false},            // a rare kind
      {"NULL", "'rareq'", "NULL", "NULL", false},           // a rare queue
      {"NULL", "NULL", "'cancelled'", "NULL", true},        // a rare state
      {"NULL", "NULL", "'running'", "NULL", false},         // the running jobs
      {"NULL", "NULL", "'scheduled'", "NULL", false},       // the waiting ones
      {"'a'", "NULL", "'cancelled'", "NULL", true},         // a common kind in a rare state
      {"NULL", "'default'", "'cancelled'", "NULL", true},   // a common queue in a rare state
      {"'rare'", "'rareq'", "NULL", "NULL", false},         // two rare filters
      {"'a'", "'other'", "NULL", "NULL", false},            // two common filters, no job has both
      {"'a'", "'other'", "'failed'", "500000", true},       // and a state, mid-way
      {"'a'", "'default'", "'completed'", "500000", true},  // everything common, mid-way
      {"'rare'", "NULL", "'scheduled'", "NULL", false},     // a rare kind waiting
      {"NULL", "'rareq'", "'running'", "NULL", false},      // a rare queue running
      {"'b'", "'other'", "'available'", "900000", false},   // the backlog of a queue, mid-way
  };
  // The query spells out a branch per state: a state added to the enum must get one.
  const std::string sql(docket::db::q::job_list.text);
  for (const auto& row : db->query("SELECT unnest(enum_range(NULL::docket.job_state))::text")) {
    EXPECT_NE(sql.find("WHERE state = '" + std::string(row[0].c_str()) + "'"), std::string::npos) << row[0].c_str();
  }
  auto& conn = db->conn();
  pqxx::nontransaction tx(conn);
  tx.exec("SET plan_cache_mode = force_custom_plan");  // as the API's sessions plan
  tx.exec("PREPARE list AS " + std::string(docket::db::q::job_list.text));
  for (const auto& c : cases) {
    const std::string args = c.kind + ", " + c.queue + ", " + c.state + ", " + c.after + ", " + std::to_string(kPage);
    SCOPED_TRACE("job_list(" + args + ")");
    const auto explained = tx.exec("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE list(" + args + ", NULL)");
    const Json plan = Json::parse(explained[0][0].c_str()).at(0).at("Plan");
    std::vector<std::string> scans;
    const long long read = rows_read(plan, scans);
    std::string all;
    for (const auto& s : scans) all += s + "\n";
    EXPECT_EQ(all.find("Seq Scan"), std::string::npos) << all;
    // A page of one finished state: its rows, read twice (the page, then their columns by primary
    // key). Else a page per state (7), the fetch, and at most the backlog twice.
    const long long bound = c.finished_only ? 3 * kPage : 9 * kPage + 2 * backlog;
    EXPECT_LE(read, bound) << all;
    // The same page as a plain query gives.
    std::string expected, got;
    for (const auto& row :
         tx.exec("SELECT id FROM docket.jobs WHERE (" + c.kind + "::text IS NULL OR kind = " + c.kind + ") AND (" +
                 c.queue + "::text IS NULL OR queue = " + c.queue + ") AND (" + c.state +
                 "::docket.job_state IS NULL OR state = " + c.state + "::docket.job_state) AND (" + c.after +
                 "::bigint IS NULL OR id < " + c.after + ") ORDER BY id DESC LIMIT " + std::to_string(kPage))) {
      expected += std::string(row[0].c_str()) + ",";
    }
    for (const auto& row : tx.exec("EXECUTE list(" + args + ", NULL)")) {
      got += std::to_string(Json::parse(row[0].c_str()).at("id").get<long long>()) + ",";
    }
    EXPECT_EQ(got, expected);
  }
  tx.exec("DEALLOCATE list; RESET ALL");
}

// The keyed claim (issue 14) with 100k jobs queued over 1,000 keys of one kind, one key at its
// limit with 10,000 of them: every pass reads the kind's key index with a condition (the loose
// scan from the cursor, the head job of each open key), never the table, never a whole index.
TEST(KeyedPlans, TheKeyedClaimUsesTheKeyIndexWith100kJobsOver1000Keys) {
  auto db = PgCluster::shared().fresh_database();
  db->query(
      "INSERT INTO docket.workers (id, name, host, pid, queues, kinds, concurrency, heartbeat_at) "
      "VALUES ('00000000-0000-0000-0000-00000000000b', 'live', 'h', 2, '{default}', '{k}', 10, now());"
      "SELECT docket.set_partition('k', 'args.tenant', 1, '100/1s');"
      "INSERT INTO docket.jobs (kind, queue, state, args) "
      "SELECT 'k', 'default', 'available', jsonb_build_object('tenant', CASE WHEN g <= 10000 THEN 't0' ELSE 't' || g % "
      "1000 END) "
      "  FROM generate_series(1, 100000) g;"
      "INSERT INTO docket.jobs (kind, queue, state, args, started_at, worker) "
      "SELECT 'k', 'default', 'running', '{\"tenant\": \"t0\"}', now(), '00000000-0000-0000-0000-00000000000b';"
      "INSERT INTO docket.jobs (kind, queue, state) SELECT 'other', 'default', 'available' FROM generate_series(1, "
      "20000)");
  db->query("VACUUM ANALYZE docket.jobs");
  const std::string index = "jobs_partition_idx";
  for (const auto* q : {&docket::db::q::job_claim, &docket::db::q::kind_limits, &docket::db::q::kind_hot_keys}) {
    const std::string query(q->name);
    SCOPED_TRACE(query);
    const Case c = query == "job_claim" ? Case{*q, {kWorker, "'{default}'", "'{k,other}'", "50"}, true, {}}
                                        : Case{*q,
                                               query == "kind_hot_keys" ? std::vector<std::string>{"'k'", "10"}
                                                                        : std::vector<std::string>{},
                                               false,
                                               {}};
    const auto found = scans_on(*db, c);
    ASSERT_FALSE(found.empty());
    std::set<std::string> used;
    for (const auto& s : found) {
      used.insert(s.index);
      EXPECT_NE(s.node, "Seq Scan") << query << " scans docket.jobs sequentially in:\n" << s.statement;
      if (s.index == index) {
        EXPECT_TRUE(s.has_cond || s.under_limit) << query << " walks all of " << index;
      }
    }
    if (std::string(query) != "kind_limits") {
      EXPECT_TRUE(used.contains(index)) << query;
    }
    // The claim counts each open key's running jobs through their own index, never the table.
    if (query == "job_claim") {
      EXPECT_TRUE(used.contains("jobs_partition_running_idx")) << query;
    }
  }
  // The keyed claim is planned from the kind's round-robin cursor (docket.kind_cursors) as the
  // worker would: a claim that left one there plans the same.
  db->query("INSERT INTO docket.kind_cursors (kind, key) VALUES ('k', 't500')");
  const auto again = scans_on(*db, Case{docket::db::q::job_claim, {kWorker, "'{default}'", "'{k}'", "50"}, true, {}});
  bool keyed_index = false;
  for (const auto& s : again) {
    EXPECT_NE(s.node, "Seq Scan") << "from a cursor, the claim scans docket.jobs sequentially in:\n" << s.statement;
    if (s.index == index) {
      keyed_index = true;
      EXPECT_TRUE(s.has_cond || s.under_limit) << "from a cursor, the claim walks all of " << index;
    }
  }
  EXPECT_TRUE(keyed_index);
}
