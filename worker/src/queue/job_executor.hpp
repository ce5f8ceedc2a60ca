#pragma once
// The job executor: runs the claimed jobs handed to it, one per slot on the run pool, and maps each
// run's result to the outcome the completer writes. It owns the running set (timeouts, cancel,
// shutdown and lost-lease stops) and knows nothing of claims or the database: what it produces
// leaves through its Hooks. The mapping from a run to its outcome is pure functions (job_of,
// run_handler, after_run), unit-tested with the executor itself in tests/unit/job_executor_test.cpp.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "db/session.hpp"
#include "docket/config.hpp"
#include "docket/handler.hpp"
#include "docket/metrics.hpp"
#include "queue/finish.hpp"
#include "queue/held.hpp"
#include "queue/pool.hpp"
#include "queue/running.hpp"
#include "queue/slots.hpp"

namespace docket {

/// A kind this worker runs: its settings and its handler.
struct KindEntry {
  KindConfig config;
  Handler handler;
};
using Kinds = std::map<std::string, KindEntry>;

/// The claimed job as its handler sees it, without its args (run_handler parses them): this run's
/// timeout is the job's own, else its kind's.
Job job_of(const db::ClaimedJob& claimed, const KindConfig& kind, const std::string& worker_id);

/// Runs `handler` on `job` with `args` (JSON text written by anyone with SQL) parsed by the bounded
/// parser: refused args fail the job for good (a retry would read the same row), not the worker;
/// a handler that throws asks for a retry with what it threw.
Outcome run_handler(const Handler& handler, Job job, std::string_view args, std::stop_token stop,
                    std::function<void(Json)> progress);

/// What becomes of a run once its handler returned.
enum class RunEnd {
  write,        ///< write `outcome`
  parked,       ///< waits for its callback (docket.callback_wait): nothing to write, held no longer
  lost,         ///< its lease was lost (rescued elsewhere): nothing to write, held no longer
  handed_back,  ///< shutdown handed it back: nothing to write, the hand-back settles it
};
struct AfterRun {
  RunEnd end = RunEnd::write;
  Outcome outcome;
};

/// Maps a handler's outcome and why its run was asked to stop (`reason`, StopReason::none if not)
/// to what happens. A job parked for its callback stays parked whatever happens to this run; a run
/// whose lease was lost or that shutdown handed back writes nothing; a timeout turns any outcome
/// but complete into a retry, a cancel request into a cancel.
AfterRun after_run(Outcome outcome, StopReason reason, std::chrono::milliseconds timeout);

class JobExecutor {
 public:
  struct Hooks {
    /// An outcome to write (the completer's push).
    std::function<void(PendingFinish)> finish;
    /// A running job's latest progress, as clean JSON text (the completer's progress).
    std::function<void(const std::string& worker, std::int64_t id, int attempt, std::string json)> progress;
    /// A run ended and gave its slot back (after its outcome went to `finish`).
    std::function<void(const SlotFreed&)> freed;
  };

  /// `kinds` must outlive the executor. One pool thread per slot (`slots.concurrency()`). A run
  /// whose handler has not returned `stuck_after` after it was stopped for its timeout or a cancel
  /// is stuck: its outcome is written without it (0: never; see stuck()).
  JobExecutor(const Kinds& kinds, Slots& slots, HeldJobs& held, std::shared_ptr<Metrics> metrics, Hooks hooks,
              std::chrono::milliseconds stuck_after = std::chrono::milliseconds(0));
  /// Stops the pool (see stop).
  ~JobExecutor();
  JobExecutor(const JobExecutor&) = delete;
  JobExecutor& operator=(const JobExecutor&) = delete;

  /// Takes claimed jobs over, under the claim lock of whoever claimed them: holds each (HeldJobs),
  /// takes its slot and posts its run. `jobs` are moved from.
  void submit(std::vector<db::ClaimedJob>& jobs, const std::string& worker_id);
  /// Stops one running job on a cancel request. False if it does not run here.
  bool cancel(std::int64_t id);
  /// Stops every job claimed under `worker` (all when empty) and returns those newly stopped.
  std::vector<std::shared_ptr<RunningJob>> stop_all(StopReason why, const std::string& worker = "");
  /// At shutdown: the runs stopped for their timeout or a cancel whose handlers have not returned
  /// get their outcome written now, without them (the process is about to exit). How many.
  std::size_t settle_stopped();
  /// Runs whose outcome was written without them and whose handlers have not returned yet (they
  /// still hold their slots): a shutdown does not wait for them.
  int abandoned() const { return abandoned_.load(); }
  /// No new runs; waits up to `timeout` for the pool's threads. False if a run ignores its stop
  /// token: its threads are abandoned (the process exits anyway; its job was handed back).
  bool stop(std::chrono::milliseconds timeout);

 private:
  void run(const std::shared_ptr<RunningJob>& rj, const db::ClaimedJob& claimed);
  /// The watchdog found `rj` stuck: logs it, counts it and writes its outcome without it.
  void stuck(const std::shared_ptr<RunningJob>& rj);
  /// Writes what a run stopped for its timeout (a retry) or a cancel (cancelled) comes to, without
  /// its handler's return, if nothing decided its outcome yet; `why` says why in its error.
  bool write_without_handler(const std::shared_ptr<RunningJob>& rj, const std::string& why);
  db::FinishItem finish_item(const RunningJob& rj, const KindEntry& entry, const Outcome& outcome);

  const Kinds& kinds_;
  Slots& slots_;
  HeldJobs& held_;
  std::shared_ptr<Metrics> metrics_;
  Hooks hooks_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::chrono::milliseconds stuck_after_;
  /// Held across settle() and the push of an outcome written without its handler, so that once
  /// settle_stopped returns no such push is still on its way to the completer.
  std::mutex write_without_mutex_;
  std::atomic<int> abandoned_{0};
  Running running_;                // after the members its stuck hook uses
  std::unique_ptr<RunPool> pool_;  // last: its threads use the members above
};

}  // namespace docket
