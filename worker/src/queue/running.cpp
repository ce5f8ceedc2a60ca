#include "queue/running.hpp"

#include <algorithm>

namespace docket {

bool RunningJob::stop_for(StopReason why) {
  StopReason expected = StopReason::none;
  const bool first = reason.compare_exchange_strong(expected, why);
  if (first) stopped_at = std::chrono::steady_clock::now().time_since_epoch().count();
  stop.request_stop();
  return first;
}

Running::Running() : Running(std::chrono::milliseconds(0), nullptr) {}

Running::Running(std::chrono::milliseconds stuck_after, StuckHook on_stuck)
    : stuck_after_(stuck_after),
      on_stuck_(std::move(on_stuck)),
      watchdog_([this](const std::stop_token& st) { watch(st); }) {}

Running::~Running() {
  watchdog_.request_stop();
  changed_.notify_all();
}

void Running::add(const std::shared_ptr<RunningJob>& job) {
  {
    std::lock_guard lock(mutex_);
    jobs_[job->id] = job;
    dirty_ = true;
  }
  changed_.notify_all();
}

void Running::remove(const std::shared_ptr<RunningJob>& job) {
  std::lock_guard lock(mutex_);
  if (auto it = jobs_.find(job->id); it != jobs_.end() && it->second == job) jobs_.erase(it);
}

std::size_t Running::size() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

// Stopping happens under the lock: a job is either still registered (and its reason is set
// before its executor reads it, after removing it) or already removed (and its outcome stands).
bool Running::stop(std::int64_t id, StopReason why) {
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return false;
    it->second->stop_for(why);
    dirty_ = true;  // the watchdog's next wake may now be this run's stuck time
  }
  changed_.notify_all();
  return true;
}

std::vector<std::shared_ptr<RunningJob>> Running::stop_all(StopReason why, const std::string& worker) {
  std::vector<std::shared_ptr<RunningJob>> stopped;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, job] : jobs_) {
      if ((worker.empty() || job->worker == worker) && job->stop_for(why)) stopped.push_back(job);
    }
    dirty_ = true;
  }
  changed_.notify_all();
  return stopped;
}

std::vector<std::shared_ptr<RunningJob>> Running::stopped_for(std::initializer_list<StopReason> reasons) const {
  std::vector<std::shared_ptr<RunningJob>> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, job] : jobs_) {
    if (std::find(reasons.begin(), reasons.end(), job->reason.load()) != reasons.end()) out.push_back(job);
  }
  return out;
}

void Running::watch(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::seconds(1);
    std::vector<std::shared_ptr<RunningJob>> expired;
    std::vector<std::shared_ptr<RunningJob>> stuck;
    for (auto& [id, job] : jobs_) {
      if (job->reason.load() == StopReason::none) {
        if (job->deadline <= now) {
          expired.push_back(job);
        } else if (job->deadline < next) {
          next = job->deadline;
        }
        continue;
      }
      // Asked to stop and still registered (its handler has not returned): stuck once
      // stuck_after has passed since.
      if (stuck_after_.count() <= 0 || job->stuck.load() || job->stopped_at.load() == 0) continue;
      const auto stuck_at =
          std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(job->stopped_at.load())) +
          stuck_after_;
      if (stuck_at <= now) {
        job->stuck = true;
        stuck.push_back(job);
      } else if (stuck_at < next) {
        next = stuck_at;
      }
    }
    if (!expired.empty() || !stuck.empty()) {
      lock.unlock();
      for (auto& job : expired) job->stop_for(StopReason::timeout);
      if (on_stuck_) {
        for (auto& job : stuck) on_stuck_(job);
      }
      lock.lock();
      continue;
    }
    changed_.wait_until(lock, stop, next, [this] { return dirty_; });
    dirty_ = false;
  }
}

}  // namespace docket
