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
      jobs.push_back(
          EnqueueRequest{.kind = "test.record", .args = Json{{"tenant", "t" + std::to_string(t)}, {"ms", 5}}});
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

namespace {

const char* const kKeyedWorker = R"(
[worker]
queues = ["default"]
shutdown_timeout = "5s"

[kinds.scrape]
command = ["/bin/true"]
partition = "args.tenant"
max_running_per_key = 2
)";

docket::test::RunResult docket_cli(TestDatabase& db, std::vector<std::string> args) {
  args.insert(args.begin(), DOCKET_BIN);
  return docket::test::run(args, {{"DATABASE_URL", db.url()}, {"DOCKET_LOG_LEVEL", "warn"}});
}

std::string keyed_setting(TestDatabase& db) {
  return db.scalar(
      "SELECT coalesce(partition, '-') || '/' || coalesce(max_running_per_key::text, '-') || '/' || "
      "coalesce(partition_source, '-') FROM docket.kinds WHERE kind = 'scrape'");
}

}  // namespace

// Issue 14 #3: a worker's TOML seeds the keyed limits, an operator's runtime setting holds over
// worker restarts until `docket limit KIND --reset`, and each start logs which source won.
TEST(KeyedFleet, AnOperatorsPartitionSurvivesWorkerRestartsUntilReset) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(*db, dir, kKeyedWorker, "first");
  ASSERT_TRUE(wait_until([&] { return w->log_text().find("kind.partition_applied") != std::string::npos; }, 30s))
      << w->log_text();
  EXPECT_EQ(keyed_setting(*db), "args.tenant/2/config");

  auto r = docket_cli(*db, {"limit", "scrape", "--partition", "args.host", "--max-running-per-key", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(keyed_setting(*db), "args.host/1/operator");
  // A deploy: the worker restarts with its TOML partition. The operator's setting holds.
  w->signal(SIGTERM);
  ASSERT_EQ(w->wait(20s), 0) << w->log_text();
  auto w2 = start_docket_worker(*db, dir, kKeyedWorker, "second");
  ASSERT_TRUE(wait_until([&] { return w2->log_text().find("kind.partition_kept") != std::string::npos; }, 30s))
      << w2->log_text();
  std::string log = w2->log_text();
  EXPECT_NE(log.find("partition=args.host"), std::string::npos) << log;
  EXPECT_NE(log.find("source=operator"), std::string::npos) << log;
  EXPECT_NE(log.find("config_partition=args.tenant"), std::string::npos) << log;
  EXPECT_EQ(log.find("kind.partition_applied"), std::string::npos) << log;
  EXPECT_EQ(keyed_setting(*db), "args.host/1/operator");
  // The kept setting is the one in force: one job per host runs at once.
  r = docket_cli(*db, {"enqueue", "scrape", R"({"host": "h", "tenant": "t"})"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(db->scalar("SELECT partition_key FROM docket.jobs WHERE kind = 'scrape'"), "h");
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 1; }, 20s)) << w2->log_text();

  // An operator's removal holds too.
  r = docket_cli(*db, {"limit", "scrape", "--partition", "none"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(keyed_setting(*db), "-/-/operator");
  // Reset: the TOML's settings apply again at once, and the next start applies them itself.
  r = docket_cli(*db, {"limit", "scrape", "--reset"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("scrape jobs are keyed by args.tenant"), std::string::npos) << r.out;
  EXPECT_EQ(keyed_setting(*db), "args.tenant/2/config");
  w2->signal(SIGTERM);
  ASSERT_EQ(w2->wait(20s), 0) << w2->log_text();
  auto w3 = start_docket_worker(*db, dir, kKeyedWorker, "third");
  ASSERT_TRUE(wait_until([&] { return w3->log_text().find("kind.partition_applied") != std::string::npos; }, 30s))
      << w3->log_text();
  log = w3->log_text();
  EXPECT_NE(log.find("source=config"), std::string::npos) << log;
  EXPECT_EQ(keyed_setting(*db), "args.tenant/2/config");
  w3->signal(SIGTERM);
  EXPECT_EQ(w3->wait(20s), 0) << w3->log_text();
}

// Issue 14 #5: rate_per_key across 3 worker processes. Each key's bucket holds 4 and refills 4 a
// second: in any window of one second a key's jobs start at most 4 + 4 times (checked from the
// claims' times in the database; each job records its run), the backlog drains at the rate, not at once, and every key
// gets its share.
TEST(KeyedFleet, ThreeWorkersNeverStartMoreThanRatePlusBurstOfOneKeyInAnyPeriod) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  constexpr int kRate = 4, kBurst = 4, kPerKey = 36;
  client.set_partition("test.record",
                       PartitionLimit{.partition = "args.tenant", .rate_per_key = "4/1s", .burst_per_key = kBurst});
  const std::vector<std::string> keys = {"a", "b", "c"};
  std::vector<EnqueueRequest> jobs;
  for (int i = 0; i < kPerKey; ++i) {
    for (const auto& k : keys)
      jobs.push_back(EnqueueRequest{.kind = "test.record", .args = Json{{"tenant", k}, {"ms", 1}}});
  }
  client.enqueue_many(jobs);
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(start_test_worker(*db, dir, "w" + std::to_string(i), {"--concurrency", "8"}));
  }
  const long long total = kPerKey * static_cast<long long>(keys.size());
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == total; }, 40s))
      << "completed " << count_state(*db, "completed") << " of " << total << "\n"
      << workers[0]->log_text();

  // Each job ran once (its own record), on several processes. The windows are counted on the
  // claims' times as the database recorded them (started_at, the claim's transaction time, which
  // the bucket is computed at): the processes' own start stamps add each job's start-up delay,
  // and on a loaded machine that delay moved one window's starts into the next (9 in a second).
  std::map<std::int64_t, int> runs;
  std::set<int> pids;
  for (const auto& r : read_records(dir / "records.txt")) {
    if (r.event != "start") continue;
    ++runs[r.id];
    pids.insert(r.pid);
  }
  EXPECT_EQ(runs.size(), static_cast<std::size_t>(total));
  for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << "job " << id << " ran " << n << " times";
  std::map<std::string, std::vector<long long>> starts;
  for (const auto& row : db->query("SELECT args->>'tenant', (extract(epoch FROM started_at) * 1e9)::bigint"
                                   " FROM docket.jobs")) {
    starts[row[0].c_str()].push_back(row[1].as<long long>());
  }
  ASSERT_EQ(starts.size(), keys.size());
  for (auto& [key, ns] : starts) {
    std::sort(ns.begin(), ns.end());
    ASSERT_EQ(ns.size(), static_cast<size_t>(kPerKey)) << key;
    int most = 0;
    for (size_t i = 0; i < ns.size(); ++i) {
      const auto end = std::upper_bound(ns.begin(), ns.end(), ns[i] + 1'000'000'000LL);
      most = std::max(most, static_cast<int>(end - (ns.begin() + static_cast<std::ptrdiff_t>(i))));
    }
    const double span_s = static_cast<double>(ns.back() - ns.front()) / 1e9;
    std::cout << "rate_per_key: key " << key << " most starts in 1 s " << most << " (rate + burst " << kRate + kBurst
              << "), " << kPerKey << " starts over " << span_s << " s\n";
    EXPECT_LE(most, kRate + kBurst) << key;
    EXPECT_GE(most, kRate) << key;  // the burst was used
    // After the burst, the rest came at the rate: (36 - 4) / 4 = 8 s at least.
    EXPECT_GE(span_s, (kPerKey - kBurst) / static_cast<double>(kRate) - 0.3) << key;
  }
  EXPECT_GT(pids.size(), 1u) << "the keys' jobs ran on several processes";
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
}
