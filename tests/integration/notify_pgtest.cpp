// Migration 0021: an enqueue sends NOTIFY docket_jobs only for a queue a worker marked as slept on
// (docket.listen_for_jobs), once per mark; a finish sends docket_finished only for a job a watch
// registered (docket.watch_jobs). Each NOTIFY serialises its transaction's commit with every other
// notifying commit, so the ones nobody hears are not sent.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

/// A connection LISTENing on docket_jobs and docket_finished from construction on.
class Listener {
 public:
  explicit Listener(const std::string& url)
      : conn_(url), jobs_(conn_, "docket_jobs", got_), finished_(conn_, "docket_finished", got_) {}
  /// The payloads that arrived, in order, once 300 ms pass without one.
  std::vector<std::string> take() {
    while (conn_.await_notification(0, 300000) > 0) {
    }
    return std::exchange(got_, {});
  }

 private:
  struct Collect : pqxx::notification_receiver {
    Collect(pqxx::connection& c, const std::string& channel, std::vector<std::string>& out)
        : pqxx::notification_receiver(c, channel), out_(out) {}
    void operator()(const std::string& payload, int) override { out_.push_back(payload); }
    std::vector<std::string>& out_;
  };
  pqxx::connection conn_;
  std::vector<std::string> got_;
  Collect jobs_;
  Collect finished_;
};

class Notify : public ::testing::Test {
 protected:
  void SetUp() override { db = PgCluster::shared().fresh_database(); }
  std::string mark(const std::string& queues, const std::string& kinds) {
    return db->scalar("SELECT docket.listen_for_jobs(" + queues + ", " + kinds + ")");
  }
  std::unique_ptr<docket::test::TestDatabase> db;
};

using Payloads = std::vector<std::string>;

}  // namespace

TEST_F(Notify, AnEnqueueNotifiesOnlyAQueueAWorkerSleepsOnAndOnlyOncePerMark) {
  Listener listener(db->url());
  Client client(db->url());
  // Nobody sleeps on 'default': an enqueue commits without a NOTIFY.
  client.enqueue({.kind = "k"});
  EXPECT_EQ(listener.take(), Payloads{});

  // A worker marks its queues; the job already there is reported (claim it, don't sleep).
  EXPECT_EQ(mark("ARRAY['default', 'other']", "ARRAY['k']"), "t");
  EXPECT_EQ(mark("ARRAY['empty']", "ARRAY['k']"), "f");
  EXPECT_EQ(mark("ARRAY['default']", "ARRAY['another kind']"), "f");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.queue_listeners WHERE waiting"), 3);

  // The first enqueue into a marked queue notifies it and clears its mark; the next ones do not.
  client.enqueue({.kind = "k"});
  client.enqueue({.kind = "k"});
  client.enqueue_many({{.kind = "k"}, {.kind = "k"}});
  EXPECT_EQ(listener.take(), Payloads{"default"});
  EXPECT_EQ(db->scalar("SELECT waiting FROM docket.queue_listeners WHERE queue = 'default'"), "f");
  EXPECT_EQ(db->scalar("SELECT waiting FROM docket.queue_listeners WHERE queue = 'other'"), "t");

  // A rolled-back enqueue leaves the mark (and sends nothing); a job for later does not use it.
  {
    pqxx::connection c(db->url());
    mark("ARRAY['default']", "ARRAY['k']");
    pqxx::work tx(c);
    tx.exec("SELECT docket.enqueue('k')");
    tx.abort();
  }
  client.enqueue({.kind = "k", .run_at = std::chrono::system_clock::now() + std::chrono::hours(1)});
  EXPECT_EQ(listener.take(), Payloads{});
  EXPECT_EQ(db->scalar("SELECT waiting FROM docket.queue_listeners WHERE queue = 'default'"), "t");
  client.enqueue_many({{.kind = "k", .queue = "other"}, {.kind = "k"}});
  auto both = listener.take();
  std::sort(both.begin(), both.end());
  EXPECT_EQ(both, (Payloads{"default", "other"}));
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.queue_listeners WHERE waiting"), 1);  // 'empty'
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 8);
}

TEST_F(Notify, AFinishNotifiesOnlyAJobAWatchWaitsFor) {
  Listener listener(db->url());
  Client client(db->url());
  const auto a = client.enqueue({.kind = "k"}).id;
  const auto b = client.enqueue({.kind = "k"}).id;
  const auto c = client.enqueue({.kind = "k"}).id;
  const std::string watch = "'7f1b6c2e-2a4d-4b8e-9c11-0d2f3a4b5c6d'::uuid";
  db->query("SELECT docket.watch_jobs(" + watch + ", ARRAY[" + std::to_string(a) + ", " + std::to_string(c) +
            "]::bigint[], '{}', now() + interval '1 minute')");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.job_waiters"), 2);
  auto finish = [&](std::int64_t id) {
    db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE id = " + std::to_string(id));
  };
  finish(a);
  finish(b);  // nobody waits for b: no notice
  EXPECT_EQ(listener.take(), Payloads{std::to_string(a)});

  // A watch that stopped waiting for c drops it; rows past their `until` go with any registration.
  db->query("SELECT docket.watch_jobs(" + watch + ", '{}', ARRAY[" + std::to_string(c) +
            "]::bigint[], now() + interval '1 minute')");
  db->query("SELECT docket.watch_jobs(gen_random_uuid(), ARRAY[" + std::to_string(b) +
            "]::bigint[], '{}', now() - interval '1 second')");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.job_waiters"), 2);  // a's (answered: its watch drops it) and b's
  db->query("SELECT docket.watch_jobs(" + watch + ", '{}', ARRAY[" + std::to_string(a) + "]::bigint[], now())");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.job_waiters"), 0);
  finish(c);
  EXPECT_EQ(listener.take(), Payloads{});
}

TEST_F(Notify, HostileRegistrationsAreRefusedNamingTheLimitAndWriteNothing) {
  auto error_of = [&](const std::string& sql) -> std::string {
    try {
      db->query(sql);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const std::string many_queues = "ARRAY(SELECT 'q' || g FROM generate_series(1, 1001) g)";
  EXPECT_NE(error_of("SELECT docket.listen_for_jobs(" + many_queues + ", ARRAY['k'])")
                .find("queues lists 1001 names; the limit is 1000"),
            std::string::npos);
  // Names no worker can have (NULL, blank, longer than 200) are not stored; nothing is runnable.
  EXPECT_EQ(mark("ARRAY[NULL, '', '  ', repeat('q', 201)]", "ARRAY['k']"), "f");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.queue_listeners"), 0);

  const std::string many_ids = "ARRAY(SELECT g::bigint FROM generate_series(1, 10001) g)";
  for (const std::string& sql :
       std::vector<std::string>{"SELECT docket.watch_jobs(NULL, ARRAY[1]::bigint[], '{}', now())",
                                "SELECT docket.watch_jobs(gen_random_uuid(), " + many_ids + ", '{}', now())",
                                "SELECT docket.watch_jobs(gen_random_uuid(), '{}', " + many_ids + ", now())"}) {
    EXPECT_NE(error_of(sql).find("at most 10000 ids"), std::string::npos) << sql;
  }
  // A registration far in the future is held a day at most.
  db->query("SELECT docket.watch_jobs(gen_random_uuid(), ARRAY[1, NULL]::bigint[], '{}', 'infinity')");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.job_waiters WHERE until <= now() + interval '1 day'"), 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.job_waiters"), 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  EXPECT_EQ(db->scalar("SELECT 1"), "1");  // still answering
}

TEST_F(Notify, NoEnqueueAndNoWorkerWaitsBehindATransactionHoldingTheMark) {
  // An enqueue inside a long transaction clears the mark and holds that row until it ends.
  // Others enqueueing into the queue, and workers marking it, must not queue up behind it
  // (through a transaction pooler they would hold the pool's few connections): each statement
  // below runs under a 2 s statement_timeout and the open transaction lasts until the end.
  Listener listener(db->url());
  EXPECT_EQ(mark("ARRAY['default']", "ARRAY['k']"), "f");
  pqxx::connection holder(db->url());
  pqxx::work open(holder);
  open.exec("SELECT docket.enqueue('k')");

  pqxx::connection other(db->url());
  pqxx::nontransaction(other).exec("SET statement_timeout = '2s'");
  const auto t0 = std::chrono::steady_clock::now();
  pqxx::nontransaction(other).exec("SELECT docket.enqueue('k')");
  // The mark is locked: the second enqueue notifies the queue itself rather than miss or wait.
  EXPECT_EQ(listener.take(), Payloads{"default"});
  EXPECT_EQ(
      pqxx::nontransaction(other).exec("SELECT docket.listen_for_jobs(ARRAY['default'], ARRAY['k'])")[0][0].as<bool>(),
      true);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
  open.commit();
  EXPECT_EQ(listener.take(), Payloads{"default"});  // the first enqueue's own notice, at its commit
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 2);
  EXPECT_EQ(db->scalar("SELECT waiting FROM docket.queue_listeners WHERE queue = 'default'"), "f");
}
