#pragma once
// The jobs this process is running, with why (if at all) each was asked to stop. A watchdog
// thread stops jobs that pass their timeout.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace docket {

/// Why a running job was asked to stop. The first reason wins.
enum class StopReason : int { none = 0, timeout, cancel, shutdown, lost };

struct RunningJob {
  std::int64_t id = 0;
  int attempt = 0;
  int max_retries = 20;
  std::string kind;
  std::string queue;
  std::string worker;  ///< the worker id the job was claimed under (fences its writes)
  std::stop_source stop;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point deadline;
  std::atomic<StopReason> reason{StopReason::none};
  /// When the first reason was recorded (steady clock ticks; 0: not asked to stop).
  std::atomic<std::chrono::steady_clock::rep> stopped_at{0};
  /// Its handler had not returned stuck_after past its stop (set once, by the watchdog).
  std::atomic<bool> stuck{false};
  /// For the stuck gauge: 0 not counted, 1 counted (by the stuck hook), 2 returned (by the run).
  /// Whichever of the two comes second sees the other's mark, so the gauge never goes below 0
  /// and never keeps a run that returned.
  std::atomic<int> stuck_gauge{0};

  /// Records the reason (if none yet) and requests stop. True if this call set the reason.
  bool stop_for(StopReason why);
  /// Takes the one right to decide this run's outcome: its handler's return, or the outcome
  /// written without it once it is stuck (or at shutdown). True for the first caller only.
  bool settle() { return !settled_.exchange(true); }

 private:
  std::atomic<bool> settled_{false};
};

class Running {
 public:
  /// Called by the watchdog (outside its lock), once per run, when the run's handler has not
  /// returned `stuck_after` after the run was asked to stop.
  using StuckHook = std::function<void(const std::shared_ptr<RunningJob>&)>;
  Running();
  Running(std::chrono::milliseconds stuck_after, StuckHook on_stuck);
  ~Running();

  /// Registers a run (a later run of the same job replaces an earlier one still returning).
  void add(const std::shared_ptr<RunningJob>& job);
  /// Removes this run, and only this run: an earlier run of the job (stopped after a lost lease,
  /// its handler slow to return) must not remove the run that replaced it after the job was
  /// rescued and claimed here again, or that run would lose its timeout, cancel and shutdown
  /// hand-back.
  void remove(const std::shared_ptr<RunningJob>& job);
  std::size_t size() const;
  /// Stops one job (cancel request). False if it is not running here.
  bool stop(std::int64_t id, StopReason why);
  /// Stops every job claimed under `worker` (or all when empty) and returns those it newly stopped.
  std::vector<std::shared_ptr<RunningJob>> stop_all(StopReason why, const std::string& worker = "");
  /// The runs still registered that were asked to stop for one of `reasons`.
  std::vector<std::shared_ptr<RunningJob>> stopped_for(std::initializer_list<StopReason> reasons) const;

 private:
  void watch(const std::stop_token& stop);

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::unordered_map<std::int64_t, std::shared_ptr<RunningJob>> jobs_;
  std::chrono::milliseconds stuck_after_{0};  ///< 0: runs are never reported stuck
  StuckHook on_stuck_;
  bool dirty_ = false;     ///< a job was added or stopped: its deadline or stuck time may be the next one
  std::jthread watchdog_;  // last: started after the members it uses
};

}  // namespace docket
