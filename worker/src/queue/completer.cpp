#include "queue/completer.hpp"

#include <map>
#include <thread>

#include "core/log.hpp"
#include "core/reconnect.hpp"
#include "core/text.hpp"
#include "docket/errors.hpp"

namespace docket {

namespace {
constexpr std::size_t kMaxBatch = 2000;
constexpr std::size_t kFloodBatch = 400;
constexpr auto kFloodLinger = std::chrono::microseconds(500);
}  // namespace

Completer::Completer(const std::string& url, std::function<void(bool)> on_flush, std::shared_ptr<Metrics> metrics,
                     Refill refill)
    : session_(url, "docket-completer", db::Session::Plans::pinned),
      on_flush_(std::move(on_flush)),
      metrics_(std::move(metrics)),
      refill_(std::move(refill)),
      thread_([this](const std::stop_token& st) { loop(st); }) {}

Completer::~Completer() {
  thread_.request_stop();
  ready_.notify_all();
}

void Completer::push(PendingFinish finish) {
  bool was_empty = false;
  {
    std::lock_guard lock(mutex_);
    was_empty = queue_.empty();
    queue_.push_back(std::move(finish));
  }
  // Only the first outcome of a batch wakes the writer; it takes all that piled up meanwhile.
  if (was_empty) ready_.notify_one();
}

void Completer::progress(const std::string& worker, std::int64_t id, int attempt, std::string json) {
  {
    std::lock_guard lock(mutex_);
    progress_[id] = {worker, attempt, std::move(json)};
  }
  ready_.notify_one();
}

std::size_t Completer::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

CompleterCounters Completer::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void Completer::drain(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    drain_deadline_ = std::chrono::steady_clock::now() + timeout;
  }
  ready_.notify_all();
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void Completer::loop(const std::stop_token& stop) {
  ReconnectDelay delay;
  std::vector<PendingFinish> batch;
  for (;;) {
    std::map<std::int64_t, std::tuple<std::string, int, std::string>> progress;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, stop, [&] { return !queue_.empty() || !progress_.empty(); });
      if (queue_.empty() && progress_.empty()) {
        if (stop.stop_requested()) return;
        continue;
      }
      if (flood_ && queue_.size() < kFloodBatch && !stop.stop_requested()) {
        // Outcomes are pouring in (the last batch was large): gather for a moment, so a backlog
        // drains in a few large writes instead of one large and several small ones.
        ready_.wait_for(lock, stop, kFloodLinger, [&] { return queue_.size() >= kFloodBatch; });
      }
      if (stop.stop_requested() && draining_ && std::chrono::steady_clock::now() > drain_deadline_) {
        log::error("completer.abandoned", {{"outcomes", queue_.size()}});
        return;
      }
      const std::size_t n = std::min(queue_.size(), kMaxBatch);
      flood_ = n >= kFloodBatch / 4;
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
      progress.swap(progress_);
    }
    try {
      for (const auto& [id, p] : progress) {
        try {
          session_.progress(std::get<0>(p), id, std::get<1>(p), std::get<2>(p));
        } catch (const Unavailable&) {
          throw;
        } catch (const std::exception& e) {
          // Progress is advisory: one the database refuses is skipped, never the outcomes after it.
          log::warn("job.progress_unwritable", {{"job_id", id}, {"error", e.what()}});
        }
      }
      bool refilled = false;
      try {
        refilled = !batch.empty() && write(batch);
      } catch (const Unavailable&) {
        throw;
      } catch (const std::exception& e) {
        log::warn("completer.batch_failed", {{"error", e.what()}, {"outcomes", batch.size()}});
        write_each(batch);
      }
      if (delay.failing()) log::info("db.reconnected", {{"component", "completer"}});
      delay.reset();
      batch.clear();
      if (on_flush_) on_flush_(refilled);
    } catch (const Unavailable& e) {
      const auto wait = delay.next();
      log::warn("db.unavailable", {{"component", "completer"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
      {
        // Put the batch back in front, in order: outcomes are never dropped for a lost connection.
        std::lock_guard lock(mutex_);
        queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
        for (auto& [id, p] : progress) progress_.try_emplace(id, std::move(p));
      }
      batch.clear();
      {
        std::lock_guard lock(mutex_);
        if (draining_ && std::chrono::steady_clock::now() + wait > drain_deadline_) {
          log::error("completer.abandoned", {{"outcomes", queue_.size()}, {"error", e.what()}});
          return;
        }
      }
      std::this_thread::sleep_for(wait);
    } catch (const std::exception& e) {
      // write_each already tried every outcome alone; what is left is a bug. The jobs show in
      // docket.stuck_jobs once past their timeout.
      log::error("completer.write_failed", {{"error", e.what()}, {"outcomes", batch.size()}});
      batch.clear();
    }
  }
}

void Completer::write_each(std::vector<PendingFinish>& batch) {
  std::size_t i = 0;
  try {
    for (; i < batch.size(); ++i) {
      std::vector<PendingFinish> one{batch[i]};
      try {
        write(one, false);
        continue;
      } catch (const Unavailable&) {
        throw;
      } catch (const std::exception& e) {
        // The database refuses this outcome (a value it cannot store, a trigger): record the
        // failure on the job instead, so it never stays `running` with its outcome lost.
        PendingFinish& p = one.front();
        const db::FinishOutcome outcome = p.item.outcome;
        const std::string was(db::to_string(outcome));
        log::error("job.outcome_unwritable", {{"job_id", p.item.id},
                                              {"kind", p.kind},
                                              {"queue", p.queue},
                                              {"attempt", p.item.attempt},
                                              {"worker", p.worker},
                                              {"outcome", was},
                                              {"error", e.what()}});
        p.item.outcome = outcome == db::FinishOutcome::retry || outcome == db::FinishOutcome::release
                             ? db::FinishOutcome::retry
                             : db::FinishOutcome::fail;
        p.item.result.reset();
        p.item.delay_s = std::min(p.item.delay_s, 3600.0);
        p.item.error = clean_text("the outcome (" + was + ") could not be stored: " + e.what(), 4096);
      }
      try {
        write(one, false);
      } catch (const Unavailable&) {
        throw;
      } catch (const std::exception& e) {
        log::error("completer.write_failed", {{"job_id", one.front().item.id}, {"error", e.what()}});
      }
    }
    batch.clear();
  } catch (const Unavailable&) {
    batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(i));  // the rest is put back
    throw;
  }
}

bool Completer::write(std::vector<PendingFinish>& batch, bool claim_too) {
  bool refilled = false;
  // One statement per worker id (normally one: a process has a second only after a lost lease).
  std::map<std::string, std::vector<std::size_t>> by_worker;
  for (std::size_t i = 0; i < batch.size(); ++i) by_worker[batch[i].worker].push_back(i);
  for (const auto& [worker, indexes] : by_worker) {
    std::vector<db::FinishItem> items;
    items.reserve(indexes.size());
    for (auto i : indexes) items.push_back(batch[i].item);
    std::optional<Refill::Claim> claim;
    if (claim_too && refill_.begin) claim = refill_.begin(worker);
    std::vector<db::Finished> done;
    if (claim) {
      auto both = session_.finish_and_claim(worker, items, refill_.queues_literal, refill_.kinds_literal, claim->limit);
      done = std::move(both.finished);
      refill_.deliver(both.claimed, *claim, worker);
      claim.reset();  // releases the claim lock
      refilled = true;
    } else {
      done = session_.finish(worker, items);
    }
    std::unordered_map<std::int64_t, JobState> state_of;
    for (const auto& f : done) state_of[f.id] = f.state;
    CompleterCounters add;
    for (auto i : indexes) {
      const auto& p = batch[i];
      auto it = state_of.find(p.item.id);
      if (metrics_) {
        metrics_->job_finished(p.kind, it == state_of.end() ? "stale" : std::string(to_string(it->second)),
                               p.duration_ms / 1000.0);
      }
      if (it == state_of.end()) {
        ++add.stale;
        log::warn("job.stale",
                  {{"job_id", p.item.id},
                   {"kind", p.kind},
                   {"queue", p.queue},
                   {"attempt", p.item.attempt},
                   {"worker", p.worker},
                   {"outcome", std::string(db::to_string(p.item.outcome))},
                   {"reason", "no longer running under this worker (rescued or cancelled); write ignored"}});
        continue;
      }
      switch (it->second) {  // no default: a new state must say what its outcome logs (-Werror=switch)
        case JobState::completed: {
          ++add.completed;
          const auto level = log::log_jobs() ? spdlog::level::info : spdlog::level::debug;
          if (spdlog::should_log(level)) {
            log::event(level, "job.completed",
                       {{"job_id", p.item.id},
                        {"kind", p.kind},
                        {"queue", p.queue},
                        {"attempt", p.item.attempt},
                        {"worker", p.worker},
                        {"duration_ms", static_cast<std::int64_t>(p.duration_ms)}});
          }
          break;
        }
        case JobState::retryable: {
          ++add.retried;
          log::warn("job.retrying", {{"job_id", p.item.id},
                                     {"kind", p.kind},
                                     {"queue", p.queue},
                                     {"attempt", p.item.attempt},
                                     {"worker", p.worker},
                                     {"retry_in_ms", static_cast<std::int64_t>(p.item.delay_s * 1000)},
                                     {"error", p.item.error.value_or("")}});
          break;
        }
        case JobState::failed: {
          ++add.failed;
          log::error("job.failed", {{"job_id", p.item.id},
                                    {"kind", p.kind},
                                    {"queue", p.queue},
                                    {"attempt", p.item.attempt},
                                    {"worker", p.worker},
                                    {"error", p.item.error.value_or("")}});
          break;
        }
        case JobState::cancelled: {
          ++add.cancelled;
          log::info("job.cancelled", {{"job_id", p.item.id},
                                      {"kind", p.kind},
                                      {"queue", p.queue},
                                      {"attempt", p.item.attempt},
                                      {"worker", p.worker}});
          break;
        }
        case JobState::scheduled: {
          ++add.snoozed;
          log::info("job.snoozed", {{"job_id", p.item.id},
                                    {"kind", p.kind},
                                    {"queue", p.queue},
                                    {"attempt", p.item.attempt},
                                    {"worker", p.worker},
                                    {"run_in_ms", static_cast<std::int64_t>(p.item.delay_s * 1000)}});
          break;
        }
        case JobState::available: {
          ++add.released;
          log::info("job.released", {{"job_id", p.item.id},
                                     {"kind", p.kind},
                                     {"queue", p.queue},
                                     {"attempt", p.item.attempt},
                                     {"worker", p.worker},
                                     {"reason", "worker shutting down"}});
          break;
        }
        case JobState::running:
          break;  // an outcome never leaves a job running (the fenced write moves it out)
      }
    }
    std::lock_guard lock(mutex_);
    ++counters_.writes;
    counters_.completed += add.completed;
    counters_.retried += add.retried;
    counters_.failed += add.failed;
    counters_.cancelled += add.cancelled;
    counters_.snoozed += add.snoozed;
    counters_.released += add.released;
    counters_.stale += add.stale;
  }
  return refilled;
}

}  // namespace docket
