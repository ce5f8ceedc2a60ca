#pragma once
// The worker's housekeeping on its own connection, so busy job traffic never delays a heartbeat:
// registration (a fresh id per start), heartbeats stamped by the database clock, rescue of dead
// workers' jobs, promotion of due scheduled/retryable jobs, pruning. Every worker runs it;
// the SQL is safe to run concurrently, so no job's rescue depends on any one process.
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "db/session.hpp"
#include "docket/config.hpp"

namespace docket {

/// The current worker id, shared by the threads that fence their writes with it.
class Identity {
 public:
  std::string get() const {
    std::lock_guard lock(mutex_);
    return id_;
  }
  void set(std::string id) {
    std::lock_guard lock(mutex_);
    id_ = std::move(id);
  }

 private:
  mutable std::mutex mutex_;
  std::string id_;
};

/// Logs what applying the config's schedules did (a worker's start, docket migrate).
void log_deploy(const ScheduleDeploy& deploy);

class Maintainer {
 public:
  struct Hooks {
    /// The lease of `old_id` was lost: every job claimed under it is being rescued elsewhere.
    std::function<void(const std::string& old_id)> lease_lost;
    /// Someone asked to cancel this running job.
    std::function<void(std::int64_t id)> cancel_requested;
    /// A schedule's slot got its job, `lateness_s` after the slot's time (may be empty).
    std::function<void(double lateness_s)> schedule_enqueued;
  };

  /// `schedules`: the config's [schedules], applied (never pruned) when the worker registers.
  Maintainer(std::string url, WorkerConfig config, db::WorkerRow row, std::vector<KindSettings> kinds,
             std::vector<ScheduleSpec> schedules, Identity& identity, Hooks hooks);
  ~Maintainer();

  /// Registers (retrying while the database is down) and starts the loop. False if stopped first.
  bool start(const std::function<bool()>& give_up);
  /// Records that the worker is draining (SIGTERM).
  void mark_stopping();
  /// Stops the loop and records a clean exit.
  void finish();

 private:
  void loop(const std::stop_token& stop);
  std::string register_worker();

  std::string url_;
  WorkerConfig config_;
  db::WorkerRow row_;
  std::vector<KindSettings> kinds_;  ///< seeded (docket.seed_kind) at each registration
  std::vector<ScheduleSpec> schedules_;
  Identity& identity_;
  Hooks hooks_;
  db::Session session_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  bool stopping_ = false;
  bool stopping_recorded_ = false;
  std::jthread thread_;
};

}  // namespace docket
