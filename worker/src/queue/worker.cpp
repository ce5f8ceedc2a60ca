// The worker keeps start, drain and stop; the producer (queue/producer.hpp) claims, the executor
// (queue/job_executor.hpp) runs what it claims, the completer (queue/completer.hpp) writes outcomes,
// and the maintainer (maintenance/) keeps the lease. What holds them together: the held set
// (queue/held.hpp) and the slots (queue/slots.hpp).
#include "docket/worker.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <thread>

#include "core/log.hpp"
#include "crawl/executor.hpp"
#include "db/pool.hpp"
#include "db/session.hpp"
#include "docket/errors.hpp"
#include "executors/executors.hpp"
#include "maintenance/maintainer.hpp"
#include "queue/completer.hpp"
#include "queue/finish.hpp"
#include "queue/held.hpp"
#include "queue/job_executor.hpp"
#include "queue/producer.hpp"
#include "queue/slots.hpp"

namespace docket {

namespace {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

struct Worker::Impl {
  Impl(std::string u, WorkerConfig c)
      : url(std::move(u)),
        cfg(std::move(c)),
        slots(cfg.concurrency, cfg.claim_batch, split_queues(cfg.queues, cfg.queue_concurrency).capped) {}

  void run();
  /// A run gave its slot back: wake the producer if that frees a claim's worth, and the drain
  /// when the last job ends.
  void freed(const SlotFreed& f);
  /// Hands a job back without counting its attempt: at shutdown, and for a job of a lost claim.
  void hand_back(const std::string& worker_id, std::int64_t id, int attempt, int max_retries, const std::string& kind,
                 const std::string& queue) {
    completer->push(hand_back_of(worker_id, id, attempt, max_retries, kind, queue));
  }
  void request_stop();
  bool stop_requested() {
    std::lock_guard lock(stop_mutex);
    return stop_flag;
  }

  std::string url;
  WorkerConfig cfg;
  Kinds kinds;
  std::vector<ScheduleSpec> schedules;  ///< the config's, applied at start

  Identity identity;
  HeldJobs held;
  Slots slots;
  std::atomic<bool> stopping{false};
  std::atomic<bool> started{false};

  std::shared_ptr<Metrics> metrics;
  std::shared_ptr<db::Pool> crawl_pool;     ///< one connection, only when the worker runs crawl kinds
  std::shared_ptr<db::Pool> callback_pool;  ///< arms and parks callback jobs, only with callback kinds
  // In the order they are made in run(): each later one calls into the earlier ones.
  std::unique_ptr<JobExecutor> executor;
  std::unique_ptr<Producer> producer;
  std::unique_ptr<Completer> completer;
  std::unique_ptr<Maintainer> maintainer;

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop_flag = false;
};

void Worker::Impl::request_stop() {
  {
    std::lock_guard lock(stop_mutex);
    stop_flag = true;
  }
  stop_cv.notify_all();
}

void Worker::Impl::freed(const SlotFreed& f) {
  if (f.look) {
    producer->look();
  } else if (f.wake) {
    producer->poke();
  }
  if (stopping.load() && f.running <= executor->abandoned()) {
    std::lock_guard lock(stop_mutex);
    stop_cv.notify_all();
  }
}

void Worker::Impl::run() {
  if (kinds.empty()) {
    throw ConfigError(
        "this worker has no kinds to run: register a handler with worker.handle(\"kind\", fn) or add "
        "[kinds.NAME] sections with command, url, crawl or builtin to the config");
  }
  std::vector<std::string> kind_names;
  std::vector<KindSettings> settings;
  for (const auto& [name, entry] : kinds) {
    kind_names.push_back(name);
    settings.push_back(kind_settings(name, entry.config, cfg));
  }
  db::WorkerRow row;
  row.host = host_name();
  row.pid = static_cast<int>(::getpid());
  row.name = cfg.name.empty() ? row.host + ":" + std::to_string(row.pid) : cfg.name;
  row.queues = cfg.queues;
  row.kinds = kind_names;
  row.concurrency = cfg.concurrency;
  row.lease_s = static_cast<double>(cfg.lease.count()) / 1000.0;

  JobExecutor::Hooks run_hooks;
  run_hooks.finish = [this](PendingFinish finish) { completer->push(std::move(finish)); };
  run_hooks.progress = [this](const std::string& worker, std::int64_t id, int attempt, std::string json) {
    completer->progress(worker, id, attempt, std::move(json));
  };
  run_hooks.freed = [this](const SlotFreed& f) { freed(f); };
  executor = std::make_unique<JobExecutor>(kinds, slots, held, metrics, std::move(run_hooks), cfg.stuck_after);

  Producer::Hooks claim_hooks;
  claim_hooks.deliver = [this](std::vector<db::ClaimedJob>& jobs, const std::string& worker) {
    executor->submit(jobs, worker);
  };
  claim_hooks.hand_back = [this](const db::ClaimedJob& job, const std::string& worker) {
    hand_back(worker, job.id, job.attempt, job.max_retries, job.kind, job.queue);
  };
  claim_hooks.cancel = [this](std::int64_t id) { executor->cancel(id); };
  producer = std::make_unique<Producer>(url, cfg, kind_names, identity, slots, held, std::move(claim_hooks));

  completer = std::make_unique<Completer>(
      url, [this](bool refilled) { producer->written(refilled); }, metrics, producer->refill());
  Maintainer::Hooks hooks;
  hooks.lease_lost = [this](const std::string& old_id) {
    // Those jobs are being rescued and re-run elsewhere; their writes would be refused anyway.
    for (const auto& rj : executor->stop_all(StopReason::lost, old_id)) {
      log::warn("job.lost", {{"job_id", rj->id},
                             {"kind", rj->kind},
                             {"queue", rj->queue},
                             {"attempt", rj->attempt},
                             {"worker", rj->worker},
                             {"reason", "lease lost"}});
    }
  };
  hooks.cancel_requested = [this](std::int64_t id) { executor->cancel(id); };
  hooks.schedule_enqueued = [this](double lateness_s) {
    if (metrics) metrics->schedule_enqueued(lateness_s);
  };
  maintainer = std::make_unique<Maintainer>(url, cfg, row, settings, schedules, identity, hooks);
  if (!maintainer->start([this] { return stop_requested(); })) {
    completer->drain(Millis(0));
    return;
  }

  producer->start();
  started = true;
  log::info("worker.started", {{"worker_id", identity.get()},
                               {"name", row.name},
                               {"queues", cfg.queues},
                               {"kinds", kind_names},
                               {"concurrency", cfg.concurrency},
                               {"lease_ms", cfg.lease.count()}});

  {
    std::unique_lock lock(stop_mutex);
    stop_cv.wait(lock, [&] { return stop_flag; });
  }
  // Drain: no more claims, running jobs get shutdown_timeout to finish, the rest go back.
  log::info("worker.stopping", {{"running", slots.running()}, {"shutdown_timeout_ms", cfg.shutdown_timeout.count()}});
  stopping = true;
  // Returns once a claim the completer began before has handed its jobs over: the waits below
  // count them.
  producer->stop();
  maintainer->mark_stopping();
  {
    std::unique_lock lock(stop_mutex);
    // Stuck runs whose outcome is written already hold slots until their handlers return: not
    // worth waiting for. (Looked at every 100 ms too: a run found stuck meanwhile wakes nobody.)
    const auto done = [&] { return slots.running() <= executor->abandoned(); };
    const auto deadline = std::chrono::steady_clock::now() + cfg.shutdown_timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      stop_cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)),
                         done);
    }
  }
  if (slots.running() > executor->abandoned()) {
    // Hand back what did not finish, without charging the attempt; stop the jobs (commands get
    // SIGTERM, then SIGKILL). Their late outcomes are dropped.
    for (const auto& rj : executor->stop_all(StopReason::shutdown)) {
      hand_back(rj->worker, rj->id, rj->attempt, rj->max_retries, rj->kind, rj->queue);
    }
    // Runs stopped earlier (their timeout, a cancel) whose handlers have not returned: their
    // outcome now, not a rescue after the lease.
    if (const auto n = executor->settle_stopped(); n > 0) log::warn("worker.stopped_runs_settled", {{"jobs", n}});
    // Commands got SIGTERM and exit with the process at the latest (their shims see it go).
    std::unique_lock lock(stop_mutex);
    stop_cv.wait_for(lock, std::chrono::seconds(1), [&] { return slots.running() <= executor->abandoned(); });
  }
  completer->drain(std::max<Millis>(Millis(5000), cfg.lease));
  maintainer->finish();
  const auto counters = completer->counters();
  log::info("worker.stopped", {{"worker_id", identity.get()},
                               {"claimed", slots.taken()},
                               {"claim_round_trips", producer->claims()},
                               {"finish_round_trips", counters.writes},
                               {"completed", counters.completed},
                               {"failed", counters.failed},
                               {"released", counters.released},
                               {"still_running", slots.running()}});
  // A C++ handler that ignores its stop token cannot be joined; its job is already handed back.
  executor->stop(std::chrono::seconds(1));
}

// --- public API ----------------------------------------------------------------------------

Worker::Worker(std::string database_url, WorkerConfig config)
    : impl_(std::make_unique<Impl>(std::move(database_url), std::move(config))) {}

Worker::~Worker() {
  if (impl_->started.load()) impl_->request_stop();
}

void Worker::handle(const std::string& kind, Handler handler, KindConfig options) {
  if (kind.empty()) throw ConfigError("a kind name must not be empty");
  if (!handler) throw ConfigError("handler for kind " + kind + " is empty");
  options.kind = kind;
  impl_->kinds[kind] = KindEntry{std::move(options), std::move(handler)};
}

void Worker::add_kind(const KindConfig& kind) {
  Handler handler;
  if (const auto* crawl = std::get_if<CrawlExecutor>(&kind.executor)) {
    if (!impl_->crawl_pool) impl_->crawl_pool = std::make_shared<db::Pool>(impl_->url, 1, "docket-crawl");
    handler = crawl_handler(*crawl, impl_->crawl_pool);
  } else if (const auto* http = std::get_if<HttpExecutor>(&kind.executor); http && http->callback) {
    check_callback_base_url(impl_->cfg.callback_base_url, "kinds." + kind.kind);
    if (!impl_->callback_pool) impl_->callback_pool = std::make_shared<db::Pool>(impl_->url, 2, "docket-callback");
    handler = http_handler(*http, kind.timeout,
                           CallbackContext{impl_->callback_pool, impl_->cfg.callback_base_url, kind.backoff});
  } else {
    handler = make_executor_handler(kind);
  }
  impl_->kinds[kind.kind] = KindEntry{kind, std::move(handler)};
}

void Worker::add_kinds(const Config& config) {
  for (const auto& [name, kind] : config.kinds) add_kind(kind);
  impl_->schedules.clear();
  for (const auto& [name, schedule] : config.schedules) impl_->schedules.push_back(schedule);
}

void Worker::set_metrics(std::shared_ptr<Metrics> metrics) {
  impl_->metrics = std::move(metrics);
}

void Worker::run() {
  impl_->run();
}

void Worker::run_until_signal() {
  install_stop_signals([this] { request_stop(); });
  run();
}

void Worker::request_stop() {
  impl_->request_stop();
}

bool Worker::started() const {
  return impl_->started.load();
}

std::string Worker::id() const {
  return impl_->identity.get();
}

WorkerStats Worker::stats() const {
  WorkerStats s;
  s.claimed = impl_->slots.taken();
  s.running = impl_->slots.running();
  if (impl_->completer) {
    const auto c = impl_->completer->counters();
    s.completed = c.completed;
    s.retried = c.retried;
    s.failed = c.failed;
    s.cancelled = c.cancelled;
    s.snoozed = c.snoozed;
    s.stale = c.stale;
    s.refill_claims = c.refills;
  }
  return s;
}

void install_stop_signals(std::function<void()> on_first) {
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, SIGTERM);
  ::sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::thread([set, on_first = std::move(on_first)] {
    int count = 0;
    for (;;) {
      int sig = 0;
      if (::sigwait(&set, &sig) != 0) continue;
      if (++count == 1) {
        log::info("signal.received", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                                      {"action", "draining; send again to exit at once"}});
        on_first();
      } else {
        log::warn("signal.received", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                                      {"action", "exiting now; leases cover running jobs"}});
        spdlog::default_logger()->flush();
        ::_exit(128 + sig);
      }
    }
  }).detach();
}

}  // namespace docket
