#pragma once
// The threads that run jobs: one per concurrency slot, so blocking handlers run side by side,
// woken progressively so that short handlers do not cost a context switch each.
//
// A posted task wakes a sleeping thread only if no wake is already on its way; a thread that
// takes a task and still sees work queued wakes one more before running it. Blocking tasks thus
// fan out to every thread (each wakes the next), while a burst of no-op tasks is mostly run by
// the threads already awake: wakes per burst grow with its duration, not with its size.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace docket {

class RunPool {
 public:
  explicit RunPool(int threads);
  /// Joins the threads; abandons (detaches) them if tasks are still running after stop().
  ~RunPool();
  RunPool(const RunPool&) = delete;
  RunPool& operator=(const RunPool&) = delete;

  void post(std::function<void()> task);
  /// No new tasks; threads exit once the queue is empty.
  void stop();
  /// Waits for the threads to exit; false (and the threads left running) after `timeout`.
  bool join_for(std::chrono::milliseconds timeout);

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable exited_;
  std::deque<std::function<void()>> queue_;
  int idle_ = 0;
  bool wake_pending_ = false;
  bool stopping_ = false;
  int alive_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace docket
