// Rate limits in the claim (issue 14): the token bucket, its settings' checks, and the wait a short
// claim reports, against a real database.
#include <gtest/gtest.h>

#include <thread>

#include "db/array.hpp"
#include "db/queries.hpp"
#include "db/session.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

class Limits : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    client = std::make_unique<Client>(db->url());
    session = std::make_unique<db::Session>(db->url(), "test");
    worker = session->register_worker({.name = "w1", .queues = {"default"}, .kinds = {"a"}, .lease_s = 30});
  }
  std::vector<db::ClaimedJob> claim(std::vector<std::string> kinds, int n, std::optional<double>* wait = nullptr) {
    auto path = db::Session::ClaimPath::open;
    return session->claim(worker, db::text_array(std::vector<std::string>{"default"}), db::text_array(kinds), n, path,
                          wait);
  }
  void enqueue(const std::string& kind, int n) {
    client->enqueue_many(std::vector<EnqueueRequest>(n, EnqueueRequest{.kind = kind}));
  }
  std::string kinds_row(const std::string& kind) {
    return db->scalar(
        "SELECT row(rate_limit, rate_period, rate_burst, b.kind IS NULL)::text FROM docket.kinds k "
        "LEFT JOIN docket.kind_buckets b USING (kind) WHERE kind = '" +
        kind + "'");
  }
  std::unique_ptr<docket::test::TestDatabase> db;
  std::unique_ptr<Client> client;
  std::unique_ptr<db::Session> session;
  std::string worker;
};

TEST_F(Limits, AShortClaimsRateWaitHasItsOwnColumnAndJobsKeepTheirQueueLatency) {
  client->set_rate("a", "1/10s", 2);
  db->query(
      "INSERT INTO docket.jobs (kind, run_at, inserted_at) SELECT 'a', now() - interval '5 s', now() - interval '5 s' "
      "FROM generate_series(1, 4)");
  // job_claim as the worker runs it: two jobs (the burst), each with its queue latency and no rate
  // wait, then the row without a job that carries only the wait (about 10 s to the next token).
  pqxx::work tx(db->conn());
  const auto res =
      tx.exec_params(std::string(db::q::job_claim.text), worker, db::text_array(std::vector<std::string>{"default"}),
                     db::text_array(std::vector<std::string>{"a"}), 10);
  ASSERT_EQ(res.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(res[i]["id"].is_null());
    EXPECT_TRUE(res[i]["rate_wait_s"].is_null());
    EXPECT_GE(res[i]["queue_latency_s"].as<double>(), 5.0);
  }
  EXPECT_TRUE(res[2]["id"].is_null());
  EXPECT_TRUE(res[2]["queue_latency_s"].is_null());
  EXPECT_GT(res[2]["rate_wait_s"].as<double>(), 9.0);
  EXPECT_LE(res[2]["rate_wait_s"].as<double>(), 10.0);
  tx.abort();
  // Decoded by Session::claim: the jobs' latencies and the wait, each from its own column.
  std::optional<double> wait;
  const auto jobs = claim({"a"}, 10, &wait);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_GE(jobs[0].queue_latency_s, 5.0);
  EXPECT_GE(jobs[1].queue_latency_s, 5.0);
  ASSERT_TRUE(wait);
  EXPECT_GT(*wait, 9.0);
  EXPECT_LE(*wait, 10.0);
}

TEST_F(Limits, TheBucketStartsFullAtItsBurstThenRefillsAtTheRate) {
  client->set_rate("a", "10/1s", 3);
  enqueue("a", 20);
  enqueue("b", 5);
  std::optional<double> wait;
  // A full bucket of 3: three start, the unlimited kind is not held back, and the claim (short)
  // says when the next token comes: about 1/10 s.
  auto first = claim({"a", "b"}, 50, &wait);
  int a = 0;
  for (const auto& j : first) a += j.kind == "a";
  EXPECT_EQ(a, 3);
  EXPECT_EQ(first.size(), 8u);
  ASSERT_TRUE(wait);
  EXPECT_GT(*wait, 0.0);
  EXPECT_LE(*wait, 0.1 + 1e-6);
  // Empty: nothing now; after 0.35 s three more tokens (3.5, whole ones only).
  wait.reset();
  EXPECT_TRUE(claim({"a"}, 50, &wait).empty());
  EXPECT_TRUE(wait);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_EQ(claim({"a"}, 50).size(), 3u);
  // Never more than the burst, however long the bucket was left alone.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(claim({"a"}, 50).size(), 3u);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'a' AND state = 'running'"), 9);
}

TEST_F(Limits, RateAndMaxRunningComposeTheTighterWins) {
  client->set_rate("a", "1000/1s", 100);
  client->set_limit("a", 4);
  enqueue("a", 20);
  EXPECT_EQ(claim({"a"}, 50).size(), 4u);  // max_running caps below the bucket
  EXPECT_TRUE(claim({"a"}, 50).empty());
  // Only the jobs started were charged: 96 tokens left (plus refill, capped at 100).
  EXPECT_GE(std::stod(db->scalar("SELECT rate_tokens FROM docket.kind_limits WHERE kind = 'a'")), 96.0);
  client->set_limit("a", std::nullopt);
  client->set_rate("a", "2/1h", 2);  // the rate caps below max_running
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE state = 'running'");
  client->set_limit("a", 10);
  EXPECT_EQ(claim({"a"}, 50).size(), 2u);
  EXPECT_TRUE(claim({"a"}, 50).empty());
  // Removing the rate lets the rest through (up to max_running).
  client->set_rate("a", std::nullopt);
  EXPECT_EQ(claim({"a"}, 50).size(), 8u);
}

TEST_F(Limits, TheDefaultBurstIsOneSecondsWorthAndSettingTheSameRateKeepsTheBucket) {
  client->set_rate("a", "100/1m");    // 1.67/s: a bucket of 2
  client->set_rate("b", "20/s");      // a bucket of 20
  client->set_rate("c", "5/1d");      // at least 1
  client->set_rate("d", "50/500ms");  // 100/s, but at most N = 50
  const auto limits = client->limits();
  ASSERT_EQ(limits.size(), 4u);
  EXPECT_EQ(limits[0].rate_burst, 2.0);
  EXPECT_EQ(limits[0].rate_limit, 100);
  EXPECT_EQ(limits[0].rate_period_s, 60.0);
  EXPECT_EQ(limits[1].rate_burst, 20.0);
  EXPECT_EQ(limits[1].rate_period_s, 1.0);
  EXPECT_EQ(limits[2].rate_burst, 1.0);
  EXPECT_EQ(limits[3].rate_burst, 50.0);
  enqueue("a", 5);
  EXPECT_EQ(claim({"a"}, 10).size(), 2u);
  // A worker restarting with the same setting does not refill the bucket...
  client->set_rate("a", "100/1m");
  EXPECT_TRUE(claim({"a"}, 10).empty());
  // ...a changed one starts full.
  client->set_rate("a", "100/1m", 1);
  EXPECT_EQ(claim({"a"}, 10).size(), 1u);
  EXPECT_FALSE(limits[0].at_limit);
  const auto after = client->limits();
  EXPECT_TRUE(after[0].at_limit);  // no whole token: the kind is held back
  EXPECT_FALSE(after[1].at_limit);
}

// Migration 0026: a claim that takes tokens writes them to the kind's narrow bucket row, never to
// its configuration row in docket.kinds (an UPDATE there evaluated the table's 21 CHECK
// constraints on every claim); a changed rate deletes the bucket row (a full bucket).
TEST_F(Limits, ARatedClaimWritesItsBucketRowNotTheKindsRow) {
  client->set_rate("a", "1000/1h", 10);
  enqueue("a", 20);
  const std::string kind_version = db->scalar("SELECT xmin::text FROM docket.kinds WHERE kind = 'a'");
  const auto bucket = [&] {
    return db->scalar(
        "SELECT coalesce((SELECT floor(rate_tokens)::text FROM docket.kind_buckets WHERE kind = 'a'), 'none')");
  };
  EXPECT_EQ(bucket(), "none");  // no row: a full bucket
  EXPECT_EQ(claim({"a"}, 4).size(), 4u);
  EXPECT_EQ(bucket(), "6");
  EXPECT_EQ(claim({"a"}, 50).size(), 6u);
  EXPECT_EQ(bucket(), "0");
  EXPECT_TRUE(claim({"a"}, 50).empty());
  EXPECT_EQ(db->scalar("SELECT xmin::text FROM docket.kinds WHERE kind = 'a'"), kind_version);
  EXPECT_EQ(db->scalar("SELECT rate_tokens::int::text FROM docket.kind_limits WHERE kind = 'a'"), "0");
  client->set_rate("a", "1000/1h", 10);  // the same setting keeps the bucket
  EXPECT_EQ(bucket(), "0");
  client->set_rate("a", "1000/1h", 5);  // a changed one starts full
  EXPECT_EQ(bucket(), "none");
  EXPECT_EQ(claim({"a"}, 50).size(), 5u);
  client->set_rate("a", std::nullopt);  // no rate: no bucket
  EXPECT_EQ(bucket(), "none");
}

TEST_F(Limits, BadRatesAreRefusedNamingTheFieldAndWriteNothing) {
  client->set_rate("a", "10/1s", 5);
  const std::string before = kinds_row("a");
  const std::vector<std::string> bad = {"",
                                        "10",
                                        "10/",
                                        "/1s",
                                        "0/1s",
                                        "-1/1s",
                                        "10/1w",
                                        "10/0s",
                                        "10/2d",
                                        "1000001/1s",
                                        "10/1.5.5s",
                                        "ten/1s",
                                        "10/1s; DROP TABLE docket.jobs",
                                        std::string(10000, '9') + "/1s",
                                        "10/0.0001ms",
                                        "1e3/1s"};
  for (const auto& r : bad) {
    try {
      client->set_rate("a", r);
      ADD_FAILURE() << "accepted rate \"" << r << "\"";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find("rate"), std::string::npos) << e.what();
    }
  }
  for (int burst : {0, -1, 1000001}) {
    try {
      client->set_rate("a", "10/1s", burst);
      ADD_FAILURE() << "accepted burst " << burst;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find("burst"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(client->set_rate("a", std::nullopt, 3), InvalidInput);  // a burst without a rate
  EXPECT_THROW(client->set_rate("", "10/1s"), InvalidInput);
  EXPECT_EQ(kinds_row("a"), before);  // nothing written by any of them
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.kinds"), 1);
  // Accepted spellings.
  for (const std::string r : {"1/1ms", "1000000/1d", "5/ 500ms", " 3 / 1.5h ", "7/m"}) {
    EXPECT_NO_THROW(client->set_rate("b", r)) << r;
  }
  EXPECT_EQ(db->scalar("SELECT rate_period FROM docket.kinds WHERE kind = 'b'"), "00:01:00");
  EXPECT_EQ(client->limits().size(), 2u);  // and the client still answers
}

TEST_F(Limits, ConcurrentClaimersNeverTakeMoreTokensThanTheBucketAllows) {
  // 6 sessions claim as fast as they can for ~1.5 s from a bucket of 5 refilled at 20/s: at most
  // 5 + 20 * elapsed jobs start, and the rate holds to within one token.
  client->set_rate("a", "20/1s", 5);
  enqueue("a", 400);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> claimers;
  std::atomic<int> claimed{0};
  for (int t = 0; t < 6; ++t) {
    claimers.emplace_back([&] {
      db::Session s(db->url(), "claimer");
      const std::string w = s.register_worker({.name = "c", .lease_s = 30});
      auto path = db::Session::ClaimPath::quota;
      while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1500)) {
        claimed += static_cast<int>(s.claim(w, db::text_array(std::vector<std::string>{"default"}),
                                            db::text_array(std::vector<std::string>{"a"}), 3, path)
                                        .size());
      }
    });
  }
  for (auto& t : claimers) t.join();
  const double elapsed =
      std::stod(db->scalar("SELECT extract(epoch FROM max(started_at) - min(started_at)) FROM docket.jobs "
                           "WHERE state = 'running'"));
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), claimed.load());
  EXPECT_LE(claimed.load(), 5 + static_cast<int>(20 * elapsed) + 1) << "elapsed " << elapsed;
  EXPECT_GE(claimed.load(), 5 + static_cast<int>(20 * 1.2)) << "elapsed " << elapsed;
}
