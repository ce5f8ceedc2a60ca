#pragma once
// Waiting for jobs to finish without polling per waiter: one thread and one database connection
// per JobWatch, however many wait. The connection LISTENs on docket_finished (migration 0013 sends
// a job's id when it completes, fails or is cancelled); each wake-up reads the jobs it names in one
// round trip and answers every waiter of those jobs. Notices are hints: a waiter's job is read
// once after it registers (the LISTEN is already active then, so no finish falls between), after
// every reconnect, and every few seconds, so a lost notice delays an answer but never loses it.
// Since migration 0021 a finish notifies only the ids some watch registered (docket.watch_jobs):
// each round registers its new ids before it reads them, and forgets the answered ones.
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "core/wake.hpp"
#include "docket/job.hpp"

namespace docket {

/// How a wait ends: the job as it then stands (null: there is no such job), or the error that
/// kept it from being read (then `job` is null). Every waiter of one job answered in one round
/// gets the same pointer, so a caller can format the job once for all of them (1,000 waiters on
/// one job: one serialisation, not 1,000).
using WaitDone = std::function<void(std::shared_ptr<const JobRecord> job, std::exception_ptr error)>;

class JobWatch {
 public:
  /// At most this many waits at once per watch; more are refused with Unavailable.
  static constexpr std::size_t kMaxWaiters = 10'000;

  /// LISTENs on a session of its own at `listen_url`, else at `url`; through a transaction pooler
  /// (set_pooler) without a `listen_url` it cannot: the waited jobs are then read together every
  /// `poll` instead.
  JobWatch(const std::string& url, const std::string& listen_url, std::chrono::milliseconds statement_timeout,
           std::chrono::milliseconds poll = std::chrono::milliseconds(500));
  /// Ends every pending wait with Unavailable ("shutting down") and joins the thread.
  ~JobWatch();
  JobWatch(const JobWatch&) = delete;
  JobWatch& operator=(const JobWatch&) = delete;

  /// Calls `done` exactly once, on the watch's thread: when job `id` is finished, when it turns out
  /// not to exist, or when `timeout` has passed (with the job as it then stands). Throws
  /// Unavailable past kMaxWaiters.
  void wait(std::int64_t id, std::chrono::milliseconds timeout, WaitDone done);
  /// Waits in progress.
  std::size_t waiting() const;

 private:
  struct Waiter {
    std::chrono::steady_clock::time_point deadline;
    WaitDone done;
  };
  void run(const std::stop_token& stop);

  std::string url_;
  std::string id_;  ///< this watch's uuid in docket.job_waiters (a fresh one per watch)
  bool listen_;
  std::chrono::milliseconds statement_timeout_;
  std::chrono::milliseconds poll_;
  mutable std::mutex mutex_;
  std::multimap<std::int64_t, Waiter> waiters_;  ///< by job id
  std::set<std::int64_t> fresh_;                 ///< registered since the last read: read them next
  Wake wake_;
  std::jthread thread_;  ///< last: started once everything it uses exists
};

}  // namespace docket
