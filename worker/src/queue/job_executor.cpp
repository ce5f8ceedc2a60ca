#include "queue/job_executor.hpp"

#include "core/log.hpp"
#include "core/text.hpp"
#include "docket/json.hpp"

namespace docket {

namespace {
using SteadyClock = std::chrono::steady_clock;

/// A run's timeout: the job's own, else its kind's.
Millis run_timeout(const db::ClaimedJob& claimed, const KindConfig& kind) {
  return claimed.timeout.value_or(kind.timeout);
}
}  // namespace

Job job_of(const db::ClaimedJob& claimed, const KindConfig& kind, const std::string& worker_id) {
  Job job;
  job.id = claimed.id;
  job.kind = claimed.kind;
  job.queue = claimed.queue;
  job.attempt = claimed.attempt;
  job.max_retries = claimed.max_retries;
  job.priority = claimed.priority;
  job.unique_key = claimed.unique_key;
  job.timeout = run_timeout(claimed, kind);
  job.worker_id = worker_id;
  return job;
}

Outcome run_handler(const Handler& handler, Job job, std::string_view args, std::stop_token stop,
                    std::function<void(Json)> progress) {
  std::string args_error;
  auto parsed = try_parse_json(args, "args", &args_error);
  if (!parsed) return Outcome::fail(args_error);
  job.args = std::move(*parsed);
  JobContext ctx(std::move(job), std::move(stop), std::move(progress));
  try {
    return handler(ctx);
  } catch (const std::exception& e) {
    return Outcome::retry(e.what());
  } catch (...) {
    return Outcome::retry("handler threw a non-std::exception");
  }
}

AfterRun after_run(Outcome outcome, StopReason reason, std::chrono::milliseconds timeout) {
  if (outcome.kind() == Outcome::Kind::callback) return {RunEnd::parked, std::move(outcome)};
  switch (reason) {  // no default: a new reason must say what it does to an outcome (-Werror=switch)
    case StopReason::lost:
      return {RunEnd::lost, std::move(outcome)};
    case StopReason::shutdown:
      return {RunEnd::handed_back, std::move(outcome)};
    case StopReason::timeout:
      if (outcome.kind() != Outcome::Kind::complete)
        outcome = Outcome::retry("timed out after " + format_duration(timeout));
      break;
    case StopReason::cancel:
      if (outcome.kind() != Outcome::Kind::complete) outcome = Outcome::cancel("cancelled on request while running");
      break;
    case StopReason::none:
      break;
  }
  return {RunEnd::write, std::move(outcome)};
}

JobExecutor::JobExecutor(const Kinds& kinds, Slots& slots, HeldJobs& held, std::shared_ptr<Metrics> metrics,
                         Hooks hooks, std::chrono::milliseconds stuck_after)
    : kinds_(kinds),
      slots_(slots),
      held_(held),
      metrics_(std::move(metrics)),
      hooks_(std::move(hooks)),
      stuck_after_(stuck_after),
      running_(stuck_after, [this](const std::shared_ptr<RunningJob>& rj) { stuck(rj); }),
      pool_(std::make_unique<RunPool>(slots.concurrency())) {}

JobExecutor::~JobExecutor() {
  stop(std::chrono::seconds(1));
}

void JobExecutor::submit(std::vector<db::ClaimedJob>& jobs, const std::string& worker_id) {
  const auto now = SteadyClock::now();
  for (auto& job : jobs) {
    const auto& entry = kinds_.at(job.kind);
    auto rj = std::make_shared<RunningJob>();
    rj->id = job.id;
    rj->attempt = job.attempt;
    rj->max_retries = job.max_retries;
    rj->kind = job.kind;
    rj->queue = job.queue;
    rj->worker = worker_id;
    rj->started = now;
    rj->deadline = now + run_timeout(job, entry.config);
    held_.hold(job.id);
    running_.add(rj);
    slots_.take(job.queue);
    if (metrics_) metrics_->job_claimed(job.kind, job.queue, job.queue_latency_s);
    pool_->post([this, rj, job = std::move(job)] { run(rj, job); });
  }
}

bool JobExecutor::cancel(std::int64_t id) {
  return running_.stop(id, StopReason::cancel);
}

std::vector<std::shared_ptr<RunningJob>> JobExecutor::stop_all(StopReason why, const std::string& worker) {
  return running_.stop_all(why, worker);
}

std::size_t JobExecutor::settle_stopped() {
  std::size_t n = 0;
  for (const auto& rj : running_.stopped_for({StopReason::timeout, StopReason::cancel})) {
    n += write_without_handler(rj, "its handler had not returned when the worker stopped") ? 1 : 0;
  }
  return n;
}

void JobExecutor::stuck(const std::shared_ptr<RunningJob>& rj) {
  const StopReason why = rj->reason.load();
  const char* stopped_for = why == StopReason::timeout  ? "timeout"
                            : why == StopReason::cancel ? "cancel"
                            : why == StopReason::lost   ? "lost lease"
                                                        : "shutdown";
  // A stuck run keeps its pool thread and its slot (a thread cannot be killed): this process runs
  // one job fewer at once until the handler returns. Restart the worker when they add up.
  int not_counted = 0;
  if (metrics_ && rj->stuck_gauge.compare_exchange_strong(not_counted, 1)) metrics_->job_stuck(rj->kind, 1);
  const bool written = write_without_handler(
      rj, "its handler had not returned " + format_duration(stuck_after_) + " after it was stopped");
  const char* outcome = written                       ? "written without the handler"
                        : why == StopReason::lost     ? "none here (rescued elsewhere)"
                        : why == StopReason::shutdown ? "none here (handed back)"
                                                      : "decided already (returned, or the worker stopping)";
  log::warn("job.stuck", {{"job_id", rj->id},
                          {"kind", rj->kind},
                          {"queue", rj->queue},
                          {"attempt", rj->attempt},
                          {"stopped_for", stopped_for},
                          {"stuck_after_ms", stuck_after_.count()},
                          {"outcome", outcome},
                          {"action", "its thread and slot stay taken until the handler returns"}});
}

bool JobExecutor::write_without_handler(const std::shared_ptr<RunningJob>& rj, const std::string& why) {
  const StopReason reason = rj->reason.load();
  // A lost lease: rescued elsewhere, nothing to write; at shutdown the hand-back settles it.
  if (reason != StopReason::timeout && reason != StopReason::cancel) return false;
  std::lock_guard lock(write_without_mutex_);
  if (!rj->settle()) return false;  // its handler returned first
  const KindEntry& entry = kinds_.at(rj->kind);
  const auto timeout = std::chrono::duration_cast<Millis>(rj->deadline - rj->started);
  Outcome outcome = reason == StopReason::timeout
                        ? Outcome::retry("timed out after " + format_duration(timeout) + " (" + why + ")")
                        : Outcome::cancel("cancelled on request while running (" + why + ")");
  const double duration_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - rj->started).count();
  abandoned_.fetch_add(1);
  hooks_.finish({rj->worker, finish_item(*rj, entry, outcome), rj->kind, rj->queue, duration_ms});
  return true;
}

bool JobExecutor::stop(std::chrono::milliseconds timeout) {
  if (!pool_) return false;
  pool_->stop();
  if (pool_->join_for(timeout)) return true;
  // Its threads still run a handler that ignores its stop token and use the pool: it must
  // outlive this executor. Kept for the process's lifetime where leak checkers see it is meant.
  static std::mutex abandoned_mutex;
  static auto* abandoned = new std::vector<std::unique_ptr<RunPool>>();  // never destroyed
  std::lock_guard lock(abandoned_mutex);
  abandoned->push_back(std::move(pool_));
  return false;
}

void JobExecutor::run(const std::shared_ptr<RunningJob>& rj, const db::ClaimedJob& claimed) {
  const KindEntry& entry = kinds_.at(claimed.kind);
  Job job = job_of(claimed, entry.config, rj->worker);
  const auto timeout = job.timeout;
  log::debug("job.started", {{"job_id", job.id},
                             {"kind", job.kind},
                             {"queue", job.queue},
                             {"attempt", job.attempt},
                             {"worker", job.worker_id},
                             {"args", claimed.args}});
  Outcome outcome =
      run_handler(entry.handler, std::move(job), claimed.args, rj->stop.get_token(), [this, rj](const Json& value) {
        hooks_.progress(rj->worker, rj->id, rj->attempt,
                        clean_json_text(value.dump(-1, ' ', false, Json::error_handler_t::replace)));
      });
  const double duration_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - rj->started).count();

  // Remove first, then read why it stopped: Running::stop_all marks jobs under the same lock.
  running_.remove(rj);
  if (rj->stuck_gauge.exchange(2) == 1 && metrics_) metrics_->job_stuck(rj->kind, -1);
  auto after = after_run(std::move(outcome), rj->reason.load(), timeout);
  if ((after.end == RunEnd::write || after.end == RunEnd::parked) && !rj->settle()) {
    // Stuck (or the worker stopping) had its outcome written without it: this return is too late.
    log::info("job.stuck_returned", {{"job_id", rj->id},
                                     {"kind", rj->kind},
                                     {"attempt", rj->attempt},
                                     {"action", "outcome dropped (written without it); its slot is free again"}});
    abandoned_.fetch_sub(1);
    hooks_.freed(slots_.release(claimed.queue));
    return;
  }
  switch (after.end) {  // no default (-Werror=switch)
    case RunEnd::parked:
      // Parked by its handler (docket.callback_wait): the token's holder or the callback deadline
      // ends it, whatever happens to this run or this process now.
      log::info("job.awaiting_callback",
                {{"job_id", rj->id}, {"kind", rj->kind}, {"queue", rj->queue}, {"attempt", rj->attempt}});
      held_.settle(rj->id);
      break;
    case RunEnd::lost:
    case RunEnd::handed_back:
      log::debug("job.outcome_dropped",
                 {{"job_id", rj->id},
                  {"kind", rj->kind},
                  {"queue", rj->queue},
                  {"attempt", rj->attempt},
                  {"worker", rj->worker},
                  {"reason", after.end == RunEnd::lost ? "lease lost" : "handed back at shutdown"}});
      if (after.end == RunEnd::lost) held_.settle(rj->id);  // at shutdown the hand-back settles it
      break;
    case RunEnd::write:
      hooks_.finish({rj->worker, finish_item(*rj, entry, after.outcome), rj->kind, rj->queue, duration_ms});
      break;
  }
  hooks_.freed(slots_.release(claimed.queue));
}

db::FinishItem JobExecutor::finish_item(const RunningJob& rj, const KindEntry& entry, const Outcome& outcome) {
  ResultLimit limit{entry.config.max_result_bytes, [&](std::size_t bytes, std::size_t max) {
                      log::warn("job.result_dropped", {{"job_id", rj.id},
                                                       {"kind", rj.kind},
                                                       {"queue", rj.queue},
                                                       {"attempt", rj.attempt},
                                                       {"bytes", bytes},
                                                       {"max_result_bytes", max}});
                    }};
  return finish_item_of(
      rj.id, rj.attempt, rj.max_retries, outcome,
      [&]() -> std::optional<Millis> {
        std::lock_guard lock(rng_mutex_);
        return entry.config.backoff.wait_after(rj.attempt, rng_);
      },
      limit);
}

}  // namespace docket
