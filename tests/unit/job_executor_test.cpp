// The job executor (worker/src/queue/job_executor.hpp) without a database: how a claimed job
// becomes a run, how a run's result and the reason it was stopped become the outcome to write,
// and what the executor hands on (outcomes, progress, freed slots, the held set).
#include "queue/job_executor.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <condition_variable>
#include <mutex>

#include "docket/json.hpp"

namespace docket {
namespace {

using namespace std::chrono_literals;

db::ClaimedJob claimed(std::int64_t id, const std::string& kind = "k", const std::string& args = "{}") {
  db::ClaimedJob job;
  job.id = id;
  job.kind = kind;
  job.queue = "default";
  job.args = args;
  job.attempt = 2;
  job.max_retries = 5;
  job.priority = 3;
  job.unique_key = "u";
  return job;
}

TEST(JobExecutorRun, TheJobCarriesTheClaimAndItsOwnTimeoutElseItsKinds) {
  KindConfig kind;
  kind.timeout = 9s;
  auto c = claimed(1);
  Job job = job_of(c, kind, "w1");
  EXPECT_EQ(job.id, 1);
  EXPECT_EQ(job.kind, "k");
  EXPECT_EQ(job.queue, "default");
  EXPECT_EQ(job.attempt, 2);
  EXPECT_EQ(job.max_retries, 5);
  EXPECT_EQ(job.priority, 3);
  EXPECT_EQ(job.unique_key, "u");
  EXPECT_EQ(job.worker_id, "w1");
  EXPECT_EQ(job.timeout, 9s);
  c.timeout = 2s;
  EXPECT_EQ(job_of(c, kind, "w1").timeout, 2s);
}

TEST(JobExecutorRun, HostileArgsFailTheJobWithoutRunningTheHandler) {
  bool ran = false;
  const Handler handler = [&](JobContext&) {
    ran = true;
    return Outcome::complete();
  };
  const std::vector<std::string> hostile = {"{", "not json", std::string(1, '\0'), "1e400",
                                            std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']')};
  for (const auto& args : hostile) {
    const auto outcome = run_handler(handler, Job{}, args, {}, nullptr);
    EXPECT_EQ(outcome.kind(), Outcome::Kind::fail) << args;
    EXPECT_FALSE(outcome.error().empty());
  }
  EXPECT_FALSE(ran);
}

TEST(JobExecutorRun, TheHandlerSeesTheParsedArgsAndWhatItThrowsIsARetry) {
  const auto outcome = run_handler([](JobContext& ctx) { return Outcome::complete(ctx.args()["n"]); }, Job{},
                                   R"({"n": 7})", {}, nullptr);
  EXPECT_EQ(outcome.kind(), Outcome::Kind::complete);
  EXPECT_EQ(outcome.result(), 7);
  const auto threw =
      run_handler([](JobContext&) -> Outcome { throw std::runtime_error("boom"); }, Job{}, "{}", {}, nullptr);
  EXPECT_EQ(threw.kind(), Outcome::Kind::retry);
  EXPECT_EQ(threw.error(), "boom");
  const auto odd = run_handler([](JobContext&) -> Outcome { throw 42; }, Job{}, "{}", {}, nullptr);
  EXPECT_EQ(odd.kind(), Outcome::Kind::retry);
  EXPECT_EQ(odd.error(), "handler threw a non-std::exception");
}

TEST(JobExecutorOutcome, AParkedJobStaysParkedWhateverStoppedItsRun) {
  for (const auto reason :
       {StopReason::none, StopReason::timeout, StopReason::cancel, StopReason::shutdown, StopReason::lost}) {
    EXPECT_EQ(after_run(Outcome::await_callback(), reason, 1s).end, RunEnd::parked);
  }
}

TEST(JobExecutorOutcome, ALostLeaseOrAShutdownWritesNothing) {
  EXPECT_EQ(after_run(Outcome::complete(), StopReason::lost, 1s).end, RunEnd::lost);
  EXPECT_EQ(after_run(Outcome::fail("x"), StopReason::lost, 1s).end, RunEnd::lost);
  EXPECT_EQ(after_run(Outcome::complete(), StopReason::shutdown, 1s).end, RunEnd::handed_back);
  EXPECT_EQ(after_run(Outcome::retry("x"), StopReason::shutdown, 1s).end, RunEnd::handed_back);
}

TEST(JobExecutorOutcome, ATimeoutRetriesAndACancelCancelsUnlessTheRunCompleted) {
  const auto timed_out = after_run(Outcome::fail("gave up"), StopReason::timeout, 1500ms);
  EXPECT_EQ(timed_out.end, RunEnd::write);
  EXPECT_EQ(timed_out.outcome.kind(), Outcome::Kind::retry);
  EXPECT_EQ(timed_out.outcome.error(), "timed out after " + format_duration(1500ms));
  EXPECT_EQ(after_run(Outcome::snooze(1s), StopReason::timeout, 1s).outcome.kind(), Outcome::Kind::retry);
  EXPECT_EQ(after_run(Outcome::complete(), StopReason::timeout, 1s).outcome.kind(), Outcome::Kind::complete);

  const auto cancelled = after_run(Outcome::retry("stopped"), StopReason::cancel, 1s);
  EXPECT_EQ(cancelled.end, RunEnd::write);
  EXPECT_EQ(cancelled.outcome.kind(), Outcome::Kind::cancel);
  EXPECT_EQ(cancelled.outcome.error(), "cancelled on request while running");
  EXPECT_EQ(after_run(Outcome::complete(), StopReason::cancel, 1s).outcome.kind(), Outcome::Kind::complete);
}

TEST(JobExecutorOutcome, AnUnstoppedRunWritesWhatItsHandlerSaid) {
  for (const auto& o :
       {Outcome::complete(), Outcome::retry("r"), Outcome::snooze(1s), Outcome::fail("f"), Outcome::cancel("c")}) {
    const auto after = after_run(o, StopReason::none, 1s);
    EXPECT_EQ(after.end, RunEnd::write);
    EXPECT_EQ(after.outcome.kind(), o.kind());
    EXPECT_EQ(after.outcome.error(), o.error());
  }
}

/// Collects what an executor hands on.
struct Sink {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<PendingFinish> finished;
  std::vector<std::string> progress;
  std::vector<SlotFreed> freed;

  JobExecutor::Hooks hooks() {
    JobExecutor::Hooks h;
    h.finish = [this](PendingFinish f) {
      {
        std::lock_guard lock(mutex);
        finished.push_back(std::move(f));
      }
      changed.notify_all();
    };
    h.progress = [this](const std::string&, std::int64_t, int, std::string json) {
      std::lock_guard lock(mutex);
      progress.push_back(std::move(json));
    };
    h.freed = [this](const SlotFreed& f) {
      {
        std::lock_guard lock(mutex);
        freed.push_back(f);
      }
      changed.notify_all();
    };
    return h;
  }
  /// Waits until `n` outcomes were handed on.
  bool wait_finished(std::size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] { return finished.size() >= n; });
  }
  /// Waits until `n` runs ended.
  bool wait_freed(std::size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] { return freed.size() >= n; });
  }
};

struct ExecutorFixture : ::testing::Test {
  Kinds kinds;
  Slots slots{4, 4, {}};
  HeldJobs held;
  Sink sink;

  void kind(const std::string& name, Handler handler, Millis timeout = 30s) {
    KindConfig config;
    config.kind = name;
    config.timeout = timeout;
    config.backoff.strategy = Backoff::Strategy::fixed;
    config.backoff.delay = 3s;
    config.backoff.jitter = 0;
    kinds[name] = KindEntry{config, std::move(handler)};
  }
  void submit(JobExecutor& executor, std::vector<db::ClaimedJob> jobs, const std::string& worker = "w1") {
    executor.submit(jobs, worker);
  }
};

TEST_F(ExecutorFixture, ARunsOutcomeGoesToTheCompleterAndTheJobStaysHeldUntilWritten) {
  kind("k", [](JobContext& ctx) {
    ctx.progress(Json{{"half", true}});
    return ctx.args().value("ok", false) ? Outcome::complete(Json{{"r", 1}}) : Outcome::retry("no");
  });
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "k", R"({"ok": true})"), claimed(2, "k", "{}")});
  EXPECT_EQ(slots.taken(), 2U);
  ASSERT_TRUE(sink.wait_freed(2));
  EXPECT_TRUE(executor.stop(5s));
  ASSERT_EQ(sink.finished.size(), 2U);
  std::map<std::int64_t, PendingFinish> by_id;
  for (const auto& f : sink.finished) by_id[f.item.id] = f;
  EXPECT_EQ(by_id[1].worker, "w1");
  EXPECT_EQ(by_id[1].item.outcome, db::FinishOutcome::complete);
  EXPECT_EQ(by_id[1].item.result, R"({"r":1})");
  EXPECT_EQ(by_id[1].item.attempt, 2);
  EXPECT_EQ(by_id[2].item.outcome, db::FinishOutcome::retry);
  EXPECT_EQ(by_id[2].item.delay_s, 3.0);  // the kind's backoff
  EXPECT_EQ(sink.progress, (std::vector<std::string>{R"({"half":true})", R"({"half":true})"}));
  // Handing an outcome to the completer settles nothing: only a written one does (Refill::settled).
  EXPECT_TRUE(held.holds(1));
  EXPECT_TRUE(held.holds(2));
  EXPECT_EQ(slots.running(), 0);
  // The two runs free their slots on two pool threads, so their notices may arrive in either
  // order: one of them saw the last slot freed.
  EXPECT_TRUE(std::any_of(sink.freed.begin(), sink.freed.end(), [](const SlotFreed& f) { return f.running == 0; }));
}

TEST_F(ExecutorFixture, ARunPastItsTimeoutIsStoppedAndRetried) {
  kind(
      "slow",
      [](JobContext& ctx) {
        while (!ctx.stop_requested()) std::this_thread::sleep_for(1ms);
        return Outcome::fail("stopped");
      },
      50ms);
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "slow")});
  ASSERT_TRUE(sink.wait_freed(1));
  EXPECT_TRUE(executor.stop(5s));
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(sink.finished[0].item.outcome, db::FinishOutcome::retry);
  EXPECT_EQ(sink.finished[0].item.error, "timed out after " + format_duration(50ms));
}

/// A handler that ignores its stop token: it returns only when released (River #1258: jobs left
/// `running` for days by handlers that never looked at their context).
struct Deaf {
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  int returned = 0;
  Handler handler() {
    return [this](JobContext&) {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return released; });
      ++returned;
      return Outcome::complete();
    };
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    cv.notify_all();
  }
};

TEST_F(ExecutorFixture, AHandlerThatIgnoresItsTimeoutIsStuckItsRetryIsWrittenWithoutItAndItsLateReturnDropped) {
  Deaf deaf;
  kind("deaf", deaf.handler(), 50ms);
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks(), 200ms);
  const auto t0 = std::chrono::steady_clock::now();
  submit(executor, {claimed(1, "deaf")});
  // The timeout stops it at 50 ms; 200 ms later it is stuck and its retry goes to the completer
  // while the handler still runs.
  ASSERT_TRUE(sink.wait_finished(1));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 250ms);
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(sink.finished[0].item.outcome, db::FinishOutcome::retry);
  EXPECT_EQ(sink.finished[0].item.error, "timed out after " + format_duration(50ms) +
                                             " (its handler had not returned " + format_duration(200ms) +
                                             " after it was stopped)");
  EXPECT_EQ(sink.finished[0].item.delay_s, 3.0);  // the kind's backoff, as any retry
  EXPECT_EQ(slots.running(), 1);                  // its thread is still busy: the slot stays taken
  EXPECT_TRUE(sink.freed.empty());
  // It returns "complete" at last: too late, nothing more is written; its slot comes back.
  deaf.release();
  ASSERT_TRUE(sink.wait_freed(1));
  EXPECT_TRUE(executor.stop(5s));
  EXPECT_EQ(deaf.returned, 1);
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(slots.running(), 0);
}

TEST_F(ExecutorFixture, ACancelledRunWhoseHandlerDoesNotReturnIsCancelledWithoutIt) {
  Deaf deaf;
  kind("deaf", deaf.handler());
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks(), 150ms);
  submit(executor, {claimed(1, "deaf")});
  EXPECT_TRUE(executor.cancel(1));
  ASSERT_TRUE(sink.wait_finished(1));
  std::this_thread::sleep_for(100ms);  // and nothing more
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(sink.finished[0].item.outcome, db::FinishOutcome::cancel);
  deaf.release();
  ASSERT_TRUE(sink.wait_freed(1));
  EXPECT_TRUE(executor.stop(5s));
  EXPECT_EQ(sink.finished.size(), 1U);
}

TEST_F(ExecutorFixture, AtShutdownARunAlreadyStoppedForItsTimeoutGetsItsOutcomeNotARescue) {
  Deaf deaf;
  kind("deaf", deaf.handler(), 20ms);
  kind("fine", [](JobContext& ctx) {
    while (!ctx.stop_requested()) std::this_thread::sleep_for(1ms);
    return Outcome::complete();
  });
  // stuck_after 0: never stuck by itself; only the worker's stop settles it.
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "deaf"), claimed(2, "fine")});
  std::this_thread::sleep_for(200ms);  // past the deaf run's timeout: stopped, still running
  EXPECT_TRUE(sink.finished.empty());
  const auto handed_back = executor.stop_all(StopReason::shutdown);
  ASSERT_EQ(handed_back.size(), 1U);  // the one stopped now is handed back by the worker
  EXPECT_EQ(handed_back[0]->id, 2);
  EXPECT_EQ(executor.settle_stopped(), 1U);
  EXPECT_EQ(executor.settle_stopped(), 0U);  // once
  ASSERT_TRUE(sink.wait_freed(1));
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(sink.finished[0].item.id, 1);
  EXPECT_EQ(sink.finished[0].item.outcome, db::FinishOutcome::retry);
  EXPECT_EQ(sink.finished[0].item.error,
            "timed out after " + format_duration(20ms) + " (its handler had not returned when the worker stopped)");
  deaf.release();
  ASSERT_TRUE(sink.wait_freed(2));
  EXPECT_TRUE(executor.stop(5s));
  EXPECT_EQ(sink.finished.size(), 1U);
}

/// A handler that waits for its stop token, and tells when it started.
struct Blocking {
  std::mutex mutex;
  std::condition_variable cv;
  int started = 0;
  Handler handler() {
    return [this](JobContext& ctx) {
      {
        std::lock_guard lock(mutex);
        ++started;
      }
      cv.notify_all();
      while (!ctx.stop_requested()) std::this_thread::sleep_for(1ms);
      return Outcome::retry("stopped");
    };
  }
  bool wait_started(int n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 10s, [&] { return started >= n; });
  }
};

TEST_F(ExecutorFixture, ACancelRequestCancelsTheRunningJob) {
  Blocking blocking;
  kind("b", blocking.handler());
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "b")});
  ASSERT_TRUE(blocking.wait_started(1));
  EXPECT_FALSE(executor.cancel(99));
  EXPECT_TRUE(executor.cancel(1));
  ASSERT_TRUE(sink.wait_freed(1));
  EXPECT_TRUE(executor.stop(5s));
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(sink.finished[0].item.outcome, db::FinishOutcome::cancel);
}

TEST_F(ExecutorFixture, ShutdownDropsTheOutcomesOfWhatItHandsBackAndKeepsThemHeld) {
  Blocking blocking;
  kind("b", blocking.handler());
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "b"), claimed(2, "b")});
  ASSERT_TRUE(blocking.wait_started(2));
  const auto stopped = executor.stop_all(StopReason::shutdown);
  EXPECT_EQ(stopped.size(), 2U);
  ASSERT_TRUE(sink.wait_freed(2));
  EXPECT_TRUE(executor.stop(5s));
  EXPECT_TRUE(sink.finished.empty());  // the hand-back (written by the worker) settles them
  EXPECT_TRUE(held.holds(1));
  EXPECT_TRUE(held.holds(2));
}

TEST_F(ExecutorFixture, ALostLeaseStopsOnlyThatIdentitysJobsWritesNothingAndSettlesThem) {
  Blocking blocking;
  kind("b", blocking.handler());
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "b")}, "old");
  submit(executor, {claimed(2, "b")}, "new");
  ASSERT_TRUE(blocking.wait_started(2));
  const auto stopped = executor.stop_all(StopReason::lost, "old");
  ASSERT_EQ(stopped.size(), 1U);
  EXPECT_EQ(stopped[0]->id, 1);
  ASSERT_TRUE(sink.wait_freed(1));
  EXPECT_FALSE(held.holds(1));  // rescued elsewhere: this process holds it no longer
  EXPECT_TRUE(held.holds(2));
  EXPECT_TRUE(executor.cancel(2));
  ASSERT_TRUE(sink.wait_freed(2));
  EXPECT_TRUE(executor.stop(5s));
  ASSERT_EQ(sink.finished.size(), 1U);
  EXPECT_EQ(sink.finished[0].item.id, 2);
}

TEST_F(ExecutorFixture, AJobParkedForItsCallbackWritesNothingAndIsHeldNoLonger) {
  kind("cb", [](JobContext&) { return Outcome::await_callback(); });
  JobExecutor executor(kinds, slots, held, nullptr, sink.hooks());
  submit(executor, {claimed(1, "cb")});
  ASSERT_TRUE(sink.wait_freed(1));
  EXPECT_TRUE(executor.stop(5s));
  EXPECT_TRUE(sink.finished.empty());
  EXPECT_FALSE(held.holds(1));
}

}  // namespace
}  // namespace docket
