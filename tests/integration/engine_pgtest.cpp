// The engine's statements against a real database: claim, quota, fenced finish, rescue, promote.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <thread>

#include "db/array.hpp"
#include "db/session.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

/// Samples the running count of a kind as fast as it can, on its own connection: the most it saw.
class RunningSampler {
 public:
  RunningSampler(const std::string& url, const std::string& kind)
      : thread_([this, url, kind] {
          pqxx::connection c(url);
          while (!done_) {
            pqxx::nontransaction tx(c);
            const int n =
                tx.exec_params("SELECT count(*) FROM docket.jobs WHERE state = 'running' AND kind = $1", kind)[0][0]
                    .as<int>();
            max_seen_ = std::max(max_seen_.load(), n);
          }
        }) {}
  ~RunningSampler() { stop(); }
  int stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    return max_seen_.load();
  }

 private:
  std::atomic<bool> done_{false};
  std::atomic<int> max_seen_{0};
  std::thread thread_;
};

class Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    client = std::make_unique<Client>(db->url());
    session = std::make_unique<db::Session>(db->url(), "test");
    worker = register_worker("w1", 30);
  }
  std::string register_worker(const std::string& name, double lease_s) {
    return session->register_worker({.name = name, .queues = {"default"}, .kinds = {"a"}, .lease_s = lease_s});
  }
  std::vector<db::ClaimedJob> claim(const std::string& w, std::vector<std::string> kinds, int n,
                                    std::vector<std::string> queues = {"default"}) {
    return session->claim(w, db::text_array(queues), db::text_array(kinds), n);
  }
  std::string state(std::int64_t id) {
    return db->scalar("SELECT state FROM docket.jobs WHERE id = " + std::to_string(id));
  }
  std::unique_ptr<docket::test::TestDatabase> db;
  std::unique_ptr<Client> client;
  std::unique_ptr<db::Session> session;
  std::string worker;
};

TEST_F(Engine, ClaimTakesPriorityThenRunAtOrderAndMarksRunning) {
  const auto low = client->enqueue({.kind = "a", .priority = 5}).id;
  const auto high = client->enqueue({.kind = "a", .priority = 0}).id;
  const auto other_kind = client->enqueue({.kind = "b", .priority = 0}).id;
  const auto jobs = claim(worker, {"a"}, 10);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, high);
  EXPECT_EQ(jobs[1].id, low);
  EXPECT_EQ(jobs[0].attempt, 1);
  EXPECT_EQ(state(high), "running");
  EXPECT_EQ(state(other_kind), "available");  // a kind this worker does not handle is never claimed
  EXPECT_EQ(db->scalar("SELECT worker FROM docket.jobs WHERE id = " + std::to_string(high)), worker);
}

TEST_F(Engine, PausedQueueIsSkippedUntilResumed) {
  client->enqueue({.kind = "a"});
  client->pause("default");
  EXPECT_TRUE(claim(worker, {"a"}, 10).empty());
  client->resume("default");
  EXPECT_EQ(claim(worker, {"a"}, 10).size(), 1u);
}

TEST_F(Engine, QuotaCapsClaimsAndOtherKindsStillFlow) {
  client->set_limit("a", 2);
  for (int i = 0; i < 5; ++i) client->enqueue({.kind = "a"});
  for (int i = 0; i < 5; ++i) client->enqueue({.kind = "b"});
  const auto first = claim(worker, {"a", "b"}, 10);
  int a = 0, b = 0;
  for (const auto& j : first) (j.kind == "a" ? a : b)++;
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 5);
  EXPECT_TRUE(claim(worker, {"a"}, 10).empty());
  // A slot frees when one finishes (the claim's rows come in no particular order of kinds).
  const auto an_a = std::find_if(first.begin(), first.end(), [](const db::ClaimedJob& j) { return j.kind == "a"; });
  ASSERT_NE(an_a, first.end());
  db::FinishItem done{.id = an_a->id, .attempt = 1, .outcome = db::FinishOutcome::complete};
  ASSERT_EQ(session->finish(worker, {done}).size(), 1u);
  EXPECT_EQ(claim(worker, {"a"}, 10).size(), 1u);
  // A limit of 0 holds the kind; NULL removes the limit.
  client->set_limit("a", 0);
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE state = 'running'");
  EXPECT_TRUE(claim(worker, {"a"}, 10).empty());
  client->set_limit("a", std::nullopt);
  EXPECT_EQ(claim(worker, {"a"}, 10).size(), 2u);
}

TEST_F(Engine, QuotaHoldsUnderManyConcurrentClaimers) {
  // 8 sessions claim as fast as they can while a sampler checks the running count: it must
  // never exceed the limit, at any instant.
  constexpr int kLimit = 3;
  client->set_limit("a", kLimit);
  std::vector<EnqueueRequest> batch(400, EnqueueRequest{.kind = "a"});
  client->enqueue_many(batch);
  RunningSampler sampler(db->url(), "a");
  std::vector<std::thread> claimers;
  std::atomic<int> finished{0};
  for (int t = 0; t < 8; ++t) {
    claimers.emplace_back([&] {
      db::Session s(db->url(), "claimer");
      const std::string w = s.register_worker({.name = "c", .lease_s = 30});
      while (finished.load() < 400) {
        auto jobs = s.claim(w, db::text_array(std::vector<std::string>{"default"}),
                            db::text_array(std::vector<std::string>{"a"}), 2);
        std::vector<db::FinishItem> items;
        for (const auto& j : jobs)
          items.push_back({.id = j.id, .attempt = j.attempt, .outcome = db::FinishOutcome::complete});
        if (!items.empty()) finished += static_cast<int>(s.finish(w, items).size());
      }
    });
  }
  for (auto& t : claimers) t.join();
  const int max_seen = sampler.stop();
  EXPECT_EQ(finished.load(), 400);
  EXPECT_LE(max_seen, kLimit);
  EXPECT_GE(max_seen, 1);
}

TEST_F(Engine, FinishAndClaimHandsTheFreedSlotOnInOneTransaction) {
  client->set_limit("a", 1);
  const auto x = client->enqueue({.kind = "a"}).id;
  const auto y = client->enqueue({.kind = "a"}).id;
  const auto q = db::text_array(std::vector<std::string>{"default"});
  const auto k = db::text_array(std::vector<std::string>{"a"});
  ASSERT_EQ(claim(worker, {"a"}, 5).size(), 1u);
  // Fenced like finish: a stale attempt changes nothing, and the slot it holds stays taken.
  auto stale =
      session->finish_and_claim(worker, {{.id = x, .attempt = 2, .outcome = db::FinishOutcome::complete}}, q, k, 5);
  EXPECT_TRUE(stale.finished.empty());
  EXPECT_TRUE(stale.claimed.empty());
  EXPECT_EQ(state(y), "available");
  // The completion frees the slot and the same statement takes it: never two running.
  auto both = session->finish_and_claim(
      worker, {{.id = x, .attempt = 1, .outcome = db::FinishOutcome::complete, .result = "{\"n\":1}"}}, q, k, 5);
  ASSERT_EQ(both.finished.size(), 1u);
  EXPECT_EQ(both.finished[0].id, x);
  EXPECT_EQ(both.finished[0].state, JobState::completed);
  ASSERT_EQ(both.claimed.size(), 1u);
  EXPECT_EQ(both.claimed[0].id, y);
  EXPECT_EQ(both.claimed[0].attempt, 1);
  EXPECT_EQ(state(y), "running");
  EXPECT_EQ(db->scalar("SELECT result->>'n' FROM docket.jobs WHERE id = " + std::to_string(x)), "1");
  // A retry with no delay is claimable again at once, by the same statement, as a new attempt.
  auto again = session->finish_and_claim(
      worker, {{.id = y, .attempt = 1, .outcome = db::FinishOutcome::retry, .error = "boom"}}, q, k, 5);
  ASSERT_EQ(again.finished.size(), 1u);
  EXPECT_EQ(again.finished[0].state, JobState::retryable);
  EXPECT_TRUE(again.claimed.empty());  // retryable waits for promotion (and its backoff)
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 0);
}

TEST_F(Engine, FinishAndClaimHoldsTheQuotaUnderManyConcurrentWorkers) {
  // 8 sessions each finish what they hold and claim its replacements in the same statement, as
  // the completer does under a quota, while a sampler checks the running count at every instant.
  constexpr int kLimit = 3;
  constexpr int kJobs = 400;
  client->set_limit("a", kLimit);
  client->enqueue_many(std::vector<EnqueueRequest>(kJobs, EnqueueRequest{.kind = "a"}));
  RunningSampler sampler(db->url(), "a");
  const auto q = db::text_array(std::vector<std::string>{"default"});
  const auto k = db::text_array(std::vector<std::string>{"a"});
  std::atomic<int> finished{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&] {
      db::Session s(db->url(), "worker");
      const std::string w = s.register_worker({.name = "c", .lease_s = 30});
      std::vector<db::ClaimedJob> held;
      while (finished.load() < kJobs) {
        if (held.empty()) {
          held = s.claim(w, q, k, 2);
          continue;
        }
        std::vector<db::FinishItem> items;
        for (const auto& j : held)
          items.push_back({.id = j.id, .attempt = j.attempt, .outcome = db::FinishOutcome::complete});
        auto both = s.finish_and_claim(w, items, q, k, 2);
        finished += static_cast<int>(both.finished.size());
        held = std::move(both.claimed);
      }
    });
  }
  for (auto& t : workers) t.join();
  const int max_seen = sampler.stop();
  EXPECT_EQ(finished.load(), kJobs);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'completed'"), kJobs);
  EXPECT_LE(max_seen, kLimit);
  EXPECT_GE(max_seen, 1);
}

TEST_F(Engine, FinishIsFencedByWorkerAttemptAndState) {
  const auto id = client->enqueue({.kind = "a"}).id;
  const auto jobs = claim(worker, {"a"}, 1);
  ASSERT_EQ(jobs.size(), 1u);
  const std::string other = register_worker("w2", 30);
  // Another worker, or the right worker with a stale attempt, changes nothing.
  EXPECT_TRUE(session->finish(other, {{.id = id, .attempt = 1, .outcome = db::FinishOutcome::complete}}).empty());
  EXPECT_TRUE(session->finish(worker, {{.id = id, .attempt = 2, .outcome = db::FinishOutcome::complete}}).empty());
  EXPECT_EQ(state(id), "running");
  const auto done = session->finish(
      worker, {{.id = id, .attempt = 1, .outcome = db::FinishOutcome::complete, .result = "{\"ok\":1}"}});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].state, JobState::completed);
  EXPECT_EQ(db->scalar("SELECT result->>'ok' FROM docket.jobs WHERE id = " + std::to_string(id)), "1");
  // A second write for the same attempt (a retried batch) changes nothing.
  EXPECT_TRUE(
      session->finish(worker, {{.id = id, .attempt = 1, .outcome = db::FinishOutcome::fail, .error = "late"}}).empty());
  EXPECT_EQ(state(id), "completed");
}

TEST_F(Engine, RetryRecordsErrorsAndFailsPastMaxRetries) {
  const auto id = client->enqueue({.kind = "a", .max_retries = 1}).id;
  auto jobs = claim(worker, {"a"}, 1);
  auto r = session->finish(worker, {{.id = id,
                                     .attempt = 1,
                                     .max_retries = 1,
                                     .outcome = db::FinishOutcome::retry,
                                     .delay_s = 0,
                                     .error = "boom 1"}});
  EXPECT_EQ(r.at(0).state, JobState::retryable);
  EXPECT_EQ(session->promote().promoted, 1);
  jobs = claim(worker, {"a"}, 1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].attempt, 2);
  EXPECT_EQ(jobs[0].max_retries, 1);
  r = session->finish(worker, {{.id = id,
                                .attempt = 2,
                                .max_retries = jobs[0].max_retries,
                                .outcome = db::FinishOutcome::retry,
                                .delay_s = 0,
                                .error = "boom 2"}});
  EXPECT_EQ(r.at(0).state, JobState::failed);
  const auto job = client->job(id);
  ASSERT_EQ(job->errors.size(), 2u);
  EXPECT_EQ(job->errors[0].at("attempt"), 1);
  EXPECT_EQ(job->errors[0].at("error"), "boom 1");
  EXPECT_EQ(job->errors[1].at("error"), "boom 2");
  EXPECT_TRUE(job->finished_at);
}

TEST_F(Engine, KindMaxRetriesAppliesToJobsEnqueuedBeforeTheWorkerSeededIt) {
  const auto id = client->enqueue({.kind = "a"}).id;  // no max_retries of its own
  EXPECT_EQ(client->job(id)->max_retries, 20);
  session->seed_kind({.kind = "a", .max_retries = 1});  // a worker with max_retries = 1 starts later
  EXPECT_EQ(client->job(id)->max_retries, 1);
  const auto jobs = claim(worker, {"a"}, 1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].max_retries, 1);
  // An explicit max_retries wins over the kind's.
  EXPECT_EQ(client->job(client->enqueue({.kind = "a", .max_retries = 7}).id)->max_retries, 7);
}

TEST_F(Engine, RetryWaitsForItsBackoff) {
  const auto id = client->enqueue({.kind = "a"}).id;
  claim(worker, {"a"}, 1);
  session->finish(worker,
                  {{.id = id, .attempt = 1, .outcome = db::FinishOutcome::retry, .delay_s = 30, .error = "later"}});
  EXPECT_EQ(session->promote().promoted, 0);
  EXPECT_GT(db->count("SELECT extract(epoch FROM run_at - now())::int FROM docket.jobs"), 25);
}

TEST_F(Engine, SnoozeAndReleaseDoNotChargeAnAttempt) {
  const auto a = client->enqueue({.kind = "a"}).id;
  const auto b = client->enqueue({.kind = "a"}).id;
  claim(worker, {"a"}, 2);
  session->finish(worker, {{.id = a, .attempt = 1, .outcome = db::FinishOutcome::snooze, .delay_s = 60},
                           {.id = b, .attempt = 1, .outcome = db::FinishOutcome::release}});
  EXPECT_EQ(state(a), "scheduled");
  EXPECT_EQ(state(b), "available");
  EXPECT_EQ(db->count("SELECT attempt FROM docket.jobs WHERE id = " + std::to_string(a)), 0);
  EXPECT_EQ(db->count("SELECT attempt FROM docket.jobs WHERE id = " + std::to_string(b)), 0);
}

TEST_F(Engine, ProgressIsFenced) {
  const auto id = client->enqueue({.kind = "a"}).id;
  claim(worker, {"a"}, 1);
  EXPECT_TRUE(session->progress(worker, id, 1, "{\"pct\": 50}"));
  EXPECT_FALSE(session->progress(worker, id, 2, "{\"pct\": 99}"));
  EXPECT_EQ(client->job(id)->progress.at("pct"), 50);
}

TEST_F(Engine, RescueMovesJobsOfDeadWorkersBackCountingTheAttempt) {
  const std::string shortlived = register_worker("dies", 1);
  const auto a = client->enqueue({.kind = "a"}).id;
  const auto b = client->enqueue({.kind = "a", .max_retries = 0}).id;
  const auto c = client->enqueue({.kind = "a"}).id;
  ASSERT_EQ(claim(shortlived, {"a"}, 3).size(), 3u);
  client->cancel(c);                // cancel requested while running: the rescuer finishes it as cancelled
  EXPECT_EQ(session->rescue(), 0);  // lease not yet expired
  db->query("UPDATE docket.workers SET heartbeat_at = now() - interval '5 seconds' WHERE name = 'dies'");
  EXPECT_EQ(session->rescue(), 3);
  EXPECT_EQ(state(a), "available");
  EXPECT_EQ(state(b), "failed");  // out of retries
  EXPECT_EQ(state(c), "cancelled");
  const auto job = client->job(a);
  EXPECT_EQ(job->attempt, 1);
  ASSERT_EQ(job->errors.size(), 1u);
  EXPECT_NE(job->errors[0].at("error").get<std::string>().find("lost its lease"), std::string::npos);
  // The dead worker cannot come back: its heartbeat is refused and its writes are fenced.
  EXPECT_FALSE(session->heartbeat(shortlived));
  EXPECT_TRUE(session->finish(shortlived, {{.id = a, .attempt = 1, .outcome = db::FinishOutcome::complete}}).empty());
  EXPECT_EQ(state(a), "available");
  // A live worker's jobs are left alone.
  claim(worker, {"a"}, 1);
  EXPECT_EQ(session->rescue(), 0);
  EXPECT_TRUE(session->heartbeat(worker));
}

TEST_F(Engine, RescueOfAJobThatCompletedMeanwhileDoesNothing) {
  const std::string w = register_worker("slow", 1);
  const auto id = client->enqueue({.kind = "a"}).id;
  claim(w, {"a"}, 1);
  session->finish(w, {{.id = id, .attempt = 1, .outcome = db::FinishOutcome::complete}});
  db->query("UPDATE docket.workers SET heartbeat_at = now() - interval '5 seconds' WHERE name = 'slow'");
  EXPECT_EQ(session->rescue(), 0);
  EXPECT_EQ(state(id), "completed");
}

TEST_F(Engine, PromoteMovesDueJobsAndReportsTheNextDueTime) {
  const auto due = client->enqueue({.kind = "a", .run_at = Clock::now() + std::chrono::milliseconds(200)}).id;
  client->enqueue({.kind = "a", .run_at = Clock::now() + std::chrono::hours(1)});
  auto p = session->promote();
  EXPECT_EQ(p.promoted, 0);
  ASSERT_TRUE(p.next_due_in_s);
  EXPECT_LE(*p.next_due_in_s, 0.3);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  p = session->promote();
  EXPECT_EQ(p.promoted, 1);
  EXPECT_EQ(state(due), "available");
  EXPECT_GT(*p.next_due_in_s, 3000);
}

TEST_F(Engine, PruneDeletesOnlyFinishedJobsPastRetention) {
  const auto old_done = client->enqueue({.kind = "a"}).id;
  const auto new_done = client->enqueue({.kind = "a"}).id;
  const auto old_failed = client->enqueue({.kind = "a"}).id;
  const auto waiting = client->enqueue({.kind = "a"}).id;
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() - interval '2 days' WHERE id = " +
            std::to_string(old_done));
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE id = " + std::to_string(new_done));
  db->query("UPDATE docket.jobs SET state = 'failed', finished_at = now() - interval '2 days' WHERE id = " +
            std::to_string(old_failed));
  EXPECT_EQ(session->prune(5000), 1);  // the default retention: 24 h completed, 7 days failed
  EXPECT_EQ(state(old_done), "");
  EXPECT_EQ(state(new_done), "completed");
  EXPECT_EQ(state(old_failed), "failed");
  EXPECT_EQ(state(waiting), "available");
}

TEST_F(Engine, CancelAndRetryFollowTheJobsState) {
  const auto waiting = client->enqueue({.kind = "a"}).id;
  EXPECT_EQ(client->cancel(waiting), CancelResult::cancelled);
  EXPECT_EQ(client->cancel(waiting), CancelResult::already_finished);
  EXPECT_THROW(client->cancel(999999), NotFound);
  const auto running = client->enqueue({.kind = "a"}).id;
  claim(worker, {"a"}, 1);
  EXPECT_EQ(client->cancel(running), CancelResult::cancel_requested);
  EXPECT_EQ(state(running), "running");
  EXPECT_THROW(client->retry(running), Conflict);
  // The worker reports a retry: the pending cancel wins.
  session->finish(worker, {{.id = running, .attempt = 1, .outcome = db::FinishOutcome::retry, .error = "x"}});
  EXPECT_EQ(state(running), "cancelled");
  client->retry(waiting);
  EXPECT_EQ(state(waiting), "available");
  EXPECT_THROW(client->retry(999999), NotFound);
}

TEST_F(Engine, ListingFiltersAndPagesNewestFirst) {
  for (int i = 0; i < 7; ++i) client->enqueue({.kind = i % 2 ? "odd" : "even", .queue = i < 4 ? "q1" : "q2"});
  auto page1 = client->jobs({.limit = 3});
  ASSERT_EQ(page1.size(), 3u);
  EXPECT_GT(page1[0].id, page1[1].id);
  auto page2 = client->jobs({.limit = 3, .after = page1.back().id});
  ASSERT_EQ(page2.size(), 3u);
  EXPECT_LT(page2[0].id, page1.back().id);
  EXPECT_EQ(client->jobs({.kind = "odd"}).size(), 3u);
  EXPECT_EQ(client->jobs({.queue = "q2"}).size(), 3u);
  EXPECT_EQ(client->jobs({.state = JobState::available}).size(), 7u);
  EXPECT_EQ(client->jobs({.state = JobState::failed}).size(), 0u);
  EXPECT_THROW(client->jobs({.limit = -1}), InvalidInput);
}

TEST_F(Engine, LimitsAndQueuesViews) {
  client->set_limit("a", 4);
  EXPECT_THROW(client->set_limit("a", -1), InvalidInput);
  EXPECT_THROW(client->set_limit("", 1), InvalidInput);
  client->enqueue({.kind = "a"});
  claim(worker, {"a"}, 1);
  const auto limits = client->limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0].kind, "a");
  EXPECT_EQ(limits[0].max_running, 4);
  EXPECT_EQ(limits[0].running, 1);
  client->enqueue({.kind = "a", .queue = "other"});
  client->pause("other");
  const auto queues = client->queues();
  ASSERT_EQ(queues.size(), 2u);
  EXPECT_EQ(queues[0].queue, "default");
  EXPECT_EQ(queues[0].running, 1);
  EXPECT_EQ(queues[1].queue, "other");
  EXPECT_EQ(queues[1].available, 1);
  EXPECT_TRUE(queues[1].paused);
  EXPECT_TRUE(queues[1].oldest_available_age_s);
}

TEST_F(Engine, StuckJobsViewShowsJobsPastTheirLease) {
  const std::string w = register_worker("stuck", 1);
  client->enqueue({.kind = "a"});
  claim(w, {"a"}, 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs"), 0);
  db->query("UPDATE docket.workers SET heartbeat_at = now() - interval '5 seconds' WHERE name = 'stuck'");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs"), 1);
}

TEST_F(Engine, StuckJobsViewShowsRunningJobsPastTheirTimeoutUnderALiveWorker) {
  // A live worker whose outcome write was lost must not hide its job: past the kind's timeout
  // (seeded by the worker, 30 minutes when unknown) plus a minute, the job is stuck.
  const std::string w = register_worker("alive", 1);
  session->seed_kind({.kind = "a", .timeout = std::chrono::seconds(10)});
  const auto a = client->enqueue({.kind = "a"}).id;
  const auto b = client->enqueue({.kind = "b"}).id;
  claim(w, {"a", "b"}, 2);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs"), 0);
  db->query("UPDATE docket.jobs SET started_at = now() - interval '70 seconds' WHERE id = " + std::to_string(a));
  db->query("UPDATE docket.jobs SET started_at = now() - interval '29 minutes' WHERE id = " + std::to_string(b));
  EXPECT_EQ(db->scalar("SELECT string_agg(id || ' ' || reason, ',') FROM docket.stuck_jobs"),
            std::to_string(a) + " running past its timeout (00:00:10)");
  db->query("UPDATE docket.jobs SET started_at = now() - interval '32 minutes' WHERE id = " + std::to_string(b));
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs"), 2);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs WHERE heartbeat_age < interval '5 seconds'"), 2);
  db->query("UPDATE docket.workers SET heartbeat_at = now() - interval '5 minutes' WHERE name = 'alive'");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs WHERE reason = 'its worker is dead (lease expired)'"), 2);
}
