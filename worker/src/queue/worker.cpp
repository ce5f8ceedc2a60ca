#include "docket/worker.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/log.hpp"
#include "core/reconnect.hpp"
#include "core/text.hpp"
#include "core/wake.hpp"
#include "crawl/executor.hpp"
#include "db/array.hpp"
#include "db/pool.hpp"
#include "db/session.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "executors/executors.hpp"
#include "maintenance/maintainer.hpp"
#include "queue/claim_size.hpp"
#include "queue/completer.hpp"
#include "queue/finish.hpp"
#include "queue/pool.hpp"
#include "queue/running.hpp"

namespace docket {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

struct KindEntry {
  KindConfig config;
  Handler handler;
};

struct Worker::Impl {
  Impl(std::string u, WorkerConfig c) : url(std::move(u)), cfg(std::move(c)) {}

  void run();
  void produce(const std::stop_token& stop);
  void dispatch(std::vector<db::ClaimedJob>& jobs, const std::string& worker_id);
  void execute(const std::shared_ptr<RunningJob>& rj, const db::ClaimedJob& claimed);
  db::FinishItem finish_item(const std::shared_ptr<RunningJob>& rj, const KindEntry& entry, const Outcome& outcome);
  void request_stop();
  bool stop_requested() {
    std::lock_guard lock(stop_mutex);
    return stop_flag;
  }

  std::string url;
  WorkerConfig cfg;
  std::map<std::string, KindEntry> kinds;
  std::vector<ScheduleSpec> schedules;  ///< the config's, applied at start

  Identity identity;
  Running running;
  Wake wake;
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> started{false};
  std::atomic<bool> flushed{false};
  /// Held while claiming and dispatching (producer or completer), so two claims never count the
  /// same free slots.
  std::mutex claim_mutex;
  /// Jobs this process holds: claimed here and not yet settled (running, or an outcome not yet
  /// written). Only what is known to be written leaves it (Refill::settled), so a job the
  /// database has running under this worker that is not here was claimed by a claim whose answer
  /// never arrived (the connection broke around its commit): reconcile hands it back.
  /// Counted per run, not a set: a job released or retried at once can be claimed again here (by
  /// the producer, or by the claim in the same finish_and_claim) before its first run's outcome
  /// is settled, and that settling must not make the second run look unheld.
  std::mutex held_mutex;
  std::unordered_map<std::int64_t, int> held;
  void hold(std::int64_t id) {
    std::lock_guard lock(held_mutex);
    ++held[id];
  }
  void release_held(const std::vector<std::int64_t>& ids) {
    std::lock_guard lock(held_mutex);
    for (const auto id : ids) {
      if (auto it = held.find(id); it != held.end() && --it->second <= 0) held.erase(it);
    }
  }
  /// A claim (the producer's, or one carried by a completion) lost its connection: reconcile
  /// before the next claim.
  std::atomic<bool> claim_in_doubt{false};
  /// Hands back the jobs running under `worker_id` in the database that this process does not
  /// hold. Called with claim_mutex held, so no claim adds to `held` meanwhile.
  void reconcile(db::Session& session, const std::string& worker_id);
  /// Hands a job back without counting its attempt (the fenced `release` outcome): at shutdown,
  /// and for a job of a lost claim.
  void hand_back(const std::string& worker_id, std::int64_t id, int attempt, int max_retries, const std::string& kind,
                 const std::string& queue) {
    db::FinishItem item;
    item.id = id;
    item.attempt = attempt;
    item.max_retries = max_retries;
    item.outcome = db::FinishOutcome::release;
    completer->push({worker_id, item, kind, queue, 0});
  }
  /// The producer's last claim went by the quota path: completions then claim their replacements.
  std::atomic<bool> quota_claims{false};
  /// A claim met an empty rate-limit bucket: a short refill by the completer then wakes the
  /// producer, whose claim learns when the next token comes (docket.rate_wait).
  std::atomic<bool> rate_limited{false};
  std::string queues_literal;  ///< what this worker claims from, as array literals
  std::string kinds_literal;
  /// A queue with its own concurrency (worker.queue_concurrency): claimed on its own, at most
  /// its free slots at a time.
  struct CappedQueue {
    std::string name;
    std::string literal;
    int cap = 0;
    std::atomic<int> running{0};
  };
  std::vector<std::unique_ptr<CappedQueue>> capped;
  std::string open_queues_literal;  ///< the queues without a cap ("" when every queue has one)
  CappedQueue* capped_queue(const std::string& name) {
    for (auto& q : capped) {
      if (q->name == name) return q.get();
    }
    return nullptr;
  }
  /// One claim of up to `n` jobs: the queues without a cap together, then each capped queue for
  /// at most its free slots.
  std::vector<db::ClaimedJob> claim_jobs(db::Session& session, const std::string& worker_id, int n,
                                         db::Session::ClaimPath& path, std::optional<double>* rate_wait_s);
  /// How many jobs a claim may take now: the free slots, at most a batch.
  int claimable() const { return docket::claimable(cfg.concurrency, cfg.claim_batch, in_flight.load()); }
  std::atomic<std::uint64_t> claimed{0};
  std::atomic<std::uint64_t> claims{0};  ///< claim round trips

  std::shared_ptr<Metrics> metrics;
  std::shared_ptr<db::Pool> crawl_pool;     ///< one connection, only when the worker runs crawl kinds
  std::shared_ptr<db::Pool> callback_pool;  ///< arms and parks callback jobs, only with callback kinds
  std::unique_ptr<Completer> completer;
  std::unique_ptr<Maintainer> maintainer;
  std::unique_ptr<RunPool> pool;
  int batch_threshold = 1;  ///< free slots worth a claim round trip while jobs still run

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop_flag = false;

  std::mutex rng_mutex;
  std::mt19937_64 rng{std::random_device{}()};
};

void Worker::Impl::request_stop() {
  {
    std::lock_guard lock(stop_mutex);
    stop_flag = true;
  }
  stop_cv.notify_all();
  wake.signal();
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

  batch_threshold = docket::batch_threshold(cfg.concurrency, cfg.claim_batch);
  queues_literal = db::text_array(cfg.queues);
  kinds_literal = db::text_array(kind_names);
  std::vector<std::string> open_queues;
  for (const auto& q : cfg.queues) {
    const auto it = cfg.queue_concurrency.find(q);
    if (it == cfg.queue_concurrency.end()) {
      open_queues.push_back(q);
      continue;
    }
    auto c = std::make_unique<CappedQueue>();
    c->name = q;
    c->literal = db::text_array(std::vector<std::string>{q});
    c->cap = it->second;
    capped.push_back(std::move(c));
  }
  open_queues_literal = open_queues.empty() ? "" : db::text_array(open_queues);
  Refill refill;
  // The completer's claims into freed slots take only the queues without a cap (the producer
  // claims the capped ones, counting their slots).
  refill.queues_literal = open_queues_literal;
  refill.kinds_literal = kinds_literal;
  refill.begin = [this](const std::string& worker) -> std::optional<Refill::Claim> {
    if (!quota_claims.load() || stopping.load() || open_queues_literal.empty()) return std::nullopt;
    std::unique_lock lock(claim_mutex, std::try_to_lock);
    // The producer is claiming (it will see the freed slots), or we are stopping, or the
    // outcomes belong to an identity this process lost: complete only.
    if (!lock.owns_lock() || stopping.load() || worker != identity.get()) return std::nullopt;
    const int n = claimable();
    if (n <= 0) return std::nullopt;
    return Refill::Claim{std::move(lock), n};
  };
  refill.deliver = [this](std::vector<db::ClaimedJob>& jobs, const Refill::Claim& claim, const std::string& worker) {
    claims.fetch_add(1);
    const bool full = static_cast<int>(jobs.size()) == claim.limit;
    dispatch(jobs, worker);
    if (full || rate_limited.load()) {
      flushed = true;  // there may be more: let the producer look
      wake.signal();
    }
  };
  refill.in_doubt = [this] {
    claim_in_doubt = true;
    wake.signal();
  };
  refill.settled = [this](const std::vector<std::int64_t>& ids) { release_held(ids); };
  completer = std::make_unique<Completer>(
      url,
      [this](bool refilled) {
        if (refilled) return;  // the completions already claimed into the freed slots
        flushed = true;
        wake.signal();
      },
      metrics, std::move(refill));
  pool = std::make_unique<RunPool>(cfg.concurrency);
  Maintainer::Hooks hooks;
  hooks.lease_lost = [this](const std::string& old_id) {
    // Those jobs are being rescued and re-run elsewhere; their writes would be refused anyway.
    for (const auto& rj : running.stop_all(StopReason::lost, old_id)) {
      log::warn("job.lost", {{"job_id", rj->id},
                             {"kind", rj->kind},
                             {"queue", rj->queue},
                             {"attempt", rj->attempt},
                             {"worker", rj->worker},
                             {"reason", "lease lost"}});
    }
  };
  hooks.cancel_requested = [this](std::int64_t id) { running.stop(id, StopReason::cancel); };
  hooks.schedule_enqueued = [this](double lateness_s) {
    if (metrics) metrics->schedule_enqueued(lateness_s);
  };
  maintainer = std::make_unique<Maintainer>(url, cfg, row, settings, schedules, identity, hooks);
  if (!maintainer->start([this] { return stop_requested(); })) {
    completer->drain(Millis(0));
    return;
  }

  std::jthread producer([this](const std::stop_token& st) { produce(st); });
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
  log::info("worker.stopping", {{"running", in_flight.load()}, {"shutdown_timeout_ms", cfg.shutdown_timeout.count()}});
  stopping = true;
  wake.signal();
  producer.request_stop();
  producer.join();
  {
    // A claim the completer began before `stopping` has dispatched its jobs once this is ours:
    // the waits below count them.
    std::lock_guard claims_done(claim_mutex);
  }
  maintainer->mark_stopping();
  {
    std::unique_lock lock(stop_mutex);
    stop_cv.wait_for(lock, cfg.shutdown_timeout, [&] { return in_flight.load() == 0; });
  }
  if (in_flight.load() > 0) {
    // Hand back what did not finish, without charging the attempt; stop the jobs (commands get
    // SIGTERM, then SIGKILL). Their late outcomes are dropped.
    for (const auto& rj : running.stop_all(StopReason::shutdown)) {
      hand_back(rj->worker, rj->id, rj->attempt, rj->max_retries, rj->kind, rj->queue);
    }
    // Commands got SIGTERM and exit with the process at the latest (their shims see it go).
    std::unique_lock lock(stop_mutex);
    stop_cv.wait_for(lock, std::chrono::seconds(1), [&] { return in_flight.load() == 0; });
  }
  completer->drain(std::max<Millis>(Millis(5000), cfg.lease));
  maintainer->finish();
  const auto counters = completer->counters();
  log::info("worker.stopped", {{"worker_id", identity.get()},
                               {"claimed", claimed.load()},
                               {"claim_round_trips", claims.load()},
                               {"finish_round_trips", counters.writes},
                               {"completed", counters.completed},
                               {"failed", counters.failed},
                               {"released", counters.released},
                               {"still_running", in_flight.load()}});
  pool->stop();
  if (!pool->join_for(std::chrono::seconds(1))) {
    // A C++ handler that ignores its stop token cannot be joined; its job is already handed back.
    (void)pool.release();
  }
}

void Worker::Impl::produce(const std::stop_token& stop) {
  db::Session session(url, "docket-producer", db::Session::Plans::pinned);
  // LISTEN needs a session of its own: the claim session's, or through a transaction pooler the
  // listen URL's (around the pooler); without one the producer polls.
  std::unique_ptr<db::Session> own_listener;
  db::Session* listener = &session;
  if (session.pooled()) {
    listener = nullptr;
    if (!cfg.listen_url.empty()) {
      own_listener = std::make_unique<db::Session>(cfg.listen_url, "docket-listener", db::Session::Plans::custom,
                                                   db::Session::Route::direct);
      listener = own_listener.get();
    }
    log::info("worker.pooled",
              {{"listen", listener ? "listen_url" : "none: polling"}, {"poll_interval_ms", cfg.poll_interval.count()}});
  }
  if (listener) {
    for (const char* channel : {"docket_jobs", "docket_cancel", "docket_control"}) listener->listen(channel);
  }
  ReconnectDelay listener_delay;
  auto listener_retry_at = SteadyClock::time_point::min();
  const std::set<std::string> queue_set(cfg.queues.begin(), cfg.queues.end());
  std::mt19937_64 prng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  auto next_poll_after = [&](SteadyClock::time_point now) {
    return now + std::chrono::duration_cast<SteadyClock::duration>(cfg.poll_interval * jitter(prng));
  };

  ReconnectDelay delay;
  bool want = true;
  bool last_full = false;
  // docket.claim directly once a claim learned that a kind has a quota; back to the one-statement
  // claim when limits change and at every poll.
  auto claim_path = db::Session::ClaimPath::open;
  auto next_poll = SteadyClock::now();
  auto retry_at = SteadyClock::time_point::min();
  // When an empty rate-limit bucket has its next token: claim again then (on the same path).
  auto rate_wake = SteadyClock::time_point::max();
  // Claim in batches (the rules: decide_claim in queue/claim_size.hpp): while a backlog drains,
  // wait at most kClaimWindow for half a batch of free slots.
  constexpr auto kClaimWindow = std::chrono::milliseconds(5);
  auto deferred_since = SteadyClock::time_point::max();
  bool listening = false;  // our queues are marked in docket.queue_listeners (see below)
  // An enqueue checks for a mark in its trigger and commits later (a few statements later, through
  // a pooler a few round trips): one that checked just before our mark was visible and commits
  // after we looked for jobs would wait for the poll. Looking again this much later closes all but
  // the enqueues whose commit comes later still; the poll (poll_interval) finds those.
  constexpr auto kMarkRecheck = std::chrono::milliseconds(25);
  auto recheck_at = SteadyClock::time_point::max();

  auto handle_notifications = [&]() {
    if (!listener) return;
    if (own_listener && !own_listener->connected()) {
      // The claim session reconnects through its claims; a listener of its own here, with backoff.
      if (SteadyClock::now() < listener_retry_at) return;
      try {
        own_listener->connect();
        listener_delay.reset();
      } catch (const Error& e) {
        const auto wait = listener_delay.next();
        log::warn("db.unavailable", {{"component", "listener"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
        listener_retry_at = SteadyClock::now() + wait;
        return;
      }
    }
    for (const auto& n : listener->take_notifications()) {
      listening = false;  // the notifying enqueue cleared the mark (or a reconnect may have lost one)
      if (n.channel == "docket_jobs") {
        if (n.payload == "*" || queue_set.contains(n.payload)) want = true;
      } else if (n.channel == "docket_cancel") {
        try {
          running.stop(std::stoll(n.payload), StopReason::cancel);
        } catch (...) {
        }
      } else {
        // The claim session reconnected (docket_reconnect): a claim's answer may have been lost
        // with the old connection, so compare what runs under us before claiming again.
        if (n.channel == "docket_reconnect" && listener == &session) claim_in_doubt = true;
        want = true;  // limit changed, queue resumed, reconnected: look for work
        claim_path = db::Session::ClaimPath::open;
      }
    }
  };

  while (!stop.stop_requested() && !stopping.load() && !stop_requested()) {
    const auto now = SteadyClock::now();
    if (now >= next_poll) {
      want = true;
      claim_path = db::Session::ClaimPath::open;  // a quota may have gone (or a notice been missed)
    }
    if (now >= rate_wake) {
      want = true;
      rate_wake = SteadyClock::time_point::max();
    }
    const int running_now = in_flight.load();
    const int capacity = cfg.concurrency - running_now;
    const auto decision =
        decide_claim({cfg.concurrency, cfg.claim_batch, running_now, last_full,
                      deferred_since != SteadyClock::time_point::max() && now - deferred_since >= kClaimWindow});
    if (want && decision.defer && deferred_since == SteadyClock::time_point::max()) deferred_since = now;
    if (want && decision.jobs > 0 && now >= retry_at) {
      deferred_since = SteadyClock::time_point::max();
      try {
        std::unique_lock claim_lock(claim_mutex);
        // Counted again under the lock: the completer may have claimed into the free slots.
        if (claim_in_doubt.load()) reconcile(session, identity.get());
        const int n = claimable();
        if (n <= 0) continue;
        const std::string worker_id = identity.get();
        std::optional<double> rate_wait_s;
        auto jobs = claim_jobs(session, worker_id, n, claim_path, &rate_wait_s);
        claims.fetch_add(1);
        quota_claims = claim_path == db::Session::ClaimPath::quota;
        last_full = static_cast<int>(jobs.size()) == n;
        want = last_full;  // a full batch: there may be more
        next_poll = next_poll_after(SteadyClock::now());
        if (rate_wait_s) {
          rate_limited = true;
          // At most the poll interval: a rate raised or removed meanwhile is seen by then anyway.
          const auto wait = std::min<double>(std::max(*rate_wait_s, 0.0), cfg.poll_interval.count() / 1000.0);
          rate_wake = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                               std::chrono::duration<double>(wait) + std::chrono::microseconds(500));
        }
        dispatch(jobs, worker_id);
        claim_lock.unlock();
        handle_notifications();
        if (delay.failing()) log::info("db.reconnected", {{"component", "producer"}});
        delay.reset();
      } catch (const Unavailable& e) {
        claim_in_doubt = true;  // the claim may have committed with its answer lost
        const auto wait = delay.next();
        log::warn("db.unavailable", {{"component", "producer"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
        retry_at = SteadyClock::now() + wait;
      } catch (const std::exception& e) {
        log::error("claim.failed", {{"error", e.what()}});
        retry_at = SteadyClock::now() + cfg.poll_interval;
        want = false;
      }
      continue;
    }

    // About to sleep with free slots: since migration 0021 an enqueue notifies only queues a
    // worker marked as slept on. Mark ours once per idle period (any notice, which also means
    // the mark was cleared or may have been lost, asks for it again); a job that slipped in
    // between the last claim and the mark is claimed at once.
    if (listener && !listening && capacity > 0 && !want && now >= retry_at) {
      try {
        listening = true;
        if (session.listen_for_jobs(queues_literal, kinds_literal)) {
          want = true;
        } else {
          recheck_at = SteadyClock::now() + kMarkRecheck;
        }
      } catch (const Unavailable& e) {
        listening = false;
        const auto wait = delay.next();
        log::warn("db.unavailable", {{"component", "producer"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
        retry_at = SteadyClock::now() + wait;
      } catch (const std::exception& e) {
        log::error("listen.failed", {{"error", e.what()}});  // the poll still finds the jobs
      }
      continue;
    }

    // Once more a little after marking: an enqueue that looked for a mark before ours was visible
    // and committed after our look is seen now (see kMarkRecheck).
    if (listening && !want && capacity > 0 && now >= recheck_at) {
      recheck_at = SteadyClock::time_point::max();
      try {
        if (session.listen_for_jobs(queues_literal, kinds_literal)) want = true;
      } catch (const std::exception& e) {
        log::warn("listen.recheck_failed", {{"error", e.what()}});  // the poll still finds the jobs
      }
      continue;
    }

    // Sleep until a notification, a wake-up (capacity freed, outcomes written, stop) or the poll.
    int timeout_ms = -1;
    if (capacity > 0) {
      auto until = std::max(want ? retry_at : std::min({next_poll, rate_wake, recheck_at}), now);
      if (want && deferred_since != SteadyClock::time_point::max())
        until = std::max(until, deferred_since + kClaimWindow);
      timeout_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) + 1;
    }
    pollfd fds[2] = {{wake.fd(), POLLIN, 0}, {listener ? listener->socket() : -1, POLLIN, 0}};
    const nfds_t nfds = fds[1].fd >= 0 ? 2 : 1;
    ::poll(fds, nfds, timeout_ms);
    if (fds[0].revents & POLLIN) {
      wake.drain();
      if (flushed.exchange(false)) want = true;
    }
    if (nfds == 2 && fds[1].revents) {
      try {
        handle_notifications();
      } catch (const Unavailable& e) {
        want = true;  // reconnect (and re-LISTEN) through the next claim
      }
    }
  }
}

std::vector<db::ClaimedJob> Worker::Impl::claim_jobs(db::Session& session, const std::string& worker_id, int n,
                                                     db::Session::ClaimPath& path, std::optional<double>* rate_wait_s) {
  if (capped.empty()) return session.claim(worker_id, queues_literal, kinds_literal, n, path, rate_wait_s);
  std::vector<db::ClaimedJob> jobs;
  if (!open_queues_literal.empty())
    jobs = session.claim(worker_id, open_queues_literal, kinds_literal, n, path, rate_wait_s);
  for (auto& q : capped) {
    const int want = std::min(n - static_cast<int>(jobs.size()), q->cap - q->running.load());
    if (want <= 0) continue;
    auto more = session.claim(worker_id, q->literal, kinds_literal, want, path, rate_wait_s);
    std::move(more.begin(), more.end(), std::back_inserter(jobs));
  }
  return jobs;
}

void Worker::Impl::reconcile(db::Session& session, const std::string& worker_id) {
  claim_in_doubt = false;  // before the read: a claim lost after it asks again
  auto lost = session.running_jobs(worker_id);
  {
    std::lock_guard lock(held_mutex);
    std::erase_if(lost, [&](const db::ClaimedJob& job) { return held.contains(job.id); });
    // Held until the hand-back is settled (its settling releases this count).
    for (const auto& job : lost) ++held[job.id];
  }
  for (const auto& job : lost) {
    // Never run here: handed back without counting the attempt (the write is fenced, so a job
    // whose outcome was written meanwhile is left alone).
    log::warn("job.claim_lost", {{"job_id", job.id},
                                 {"kind", job.kind},
                                 {"queue", job.queue},
                                 {"attempt", job.attempt},
                                 {"worker", worker_id},
                                 {"reason", "claimed by a claim whose answer was lost; handed back"}});
    hand_back(worker_id, job.id, job.attempt, job.max_retries, job.kind, job.queue);
  }
}

void Worker::Impl::dispatch(std::vector<db::ClaimedJob>& jobs, const std::string& worker_id) {
  const auto now = SteadyClock::now();
  for (auto& job : jobs) {
    const auto& entry = kinds.at(job.kind);
    auto rj = std::make_shared<RunningJob>();
    rj->id = job.id;
    rj->attempt = job.attempt;
    rj->max_retries = job.max_retries;
    rj->kind = job.kind;
    rj->queue = job.queue;
    rj->worker = worker_id;
    rj->started = now;
    rj->deadline = now + job.timeout.value_or(entry.config.timeout);
    hold(job.id);
    running.add(rj);
    in_flight.fetch_add(1);
    if (auto* q = capped_queue(job.queue)) q->running.fetch_add(1);
    claimed.fetch_add(1);
    if (metrics) metrics->job_claimed(job.kind, job.queue, job.queue_latency_s);
    pool->post([this, rj, job = std::move(job)] { execute(rj, job); });
  }
}

void Worker::Impl::execute(const std::shared_ptr<RunningJob>& rj, const db::ClaimedJob& claimed_job) {
  const KindEntry& entry = kinds.at(claimed_job.kind);
  Job job;
  job.id = claimed_job.id;
  job.kind = claimed_job.kind;
  job.queue = claimed_job.queue;
  job.attempt = claimed_job.attempt;
  job.max_retries = claimed_job.max_retries;
  job.priority = claimed_job.priority;
  job.unique_key = claimed_job.unique_key;
  job.timeout = claimed_job.timeout.value_or(entry.config.timeout);
  job.worker_id = rj->worker;
  const Millis timeout = job.timeout;
  log::debug("job.started", {{"job_id", job.id},
                             {"kind", job.kind},
                             {"queue", job.queue},
                             {"attempt", job.attempt},
                             {"worker", job.worker_id},
                             {"args", claimed_job.args}});

  Outcome outcome;
  // Args were written by anyone with SQL: parsed with the bounded parser, and refused args fail
  // the job for good (a retry would read the same row), not the worker.
  std::string args_error;
  auto args = try_parse_json(claimed_job.args, "args", &args_error);
  if (!args) {
    outcome = Outcome::fail(args_error);
  } else {
    job.args = std::move(*args);
    const std::string worker_id = rj->worker;
    JobContext ctx(std::move(job), rj->stop.get_token(), [this, rj](const Json& value) {
      completer->progress(rj->worker, rj->id, rj->attempt,
                          clean_json_text(value.dump(-1, ' ', false, Json::error_handler_t::replace)));
    });
    try {
      outcome = entry.handler(ctx);
    } catch (const std::exception& e) {
      outcome = Outcome::retry(e.what());
    } catch (...) {
      outcome = Outcome::retry("handler threw a non-std::exception");
    }
  }
  const double duration_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - rj->started).count();

  // Remove first, then read why it stopped: Running::stop_all marks jobs under the same lock.
  running.remove(rj->id);
  const StopReason reason = rj->reason.load();
  if (outcome.kind() == Outcome::Kind::callback) {
    // Parked by its handler (docket.callback_wait): the token's holder or the callback deadline
    // ends it, whatever happens to this run or this process now.
    log::info("job.awaiting_callback",
              {{"job_id", rj->id}, {"kind", rj->kind}, {"queue", rj->queue}, {"attempt", rj->attempt}});
    release_held({rj->id});
  } else if (reason == StopReason::shutdown || reason == StopReason::lost) {
    log::debug("job.outcome_dropped",
               {{"job_id", rj->id},
                {"kind", rj->kind},
                {"queue", rj->queue},
                {"attempt", rj->attempt},
                {"worker", rj->worker},
                {"reason", reason == StopReason::lost ? "lease lost" : "handed back at shutdown"}});
    if (reason == StopReason::lost) release_held({rj->id});  // at shutdown the hand-back settles it
  } else {
    if (reason == StopReason::timeout && outcome.kind() != Outcome::Kind::complete) {
      outcome = Outcome::retry("timed out after " + format_duration(timeout));
    } else if (reason == StopReason::cancel && outcome.kind() != Outcome::Kind::complete) {
      outcome = Outcome::cancel("cancelled on request while running");
    }
    completer->push({rj->worker, finish_item(rj, entry, outcome), rj->kind, rj->queue, duration_ms});
  }
  // Wake the producer only when the free slots reach a claim's worth (or the last job ends),
  // not once per job.
  const int running_after = in_flight.fetch_sub(1) - 1;
  if (auto* q = capped_queue(claimed_job.queue); q && q->running.fetch_sub(1) == q->cap) {
    flushed = true;  // the queue was full: a slot of it is free now
    wake.signal();
  } else if (running_after == 0 || cfg.concurrency - running_after == batch_threshold) {
    wake.signal();
  }
  if (running_after == 0 && stopping.load()) {
    std::lock_guard lock(stop_mutex);
    stop_cv.notify_all();
  }
}

db::FinishItem Worker::Impl::finish_item(const std::shared_ptr<RunningJob>& rj, const KindEntry& entry,
                                         const Outcome& outcome) {
  ResultLimit limit{entry.config.max_result_bytes, [&](std::size_t bytes, std::size_t max) {
                      log::warn("job.result_dropped", {{"job_id", rj->id},
                                                       {"kind", rj->kind},
                                                       {"queue", rj->queue},
                                                       {"attempt", rj->attempt},
                                                       {"bytes", bytes},
                                                       {"max_result_bytes", max}});
                    }};
  return finish_item_of(
      rj->id, rj->attempt, rj->max_retries, outcome,
      [&]() -> std::optional<Millis> {
        std::lock_guard lock(rng_mutex);
        return entry.config.backoff.wait_after(rj->attempt, rng);
      },
      limit);
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
  s.claimed = impl_->claimed.load();
  s.running = impl_->in_flight.load();
  if (impl_->completer) {
    const auto c = impl_->completer->counters();
    s.completed = c.completed;
    s.retried = c.retried;
    s.failed = c.failed;
    s.cancelled = c.cancelled;
    s.snoozed = c.snoozed;
    s.stale = c.stale;
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
