// Poison jobs: a handler that crashes its whole worker process. Each crash costs the job one
// attempt (recorded in its errors by the rescuer), the job ends failed after its attempts, and
// the other jobs the crashed worker held are rescued and complete.
#include <csignal>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

TEST(Poison, AJobThatCrashesItsWorkerFailsAfterItsAttemptsAndTheOthersComplete) {
  for (const std::string how : {"segv", "abort"}) {
    SCOPED_TRACE(how);
    auto db = PgCluster::shared().fresh_database();
    TempDir dir;
    Client client(db->url());
    std::vector<EnqueueRequest> jobs(20, EnqueueRequest{.kind = "test.record", .args = Json{{"ms", 400}}});
    client.enqueue_many(jobs);
    const auto poison = client.enqueue({.kind = "test.crash", .args = Json{{"how", how}}, .max_retries = 2}).id;
    // Two workers under a supervisor that restarts them, as systemd or Kubernetes would.
    const std::vector<std::string> args = {"--concurrency", "8", "--lease", "2s"};
    std::vector<std::unique_ptr<Child>> workers;
    for (int i = 0; i < 2; ++i) workers.push_back(start_test_worker(*db, dir, "p" + std::to_string(i), args));
    int crashes = 0, restarts = 0;
    const bool settled = wait_until(
        [&] {
          for (std::size_t i = 0; i < workers.size(); ++i) {
            if (workers[i]->running()) continue;
            const auto status = workers[i]->wait(0ms);
            if (status == 128 + SIGSEGV || status == 128 + SIGABRT) ++crashes;
            workers[i] = start_test_worker(*db, dir, "p" + std::to_string(i) + "-" + std::to_string(++restarts), args);
          }
          return db->count("SELECT count(*) FROM docket.jobs WHERE state IN ('completed', 'failed')") == 21;
        },
        90s, 50ms);
    ASSERT_TRUE(settled) << db->scalar(
        "SELECT json_agg(json_build_object('id', id, 'state', state, 'attempt', attempt)) "
        "FROM docket.jobs WHERE state NOT IN ('completed', 'failed')");
    std::cout << "poison (" << how << "): " << crashes << " worker crashes, " << restarts << " restarts\n";
    EXPECT_EQ(crashes, 3) << "one crash per attempt";
    EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + std::to_string(poison)), "failed");
    EXPECT_EQ(db->count("SELECT attempt FROM docket.jobs WHERE id = " + std::to_string(poison)), 3);
    EXPECT_EQ(db->count("SELECT jsonb_array_length(errors) FROM docket.jobs WHERE id = " + std::to_string(poison)), 3);
    EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs j, jsonb_array_elements(j.errors) e WHERE j.id = " +
                        std::to_string(poison) + " AND e->>'error' LIKE '%lost its lease%'"),
              3)
        << db->scalar("SELECT errors FROM docket.jobs WHERE id = " + std::to_string(poison));
    EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'test.record' AND state = 'completed'"), 20);
    for (auto& w : workers) w->signal(SIGTERM);
    for (auto& w : workers) w->wait(20s);
  }
}
