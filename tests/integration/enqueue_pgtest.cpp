// docket.enqueue / enqueue_many: transactional, race-free unique_key, validation.
#include <gtest/gtest.h>

#include <barrier>
#include <thread>

#include "db/array.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

class Enqueue : public ::testing::Test {
 protected:
  void SetUp() override { db = PgCluster::shared().fresh_database(); }
  std::unique_ptr<docket::test::TestDatabase> db;
};

TEST_F(Enqueue, InsideARolledBackTransactionLeavesNoJob) {
  pqxx::connection c(db->url());
  {
    pqxx::work tx(c);
    tx.exec("SELECT docket.enqueue('report', '{\"n\": 1}')");
    tx.abort();
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  {
    pqxx::work tx(c);
    tx.exec("INSERT INTO docket.queues(name) VALUES ('x') ON CONFLICT DO NOTHING");
    const auto id = tx.exec("SELECT docket.enqueue('report', '{\"n\": 2}')")[0][0].as<long long>();
    tx.commit();
    EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + std::to_string(id)), "available");
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 1);
}

TEST_F(Enqueue, DefaultsMatchTheContract) {
  Client client(db->url());
  const auto r = client.enqueue({.kind = "report"});
  const auto job = client.job(r.id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->queue, "default");
  EXPECT_EQ(job->priority, 0);
  EXPECT_EQ(job->attempt, 0);
  EXPECT_EQ(job->max_retries, 20);
  EXPECT_EQ(job->state, JobState::available);
  EXPECT_EQ(job->args, Json::object());
  EXPECT_TRUE(job->errors.is_array() && job->errors.empty());
}

TEST_F(Enqueue, FutureRunAtIsScheduled) {
  Client client(db->url());
  const auto r = client.enqueue({.kind = "report", .run_at = Clock::now() + std::chrono::hours(1)});
  EXPECT_EQ(client.job(r.id)->state, JobState::scheduled);
}

TEST_F(Enqueue, KindDefaultMaxRetriesApplies) {
  Client client(db->url());
  db->query("INSERT INTO docket.kinds(kind, max_retries) VALUES ('import', 5)");
  EXPECT_EQ(client.job(client.enqueue({.kind = "import"}).id)->max_retries, 5);
  EXPECT_EQ(client.job(client.enqueue({.kind = "import", .max_retries = 1}).id)->max_retries, 1);
}

TEST_F(Enqueue, TwoConcurrentSessionsWithOneUniqueKeyGetOneJob) {
  // Session A inserts inside an open transaction; B's insert of the same key must wait for A
  // and then return A's job id, not a second job.
  pqxx::connection a(db->url()), b(db->url());
  pqxx::work ta(a);
  const auto id_a = ta.exec("SELECT docket.enqueue('import', '{}', unique_key => 'file-1')")[0][0].as<long long>();
  long long id_b = 0;
  std::thread tb([&] {
    pqxx::nontransaction t(b);
    id_b = t.exec("SELECT docket.enqueue('import', '{}', unique_key => 'file-1')")[0][0].as<long long>();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ta.commit();
  tb.join();
  EXPECT_EQ(id_a, id_b);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE unique_key = 'file-1'"), 1);
}

TEST_F(Enqueue, UniqueKeyUnderManyConcurrentInsertersHalfRollingBack) {
  constexpr int kThreads = 32;
  std::vector<long long> ids(kThreads, 0);
  std::vector<bool> committed(kThreads, false);
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      pqxx::connection c(db->url());
      sync.arrive_and_wait();
      for (int attempt = 0; attempt < 20; ++attempt) {
        try {
          pqxx::work tx(c);
          ids[i] = tx.exec("SELECT docket.enqueue('import', '{}', unique_key => 'k')")[0][0].as<long long>();
          if (i % 2 == 0) {
            tx.abort();
          } else {
            tx.commit();
            committed[i] = true;
          }
          return;
        } catch (const pqxx::sql_error&) {
          // a contended key may ask us to try again
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE unique_key = 'k'"), 1);
  const auto live = db->count("SELECT id FROM docket.jobs WHERE unique_key = 'k'");
  for (int i = 0; i < kThreads; ++i) {
    if (committed[i]) {
      EXPECT_EQ(ids[i], live) << "committer " << i << " was told another id";
    }
  }
}

TEST_F(Enqueue, UniqueKeyFreesOnceTheJobFinishes) {
  Client client(db->url());
  const auto first = client.enqueue({.kind = "k", .unique_key = "u"});
  EXPECT_TRUE(first.created);
  const auto dup = client.enqueue({.kind = "k", .unique_key = "u"});
  EXPECT_FALSE(dup.created);
  EXPECT_EQ(dup.id, first.id);
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now()");
  const auto again = client.enqueue({.kind = "k", .unique_key = "u"});
  EXPECT_TRUE(again.created);
  EXPECT_NE(again.id, first.id);
  // Retrying the finished one while a live job holds the key is a clear conflict.
  EXPECT_THROW(client.retry(first.id), Conflict);
}

TEST_F(Enqueue, ManyReturnsIdsInOrderAndHonoursUniqueKeys) {
  Client client(db->url());
  const auto existing = client.enqueue({.kind = "k", .unique_key = "old"});
  std::vector<EnqueueRequest> batch;
  for (int i = 0; i < 100; ++i) batch.push_back({.kind = "bulk", .args = Json{{"i", i}}});
  batch.push_back({.kind = "k", .unique_key = "old"});
  batch.push_back({.kind = "k", .unique_key = "new"});
  batch.push_back({.kind = "k", .unique_key = "new"});
  const auto results = client.enqueue_many(batch);
  ASSERT_EQ(results.size(), batch.size());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(results[i].created);
    EXPECT_EQ(client.job(results[i].id)->args.at("i"), i);
  }
  EXPECT_FALSE(results[100].created);
  EXPECT_EQ(results[100].id, existing.id);
  EXPECT_TRUE(results[101].created);
  EXPECT_FALSE(results[102].created);
  EXPECT_EQ(results[102].id, results[101].id);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 102);
}

TEST_F(Enqueue, ManyWithoutUniqueKeysGoesByCopyKeepingOrderStateAndValidation) {
  Client client(db->url());
  std::vector<EnqueueRequest> batch;
  for (int i = 0; i < 300; ++i) {
    batch.push_back({.kind = i % 3 ? "bulk" : "other",
                     .args = Json{{"i", i}},
                     .queue = i % 2 ? "a" : "b",
                     .priority = i % 7,
                     .max_retries = i % 5 == 0 ? std::optional<int>(2) : std::nullopt});
  }
  batch[10].run_at = Clock::now() + std::chrono::hours(1);
  batch[11].run_at = Clock::now() - std::chrono::hours(1);
  const auto results = client.enqueue_many(batch);
  ASSERT_EQ(results.size(), batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto job = client.job(results[i].id);
    ASSERT_TRUE(job);
    EXPECT_TRUE(results[i].created);
    EXPECT_EQ(job->args.at("i"), static_cast<int>(i));
    EXPECT_EQ(job->kind, batch[i].kind);
    EXPECT_EQ(job->queue, batch[i].queue);
    EXPECT_EQ(job->priority, batch[i].priority);
    EXPECT_EQ(job->max_retries, batch[i].max_retries.value_or(20));
    if (i > 0) {
      EXPECT_GT(results[i].id, results[i - 1].id);
    }
  }
  EXPECT_EQ(client.job(results[10].id)->state, JobState::scheduled);
  EXPECT_EQ(client.job(results[11].id)->state, JobState::available);
  EXPECT_EQ(client.job(results[12].id)->state, JobState::available);
  // A bad request anywhere in the batch names itself, and nothing of the batch is written.
  batch[150].priority = 5000;
  try {
    client.enqueue_many(batch);
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("jobs[150].priority must be between 0"), std::string::npos) << e.what();
  }
  batch[150].priority = 0;
  batch[7].args = Json::array();
  EXPECT_THROW(client.enqueue_many(batch), InvalidInput);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 300);
}

TEST_F(Enqueue, ManyByCopyFromConcurrentSessionsReturnsEachRequestsOwnId) {
  // Concurrent COPYs draw ids from the one sequence interleaved: each result must still name the
  // job made from its own request (the ids are read back when they are not one contiguous run).
  constexpr int kThreads = 4, kBatches = 4, kJobs = 3000;
  std::vector<std::vector<std::int64_t>> ids(kThreads * kBatches);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        Client client(db->url());
        for (int b = 0; b < kBatches; ++b) {
          std::vector<EnqueueRequest> batch;
          for (int i = 0; i < kJobs; ++i) batch.push_back({.kind = "bulk", .args = Json{{"t", t}, {"b", b}, {"i", i}}});
          for (const auto& r : client.enqueue_many(batch)) ids[t * kBatches + b].push_back(r.id);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "thread " << t << ": " << e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string wrong = "0";
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) {
      const auto& got = ids[t * kBatches + b];
      ASSERT_EQ(got.size(), static_cast<std::size_t>(kJobs));
      // The i-th id of this batch must hold {"t": t, "b": b, "i": i}: count the ones that do not.
      wrong = db->scalar("SELECT count(*) FROM unnest('" + db::int_array(got) +
                         "'::bigint[]) WITH ORDINALITY u(id, ord) LEFT JOIN docket.jobs j ON j.id = u.id "
                         "WHERE j.id IS NULL OR j.args <> jsonb_build_object('t', " +
                         std::to_string(t) + ", 'b', " + std::to_string(b) + ", 'i', u.ord - 1)");
      EXPECT_EQ(wrong, "0") << "thread " << t << " batch " << b;
    }
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), kThreads * kBatches * kJobs);
}

TEST_F(Enqueue, ManyWithDefaultsCopiesOnlyTheGivenColumnsAndKeepsArgsExact) {
  // No priority, max_retries or run_at set: the COPY sends kind, queue and args only and the
  // table's defaults fill the rest. Args with every character COPY's text format escapes.
  Client client(db->url());
  const Json tricky = {{"path", "C:\\dir\\file"},    {"tab", "a\tb"},       {"nl", "line1\nline2\r\n"},
                       {"quote", "it's \"quoted\""}, {"unicode", "żółw 🐢"}, {"nested", {{"x", Json::array({1, 2})}}}};
  std::vector<EnqueueRequest> batch(50, EnqueueRequest{.kind = "plain", .args = tricky, .queue = "with space"});
  const auto results = client.enqueue_many(batch);
  ASSERT_EQ(results.size(), 50u);
  for (const auto& r : results) {
    const auto job = client.job(r.id);
    ASSERT_TRUE(job);
    EXPECT_EQ(job->args, tricky);
    EXPECT_EQ(job->queue, "with space");
    EXPECT_EQ(job->state, JobState::available);
    EXPECT_EQ(job->priority, 0);
    EXPECT_EQ(job->max_retries, 20);
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE abs(extract(epoch FROM run_at - now())) < 60"), 50);
}

TEST_F(Enqueue, ManyOfACrawlKindDedupsOnTheCollection) {
  Client client(db->url());
  db->query("INSERT INTO docket.kinds (kind, crawl_collection) VALUES ('projects', 'projects')");
  const auto results = client.enqueue_many({{.kind = "projects"}, {.kind = "projects"}, {.kind = "plain"}});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].created);
  EXPECT_FALSE(results[1].created);
  EXPECT_EQ(results[1].id, results[0].id);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls"), 1);
  EXPECT_EQ(db->scalar("SELECT unique_key FROM docket.jobs WHERE id = " + std::to_string(results[0].id)),
            "crawl:projects");
}

TEST_F(Enqueue, BadInputGetsAClearErrorAndWritesNothing) {
  Client client(db->url());
  auto message = [&](const EnqueueRequest& r) -> std::string {
    try {
      client.enqueue(r);
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({.kind = ""}).find("kind must be a non-empty string"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .args = Json::array({1, 2})}).find("args must be a JSON object"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .args = "text"}).find("args must be a JSON object"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .queue = ""}).find("queue must be"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .priority = -1}).find("priority must be between 0"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .priority = 5000}).find("priority must be between 0"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .max_retries = -2}).find("max_retries must be >= 0"), std::string::npos);
  EXPECT_NE(message({.kind = "k", .unique_key = ""}).find("unique_key"), std::string::npos);
  EXPECT_NE(message({.kind = std::string(300, 'k')}).find("at most 200"), std::string::npos);
  EXPECT_NE(message({.kind = "bad\nkind"}).find("printable"), std::string::npos);
  EXPECT_THROW(client.enqueue({.kind = "k", .args = Json{{"blob", std::string(2 << 20, 'x')}}}), TooLarge);
  EXPECT_THROW(client.enqueue_many({{.kind = "ok"}, {.kind = ""}}), InvalidInput);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
}

TEST_F(Enqueue, NulInArgsIsRejectedNotCrashing) {
  Client client(db->url());
  EXPECT_THROW(client.enqueue({.kind = "k", .args = Json{{"s", std::string("a\0b", 3)}}}), InvalidInput);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
}

TEST_F(Enqueue, SqlMetacharactersAreStoredVerbatim) {
  Client client(db->url());
  const std::string evil = "x'); DROP TABLE docket.jobs; --";
  const auto r = client.enqueue({.kind = evil, .args = Json{{"q", evil}}, .queue = evil, .unique_key = evil});
  const auto job = client.job(r.id);
  EXPECT_EQ(job->kind, evil);
  EXPECT_EQ(job->queue, evil);
  EXPECT_EQ(job->args.at("q"), evil);
  EXPECT_EQ(job->unique_key, evil);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 1);
}

TEST_F(Enqueue, BulkInsertNotifiesOncePerStatementNotPerRow) {
  pqxx::connection listener(db->url());
  pqxx::nontransaction(listener).exec("LISTEN docket_jobs");
  Client client(db->url());
  // A worker sleeps on 'default' (migration 0021: without one, no NOTIFY at all).
  EXPECT_EQ(db->scalar("SELECT docket.listen_for_jobs(ARRAY['default'], ARRAY['bulk'])"), "f");
  std::vector<EnqueueRequest> batch(500, EnqueueRequest{.kind = "bulk"});
  client.enqueue_many(batch);
  int notifications = 0;
  while (listener.await_notification(0, 300000) > 0) ++notifications;
  EXPECT_EQ(notifications, 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 500);
}
