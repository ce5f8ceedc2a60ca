#include "queue/pool.hpp"

namespace docket {

RunPool::RunPool(int threads) {
  alive_ = threads;
  threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

RunPool::~RunPool() {
  stop();
  if (!join_for(std::chrono::milliseconds(0))) {
    for (auto& t : threads_) t.detach();  // a task ignores its stop token: the process exits anyway
  }
}

void RunPool::post(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(task));
  if (!wake_pending_ && idle_ > 0) {
    wake_pending_ = true;
    ready_.notify_one();
  }
}

void RunPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
}

bool RunPool::join_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!exited_.wait_for(lock, timeout, [&] { return alive_ == 0; })) return false;
  lock.unlock();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  return true;
}

void RunPool::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    while (queue_.empty()) {
      if (stopping_) {
        if (--alive_ == 0) exited_.notify_all();
        return;
      }
      ++idle_;
      ready_.wait(lock);
      --idle_;
      wake_pending_ = false;  // this thread was the wake on its way (or woke spuriously: harmless)
    }
    auto task = std::move(queue_.front());
    queue_.pop_front();
    if (!queue_.empty() && !wake_pending_ && idle_ > 0) {
      wake_pending_ = true;
      ready_.notify_one();
    }
    lock.unlock();
    task();
    task = nullptr;  // release captures before sleeping
    lock.lock();
  }
}

}  // namespace docket
