// The stats document (docket stats, GET /stats) and the ops views behind it, on a real database:
// throughput and timings per kind, live workers, unserved work, robust to any stored timestamp.
#include <gtest/gtest.h>

#include "docket/client.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

const Json* find_by(const Json& list, const std::string& key, const std::string& value) {
  for (const auto& item : list) {
    if (item.value(key, "") == value) return &item;
  }
  return nullptr;
}

}  // namespace

TEST(Stats, CountsTimingsWorkersAndUnservedWork) {
  auto db = PgCluster::shared().fresh_database();
  // A live worker running kind a from queue default; a dead one that would have run everything.
  db->query(
      "INSERT INTO docket.workers (name, host, pid, queues, kinds, concurrency) "
      "VALUES ('w1', 'host-1', 11, '{default}', '{a}', 4);"
      "INSERT INTO docket.workers (name, host, pid, queues, kinds, concurrency, heartbeat_at, dead_at) "
      "VALUES ('gone', 'host-2', 12, '{default,nobody}', '{a,imprt}', 4, now() - interval '1 hour', now())");
  // Finished in the last 5 minutes: 8 completed a (run 100..800 ms, waited 10 ms), 2 failed.
  // Finished 30 minutes ago: 5 completed. Finished 2 hours ago: 50 completed (outside the hour).
  db->query(
      "INSERT INTO docket.jobs (kind, state, run_at, started_at, finished_at, attempt) "
      "SELECT 'a', 'completed', t - interval '10 ms', t, t + g * interval '100 ms', 1 "
      "  FROM generate_series(1, 8) g, LATERAL (SELECT now() - interval '2 minutes' AS t) x;"
      "INSERT INTO docket.jobs (kind, state, run_at, started_at, finished_at, attempt) "
      "SELECT 'a', 'failed', now() - interval '61 s', now() - interval '60 s', now() - interval '59 s', 3 "
      "  FROM generate_series(1, 2);"
      "INSERT INTO docket.jobs (kind, state, run_at, started_at, finished_at, attempt) "
      "SELECT 'a', 'completed', now() - interval '30 min', now() - interval '30 min', now() - interval '30 min', 1 "
      "  FROM generate_series(1, 5);"
      "INSERT INTO docket.jobs (kind, state, run_at, started_at, finished_at, attempt) "
      "SELECT 'a', 'completed', now() - interval '2 h', now() - interval '2 h', now() - interval '2 h', 1 "
      "  FROM generate_series(1, 50);");
  // Waiting work: a in default (served), a typo'd kind, a queue nobody claims, one running job.
  db->query(
      "INSERT INTO docket.jobs (kind, queue, state, run_at) VALUES "
      "('a', 'default', 'available', now()), ('imprt', 'default', 'available', now() - interval '90 s'), "
      "('imprt', 'default', 'scheduled', now() + interval '1 hour'), ('a', 'nobody', 'available', now());"
      "INSERT INTO docket.jobs (kind, state, started_at, worker) "
      "SELECT 'a', 'running', now(), id FROM docket.workers WHERE name = 'w1'");

  Client client(db->url());
  const Json stats = client.stats();

  const Json* a = find_by(stats.at("kinds"), "kind", "a");
  ASSERT_NE(a, nullptr) << stats.dump(2);
  EXPECT_EQ(a->at("completed_5m"), 8);
  EXPECT_EQ(a->at("failed_5m"), 2);
  EXPECT_EQ(a->at("completed_1h"), 13);
  EXPECT_EQ(a->at("failed_1h"), 2);
  EXPECT_NEAR(a->at("failure_rate_1h").get<double>(), 2.0 / 15, 1e-9);
  EXPECT_EQ(a->at("running"), 1);
  // Run times: eight of 100..800 ms, two of 1 s, five of 0 ms: the median is 300 ms.
  EXPECT_NEAR(a->at("run_p50_ms").get<double>(), 300, 1);
  EXPECT_NEAR(a->at("run_p95_ms").get<double>(), 1000, 1);
  EXPECT_NEAR(a->at("wait_p95_ms").get<double>(), 1000, 1);

  ASSERT_EQ(stats.at("workers").size(), 1U) << stats.dump(2);
  const Json& w = stats.at("workers").at(0);
  EXPECT_EQ(w.at("name"), "w1");
  EXPECT_EQ(w.at("host"), "host-1");
  EXPECT_EQ(w.at("pid"), 11);
  EXPECT_EQ(w.at("running"), 1);
  EXPECT_EQ(w.at("concurrency"), 4);
  EXPECT_EQ(w.at("kinds"), Json::array({"a"}));
  EXPECT_LT(w.at("heartbeat_age_s").get<double>(), 5.0);

  const Json& unserved = stats.at("unserved");
  ASSERT_EQ(unserved.size(), 2U) << unserved.dump(2);
  const Json* typo = find_by(unserved, "kind", "imprt");
  ASSERT_NE(typo, nullptr);
  EXPECT_EQ(typo->at("queue"), "default");
  EXPECT_EQ(typo->at("jobs"), 2);
  EXPECT_EQ(typo->at("due"), 1);
  EXPECT_GE(typo->at("oldest_due_age_s").get<double>(), 89.0);
  EXPECT_EQ(typo->at("reason"), "no live worker runs kind imprt");
  const Json* lonely = find_by(unserved, "queue", "nobody");
  ASSERT_NE(lonely, nullptr);
  EXPECT_EQ(lonely->at("reason"), "no live worker claims queue nobody");

  // Queues: the ones with unfinished work and the ones live workers claim from.
  const Json* def = find_by(stats.at("queues"), "queue", "default");
  ASSERT_NE(def, nullptr) << stats.dump(2);
  EXPECT_EQ(def->at("available"), 2);
  EXPECT_EQ(def->at("running"), 1);
  EXPECT_EQ(def->at("waiting"), 1);
  EXPECT_GE(def->at("oldest_available_age_s").get<double>(), 89.0);
}

TEST(Stats, TimestampsAtTheEdgesOfTheTypeBreakNothing) {
  auto db = PgCluster::shared().fresh_database();
  // Written by hand: the enqueue functions refuse these, but a row may hold them.
  db->query(
      "INSERT INTO docket.jobs (kind, state, run_at) VALUES ('x', 'available', '-infinity'), "
      "('x', 'available', 'infinity'), ('x', 'scheduled', 'infinity'), ('x', 'retryable', '-infinity');"
      "INSERT INTO docket.jobs (kind, state, run_at, started_at, finished_at) VALUES "
      "('x', 'completed', '-infinity', '-infinity', now()), ('x', 'failed', now(), 'infinity', now())");
  Client client(db->url());
  const Json stats = client.stats();
  const Json* x = find_by(stats.at("kinds"), "kind", "x");
  ASSERT_NE(x, nullptr) << stats.dump(2);
  EXPECT_EQ(x->at("completed_1h"), 1);
  EXPECT_TRUE(x->at("run_p50_ms").is_null()) << stats.dump(2);
  const Json* q = find_by(stats.at("queues"), "queue", "default");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->at("available"), 2);
  EXPECT_EQ(q->at("waiting"), 2);
  ASSERT_EQ(stats.at("unserved").size(), 1U);
  EXPECT_EQ(stats.at("unserved").at(0).at("jobs"), 4);
  EXPECT_NO_THROW(client.queues());
}
