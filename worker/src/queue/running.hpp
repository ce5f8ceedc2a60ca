#pragma once
// The jobs this process is running, with why (if at all) each was asked to stop. A watchdog
// thread stops jobs that pass their timeout.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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

  /// Records the reason (if none yet) and requests stop. True if this call set the reason.
  bool stop_for(StopReason why);
};

class Running {
 public:
  Running();
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

 private:
  void watch(const std::stop_token& stop);

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::unordered_map<std::int64_t, std::shared_ptr<RunningJob>> jobs_;
  bool dirty_ = false;     ///< a job was added: its deadline may be the next one
  std::jthread watchdog_;  // last: started after the members it uses
};

}  // namespace docket
