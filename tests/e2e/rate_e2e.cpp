// Fleet-wide rate limits (issue 14) with real worker processes: three workers share one bucket.
#include <algorithm>
#include <sstream>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

TEST(Rate, ThreeWorkersKeepTheFleetToTheRateAndNoPeriodExceedsRatePlusBurst) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  // 20 per second, default burst (one second's worth: 20). 420 jobs: the burst, then ~20 s at the rate.
  constexpr int kRate = 20, kBurst = 20, kJobs = 420;
  client.set_rate("test.record", "20/1s");
  client.enqueue_many(
      std::vector<EnqueueRequest>(kJobs, EnqueueRequest{.kind = "test.record", .args = Json{{"ms", 5}}}));
  // An unlimited kind next to it is not slowed down.
  client.enqueue_many(std::vector<EnqueueRequest>(100, EnqueueRequest{.kind = "test.count"}));

  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(start_test_worker(*db, dir, "w" + std::to_string(i), {"--concurrency", "8", "--lease", "5s"}));
  }
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == kJobs + 100; }, 45s))
      << "completed " << count_state(*db, "completed") << "\n"
      << workers[0]->log_text();

  // Start times by the database clock, the clock the bucket uses.
  std::vector<double> t;
  std::istringstream starts(
      db->scalar("SELECT string_agg(extract(epoch FROM started_at)::text, ' ' ORDER BY started_at) "
                 "FROM docket.jobs WHERE kind = 'test.record'"));
  for (double s; starts >> s;) t.push_back(s);
  ASSERT_EQ(t.size(), static_cast<std::size_t>(kJobs));
  // No window of one period holds more than rate + burst starts.
  int worst = 0;
  for (std::size_t i = 0, j = 0; i < t.size(); ++i) {
    while (j < t.size() && t[j] < t[i] + 1.0) ++j;
    worst = std::max(worst, static_cast<int>(j - i));
  }
  // After the burst, the observed rate is the limit to within 5%.
  const double rate = static_cast<double>(kJobs - 1 - kBurst) / (t.back() - t[kBurst]);
  std::set<int> pids;
  for (const auto& r : read_records(dir / "records.txt")) pids.insert(r.pid);
  std::cout << "rate: " << rate << "/s observed (limit " << kRate << "/s), busiest 1 s window " << worst
            << " starts (limit + burst " << kRate + kBurst << "), " << kJobs << " jobs over " << t.back() - t.front()
            << " s on " << pids.size() << " processes\n";
  EXPECT_LE(worst, kRate + kBurst);
  EXPECT_NEAR(rate, kRate, kRate * 0.05);
  EXPECT_EQ(pids.size(), 3u);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'test.record' AND attempt = 1"), kJobs);
  // The unlimited kind was done within a second of the start.
  const double others_s = std::stod(
      db->scalar("SELECT extract(epoch FROM (SELECT max(finished_at) FROM docket.jobs WHERE kind = 'test.count') - "
                 "(SELECT min(started_at) FROM docket.jobs WHERE kind = 'test.record'))"));
  EXPECT_LT(others_s, 1.0);
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}
