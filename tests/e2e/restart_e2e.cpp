// PostgreSQL restarts under load: workers reconnect with backoff, nothing crashes, nothing is lost.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

TEST(Restart, WorkersSurviveAPostgresRestartAndFinishEveryJob) {
  TempDir dir;
  PgCluster pg(dir / "cluster", true);  // our own cluster: restarting the shared one would hit other tests
  auto db = pg.fresh_database();
  Client client(db->url());
  std::vector<EnqueueRequest> batch(3000, EnqueueRequest{.kind = "test.sleep", .args = Json{{"ms", 15}}});
  client.enqueue_many(batch);
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 2; ++i) {
    workers.push_back(start_test_worker(*db, dir, "r" + std::to_string(i), {"--concurrency", "8", "--lease", "20s"}));
  }
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") > 300; }, 30s));
  pg.restart();
  const long long done_at_restart = count_state(*db, "completed");
  std::cout << "restart: restarted PostgreSQL with " << done_at_restart << " of 3000 jobs done\n";
  ASSERT_LT(done_at_restart, 3000) << "the restart came too late to test anything";
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 3000; }, 120s))
      << count_state(*db, "completed") << " completed\n"
      << workers[0]->log_text();
  for (auto& w : workers) EXPECT_TRUE(w->running()) << "a worker died: " << w->log_text();
  const std::string log = workers[0]->log_text() + workers[1]->log_text();
  EXPECT_NE(log.find("db.unavailable"), std::string::npos);
  EXPECT_NE(log.find("db.reconnected"), std::string::npos);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state <> 'completed'"), 0);
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}

// A claim that commits while its connection breaks leaves jobs `running` under a live worker that
// never got them: its heartbeat keeps them from being rescued. After a lost connection the
// worker compares the jobs the database has running under it with the jobs it holds, and hands
// the others back without counting the attempt. Here the lost claim's job is planted (a job
// `running` under the worker that it never claimed) and the producer's connection is cut.
TEST(Restart, AJobOfAClaimWhoseAnswerWasLostIsHandedBackNotStranded) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto worker = start_test_worker(*db, dir, "inDoubt", {"--concurrency", "4", "--lease", "30s"});
  ASSERT_TRUE(
      wait_until([&] { return db->count("SELECT count(*) FROM docket.workers WHERE dead_at IS NULL") == 1; }, 30s))
      << worker->log_text();
  // A first job, so the worker is past its start (its first claims and connections) before the plant.
  const auto first = db->scalar("SELECT docket.enqueue('test.sleep', '{\"ms\": 1}')");
  ASSERT_TRUE(
      wait_until([&] { return db->scalar("SELECT state FROM docket.jobs WHERE id = " + first) == "completed"; }, 30s))
      << worker->log_text();
  const auto planted = db->scalar(
      "INSERT INTO docket.jobs (kind, args, state, attempt, started_at, worker)"
      " SELECT 'test.sleep', '{\"ms\": 1}', 'running', 1, now(), id FROM docket.workers WHERE dead_at IS NULL"
      " RETURNING id");
  // Held by nobody, and the worker is alive: nothing moves it (the rescue leaves a live worker's jobs).
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + planted), "running");
  // The producer's connection breaks: its next claim fails, so the claim before may have been lost.
  ASSERT_EQ(db->count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      " WHERE application_name = 'docket-producer' AND datname = current_database()"),
            1);
  ASSERT_TRUE(
      wait_until([&] { return db->scalar("SELECT state FROM docket.jobs WHERE id = " + planted) == "completed"; }, 30s))
      << db->scalar("SELECT state || ' attempt ' || attempt FROM docket.jobs WHERE id = " + planted) << "\n"
      << worker->log_text();
  const std::string log = worker->log_text();
  EXPECT_NE(log.find("job.claim_lost job_id=" + planted), std::string::npos) << log;
  // Handed back without counting the lost claim's attempt: it completed on its first real run.
  EXPECT_EQ(db->scalar("SELECT attempt FROM docket.jobs WHERE id = " + planted), "1");
  // Jobs the worker does hold are never handed back: a normal job completes once, no claim_lost for it.
  const auto normal = db->scalar("SELECT docket.enqueue('test.sleep', '{\"ms\": 1}')");
  ASSERT_TRUE(
      wait_until([&] { return db->scalar("SELECT state FROM docket.jobs WHERE id = " + normal) == "completed"; }, 30s));
  EXPECT_EQ(worker->log_text().find("job.claim_lost job_id=" + normal), std::string::npos);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->log_text();
}
