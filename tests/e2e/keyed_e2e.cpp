// Keyed limits (issue 14) across several worker processes: max_running_per_key = 1 over 1,000
// keys, checked by the jobs themselves recording when they start and end.
#include <map>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

TEST(KeyedFleet, ThreeWorkersNeverRunTwoJobsOfOneKeyAndEveryKeyProgresses) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  client.set_partition("test.record", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});
  // 1,000 tenants with two short jobs each, and one hot tenant with 150 jobs enqueued first: without
  // the limit the 24 slots would run the hot tenant's jobs side by side.
  std::vector<EnqueueRequest> jobs;
  for (int i = 0; i < 150; ++i) {
    jobs.push_back(EnqueueRequest{.kind = "test.record", .args = Json{{"tenant", "hot"}, {"ms", 5}}});
  }
  for (int round = 0; round < 2; ++round) {
    for (int t = 0; t < 1000; ++t) {
      jobs.push_back(EnqueueRequest{.kind = "test.record", .args = Json{{"tenant", "t" + std::to_string(t)}, {"ms", 5}}});
    }
  }
  client.enqueue_many(jobs);
  client.enqueue_many(std::vector<EnqueueRequest>(30, EnqueueRequest{.kind = "test.count"}));

  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(start_test_worker(*db, dir, "w" + std::to_string(i), {"--concurrency", "8", "--lease", "10s"}));
  }
  const long long total = 150 + 2000 + 30;
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == total; }, 90s))
      << "completed " << count_state(*db, "completed") << " of " << total << "\n"
      << workers[0]->log_text();

  // The jobs' own records, grouped by their key.
  std::map<std::int64_t, std::string> tenant_of;
  for (const auto& row : db->query("SELECT id, args->>'tenant' FROM docket.jobs WHERE kind = 'test.record'")) {
    tenant_of[row[0].as<std::int64_t>()] = row[1].c_str();
  }
  std::map<std::string, std::vector<Record>> by_tenant;
  std::vector<Record> all;
  std::set<int> pids;
  for (const auto& r : read_records(dir / "records.txt")) {
    if (r.event != "start" && r.event != "end") continue;
    by_tenant[tenant_of.at(r.id)].push_back(r);
    all.push_back(r);
    pids.insert(r.pid);
  }
  ASSERT_EQ(by_tenant.size(), 1001u);  // every key ran
  int worst = 0;
  for (const auto& [tenant, records] : by_tenant) {
    const int overlap = max_overlap(records);
    worst = std::max(worst, overlap);
    EXPECT_EQ(overlap, 1) << "tenant " << tenant << " ran " << overlap << " jobs at once";
  }
  EXPECT_EQ(by_tenant.at("hot").size(), 300u);  // 150 starts and 150 ends, one at a time
  std::cout << "keyed: worst overlap of one key " << worst << " (limit 1), overall overlap " << max_overlap(all)
            << " on " << pids.size() << " processes\n";
  EXPECT_GT(max_overlap(all), 1);  // the keys did run side by side
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'test.record' AND attempt = 1"), 2150);
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}
