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
    : on_flush_(std::move(on_flush)), metrics_(std::move(metrics)), refill_(std::move(refill)) {
  for (int i = 0; i < kWriters; ++i) {
    sessions_.push_back(std::make_unique<db::Session>(url, "docket-completer", db::Session::Plans::pinned));
  }
  for (int i = 0; i < kWriters; ++i) {
    threads_.emplace_back([this, i](const std::stop_token& st) { loop(st, i); });
  }
}

Completer::~Completer() {
  for (auto& t : threads_) t.request_stop();
  ready_.notify_all();
}

void Completer::push(PendingFinish finish) {
  bool was_empty = false;
  {
    std::lock_guard lock(mutex_);
    was_empty = queue_.empty();
    queue_.push_back(std::move(finish));
  }
  // Only the first outcome of a batch wakes a writer; it takes all that piled up meanwhile. All
  // of them: the one whose turn it is may not be the one notify_one would pick.
  if (was_empty) ready_.notify_all();
}

void Completer::progress(const std::string& worker, std::int64_t id, int attempt, std::string json) {
  {
    std::lock_guard lock(mutex_);
    // A stuck run of an earlier attempt may still report after the job was claimed here again: it
    // must not replace the newer attempt's pending progress (the database refuses it by attempt).
    auto [it, inserted] = progress_.try_emplace(id, worker, attempt, std::string());
    if (!inserted && std::get<1>(it->second) > attempt) return;
    it->second = {worker, attempt, std::move(json)};
  }
  ready_.notify_all();
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
  for (auto& t : threads_) t.request_stop();
  ready_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Completer::loop(const std::stop_token& stop, int index) {
  db::Session& session = *sessions_[static_cast<std::size_t>(index)];
  ReconnectDelay delay;
  std::vector<PendingFinish> batch;
  // Whether this writer holds the turn to take (taking_) or has a batch in flight (writing_):
  // given back on every path out of the write, errors included.
  bool taking = false, writing = false;
  auto give_back = [&] {
    {
      std::lock_guard lock(mutex_);
      if (taking) taking_ = false;
      if (writing) --writing_;
    }
    taking = writing = false;
    ready_.notify_all();
  };
  for (;;) {
    std::map<std::int64_t, std::tuple<std::string, int, std::string>> progress;
    {
      std::unique_lock lock(mutex_);
      // Writer 0 writes whenever there is something; another writer only a flood's batch piled
      // up behind a batch in flight (its connection stays unopened on a worker whose outcomes
      // never pile up, and small batches would cost a commit each).
      const auto my_turn = [&] {
        return !taking_ &&
               (index == 0 ? !queue_.empty() || !progress_.empty() : writing_ > 0 && queue_.size() >= kFloodBatch);
      };
      ready_.wait(lock, stop, my_turn);
      if (!my_turn()) {
        // Stopped: writer 0 writes what is left; the others end once it has the turn.
        if (stop.stop_requested() && (index != 0 || (queue_.empty() && progress_.empty()))) return;
        continue;
      }
      taking = taking_ = true;
      if (flood_ && queue_.size() < kFloodBatch && !stop.stop_requested()) {
        // Outcomes are pouring in (the last batch was large): gather for a moment, so a backlog
        // drains in a few large writes instead of one large and several small ones.
        ready_.wait_for(lock, stop, kFloodLinger, [&] { return queue_.size() >= kFloodBatch; });
      }
      if (stop.stop_requested() && draining_ && std::chrono::steady_clock::now() > drain_deadline_) {
        log::error("completer.abandoned", {{"outcomes", queue_.size()}});
        taking_ = false;
        ready_.notify_all();
        return;
      }
      const std::size_t n = std::min(queue_.size(), kMaxBatch);
      flood_ = n >= kFloodBatch / 4;
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
      progress.swap(progress_);
      if (!batch.empty()) {
        writing = true;
        ++writing_;
      }
    }
    try {
      for (const auto& [id, p] : progress) {
        try {
          session.progress(std::get<0>(p), id, std::get<1>(p), std::get<2>(p));
        } catch (const Unavailable&) {
          throw;
        } catch (const std::exception& e) {
          // Progress is advisory: one the database refuses is skipped, never the outcomes after it.
          log::warn("job.progress_unwritable", {{"job_id", id}, {"error", e.what()}});
        }
      }
      {
        // The progress taken is written: the turn passes (another writer may take outcomes now
        // and, with a batch in flight here, is let in).
        std::lock_guard lock(mutex_);
        taking_ = false;
        taking = false;
      }
      ready_.notify_all();
      bool refilled = false;
      try {
        refilled = !batch.empty() && write(session, batch);
      } catch (const Unavailable&) {
        throw;
      } catch (const std::exception& e) {
        log::warn("completer.batch_failed", {{"error", e.what()}, {"outcomes", batch.size()}});
        write_each(session, batch);
      }
      give_back();
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
      give_back();
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
      give_back();
    }
  }
}

void Completer::write_each(db::Session& session, std::vector<PendingFinish>& batch) {
  std::size_t i = 0;
  try {
    for (; i < batch.size(); ++i) {
      std::vector<PendingFinish> one{batch[i]};
      try {
        write(session, one, false);
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
        write(session, one, false);
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

bool Completer::write(db::Session& session, std::vector<PendingFinish>& batch, bool claim_too) {
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
    const bool claims_too = claim.has_value();
    std::vector<db::Finished> done;
    if (claim) {
      db::FinishedAndClaimed both;
      try {
        both = session.finish_and_claim(worker, items, refill_.queues_literal, refill_.kinds_literal, claim->limit);
      } catch (const Unavailable&) {
        if (refill_.in_doubt) refill_.in_doubt();
        throw;
      }
      done = std::move(both.finished);
      refill_.deliver(both.claimed, *claim, worker);
      claim.reset();  // releases the claim lock
      refilled = true;
    } else {
      done = session.finish(worker, items);
    }
    if (refill_.settled) {
      std::vector<std::int64_t> ids;
      ids.reserve(items.size());
      for (const auto& item : items) ids.push_back(item.id);
      refill_.settled(ids);
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
    if (claims_too) ++counters_.refills;
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
