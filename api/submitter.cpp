#include "submitter.hpp"

#include "docket/errors.hpp"

namespace docket::api {

Submitter::Submitter(Client& client, int in_flight, std::size_t max_batch)
    : client_(client), max_in_flight_(std::max(1, in_flight)), max_batch_(std::max<std::size_t>(1, max_batch)) {}

Submitted Submitter::submit(const EnqueueRequest& request) {
  Pending mine{&request, std::nullopt, nullptr, false};
  std::unique_lock lock(mutex_);
  queue_.push_back(&mine);
  // Either a free slot lets this thread carry a batch (including its own request), or a
  // thread already carrying one picks it up next.
  while (!mine.done) {
    if (in_flight_ < max_in_flight_ && !queue_.empty()) {
      ++in_flight_;
      std::vector<Pending*> batch;
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      lock.unlock();
      run_batch(batch);
      lock.lock();
      for (auto* p : batch) p->done = true;
      --in_flight_;
      done_.notify_all();
    } else {
      done_.wait(lock);
    }
  }
  if (mine.error) std::rethrow_exception(mine.error);
  return std::move(*mine.result);
}

void Submitter::run_batch(std::vector<Pending*>& batch) {
  std::vector<EnqueueRequest> requests;
  requests.reserve(batch.size());
  for (auto* p : batch) requests.push_back(*p->request);
  try {
    auto results = client_.submit_many(requests);
    for (std::size_t i = 0; i < batch.size() && i < results.size(); ++i) batch[i]->result = std::move(results[i]);
    return;
  } catch (const InvalidInput&) {
    if (batch.size() == 1) {
      batch[0]->error = std::current_exception();
      return;
    }
    // One bad job rejected the statement: find out which, one by one.
  } catch (...) {
    for (auto* p : batch) p->error = std::current_exception();
    return;
  }
  for (auto* p : batch) {
    try {
      p->result = std::move(client_.submit_many({*p->request}).at(0));
    } catch (...) {
      p->error = std::current_exception();
    }
  }
}

}  // namespace docket::api
