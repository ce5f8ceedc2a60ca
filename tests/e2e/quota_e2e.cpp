// Global per-kind quotas across several worker processes.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

TEST(Quota, ThreeWorkersNeverRunMoreThanTheLimitAndOtherKindsFlow) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  client.set_limit("test.record", 5);
  // 40 imports of ~300 ms each, limited to 5 at once; 30 jobs of an unlimited kind behind them.
  std::vector<EnqueueRequest> imports(40, EnqueueRequest{.kind = "test.record", .args = Json{{"ms", 300}}});
  client.enqueue_many(imports);
  std::vector<EnqueueRequest> others(30, EnqueueRequest{.kind = "test.count"});
  client.enqueue_many(others);

  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(start_test_worker(*db, dir, "w" + std::to_string(i),
                                        {"--concurrency", "8", "--limit", "test.record=5", "--lease", "5s"}));
  }
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 70; }, 60s))
      << "completed " << count_state(*db, "completed") << "\n"
      << workers[0]->log_text();

  const auto records = read_records(dir / "records.txt");
  std::vector<Record> imports_run;
  long long first = LLONG_MAX, last = 0;
  for (const auto& r : records) {
    if (r.event == "start" || r.event == "end") {
      imports_run.push_back(r);
      first = std::min(first, r.ns);
      last = std::max(last, r.ns);
    }
  }
  const int overlap = max_overlap(imports_run);
  const double elapsed_s = static_cast<double>(last - first) / 1e9;
  const double ideal_s = 40.0 / 5.0 * 0.3;
  std::set<int> pids;
  for (const auto& r : imports_run) pids.insert(r.pid);
  std::cout << "quota: max overlap " << overlap << " (limit 5), 40 jobs in " << elapsed_s << " s (ideal " << ideal_s
            << " s, ratio " << elapsed_s / ideal_s << "), imports ran on " << pids.size() << " processes\n";
  EXPECT_EQ(overlap, 5);
  EXPECT_LT(elapsed_s, 2 * ideal_s);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'test.record' AND attempt = 1"), 40);

  // The unlimited kind did not queue behind the saturated one: all of it finished while the
  // imports had barely started (they need at least 2.4 s).
  const double others_done_after_s = std::stod(
      db->scalar("SELECT extract(epoch FROM (SELECT max(finished_at) FROM docket.jobs WHERE kind = 'test.count') - "
                 "(SELECT min(started_at) FROM docket.jobs WHERE kind = 'test.record'))"));
  std::cout << "quota: the unlimited kind finished " << others_done_after_s << " s after the first import started\n";
  EXPECT_LT(others_done_after_s, 1.0);
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}
