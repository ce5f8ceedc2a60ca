#include "queue/slots.hpp"

#include "queue/claim_size.hpp"

namespace docket {

QueueSplit split_queues(const std::vector<std::string>& queues, const std::map<std::string, int>& caps) {
  QueueSplit split;
  for (const auto& q : queues) {
    const auto it = caps.find(q);
    if (it == caps.end()) {
      split.open.push_back(q);
    } else {
      split.capped.push_back({q, it->second});
    }
  }
  return split;
}

Slots::Slots(int concurrency, int claim_batch, const std::vector<QueueCap>& capped)
    : concurrency_(concurrency),
      claim_batch_(claim_batch),
      batch_threshold_(docket::batch_threshold(concurrency, claim_batch)) {
  for (const auto& q : capped) {
    auto c = std::make_unique<Capped>();
    c->name = q.name;
    c->cap = q.cap;
    capped_.push_back(std::move(c));
  }
}

int Slots::claimable() const {
  return docket::claimable(concurrency_, claim_batch_, running_.load());
}

Slots::Capped* Slots::capped(const std::string& queue) const {
  for (const auto& q : capped_) {
    if (q->name == queue) return q.get();
  }
  return nullptr;
}

int Slots::free_in(const std::string& queue) const {
  const auto* q = capped(queue);
  return q ? q->cap - q->running.load() : 0;
}

void Slots::take(const std::string& queue) {
  running_.fetch_add(1);
  if (auto* q = capped(queue)) q->running.fetch_add(1);
  taken_.fetch_add(1);
}

SlotFreed Slots::release(const std::string& queue) {
  SlotFreed freed;
  freed.running = running_.fetch_sub(1) - 1;
  if (auto* q = capped(queue); q && q->running.fetch_sub(1) == q->cap) {
    freed.wake = freed.look = true;  // the queue was full: a slot of it is free now
  } else {
    freed.wake = freed.running == 0 || concurrency_ - freed.running == batch_threshold_;
  }
  return freed;
}

}  // namespace docket
