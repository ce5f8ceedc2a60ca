// Retries with backoff, graceful shutdown, exactly-once processing across workers.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

TEST(Retries, FailingTwiceThenSucceedingCompletesAtAttemptThreeAfterTheBackoff) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto w = start_test_worker(*db, dir, "retrier", {"--backoff", "600ms"});
  const auto flaky = client.enqueue({.kind = "test.flaky", .args = Json{{"fail_times", 2}}}).id;
  const auto doomed = client.enqueue({.kind = "test.fail", .max_retries = 3}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(flaky)->state == JobState::completed; }, 30s)) << w->log_text();
  ASSERT_TRUE(wait_until([&] { return client.job(doomed)->state == JobState::failed; }, 30s)) << w->log_text();

  const auto job = client.job(flaky);
  EXPECT_EQ(job->attempt, 3);
  ASSERT_EQ(job->errors.size(), 2u);
  EXPECT_EQ(job->errors[0].at("attempt"), 1);
  EXPECT_EQ(job->errors[1].at("attempt"), 2);
  EXPECT_NE(job->errors[0].at("error").get<std::string>().find("flaky failure on attempt 1"), std::string::npos);
  std::vector<long long> runs;
  for (const auto& r : read_records(dir / "records.txt")) {
    if (r.id == flaky) runs.push_back(r.ns);
  }
  ASSERT_EQ(runs.size(), 3u);
  for (std::size_t i = 1; i < runs.size(); ++i) {
    const double gap_ms = static_cast<double>(runs[i] - runs[i - 1]) / 1e6;
    std::cout << "retries: gap before attempt " << i + 1 << " = " << gap_ms << " ms (backoff 600 ms)\n";
    EXPECT_GE(gap_ms, 600);
  }
  const auto failed = client.job(doomed);
  EXPECT_EQ(failed->attempt, 4);  // the first run plus max_retries = 3
  ASSERT_EQ(failed->errors.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(failed->errors[i].at("attempt"), i + 1);
  EXPECT_TRUE(failed->finished_at);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Shutdown, SigtermLetsRunningJobsFinishAndHandsBackThoseThatOutliveTheTimeout) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto w = start_test_worker(*db, dir, "drainer", {"--shutdown-timeout", "2s", "--concurrency", "4"});
  ASSERT_TRUE(wait_registered(*db, "drainer"));
  const auto quick = client.enqueue({.kind = "test.sleep", .args = Json{{"ms", 800}}}).id;
  const auto slow = client.enqueue({.kind = "test.sleep", .args = Json{{"ms", 60000}, {"ignore_stop", true}}}).id;
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "running") == 2; }, 10s));
  w->signal(SIGTERM);
  const auto sent = std::chrono::steady_clock::now();
  // Nothing new starts once draining (stopping_at is recorded after the claim loop has ended).
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT count(*) FROM docket.workers WHERE name = 'drainer' AND stopping_at IS NOT NULL") == 1;
      },
      5s));
  const auto late = client.enqueue({.kind = "test.count"}).id;
  const auto status = w->wait(20s);
  const double took = seconds_since(sent);
  ASSERT_TRUE(status) << "worker did not exit";
  EXPECT_EQ(*status, 0);
  std::cout << "shutdown: exited " << took << " s after SIGTERM (shutdown_timeout 2 s)\n";
  EXPECT_GE(took, 1.9);
  EXPECT_LT(took, 6.0);
  EXPECT_EQ(client.job(quick)->state, JobState::completed);
  const auto handed_back = client.job(slow);
  EXPECT_EQ(handed_back->state, JobState::available);
  EXPECT_EQ(handed_back->attempt, 0);  // not charged
  EXPECT_TRUE(handed_back->errors.empty());
  EXPECT_EQ(client.job(late)->state, JobState::available);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.workers WHERE name = 'drainer' AND dead_at IS NOT NULL"), 1);
}

TEST(Shutdown, SecondSignalExitsAtOnceAndTheLeaseCoversTheJob) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto w = start_test_worker(*db, dir, "impatient", {"--shutdown-timeout", "30s", "--lease", "2s"});
  const auto id = client.enqueue({.kind = "test.sleep", .args = Json{{"ms", 60000}, {"ignore_stop", true}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s));
  w->signal(SIGTERM);
  std::this_thread::sleep_for(300ms);
  w->signal(SIGTERM);
  const auto status = w->wait(3s);
  ASSERT_TRUE(status);
  EXPECT_NE(*status, 0);
  auto rescuer = start_test_worker(*db, dir, "after", {"--lease", "2s", "--rescue", "250ms"});
  ASSERT_TRUE(wait_until([&] { return client.job(id)->attempt == 2; }, 20s));
}

TEST(ExactlyOnce, FourWorkersProcessTenThousandJobsEachExactlyOnce) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  std::vector<EnqueueRequest> batch(10000, EnqueueRequest{.kind = "test.count"});
  const auto ids = client.enqueue_many(batch);
  std::vector<std::unique_ptr<Child>> workers;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) {
    workers.push_back(
        start_test_worker(*db, dir, "n" + std::to_string(i), {"--concurrency", "8", "--log-level", "warn"}));
  }
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 10000; }, 120s))
      << count_state(*db, "completed") << " completed\n"
      << workers[0]->log_text();
  const double took = seconds_since(start);
  std::map<std::int64_t, int> runs;
  std::set<int> pids;
  for (const auto& r : read_records(dir / "records.txt")) {
    ++runs[r.id];
    pids.insert(r.pid);
  }
  EXPECT_EQ(runs.size(), 10000u);
  int duplicates = 0;
  for (const auto& e : ids) {
    if (runs[e.id] != 1) ++duplicates;
  }
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state <> 'completed' OR attempt <> 1"), 0);
  std::cout << "exactly-once: 10000 jobs on " << pids.size() << " processes in " << took << " s (incl. start-up)\n";
  EXPECT_EQ(pids.size(), 4u);
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}

TEST(Scheduling, ScheduledJobsRunOnTimeAndSnoozeDoesNotChargeAnAttempt) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto w = start_test_worker(*db, dir, "clock");
  ASSERT_TRUE(wait_registered(*db, "clock"));
  const auto at = Clock::now() + 1500ms;
  const auto id = client.enqueue({.kind = "test.count", .run_at = at}).id;
  const auto snoozer = client.enqueue({.kind = "test.snooze", .args = Json{{"ms", 400}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::completed; }, 10s));
  const double late_s = std::stod(
      db->scalar("SELECT extract(epoch FROM started_at - run_at) FROM docket.jobs WHERE id = " + std::to_string(id)));
  const double early_s = std::stod(
      db->scalar("SELECT extract(epoch FROM run_at - inserted_at) FROM docket.jobs WHERE id = " + std::to_string(id)));
  std::cout << "scheduling: started " << late_s * 1000 << " ms after run_at\n";
  EXPECT_GE(early_s, 1.4);
  EXPECT_GE(late_s, 0);
  EXPECT_LT(late_s, 0.5);
  ASSERT_TRUE(wait_until([&] { return client.job(snoozer)->state == JobState::completed; }, 10s));
  EXPECT_EQ(client.job(snoozer)->attempt, 1);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Cancel, CancellingARunningJobStopsItPromptly) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  auto w = start_test_worker(*db, dir, "canceller");
  const auto id = client.enqueue({.kind = "test.sleep", .args = Json{{"ms", 60000}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s));
  EXPECT_EQ(client.cancel(id), CancelResult::cancel_requested);
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::cancelled; }, 10s));
  std::cout << "cancel: running job cancelled " << seconds_since(asked) * 1000 << " ms after the request\n";
  EXPECT_LT(seconds_since(asked), 2.0);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}
