#include "submitter.hpp"

#include "core/log.hpp"
#include "docket/errors.hpp"

namespace docket::api {

void check_answer(const EnqueueRequest& request, const Submitted& answer, std::size_t position) {
  // An existing job (created = false) holds the same key but may be of another kind: unique_key
  // spans kinds. A job this request created is of its kind.
  const bool same_key = !request.unique_key || answer.job.unique_key == request.unique_key;
  const bool same_kind = !answer.created || answer.job.kind == request.kind;
  if (answer.job.id <= 0 || !same_kind || !same_key ||
      (!answer.created && !request.unique_key && !answer.job.unique_key)) {
    throw Error("enqueue answered job " + std::to_string(answer.job.id) + " (kind " + answer.job.kind +
                ") for request " + std::to_string(position) + " (kind " + request.kind +
                "); refusing to hand out a job that may not be this request's");
  }
}

Submitter::Submitter(Client& client, int in_flight, std::size_t max_batch)
    : client_(client), max_batch_(std::max<std::size_t>(1, max_batch)) {
  plain_.max_in_flight = std::max(1, in_flight);
  keyed_.max_in_flight = std::max(1, in_flight / 2);
}

Submitted Submitter::submit(const EnqueueRequest& request) {
  // Refused here, it never joins (and never fails) a batch of other clients' requests.
  check_enqueue_request(request);
  Lane& lane = request.unique_key ? keyed_ : plain_;
  Pending mine{&request, std::nullopt, nullptr, false};
  std::unique_lock lock(mutex_);
  lane.queue.push_back(&mine);
  // Either a free slot lets this thread carry a batch (including its own request), or a
  // thread already carrying one picks it up next.
  while (!mine.done) {
    if (lane.in_flight < lane.max_in_flight && !lane.queue.empty()) {
      ++lane.in_flight;
      std::vector<Pending*> batch;
      while (!lane.queue.empty() && batch.size() < max_batch_) {
        batch.push_back(lane.queue.front());
        lane.queue.pop_front();
      }
      lock.unlock();
      run_batch(batch);
      lock.lock();
      for (auto* p : batch) p->done = true;
      --lane.in_flight;
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
    if (results.size() != batch.size()) {
      throw Error("enqueue answered " + std::to_string(results.size()) + " jobs for " + std::to_string(batch.size()) +
                  " requests");
    }
    for (std::size_t i = 0; i < batch.size(); ++i) check_answer(requests[i], results[i], i);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(results[i]);
    return;
  } catch (const Unavailable&) {
    // The database is gone: every request would fail the same way, one connect timeout each.
    // It still answers: a lock or statement timeout, or a conflict, belongs to one request
    // (one waiting on a held key, say); find which.
    if (batch.size() == 1 || !database_answers()) {
      for (auto* p : batch) p->error = std::current_exception();
      return;
    }
  } catch (const std::exception& e) {
    if (batch.size() == 1) {
      batch[0]->error = std::current_exception();
      return;
    }
    if (!dynamic_cast<const InvalidInput*>(&e) && !dynamic_cast<const Conflict*>(&e)) {
      log::warn("api.batch_failed", {{"requests", batch.size()}, {"error", e.what()}, {"then", "one by one"}});
    }
  }
  run_each(batch);
}

bool Submitter::database_answers() {
  try {
    client_.ping();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void Submitter::run_each(std::vector<Pending*>& batch) {
  std::vector<std::string> timed_out_keys;
  for (auto* p : batch) {
    const auto& key = p->request->unique_key;
    try {
      // Another request of this batch already waited the whole lock timeout on this key.
      if (key && std::find(timed_out_keys.begin(), timed_out_keys.end(), *key) != timed_out_keys.end()) {
        throw Timeout("timed out waiting for a lock another transaction holds on unique_key \"" + *key + "\"");
      }
      auto results = client_.submit_many({*p->request});
      if (results.size() != 1)
        throw Error("enqueue answered " + std::to_string(results.size()) + " jobs for 1 request");
      check_answer(*p->request, results[0], 0);
      p->result = std::move(results[0]);
    } catch (const Timeout&) {
      if (key) timed_out_keys.push_back(*key);
      p->error = std::current_exception();
    } catch (...) {
      p->error = std::current_exception();
    }
  }
}

}  // namespace docket::api
