// Worker processes connected as a login role that only has docket_worker run real jobs: quotas,
// retries and the rescue of a killed worker's job all work within the role's privileges.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

/// A test worker connected as `url` (a docket_worker login role) instead of the owner.
std::unique_ptr<Child> start_worker_as(const std::string& url, const TempDir& dir, const std::string& name,
                                       std::vector<std::string> extra) {
  std::vector<std::string> argv = {DOCKET_TEST_WORKER_BIN,         "--database-url", url, "--record",
                                   (dir / "records.txt").string(), "--name",         name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<Child>(argv, std::map<std::string, std::string>{}, dir / (name + ".log"));
}

}  // namespace

TEST(Roles, WorkerRoleRunsJobsUnderAQuotaWithRetries) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  std::vector<EnqueueRequest> jobs(12, EnqueueRequest{.kind = "test.record", .args = Json{{"ms", 150}}});
  jobs.insert(jobs.end(), 6, EnqueueRequest{.kind = "test.count"});
  jobs.push_back({.kind = "test.flaky", .args = Json{{"fail_times", 1}}});
  client.enqueue_many(jobs);
  const auto url = db->login_role("w", "docket_worker");
  auto w = start_worker_as(url, dir, "role-worker",
                           {"--concurrency", "6", "--limit", "test.record=2", "--backoff", "100ms"});
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 19; }, 60s))
      << "completed " << count_state(*db, "completed") << "\n"
      << w->log_text();
  // The worker seeded its kind's quota itself (kind_seed) and kept to it.
  EXPECT_EQ(db->scalar("SELECT max_running FROM docket.kinds WHERE kind = 'test.record'"), "2");
  EXPECT_LE(max_overlap(read_records(dir / "records.txt")), 2);
  EXPECT_EQ(db->scalar("SELECT attempt FROM docket.jobs WHERE kind = 'test.flaky'"), "2");
  EXPECT_EQ(db->scalar("SELECT result->>'ok' FROM docket.jobs WHERE kind = 'test.count' LIMIT 1"), "true");
  EXPECT_EQ(w->log_text().find("permission denied"), std::string::npos) << w->log_text();
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0) << w->log_text();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.workers WHERE dead_at IS NULL"), 0);
}

TEST(Roles, WorkerRoleRescuesAKilledWorkersJob) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  const auto url = db->login_role("w", "docket_worker");
  const std::vector<std::string> fast = {"--lease", "2s", "--rescue", "250ms", "--concurrency", "4"};
  auto a = start_worker_as(url, dir, "victim", fast);
  ASSERT_TRUE(wait_registered(*db, "victim")) << a->log_text();
  const auto id = client.enqueue({.kind = "test.once_slow", .args = Json{{"ms", 60000}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s)) << a->log_text();
  auto b = start_worker_as(url, dir, "rescuer", fast);
  ASSERT_TRUE(wait_registered(*db, "rescuer")) << b->log_text();
  a->signal(SIGKILL);
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::completed; }, 30s)) << b->log_text();
  EXPECT_EQ(client.job(id)->attempt, 2);
  EXPECT_EQ(b->log_text().find("permission denied"), std::string::npos) << b->log_text();
  b->signal(SIGTERM);
  EXPECT_EQ(b->wait(20s), 0) << b->log_text();
}
