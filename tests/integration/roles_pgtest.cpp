// The roles of migration 0004: docket_enqueuer enqueues and reads but cannot write docket.jobs;
// docket_ops steers; the SQL API runs as SECURITY DEFINER with a fixed search_path.
#include <gtest/gtest.h>

#include "db/session.hpp"
#include "db/sql.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

/// Runs `sql` on `url` and returns the SQLSTATE it failed with ("" when it succeeded). libpqxx 6
/// leaves sqlstate() empty for some classes it throws, so permission errors are known by type.
std::string sqlstate_of(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  try {
    tx.exec(sql);
    return "";
  } catch (const pqxx::insufficient_privilege&) {
    return "42501";
  } catch (const pqxx::sql_error& e) {
    return e.sqlstate().empty() ? std::string("other: ") + e.what() : e.sqlstate();
  }
}

/// A snapshot of everything a refused statement could have changed.
std::string state_of(docket::test::TestDatabase& db) {
  return db.scalar(
      "SELECT concat_ws('|', (SELECT string_agg(concat_ws(',', id, state, kind, args, attempt, priority), ';' "
      "ORDER BY id) FROM docket.jobs), (SELECT string_agg(concat_ws(',', kind, max_running), ';' ORDER BY kind) "
      "FROM docket.kinds), (SELECT string_agg(concat_ws(',', name, paused_at), ';' ORDER BY name) FROM "
      "docket.queues))");
}

}  // namespace

TEST(Roles, EnqueuerEnqueuesAndReadsButCannotWriteJobsOrSteer) {
  auto db = PgCluster::shared().fresh_database();
  const auto url = db->login_role("app", "docket_enqueuer");
  pqxx::connection c(url);
  {
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec("SELECT docket.enqueue('mail', '{\"to\": 1}')")[0][0].as<long long>(), 1);
    EXPECT_EQ(
        tx.exec("SELECT count(*) FROM docket.enqueue_many('[{\"kind\": \"a\"}, {\"kind\": \"b\"}]')")[0][0].as<int>(),
        2);
    EXPECT_EQ(tx.exec("SELECT count(*) FROM docket.enqueue_many_jobs('[{\"kind\": \"c\"}]')")[0][0].as<int>(), 1);
    EXPECT_EQ(tx.exec("SELECT count(*) FROM docket.jobs")[0][0].as<int>(), 4);
    // The enqueue answers' warning reads the workers registry the role cannot read itself.
    EXPECT_EQ(tx.exec("SELECT docket.unserved_reason('mail')")[0][0].as<std::string>(),
              "no live worker runs kind mail");
  }
  const auto before = state_of(*db);
  for (const std::string sql : {
           "UPDATE docket.jobs SET args = '{\"to\": 2}'",
           "UPDATE docket.jobs SET state = 'completed'",
           "DELETE FROM docket.jobs",
           "INSERT INTO docket.jobs (kind) VALUES ('x')",
           "COPY docket.jobs (kind) FROM STDIN",
           "SELECT docket.set_limit('mail', 0)",
           "SELECT docket.pause('default')",
           "SELECT docket.cancel(1)",
           "SELECT docket.retry(1)",
           "SELECT docket.rescue()",
           "SELECT docket.prune()",
           "SELECT docket.reset_limit('mail')",
           "SELECT docket.set_retention('mail', '0s', '0s')",
           "SELECT * FROM docket.claim(gen_random_uuid(), '{default}', '{mail}', 10)",
           "INSERT INTO docket.kinds (kind, max_running) VALUES ('mail', 0)",
           "INSERT INTO docket.workers (name) VALUES ('fake')",
           "SELECT docket.apply_security()",
       }) {
    EXPECT_EQ(sqlstate_of(url, sql), "42501") << sql;
  }
  EXPECT_EQ(state_of(*db), before);
  // Still answering afterwards.
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec("SELECT docket.enqueue('mail')")[0][0].as<long long>(), 5);
}

TEST(Roles, EnqueuerThroughTheClientFallsBackFromCopyToTheFunction) {
  auto db = PgCluster::shared().fresh_database();
  Client client(db->login_role("app", "docket_enqueuer"));
  // A plain bulk enqueue would go in by COPY, which the role may not do: the function path is used.
  const auto ids = client.enqueue_many(std::vector<EnqueueRequest>(3, EnqueueRequest{.kind = "bulk"}));
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_TRUE(ids[0].created);
  EXPECT_EQ(client.enqueue_many(std::vector<EnqueueRequest>(2, EnqueueRequest{.kind = "bulk"})).size(), 2u);
  EXPECT_EQ(client.enqueue({.kind = "one"}).id, 6);
  EXPECT_EQ(client.job(ids[2].id)->kind, "bulk");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 6);
  try {
    client.set_limit("bulk", 1);
    FAIL() << "an enqueuer set a limit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("permission denied for function set_limit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("docket_ops"), std::string::npos) << e.what();
  }
  EXPECT_THROW(client.cancel(ids[0].id), Error);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.kinds WHERE max_running IS NOT NULL"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'available'"), 6);
}

TEST(Roles, OpsPausesCancelsRetriesAndSetsLimitsButCannotWriteJobs) {
  auto db = PgCluster::shared().fresh_database();
  const auto id = Client(db->url()).enqueue({.kind = "mail"}).id;
  Client ops(db->login_role("ops", "docket_ops"));
  ops.pause("default");
  ops.set_limit("mail", 3);
  EXPECT_EQ(ops.cancel(id), CancelResult::cancelled);
  ops.retry(id);
  ops.resume("default");
  EXPECT_EQ(ops.job(id)->state, JobState::available);
  EXPECT_EQ(db->scalar("SELECT max_running FROM docket.kinds WHERE kind = 'mail'"), "3");
  EXPECT_EQ(db->scalar("SELECT paused_at IS NULL FROM docket.queues WHERE name = 'default'"), "t");
  ASSERT_EQ(ops.limits().size(), 1u);
  EXPECT_FALSE(ops.queues().empty());
  const auto url = db->login_role("ops2", "docket_ops");
  const auto before = state_of(*db);
  for (const std::string sql : {"UPDATE docket.jobs SET state = 'completed'", "DELETE FROM docket.jobs",
                                "SELECT docket.enqueue('x')", "SELECT docket.rescue()"}) {
    EXPECT_EQ(sqlstate_of(url, sql), "42501") << sql;
  }
  EXPECT_EQ(state_of(*db), before);
}

TEST(Roles, WorkerMayNotRewriteWhatAJobIs) {
  auto db = PgCluster::shared().fresh_database();
  Client(db->url()).enqueue({.kind = "mail", .args = Json{{"to", 1}}});
  const auto url = db->login_role("w", "docket_worker");
  const auto before = state_of(*db);
  for (const std::string sql : {"UPDATE docket.jobs SET args = '{}'", "UPDATE docket.jobs SET kind = 'x'",
                                "UPDATE docket.jobs SET result = '{}'", "DELETE FROM docket.jobs",
                                "INSERT INTO docket.jobs (kind) VALUES ('x')", "SELECT docket.set_limit('mail', 0)",
                                "SELECT docket.cancel(1)"}) {
    EXPECT_EQ(sqlstate_of(url, sql), "42501") << sql;
  }
  EXPECT_EQ(state_of(*db), before);
}

TEST(Roles, TheSqlApiRunsAsDefinerWithAFixedSearchPath) {
  auto db = PgCluster::shared().fresh_database();
  // Every function a role may call that can write (VOLATILE): SECURITY DEFINER, search_path
  // pinned, not executable by PUBLIC. IMMUTABLE and STABLE helpers (validators, cron
  // arithmetic, seconds_since in the claim queries) cannot write and may stay callable.
  const auto loose = db->scalar(
      "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p"
      " WHERE p.pronamespace = 'docket'::regnamespace AND p.provolatile = 'v'"
      "   AND (has_function_privilege('docket_enqueuer', p.oid, 'EXECUTE')"
      "     OR has_function_privilege('docket_worker', p.oid, 'EXECUTE')"
      "     OR has_function_privilege('docket_ops', p.oid, 'EXECUTE'))"
      "   AND p.proname NOT IN ('job_json', 'check_job', 'max_retries_of', 'next_state', 'jobs_notify_insert')"
      "   AND NOT (p.prosecdef AND 'search_path=pg_catalog, docket, pg_temp' = ANY (p.proconfig)"
      "            AND NOT has_function_privilege('public', p.oid, 'EXECUTE'))");
  EXPECT_EQ(loose, "");
  // A caller's own schema first on its search_path cannot hijack what the functions resolve.
  const auto url = db->login_role("app", "docket_enqueuer");
  db->query(
      "CREATE SCHEMA evil; GRANT USAGE ON SCHEMA evil TO PUBLIC;"
      "CREATE FUNCTION evil.btrim(text) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;"
      "GRANT EXECUTE ON FUNCTION evil.btrim(text) TO PUBLIC");
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  tx.exec("SET search_path = evil, docket, pg_catalog");
  try {
    tx.exec("SELECT docket.enqueue(' ')");
    FAIL() << "a blank kind was accepted";
  } catch (const pqxx::data_exception& e) {  // 22023 invalid_parameter_value
    EXPECT_NE(std::string(e.what()).find("kind must be a non-empty string"), std::string::npos) << e.what();
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
}

TEST(Roles, ApplySecurityIsIdempotentAndReappliesAfterAReplacedFunction) {
  auto db = PgCluster::shared().fresh_database();
  // What a later migration's CREATE OR REPLACE does: the function loses SECURITY DEFINER.
  db->query(
      "ALTER FUNCTION docket.pause(text) SECURITY INVOKER; ALTER FUNCTION docket.pause(text) RESET ALL;"
      "GRANT EXECUTE ON FUNCTION docket.pause(text) TO PUBLIC");
  db->query("SELECT docket.apply_security(); SELECT docket.apply_security()");
  EXPECT_EQ(db->scalar("SELECT prosecdef AND NOT has_function_privilege('public', oid, 'EXECUTE')"
                       " FROM pg_proc WHERE oid = 'docket.pause(text)'::regprocedure"),
            "t");
  EXPECT_EQ(db->scalar("SELECT array_to_string(proconfig, ';') FROM pg_proc"
                       " WHERE oid = 'docket.pause(text)'::regprocedure"),
            "search_path=pg_catalog, docket, pg_temp");
}

TEST(Roles, MigrateByANonSuperuserOwnerWorks) {
  auto db = PgCluster::shared().empty_database();
  // The database owner that may create roles but is no superuser (a managed-service admin).
  const std::string owner = db->name() + "_owner";
  db->login_role("owner", "pg_read_all_stats");
  db->query("ALTER ROLE " + owner + " CREATEROLE; ALTER DATABASE " + db->name() + " OWNER TO " + owner);
  std::string url = db->url();
  url.replace(url.find("user=postgres"), std::string("user=postgres").size(), "user=" + owner);
  EXPECT_EQ(migrate(url), static_cast<int>(db::migrations().size()));
  EXPECT_EQ(migrate(url), 0);
  EXPECT_EQ(db->scalar("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'docket'"), owner);
  const auto app = db->login_role("app", "docket_enqueuer");
  pqxx::connection c(app);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec("SELECT docket.enqueue('mail')")[0][0].as<long long>(), 1);
}

TEST(Roles, TheFunctionRolesTableIsWhatTheGrantsSay) {
  auto db = PgCluster::shared().fresh_database();
  const auto can = [&](const std::string& role, const std::string& fn) {
    return db->scalar("SELECT has_function_privilege('" + role + "', '" + fn + "', 'EXECUTE')");
  };
  EXPECT_EQ(can("docket_ops", "docket.pause(text)"), "t");
  EXPECT_EQ(can("docket_enqueuer", "docket.pause(text)"), "f");
  // A row added (what a later migration does for its new function) grants at the next apply...
  db->query("INSERT INTO docket.function_roles VALUES ('pause', 'docket_enqueuer'); SELECT docket.apply_security()");
  EXPECT_EQ(can("docket_enqueuer", "docket.pause(text)"), "t");
  // ...and a row removed takes the grant away: the table is the whole truth, not a floor.
  db->query("DELETE FROM docket.function_roles WHERE name = 'pause'; SELECT docket.apply_security()");
  EXPECT_EQ(can("docket_enqueuer", "docket.pause(text)"), "f");
  EXPECT_EQ(can("docket_ops", "docket.pause(text)"), "f");
  // Only the three roles can be named.
  EXPECT_THROW(db->query("INSERT INTO docket.function_roles VALUES ('pause', 'postgres')"), std::exception);
  // The internal steps stay closed to PUBLIC.
  EXPECT_EQ(db->scalar("SELECT bool_or(has_function_privilege('public', p.oid, 'EXECUTE')) FROM pg_proc p"
                       " WHERE p.pronamespace = 'docket'::regnamespace AND p.proname = 'schedule_enqueue'"),
            "f");
}
