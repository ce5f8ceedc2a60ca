// docket.claim with a limited kind among the claimed kinds (migration 0025): a kind whose quota
// is full takes no lock on its row, no claim steps over other kinds' waiting jobs, and the slots a
// limited kind has room for are kept for it while the open kinds fill the rest of the claim.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "db/queries.hpp"
#include "db/session.hpp"
#include "docket/handler.hpp"
#include "docket/job.hpp"
#include "docket/worker.hpp"
#include "pg.hpp"
#include "queue/completer.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

class QuotaClaim : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    db::Session session(db->url(), "test");
    worker = session.register_worker({.name = "w", .queues = {"default"}, .kinds = {"q", "a", "k"}});
  }

  /// `n` jobs of `kind` in `state`, waiting since `age` ago (older jobs are claimed first), held by
  /// the worker when running.
  void jobs(const std::string& kind, int n, const std::string& state = "available", const std::string& age = "0",
            const std::string& args = "{}") {
    db->query(
        "INSERT INTO docket.jobs (kind, queue, state, run_at, started_at, worker, attempt, args) "
        "SELECT '" +
        kind + "', 'default', '" + state + "', now() - interval '" + age +
        " seconds' + g * interval '1 microsecond', "
        "CASE WHEN '" +
        state + "' = 'running' THEN now() END, CASE WHEN '" + state + "' = 'running' THEN '" + worker +
        "'::uuid END, CASE WHEN '" + state + "' = 'running' THEN 1 ELSE 0 END, '" + args +
        "' FROM generate_series(1, " + std::to_string(n) + ") g");
  }

  /// The claim of docket.claim (limited kinds locked) or of job_claim_open.sql (`open`: none may
  /// be limited): $1 worker, $2 queues, $3 kinds, $4 limit.
  static std::string claim_sql(bool open) {
    return open ? std::string(db::q::job_claim_open.text)
                : "SELECT kind FROM docket.claim($1::uuid, $2::text[], $3::text[], $4::int)";
  }

  /// How many jobs of each kind a claim of `kinds` takes, on `conn`, rolled back after.
  std::map<std::string, int> claim(pqxx::connection& conn, const std::string& kinds, int limit) {
    pqxx::work tx(conn);
    std::map<std::string, int> got;
    for (const auto& row : tx.exec_params(claim_sql(false), worker, "{default}", kinds, limit)) ++got[row[0].c_str()];
    tx.abort();
    return got;
  }

  /// The shared buffers one claim of `kinds` reads (EXPLAIN ANALYZE BUFFERS counts its functions'
  /// statements), rolled back after: of a second claim, the first having warmed the session's
  /// plans and the hint bits.
  long long claim_buffers(const std::string& kinds, int limit, bool open = false) {
    long long blocks = 0;
    for (int run = 0; run < 2; ++run) {
      pqxx::work tx(db->conn());
      const auto plan = Json::parse(tx.exec_params1("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + claim_sql(open),
                                                    worker, "{default}", kinds, limit)[0]
                                        .c_str());
      tx.abort();
      const auto& top = plan.at(0).at("Plan");
      blocks = top.at("Shared Hit Blocks").get<long long>() + top.at("Shared Read Blocks").get<long long>();
    }
    return blocks;
  }

  std::unique_ptr<docket::test::TestDatabase> db;
  std::string worker;
};

}  // namespace

// Every claim of the fleet goes through docket.claim when a quota kind is among its kinds. With
// the quota full, the claim's open kinds must not wait for the kind's row lock, which another
// claim of the kind holds until it commits (lock_timeout turns a wait into an error).
TEST_F(QuotaClaim, AClaimWithItsQuotaKindFullTakesNoLockOnTheKindsRow) {
  db->query("SELECT docket.set_limit('q', 2)");
  jobs("q", 2, "running");
  jobs("q", 5, "available", "60");
  jobs("a", 5);

  pqxx::connection holder(db->direct_url());
  pqxx::work held(holder);
  held.exec("SELECT 1 FROM docket.kinds WHERE kind = 'q' FOR UPDATE");

  pqxx::connection claimer(db->direct_url());
  pqxx::nontransaction(claimer).exec("SET lock_timeout = '5s'");
  std::map<std::string, int> got;
  ASSERT_NO_THROW(got = claim(claimer, "{a,q}", 10)) << "the claim waited for the full quota kind's row lock";
  EXPECT_EQ(got, (std::map<std::string, int>{{"a", 5}})) << "the quota is full: only the open kind's jobs";
  held.abort();

  // With room again the kind's jobs are claimed (under its lock), up to the room.
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE state = 'running'");
  EXPECT_EQ(claim(claimer, "{a,q}", 10), (std::map<std::string, int>{{"a", 5}, {"q", 2}}));
}

// The claim reads each kind's waiting jobs through their own index: 50,000 jobs of a kind it does
// not take, or of its quota kind at its limit, ahead in the queue cost it no more reads than none.
TEST_F(QuotaClaim, NoClaimStepsOverOtherKindsWaitingJobs) {
  db->query("SELECT docket.set_limit('q', 2)");
  jobs("q", 1, "running");
  jobs("q", 100, "available", "10");
  jobs("a", 100, "available", "10");
  db->query("VACUUM ANALYZE docket.jobs");
  const long long alone = claim_buffers("{a,q}", 10);
  EXPECT_EQ(claim(db->conn(), "{a,q}", 10), (std::map<std::string, int>{{"a", 9}, {"q", 1}}));

  // Ahead of them: jobs of a kind nobody here claims (the quota kind's claim, under its lock, and
  // the open kind's claim both stepped over them)...
  jobs("other", 50000, "available", "3600");
  db->query("VACUUM ANALYZE docket.jobs");
  EXPECT_EQ(claim(db->conn(), "{a,q}", 10), (std::map<std::string, int>{{"a", 9}, {"q", 1}}));
  const long long behind_other = claim_buffers("{a,q}", 10);
  EXPECT_LE(behind_other, alone + 100) << "alone " << alone;

  // ...and the quota kind's own backlog with its quota full (the open kind's claim stepped over it).
  db->query("DELETE FROM docket.jobs WHERE kind = 'other'");
  jobs("q", 1, "running");
  jobs("q", 50000, "available", "3600");
  db->query("VACUUM ANALYZE docket.jobs");
  EXPECT_EQ(claim(db->conn(), "{a,q}", 10), (std::map<std::string, int>{{"a", 10}}));
  const long long behind_quota = claim_buffers("{a,q}", 10);
  EXPECT_LE(behind_quota, alone + 100) << "alone " << alone;
}

// The open kinds are claimed before the limited kinds' rows are locked, but not ahead of them: the
// slots a limited kind has room for (and jobs waiting) stay its own, as when it was claimed first.
// Slots kept for a kind that then could not take them (a keyed kind's keys at their limits) go to
// the open kinds in the same claim.
TEST_F(QuotaClaim, ALimitedKindKeepsItsRoomWhileOpenJobsFillTheRest) {
  db->query("SELECT docket.set_limit('q', 5)");
  jobs("a", 100, "available", "3600");  // ahead of the quota kind's jobs
  jobs("q", 20);
  EXPECT_EQ(claim(db->conn(), "{a,q}", 10), (std::map<std::string, int>{{"a", 5}, {"q", 5}}));
  EXPECT_EQ(claim(db->conn(), "{a,q}", 3), (std::map<std::string, int>{{"q", 3}}));

  db->query("SELECT docket.set_partition('k', 'args.tenant', 1, NULL, NULL)");
  jobs("k", 1, "running", "0", R"({"tenant": "t0"})");
  jobs("k", 10, "available", "0", R"({"tenant": "t0"})");
  EXPECT_EQ(claim(db->conn(), "{a,k}", 10), (std::map<std::string, int>{{"a", 10}}))
      << "the keyed kind's key is at its limit: the slots kept for it go to the open kind";
  jobs("k", 3, "available", "0", R"({"tenant": "t1"})");
  EXPECT_EQ(claim(db->conn(), "{a,k}", 10), (std::map<std::string, int>{{"a", 9}, {"k", 1}}));
}

// The one-statement claim (no kind limited) reads the claim index as docket.claim does: 50,000
// jobs of another kind ahead in the queue cost it no more reads than none. And a claim over
// several kinds and queues locks only the jobs it claims (each stream locks its share of the
// best jobs; before 0025 each queue's scan locked up to the claim's limit).
TEST_F(QuotaClaim, TheOpenClaimStepsOverNoOtherKindsJobsAndLocksOnlyWhatItClaims) {
  jobs("a", 100, "available", "10");
  db->query("VACUUM ANALYZE docket.jobs");
  const long long alone = claim_buffers("{a}", 10, true);
  jobs("other", 50000, "available", "3600");
  db->query("VACUUM ANALYZE docket.jobs");
  const long long behind_other = claim_buffers("{a}", 10, true);
  EXPECT_LE(behind_other, alone + 100) << "alone " << alone;

  db->query("DELETE FROM docket.jobs");
  db->query(
      "INSERT INTO docket.jobs (kind, queue, priority) SELECT k, q, g % 3 FROM unnest(ARRAY['a','b','c']) k, "
      "unnest(ARRAY['default','second']) q, generate_series(1, 100) g");
  for (const bool open : {true, false}) {
    pqxx::work tx(db->conn());
    const auto claimed = tx.exec_params(claim_sql(open), worker, "{default,second}", "{a,b,c}", 10);
    EXPECT_EQ(claimed.size(), 10U) << (open ? "open" : "docket.claim");
    // Rows this transaction locked (their xmax) and did not claim.
    EXPECT_EQ(
        tx.exec1("SELECT count(*) FROM docket.jobs WHERE state = 'available' AND xmax = xid(pg_current_xact_id())")[0]
            .as<long long>(),
        0)
        << (open ? "open" : "docket.claim") << " locked jobs it did not claim";
    tx.abort();
  }
}

// A worker's finishing writes claim the freed slots' next jobs (Refill) only while one of its
// kinds has a quota: there a freed slot is a claim, saved a round trip. A rate or a keyed limit
// alone gains nothing from it and would lose the producer's claims running beside the completer's
// writes (docket bench rate and keyed drained faster without it), so those claim as open kinds do.
TEST(QuotaRefill, OnlyAKindWithAQuotaMakesTheWorkersFinishingWritesClaim) {
  for (const std::string limit : {"rate", "keyed", "quota"}) {
    SCOPED_TRACE(limit);
    auto db = PgCluster::shared().fresh_database();
    if (limit == "rate") db->query("SELECT docket.set_rate('r', '1000000/1s')");
    if (limit == "keyed") db->query("SELECT docket.set_partition('r', 'args.t', 1)");
    if (limit == "quota") db->query("SELECT docket.set_limit('r', 4)");
    db->query(
        "INSERT INTO docket.jobs (kind, args) SELECT 'r', jsonb_build_object('t', g % 50) FROM generate_series(1, "
        "400) g");
    WorkerConfig config;
    config.concurrency = 4;
    config.poll_interval = Millis(50);
    Worker worker(db->url(), config);
    worker.handle("r", [](JobContext&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return Outcome::complete();
    });
    std::thread running([&] { worker.run(); });
    const bool done =
        test::wait_until([&] { return db->count("SELECT count(*) FROM docket.jobs WHERE state = 'completed'") == 400; },
                         std::chrono::seconds(60));
    const auto stats = worker.stats();
    worker.request_stop();
    running.join();
    ASSERT_TRUE(done);
    if (limit == "quota") {
      EXPECT_GT(stats.refill_claims, 0U);
    } else {
      EXPECT_EQ(stats.refill_claims, 0U);
    }
  }
}

// A stuck handler of an earlier attempt may report progress after its job was claimed again by
// the same worker: the newer attempt's pending progress must be the one written (the database
// refuses the older one by attempt).
TEST(CompleterProgress, AnEarlierAttemptsLateProgressDoesNotReplaceTheNewerOnesPending) {
  auto db = PgCluster::shared().fresh_database();
  db::Session session(db->url(), "test");
  const std::string worker = session.register_worker({.name = "w", .queues = {"default"}, .kinds = {"k"}});
  const auto id = db->scalar(
      "INSERT INTO docket.jobs (kind, state, attempt, started_at, worker) VALUES ('k', 'running', 2, now(), '" +
      worker + "') RETURNING id");
  Completer completer(db->url(), nullptr, nullptr);
  completer.progress(worker, std::stoll(id), 2, R"({"attempt":2})");
  completer.progress(worker, std::stoll(id), 1, R"({"attempt":1})");
  completer.drain(std::chrono::seconds(10));
  EXPECT_EQ(db->scalar("SELECT progress::text FROM docket.jobs WHERE id = " + id), R"({"attempt": 2})");
}
