#pragma once
// Group commit for POST /jobs: concurrent requests are merged into one enqueue_many round trip.
// A request that arrives while a batch is in flight waits for the next one; at low load a
// request goes out at once, alone, so merging adds no latency.
// Trust boundary: a request is validated before it joins a batch, and a batch that fails for
// any reason but a lost database is retried request by request, so one bad or blocked request
// fails alone. Requests with a unique_key travel in their own lane: one whose key is held by an
// open transaction waits (up to the lock timeout) without holding up requests without a key.
// Answers are matched to requests by position and checked; a mismatch fails the whole batch.
#include <condition_variable>
#include <deque>
#include <mutex>

#include "docket/client.hpp"

namespace docket::api {

class Submitter {
 public:
  /// At most `in_flight` batches at once per lane (one per database connection; the keyed lane
  /// gets half as many), of at most `max_batch` requests.
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
  /// Requests waiting for a batch and the batches in flight, for one kind of request.
  struct Lane {
    std::deque<Pending*> queue;
    int in_flight = 0;
    int max_in_flight = 1;
  };
  void run_batch(std::vector<Pending*>& batch);
  /// The batch's requests one by one, so each gets its own answer or error.
  void run_each(std::vector<Pending*>& batch);
  /// Whether the database answers a ping (after a batch failed as Unavailable).
  bool database_answers();

  Client& client_;
  const std::size_t max_batch_;
  std::mutex mutex_;
  std::condition_variable done_;
  Lane plain_;  ///< no unique_key: never waits on another transaction's row lock
  Lane keyed_;  ///< with a unique_key: may wait for a transaction holding the same key
};

/// Throws Error unless `answer` can be the answer to `request`: a real id, the request's
/// unique_key when it had one, its kind when the job was created, and an existing job only for a
/// keyed request (or a crawl kind's implicit key). enqueue_many's answers match by position only.
void check_answer(const EnqueueRequest& request, const Submitted& answer, std::size_t position);

}  // namespace docket::api
