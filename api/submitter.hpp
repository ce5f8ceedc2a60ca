#pragma once
// Group commit for POST /jobs: concurrent requests are merged into one enqueue_many round trip.
// A request that arrives while a batch is in flight waits for the next one; at low load a
// request goes out at once, alone, so merging adds no latency. When a batch fails on one bad
// job, its jobs are retried one by one so each request gets its own answer.
#include <condition_variable>
#include <deque>
#include <mutex>

#include "docket/client.hpp"

namespace docket::api {

class Submitter {
 public:
  /// At most `in_flight` batches at once (one per database connection), of at most `max_batch`.
  Submitter(Client& client, int in_flight, std::size_t max_batch = 500);
  /// Enqueues one job; throws what Client would for it alone.
  Submitted submit(const EnqueueRequest& request);

 private:
  struct Pending {
    const EnqueueRequest* request;
    std::optional<Submitted> result;
    std::exception_ptr error;
    bool done = false;
  };
  void run_batch(std::vector<Pending*>& batch);

  Client& client_;
  const int max_in_flight_;
  const std::size_t max_batch_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::deque<Pending*> queue_;
  int in_flight_ = 0;
};

}  // namespace docket::api
