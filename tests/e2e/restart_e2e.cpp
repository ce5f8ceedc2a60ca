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
