// Keyed limits in the claim (issue 14): a partition (a path into args) with max_running_per_key
// and rate_per_key, served round-robin over the keys, against a real database.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "db/array.hpp"
#include "db/session.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

/// Jobs of `kind` with args {"tenant": key} (no tenant for an empty key), `n` per key.
std::vector<EnqueueRequest> tenant_jobs(const std::string& kind, const std::vector<std::string>& keys, int n) {
  std::vector<EnqueueRequest> out;
  for (const auto& key : keys) {
    for (int i = 0; i < n; ++i) {
      out.push_back(EnqueueRequest{.kind = kind, .args = key.empty() ? Json::object() : Json{{"tenant", key}}});
    }
  }
  return out;
}

}  // namespace

class Keyed : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    client = std::make_unique<Client>(db->url());
    session = std::make_unique<db::Session>(db->url(), "test");
    worker = session->register_worker({.name = "w1", .queues = {"default"}, .kinds = {"a", "b"}, .lease_s = 30});
  }
  std::vector<db::ClaimedJob> claim(db::Session& s, std::vector<std::string> kinds, int n) {
    auto path = db::Session::ClaimPath::open;
    return s.claim(worker, db::text_array(std::vector<std::string>{"default"}), db::text_array(kinds), n, path,
                   nullptr);
  }
  std::vector<db::ClaimedJob> claim(std::vector<std::string> kinds, int n) { return claim(*session, kinds, n); }
  /// The tenant of each claimed job of kind a ("" for none), counted.
  static std::map<std::string, int> by_tenant(const std::vector<db::ClaimedJob>& jobs) {
    std::map<std::string, int> out;
    for (const auto& j : jobs) {
      const Json args = Json::parse(j.args);
      ++out[j.kind == "a" ? args.value("tenant", std::string()) : "kind " + j.kind];
    }
    return out;
  }
  void complete_all() {
    db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE state = 'running'");
  }
  std::unique_ptr<docket::test::TestDatabase> db;
  std::unique_ptr<Client> client;
  std::unique_ptr<db::Session> session;
  std::string worker;
};

TEST_F(Keyed, ASaturatedKeyNeverBlocksOtherKeysOrKinds) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});
  // The big tenant's 500 jobs are all in front of everyone else's.
  client->enqueue_many(tenant_jobs("a", {"big"}, 500));
  client->enqueue_many(tenant_jobs("a", {"t1", "t2", ""}, 2));
  client->enqueue_many(tenant_jobs("b", {"big"}, 3));
  // One per key (the job without a tenant is in the default key ""), and kind b is not limited.
  EXPECT_EQ(by_tenant(claim({"a", "b"}, 50)),
            (std::map<std::string, int>{{"big", 1}, {"t1", 1}, {"t2", 1}, {"", 1}, {"kind b", 3}}));
  // Every key is at its limit: nothing more, however many are asked for.
  EXPECT_TRUE(claim({"a", "b"}, 50).empty());
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 7);
  complete_all();
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"big", 1}, {"t1", 1}, {"t2", 1}, {"", 1}}));
  complete_all();
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"big", 1}}));
}

TEST_F(Keyed, KeysAreServedRoundRobinEachGetsAnEqualShare) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant"});  // no limit: fairness alone
  // 100 backlogged tenants, enqueued one after another: by id, tenant 0 would take the first 20
  // claims. Starts are counted, not timed: the share is exact, whatever the machine's speed.
  std::vector<std::string> tenants;
  for (int i = 0; i < 100; ++i) tenants.push_back("tenant-" + std::to_string(i));
  client->enqueue_many(tenant_jobs("a", tenants, 20));
  std::map<std::string, int> starts;
  for (int round = 0; round < 143; ++round) {  // 143 claims of 7: 1,001 starts, a share of 10.01
    for (const auto& [t, n] : by_tenant(claim({"a"}, 7))) starts[t] += n;
    complete_all();
  }
  ASSERT_EQ(starts.size(), 100u);
  for (const auto& [t, n] : starts) {
    EXPECT_GE(n, 10) << t;  // every tenant within one start (10%) of its share
    EXPECT_LE(n, 11) << t;
  }
}

// The round-robin cursor lives in docket.kind_cursors (unlogged, 0022): each claim moves it to the
// last key it served, and a cursor lost in a crash (the table comes back empty) only restarts the
// turn at the first key: the claim rebuilds its row, and the per-key limit still holds.
TEST_F(Keyed, TheCursorMovesPastTheLastKeyServedAndALostCursorRestartsAtTheFirstKey) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});
  client->enqueue_many(tenant_jobs("a", {"k1", "k2", "k3", "k4"}, 3));
  EXPECT_EQ(by_tenant(claim({"a"}, 2)), (std::map<std::string, int>{{"k1", 1}, {"k2", 1}}));
  EXPECT_EQ(db->scalar("SELECT key FROM docket.kind_cursors WHERE kind = 'a'"), "k2");
  complete_all();
  EXPECT_EQ(by_tenant(claim({"a"}, 1)), (std::map<std::string, int>{{"k3", 1}}));  // after k2, not k1 again
  EXPECT_EQ(db->scalar("SELECT key FROM docket.kind_cursors WHERE kind = 'a'"), "k3");
  db->query("TRUNCATE docket.kind_cursors");  // what a crash leaves of an unlogged table
  // From the first key again; k3 still runs, so the limit skips it even though the turn restarted.
  EXPECT_EQ(by_tenant(claim({"a"}, 3)), (std::map<std::string, int>{{"k1", 1}, {"k2", 1}, {"k4", 1}}));
  EXPECT_EQ(db->scalar("SELECT key FROM docket.kind_cursors WHERE kind = 'a'"), "k4");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 4);
  // Every key running: nothing to claim, and the turn starts over at the first key.
  EXPECT_TRUE(claim({"a"}, 5).empty());
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.kind_cursors WHERE kind = 'a' AND key IS NULL"), 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 4);
}

// The insert trigger computes each keyed kind's path once per statement (0022): one INSERT of
// several kinds, each partitioned by another path, gives every job its own kind's key, and jobs
// of kinds without a partition none.
TEST_F(Keyed, OneInsertOfSeveralKeyedKindsGivesEachJobItsOwnKindsKey) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant"});
  client->set_partition("b", PartitionLimit{.partition = "args.source.host"});
  db->query(
      "INSERT INTO docket.jobs (kind, args) SELECT k, jsonb_build_object('tenant', 't' || g, 'source', "
      "jsonb_build_object('host', 'h' || g)) FROM generate_series(1, 3) g, unnest(ARRAY['a', 'b', 'c']) k");
  EXPECT_EQ(db->scalar("SELECT string_agg(kind || '=' || coalesce(partition_key, 'NULL'), ',' ORDER BY kind, id) "
                       "FROM docket.jobs"),
            "a=t1,a=t2,a=t3,b=h1,b=h2,b=h3,c=NULL,c=NULL,c=NULL");
}

TEST_F(Keyed, MaxRunningPerKeyAboveOneAndTheKindsOwnQuotaCompose) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 3});
  client->enqueue_many(tenant_jobs("a", {"x", "y"}, 10));
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"x", 3}, {"y", 3}}));
  complete_all();
  client->set_limit("a", 4);  // the kind's quota is the tighter one now
  const auto got = claim({"a"}, 50);
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(by_tenant(got), (std::map<std::string, int>{{"x", 2}, {"y", 2}}));
}

TEST_F(Keyed, RatePerKeyEmptiesEachKeysBucketAlone) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .rate_per_key = "2/1h", .burst_per_key = 2});
  client->enqueue_many(tenant_jobs("a", {"x", "y"}, 10));
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"x", 2}, {"y", 2}}));
  complete_all();
  EXPECT_TRUE(claim({"a"}, 50).empty());
  // A new key has a full bucket of its own.
  client->enqueue_many(tenant_jobs("a", {"z"}, 10));
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"z", 2}}));
  const auto limits = client->limits();
  ASSERT_EQ(limits.size(), 2u);  // a and b (the worker registered both)
  EXPECT_EQ(limits[0].partition, "args.tenant");
  EXPECT_EQ(limits[0].rate_per_key, 2);
  EXPECT_EQ(limits[0].rate_per_key_burst, 2.0);
  EXPECT_EQ(limits[0].max_key_running, 2);
  EXPECT_EQ(limits[0].keys_at_limit, 3);
  EXPECT_TRUE(limits[0].at_limit);
  EXPECT_FALSE(limits[1].partition);
  EXPECT_FALSE(limits[1].at_limit);
  const auto hot = client->hot_keys("a", 10);
  ASSERT_EQ(hot.size(), 3u);
  EXPECT_EQ(hot[0].key, "z");  // the running one first
  EXPECT_EQ(hot[0].running, 2);
  EXPECT_TRUE(hot[0].at_limit);
  EXPECT_EQ(hot[0].available, 8);
}

TEST_F(Keyed, ABucketWithABurstAboveItsRateIsNotRefilledEarlyByTheCleanUp) {
  // 2 per 4 s with a burst of 6: drained, the bucket needs 12 s to be full again. A claim of
  // another key one period later must not drop its row (which would read as a full bucket).
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .rate_per_key = "2/4s", .burst_per_key = 6});
  client->enqueue_many(tenant_jobs("a", {"x"}, 6));
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"x", 6}}));
  complete_all();
  std::this_thread::sleep_for(std::chrono::milliseconds(4300));
  client->enqueue_many(tenant_jobs("a", {"y"}, 1));
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"y", 1}}));
  client->enqueue_many(tenant_jobs("a", {"x"}, 10));
  // About 2.2 tokens came back in 4.3 s: 2 starts, not the whole burst.
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"x", 2}}));
}

TEST_F(Keyed, BadKeyedSettingsAreRefusedNamingTheFieldAndWriteNothing) {
  const auto refused = [&](const PartitionLimit& p, const std::string& field) {
    try {
      client->set_partition("a", p);
      ADD_FAILURE() << "accepted, expected an error naming " << field;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_THROW(client->check_partition(p), InvalidInput);
  };
  for (const std::string& path :
       std::vector<std::string>{"tenant", "args", "args.", "args.a b", "args.a..b", "$.tenant", "args.a;drop",
                                "args.1.2.3.4.5.6.7.8.9", "args." + std::string(65, 'x'), std::string(10000, 'a')}) {
    refused(PartitionLimit{.partition = path}, "partition");
  }
  refused(PartitionLimit{.partition = "args.tenant", .max_running_per_key = -1}, "max_running_per_key");
  refused(PartitionLimit{.partition = "args.tenant", .rate_per_key = "fast"}, "rate_per_key");
  refused(PartitionLimit{.partition = "args.tenant", .rate_per_key = "0/1s"}, "rate_per_key");
  refused(PartitionLimit{.partition = "args.tenant", .burst_per_key = 3}, "burst_per_key");
  refused(PartitionLimit{.partition = "args.tenant", .rate_per_key = "1/s", .burst_per_key = 0}, "burst_per_key");
  refused(PartitionLimit{.max_running_per_key = 2}, "partition");
  // Nothing written: no keyed setting, no job's key, no index built at run time.
  EXPECT_EQ(
      db->count("SELECT count(*) FROM docket.kinds WHERE partition IS NOT NULL OR max_running_per_key IS NOT NULL "
                "OR rate_per_key_limit IS NOT NULL OR rate_per_key_burst IS NOT NULL"),
      0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE partition_key IS NOT NULL"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'jobs_partition_%'"), 2);
  // And the database still answers: a good setting is taken.
  client->set_partition("a", PartitionLimit{.partition = "args.source.host-name_1", .max_running_per_key = 0});
  EXPECT_EQ(db->scalar("SELECT partition FROM docket.kinds WHERE kind = 'a'"), "args.source.host-name_1");
  EXPECT_EQ(db->count("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'jobs_partition_%'"), 2);
}

TEST_F(Keyed, ChangingThePartitionRewritesTheLiveJobsKeysAndRemovingItRestoresTheOpenClaim) {
  // Jobs enqueued before any partition, a finished one among them: the path's first setting
  // gives the live ones their key (a job without the path falls into the default key "").
  client->enqueue_many(
      std::vector<EnqueueRequest>(3, EnqueueRequest{.kind = "a", .args = Json{{"tenant", "t"}, {"host", "h"}}}));
  client->enqueue_many(std::vector<EnqueueRequest>(1, EnqueueRequest{.kind = "a"}));
  db->query(
      "UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE id = (SELECT min(id) FROM docket.jobs)");
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});
  EXPECT_EQ(db->scalar("SELECT string_agg(coalesce(partition_key, 'NULL'), ',' ORDER BY id) FROM docket.jobs"),
            "NULL,t,t,");
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});  // same: kept
  client->set_partition("a", PartitionLimit{.partition = "args.host", .max_running_per_key = 1});
  EXPECT_EQ(db->scalar("SELECT string_agg(coalesce(partition_key, 'NULL'), ',' ORDER BY id) FROM docket.jobs"),
            "NULL,h,h,");
  EXPECT_EQ(db->scalar("SELECT partition FROM docket.kinds WHERE kind = 'a'"), "args.host");
  // Jobs enqueued now get their key at insert, one by one and in bulk; kind b's get none.
  client->enqueue(EnqueueRequest{.kind = "a", .args = Json{{"host", "h"}}});
  client->enqueue_many(std::vector<EnqueueRequest>(4, EnqueueRequest{.kind = "a", .args = Json{{"host", "h"}}}));
  client->enqueue(EnqueueRequest{.kind = "b", .args = Json{{"host", "h"}}});
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'a' AND partition_key = 'h'"), 7);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'b' AND partition_key IS NULL"), 1);
  // One per key: h and the default key.
  EXPECT_EQ(by_tenant(claim({"a"}, 50)), (std::map<std::string, int>{{"t", 1}, {"", 1}}));
  client->set_partition("a", PartitionLimit{});
  EXPECT_EQ(claim({"a"}, 50).size(), 6u);
  EXPECT_EQ(db->count("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'jobs_partition_%'"), 2);
}

TEST_F(Keyed, ConcurrentClaimersNeverRunMoreThanTheLimitOfAKey) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 2});
  std::vector<std::string> tenants;
  for (int i = 0; i < 50; ++i) tenants.push_back("t" + std::to_string(i));
  client->enqueue_many(tenant_jobs("a", tenants, 20));
  // Eight claimers race; nobody finishes, so any overshoot stays visible at the end.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      db::Session s(db->url(), "claimer");
      for (int i = 0; i < 20; ++i) claim(s, {"a"}, 3);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 100);
  EXPECT_EQ(db->count("SELECT max(n) FROM (SELECT count(*) AS n FROM docket.jobs WHERE state = 'running' "
                      "GROUP BY args->>'tenant') x"),
            2);
  EXPECT_EQ(db->count("SELECT count(DISTINCT args->>'tenant') FROM docket.jobs WHERE state = 'running'"), 50);
}

// Issue 14 #6: with every key's bucket empty, the claim tells the worker when the first of them
// holds a token again (docket.rate_wait per key), instead of it spinning or waiting out its poll.
TEST_F(Keyed, AClaimWithEveryKeysBucketEmptySaysWhenTheFirstRefills) {
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .rate_per_key = "1/4s", .burst_per_key = 1});
  client->enqueue_many(tenant_jobs("a", {"x"}, 3));
  const auto claim_wait = [&](int n, std::optional<double>& wait) {
    auto path = db::Session::ClaimPath::open;
    return session->claim(worker, db::text_array(std::vector<std::string>{"default"}),
                          db::text_array(std::vector<std::string>{"a"}), n, path, &wait);
  };
  std::optional<double> wait;
  EXPECT_EQ(claim_wait(5, wait).size(), 1u);
  ASSERT_TRUE(wait.has_value()) << "a short claim with an empty key bucket gives no wake-up";
  EXPECT_GT(*wait, 3.0);
  EXPECT_LE(*wait, 4.0);
  complete_all();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  client->enqueue_many(tenant_jobs("a", {"y"}, 1));  // a key with a full bucket: claimed, x still waits
  wait.reset();
  EXPECT_EQ(by_tenant(claim_wait(5, wait)), (std::map<std::string, int>{{"y", 1}}));
  ASSERT_TRUE(wait.has_value());
  EXPECT_GT(*wait, 2.0);  // x's refill, a second nearer
  EXPECT_LE(*wait, 3.05);
  // Without a rate per key there is nothing to wait for: the claim says so (no row).
  client->set_partition("a", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});
  wait.reset();
  EXPECT_EQ(claim_wait(5, wait).size(), 1u);  // x's next job (y's is running)
  EXPECT_FALSE(wait.has_value());
}
