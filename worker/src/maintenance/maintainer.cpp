#include "maintenance/maintainer.hpp"

#include <random>

#include "core/log.hpp"
#include "core/reconnect.hpp"
#include "docket/errors.hpp"
#include "maintenance/sweep.hpp"

namespace docket {

namespace {
using SteadyClock = std::chrono::steady_clock;

/// interval * U(0.9, 1.1): periodic work of many workers must not phase-lock.
SteadyClock::duration jittered(Millis interval, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> f(0.9, 1.1);
  return std::chrono::duration_cast<SteadyClock::duration>(interval * f(rng));
}
}  // namespace

void log_deploy(const ScheduleDeploy& d) {
  for (const auto& name : d.runtime) {
    log::warn("schedule.config_skipped",
              {{"schedule", name}, {"reason", "a run-time schedule has this name; deploys never change it"}});
  }
  for (const auto& name : d.deleted) log::info("schedule.config_deleted", {{"schedule", name}});
  log::info("schedule.config_applied", {{"applied", static_cast<std::int64_t>(d.applied.size())},
                                        {"skipped", static_cast<std::int64_t>(d.runtime.size())},
                                        {"deleted", static_cast<std::int64_t>(d.deleted.size())}});
}

Maintainer::Maintainer(std::string url, WorkerConfig config, db::WorkerRow row, std::vector<KindSettings> kinds,
                       std::vector<ScheduleSpec> schedules, Identity& identity, Hooks hooks)
    : url_(std::move(url)),
      config_(std::move(config)),
      row_(std::move(row)),
      kinds_(std::move(kinds)),
      schedules_(std::move(schedules)),
      identity_(identity),
      hooks_(std::move(hooks)),
      session_(url_, "docket-maintainer") {}

Maintainer::~Maintainer() {
  thread_.request_stop();
  wake_.notify_all();
}

std::string Maintainer::register_worker() {
  session_.check_schema();
  // The worker's row comes last, once its kinds are seeded and its schedules deployed: the row's
  // heartbeat is stamped when it is written, and a start that took longer than the lease (a retry
  // after a conflict, a slow database) would otherwise begin with a lease the fleet's next rescue
  // declares lost, taking back the first jobs it claims.
  for (const auto& s : kinds_) {
    const auto r = session_.seed_kind(s);
    const auto text = [](std::optional<int> n) { return n ? std::to_string(*n) : std::string("none"); };
    if (r.after != r.before) {
      log::info("kind.limit_changed", {{"kind", s.kind},
                                       {"max_running", text(r.after)},
                                       {"previous", r.existed ? text(r.before) : std::string("none")},
                                       {"source", "config"}});
    } else if (r.source == "operator" && s.max_running && r.after != s.max_running) {
      // The deploy's TOML value waits: an operator's limit holds until `docket limit KIND --reset`.
      log::info("kind.limit_kept", {{"kind", s.kind},
                                    {"max_running", text(r.after)},
                                    {"source", "operator"},
                                    {"config_max_running", *s.max_running},
                                    {"hint", "docket limit " + s.kind + " --reset applies the config value"}});
    }
    if (r.partition_applied) {
      // As max_running: the TOML seeds the keyed limits, an operator's setting holds until
      // `docket limit KIND --reset`.
      log::info(*r.partition_applied ? "kind.partition_applied" : "kind.partition_kept",
                {{"kind", s.kind},
                 {"partition", r.partition.value_or("none")},
                 {"source", r.partition_source.value_or("none")},
                 {"config_partition", s.keyed.partition.value_or("none")}});
    }
  }
  // After seeding: this worker's kinds are known. A refused schedule stops the start, naming it.
  if (!schedules_.empty()) log_deploy(session_.deploy_schedules(schedules_, false));
  return session_.register_worker(row_);
}

bool Maintainer::start(const std::function<bool()>& give_up) {
  ReconnectDelay delay;
  for (;;) {
    try {
      identity_.set(register_worker());
      break;
    } catch (const Unavailable& e) {
      if (give_up()) return false;
      const auto wait = delay.next();
      log::warn("db.unavailable", {{"component", "worker"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, wait, [&] { return give_up(); });
      if (give_up()) return false;
    }
  }
  thread_ = std::jthread([this](const std::stop_token& st) { loop(st); });
  return true;
}

void Maintainer::mark_stopping() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

void Maintainer::finish() {
  thread_.request_stop();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  try {
    session_.worker_stopped(identity_.get());
  } catch (const std::exception& e) {
    log::warn("worker.deregister_failed", {{"error", e.what()}});
  }
}

namespace {
/// After a tick that enqueued, the next waits at least this long (README: Schedules).
constexpr Millis kScheduleGather{50};
/// Rows one prune deletes in one transaction. A full batch means more are due: the next comes at
/// once rather than a prune_interval later, or a fleet finishing more than a batch per interval
/// (500 jobs/s is 30,000 a minute) would keep its finished jobs longer and longer, and the
/// table and its indexes would grow without end.
constexpr int kPruneBatch = 5000;
}  // namespace

void Maintainer::loop(const std::stop_token& stop) {
  std::mt19937_64 rng{std::random_device{}()};
  ReconnectDelay delay;
  const auto now0 = SteadyClock::now();
  auto next_heartbeat = now0 + jittered(config_.effective_heartbeat(), rng);
  auto next_rescue = now0 + jittered(config_.effective_rescue(), rng) / 2;
  auto next_promote = now0;
  auto next_prune = now0 + jittered(config_.prune_interval, rng) / 4;
  auto pruning_since = SteadyClock::time_point::max();  ///< start of a run of back-to-back prunes
  while (!stop.stop_requested()) {
    const auto now = SteadyClock::now();
    try {
      {
        std::lock_guard lock(mutex_);
        if (stopping_ && !stopping_recorded_) {
          session_.worker_stopping(identity_.get());
          stopping_recorded_ = true;
        }
      }
      if (now >= next_heartbeat) {
        next_heartbeat = now + jittered(config_.effective_heartbeat(), rng);
        const std::string id = identity_.get();
        if (!session_.heartbeat(id)) {
          // Declared dead (we were frozen or cut off past the lease): our jobs are being rescued.
          // Stop them here, and come back as a new worker.
          log::error("worker.lease_lost", {{"worker_id", id}, {"action", "stopping its jobs and registering again"}});
          hooks_.lease_lost(id);
          const std::string fresh = register_worker();
          identity_.set(fresh);
          log::info("worker.registered", {{"worker_id", fresh}});
        } else {
          for (auto job_id : session_.cancel_requests(id)) hooks_.cancel_requested(job_id);
        }
      }
      if (now >= next_rescue) {
        next_rescue = now + jittered(config_.effective_rescue(), rng);
        if (const int n = session_.rescue(); n > 0) log::warn("job.rescued", {{"count", n}});
        if (const int n = session_.callback_expire(); n > 0) log::warn("job.callback_expired", {{"count", n}});
        for (const auto& sweep : registered_sweeps()) {
          if (const int n = sweep.run(session_); n > 0) log::warn(sweep.event, {{"count", n}});
        }
      }
      if (now >= next_promote) {
        next_promote = now + config_.promote_interval;
        // Promotion and schedules share a cadence: each comes back when its next item is due,
        // within promote_interval. Schedules due in a steady stream (thousands of per-entity
        // schedules spread over their period) are gathered for kScheduleGather rather than
        // committed one by one: a slot's job is enqueued at most that much after its time.
        const auto p = session_.promote();
        const auto t = session_.schedule_tick();
        if (hooks_.schedule_enqueued) {
          for (const double late : t.lateness_s) hooks_.schedule_enqueued(late);
        }
        auto wait = config_.promote_interval;
        if (p.promoted >= 1000 || t.enqueued >= 500) {
          wait = Millis(0);
        } else {
          if (p.next_due_in_s) {
            wait = std::min(wait, Millis(static_cast<long long>(std::max(0.0, *p.next_due_in_s) * 1000) + 1));
          }
          if (t.next_due_in_s) {
            const Millis due(static_cast<long long>(std::max(0.0, *t.next_due_in_s) * 1000) + 1);
            wait = std::min(wait, t.enqueued > 0 ? std::max(due, kScheduleGather) : due);
          }
        }
        next_promote = now + wait;
      }
      if (now >= next_prune) {
        next_prune = now + jittered(config_.prune_interval, rng);
        if (pruning_since == SteadyClock::time_point::max()) pruning_since = now;
        const int n = session_.prune(kPruneBatch);
        if (n > 0) log::info("job.pruned", {{"count", n}});
        // Back to back while full batches come back, for at most half an interval: while a
        // transaction holds old rows visible, every call walks past the rows the previous ones
        // deleted, and a run without end would spend the session on that. Heartbeats and the
        // rest still come first in each pass.
        if (n >= kPruneBatch && now - pruning_since < config_.prune_interval / 2) {
          next_prune = now;
        } else {
          pruning_since = SteadyClock::time_point::max();
        }
      }
      if (delay.failing()) log::info("db.reconnected", {{"component", "maintainer"}});
      delay.reset();
    } catch (const Unavailable& e) {
      const auto wait = delay.next();
      log::warn("db.unavailable", {{"component", "maintainer"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
      next_heartbeat = now;  // prove liveness first thing once the database is back
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, stop, wait, [] { return false; });
      continue;
    } catch (const std::exception& e) {
      log::error("maintainer.error", {{"error", e.what()}});
    }
    const auto until = std::min({next_heartbeat, next_rescue, next_promote, next_prune});
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, stop, until, [&] { return stopping_ && !stopping_recorded_; });
  }
}

}  // namespace docket
