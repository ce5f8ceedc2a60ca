#include "queue/running.hpp"

namespace docket {

bool RunningJob::stop_for(StopReason why) {
  StopReason expected = StopReason::none;
  const bool first = reason.compare_exchange_strong(expected, why);
  stop.request_stop();
  return first;
}

Running::Running() : watchdog_([this](const std::stop_token& st) { watch(st); }) {}

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
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  it->second->stop_for(why);
  return true;
}

std::vector<std::shared_ptr<RunningJob>> Running::stop_all(StopReason why, const std::string& worker) {
  std::vector<std::shared_ptr<RunningJob>> stopped;
  std::lock_guard lock(mutex_);
  for (auto& [id, job] : jobs_) {
    if ((worker.empty() || job->worker == worker) && job->stop_for(why)) stopped.push_back(job);
  }
  return stopped;
}

void Running::watch(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::seconds(1);
    std::vector<std::shared_ptr<RunningJob>> expired;
    for (auto& [id, job] : jobs_) {
      if (job->reason.load() != StopReason::none) continue;
      if (job->deadline <= now) {
        expired.push_back(job);
      } else if (job->deadline < next) {
        next = job->deadline;
      }
    }
    if (!expired.empty()) {
      lock.unlock();
      for (auto& job : expired) job->stop_for(StopReason::timeout);
      lock.lock();
      continue;
    }
    changed_.wait_until(lock, stop, next, [this] { return dirty_; });
    dirty_ = false;
  }
}

}  // namespace docket
