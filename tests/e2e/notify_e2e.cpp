// Migration 0021 end to end: enqueues NOTIFY only a queue a worker sleeps on. The workers here
// poll every 30 s, so each pickup below within seconds came from a notice (or from the claim a
// worker makes right after marking its queue): a lost wake-up fails the test instead of hiding
// behind the poll.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

const std::vector<std::string> kSlowPoll = {"--concurrency", "1", "--poll", "30s"};

/// Waits up to 5 s (a sixth of the poll) for job `id` to complete.
bool completes(TestDatabase& db, std::int64_t id) {
  return wait_until(
      [&] { return db.scalar("SELECT state FROM docket.jobs WHERE id = " + std::to_string(id)) == "completed"; }, 5s);
}

std::int64_t enqueue(TestDatabase& db, const std::string& kind, const std::string& args = "{}") {
  return std::stoll(db.scalar("SELECT docket.enqueue('" + kind + "', '" + args + "')"));
}

}  // namespace

TEST(Notify, IdleBusyAndLateWorkersAllPickUpSqlEnqueuesWithoutThePoll) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  {
    auto worker = start_test_worker(*db, dir, "idle", kSlowPoll);
    ASSERT_TRUE(wait_registered(*db, "idle"));
    ASSERT_TRUE(wait_until(
        [&] {
          return db->count("SELECT count(*) FROM docket.queue_listeners WHERE queue = 'default' AND waiting") == 1;
        },
        10s))
        << worker->log_text();
    // Idle: one enqueue after another, the next as soon as the previous one completed (before or
    // after the worker marked its queue again: both must wake it).
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(completes(*db, enqueue(*db, "test.count"))) << "job " << i;

    // Busy: the only slot runs a 1.5 s job; one enqueued meanwhile starts when the slot frees.
    const auto busy = enqueue(*db, "test.record", R"({"ms": 1500})");
    ASSERT_TRUE(wait_until(
        [&] { return db->scalar("SELECT state FROM docket.jobs WHERE id = " + std::to_string(busy)) == "running"; },
        5s));
    const auto queued = enqueue(*db, "test.count");
    ASSERT_TRUE(completes(*db, busy));
    ASSERT_TRUE(completes(*db, queued));

    worker->signal(SIGTERM);
    ASSERT_EQ(worker->wait(10s), 0);
  }
  // Late: jobs enqueued while no worker runs (no notice at all) are found by a worker that starts later.
  const auto old1 = enqueue(*db, "test.count");
  const auto old2 = enqueue(*db, "test.count");
  auto late = start_test_worker(*db, dir, "late", kSlowPoll);
  ASSERT_TRUE(completes(*db, old1)) << late->log_text();
  ASSERT_TRUE(completes(*db, old2));
  // And it wakes for new ones too.
  ASSERT_TRUE(completes(*db, enqueue(*db, "test.count")));
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state <> 'completed'"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 15);
  late->signal(SIGTERM);
  EXPECT_EQ(late->wait(10s), 0);
}
