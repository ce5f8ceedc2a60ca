#include "queue/held.hpp"

namespace docket {

void HeldJobs::hold(std::int64_t id) {
  std::lock_guard lock(mutex_);
  ++runs_[id];
}

void HeldJobs::settle(std::int64_t id) {
  settle(std::vector<std::int64_t>{id});
}

void HeldJobs::settle(const std::vector<std::int64_t>& ids) {
  std::lock_guard lock(mutex_);
  for (const auto id : ids) {
    if (auto it = runs_.find(id); it != runs_.end() && --it->second <= 0) runs_.erase(it);
    if (reading_) settled_while_reading_.insert(id);
  }
}

bool HeldJobs::holds(std::int64_t id) const {
  std::lock_guard lock(mutex_);
  return runs_.contains(id);
}

std::size_t HeldJobs::size() const {
  std::lock_guard lock(mutex_);
  return runs_.size();
}

std::vector<db::ClaimedJob> HeldJobs::unheld(const std::function<std::vector<db::ClaimedJob>()>& read) {
  in_doubt_ = false;  // before the read: a claim lost after it asks again
  {
    std::lock_guard lock(mutex_);
    reading_ = true;
    settled_while_reading_.clear();
  }
  std::vector<db::ClaimedJob> running;
  try {
    running = read();
  } catch (...) {
    std::lock_guard lock(mutex_);
    reading_ = false;
    in_doubt_ = true;  // whatever stopped the read, the doubt stands: the next claim asks again
    throw;
  }
  std::lock_guard lock(mutex_);
  reading_ = false;
  // A job read as running whose run settled after the read was ours (its outcome was written
  // meanwhile), not a lost claim's: were it handed back, and its outcome had made it available
  // again at the same attempt (snooze, release), the hand-back's fence could match the next claim
  // of it here and hand back a running job.
  std::erase_if(running, [&](const db::ClaimedJob& job) {
    return runs_.contains(job.id) || settled_while_reading_.contains(job.id);
  });
  settled_while_reading_.clear();
  // Held until the hand-back is settled (its settling releases this count).
  for (const auto& job : running) ++runs_[job.id];
  return running;
}

}  // namespace docket
