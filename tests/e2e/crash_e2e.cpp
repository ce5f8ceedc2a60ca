// Workers that die (SIGKILL) or freeze (SIGSTOP) lose their jobs to a live worker; a frozen
// worker that wakes up cannot overwrite what happened meanwhile.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {
const std::vector<std::string> kFast = {"--lease", "2s", "--rescue", "250ms", "--concurrency", "4"};
}

TEST(Crash, SigkilledWorkersJobIsRescuedWithinTheLeaseAndRunsAgain) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto a = start_test_worker(*db, dir, "victim", kFast);
  ASSERT_TRUE(wait_registered(*db, "victim"));
  const auto id = client.enqueue({.kind = "test.once_slow", .args = Json{{"ms", 60000}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s));
  auto b = start_test_worker(*db, dir, "rescuer", kFast);
  ASSERT_TRUE(wait_registered(*db, "rescuer"));

  a->signal(SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(
      wait_until([&] { return client.job(id)->state != JobState::running || client.job(id)->attempt > 1; }, 20s));
  const double rescue_s = seconds_since(killed_at);
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::completed; }, 20s)) << b->log_text();
  const auto job = client.job(id);
  std::cout << "crash: job rescued " << rescue_s << " s after SIGKILL (lease 2 s, rescue sweep 0.25 s)\n";
  // Lease plus one sweep, plus a heartbeat interval of staleness and slack for a loaded CI box.
  EXPECT_LT(rescue_s, 2.0 + 0.25 + 0.4 + 1.5);
  EXPECT_EQ(job->attempt, 2);
  ASSERT_EQ(job->errors.size(), 1u);
  EXPECT_NE(job->errors[0].at("error").get<std::string>().find("victim"), std::string::npos);
  EXPECT_EQ(job->result.at("attempt"), 2);
  b->signal(SIGTERM);
  EXPECT_EQ(b->wait(20s), 0);
}

TEST(Crash, FrozenWorkerPastItsLeaseCannotOverwriteTheRescuedJob) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto a = start_test_worker(*db, dir, "frozen", kFast);
  ASSERT_TRUE(wait_registered(*db, "frozen"));
  const auto id = client.enqueue({.kind = "test.once_slow", .args = Json{{"ms", 1500}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s));
  auto b = start_test_worker(*db, dir, "thawed-out", kFast);
  ASSERT_TRUE(wait_registered(*db, "thawed-out"));

  a->signal(SIGSTOP);
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::completed; }, 20s)) << b->log_text();
  const auto done = client.job(id);
  EXPECT_EQ(done->attempt, 2);
  EXPECT_EQ(done->result.at("pid"), b->pid());

  // Wake the frozen worker: its handler finishes attempt 1. Either its heartbeat notices the lost
  // lease first and it drops the outcome (job.lost), or it tries to write it and the fence refuses
  // (job.stale). Either way nothing changes.
  a->signal(SIGCONT);
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& r : read_records(dir / "records.txt")) {
          if (r.event == "end" && r.id == id && r.pid == a->pid()) return true;
        }
        return false;
      },
      20s))
      << a->log_text();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto log = a->log_text();
        return log.find("job.stale") != std::string::npos || log.find("job.lost") != std::string::npos;
      },
      20s))
      << a->log_text();
  EXPECT_NE(a->log_text().find("worker.lease_lost"), std::string::npos);
  std::this_thread::sleep_for(300ms);  // room for a late write, were one to slip through
  const auto after = client.job(id);
  EXPECT_EQ(after->state, JobState::completed);
  EXPECT_EQ(after->attempt, 2);
  EXPECT_EQ(after->result, done->result);
  EXPECT_EQ(after->finished_at, done->finished_at);
  // The woken worker registered again with a fresh id and keeps working.
  const auto next = client.enqueue({.kind = "test.count"}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(next)->state == JobState::completed; }, 20s));
  for (auto* w : {a.get(), b.get()}) w->signal(SIGTERM);
  EXPECT_EQ(a->wait(20s), 0);
  EXPECT_EQ(b->wait(20s), 0);
}

TEST(Crash, AJobThatCrashesEveryWorkerEndsFailedAfterItsRetries) {
  // Each crash consumes an attempt, so a poison job cannot crash-loop the fleet forever.
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  const auto id = client.enqueue({.kind = "test.once_slow", .args = Json{{"ms", 60000}}, .max_retries = 0}).id;
  auto a = start_test_worker(*db, dir, "doomed", kFast);
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s));
  a->signal(SIGKILL);
  auto b = start_test_worker(*db, dir, "sweeper", kFast);
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::failed; }, 20s)) << b->log_text();
  EXPECT_EQ(client.job(id)->attempt, 1);
  b->signal(SIGTERM);
  EXPECT_EQ(b->wait(20s), 0);
}

TEST(Crash, AWorkerWhoseStartOutlastsItsLeaseIsNotDeclaredDeadAtBirth) {
  // A start held up longer than the lease (here a kind's row locked by an operator's transaction
  // for 3.5 s against a 2 s lease) must begin with a fresh lease: the worker's row is written last
  // in its start, so the fleet's rescue never sees it stale and its first jobs are not taken back.
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto a = start_test_worker(*db, dir, "sweeper", kFast);
  ASSERT_TRUE(wait_registered(*db, "sweeper"));
  pqxx::connection holder(db->url());
  pqxx::work hold(holder);
  hold.exec("SELECT 1 FROM docket.kinds WHERE kind = 'test.count' FOR UPDATE");
  auto b = start_test_worker(*db, dir, "slow-start", kFast);
  std::this_thread::sleep_for(3500ms);  // past the lease and several of the sweeper's rescue sweeps
  hold.commit();
  ASSERT_TRUE(wait_registered(*db, "slow-start")) << b->log_text();
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(client.enqueue({.kind = "test.sleep", .args = Json{{"ms", 50}}}).id);
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 40; }, 20s)) << b->log_text();
  std::this_thread::sleep_for(1s);  // a heartbeat or two of b's after its start
  EXPECT_EQ(b->log_text().find("worker.lease_lost"), std::string::npos) << b->log_text();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.workers WHERE name = 'slow-start' AND dead_at IS NOT NULL"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE attempt <> 1"), 0);
  for (auto* w : {a.get(), b.get()}) w->signal(SIGTERM);
  EXPECT_EQ(a->wait(20s), 0);
  EXPECT_EQ(b->wait(20s), 0);
}

TEST(Crash, TenWorkersStartingTogetherOnAFreshDatabaseNeverConflict) {
  // Workers of one deploy start at once and register the same new kinds: no deadlock, no retried
  // start (a deadlock's retry cost the losers a second each, and their leases).
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 10; ++i) workers.push_back(start_test_worker(*db, dir, "w" + std::to_string(i), kFast));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(wait_registered(*db, "w" + std::to_string(i))) << workers[i]->log_text();
  std::this_thread::sleep_for(1s);
  for (auto& w : workers) {
    const auto log = w->log_text();
    EXPECT_EQ(log.find("deadlock"), std::string::npos) << log;
    EXPECT_EQ(log.find("db.unavailable"), std::string::npos) << log;
    EXPECT_EQ(log.find("worker.lease_lost"), std::string::npos) << log;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.workers WHERE dead_at IS NOT NULL"), 0);
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}
