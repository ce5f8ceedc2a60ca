#include "queue/producer.hpp"

#include <poll.h>

#include <algorithm>
#include <random>

#include "core/log.hpp"
#include "core/reconnect.hpp"
#include "db/array.hpp"
#include "docket/errors.hpp"
#include "queue/claim_size.hpp"

namespace docket {

namespace {
using SteadyClock = std::chrono::steady_clock;
}  // namespace

Notice read_notice(const db::Notification& n, const std::set<std::string>& queues, bool on_claim_session) {
  Notice notice;
  if (n.channel == "docket_jobs") {
    notice.want = n.payload == "*" || queues.contains(n.payload);
  } else if (n.channel == "docket_cancel") {
    try {
      notice.cancel = std::stoll(n.payload);
    } catch (...) {
    }
  } else {
    // The claim session reconnected (docket_reconnect): a claim's answer may have been lost with
    // the old connection, so compare what runs under us before claiming again.
    notice.doubt = n.channel == "docket_reconnect" && on_claim_session;
    notice.want = true;  // limit changed, queue resumed, reconnected: look for work
    notice.open_path = true;
  }
  return notice;
}

SteadyClock::duration rate_wake_delay(double rate_wait_s, std::chrono::milliseconds poll_interval) {
  const auto wait = std::min<double>(std::max(rate_wait_s, 0.0), static_cast<double>(poll_interval.count()) / 1000.0);
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(wait) +
                                                           std::chrono::microseconds(500));
}

ClaimQueues claim_queues(const std::vector<std::string>& queues, const std::map<std::string, int>& caps) {
  const auto split = split_queues(queues, caps);
  ClaimQueues literals;
  literals.all = db::text_array(queues);
  literals.open = split.open.empty() ? "" : db::text_array(split.open);
  for (const auto& q : split.capped)
    literals.capped.push_back({q.name, db::text_array(std::vector<std::string>{q.name})});
  return literals;
}

std::vector<db::ClaimedJob> claim_across(const ClaimQueues& queues, const Slots& slots, int n, const ClaimFn& claim) {
  if (queues.capped.empty()) return claim(queues.all, n);
  std::vector<db::ClaimedJob> jobs;
  if (!queues.open.empty()) jobs = claim(queues.open, n);
  for (const auto& q : queues.capped) {
    const int want = std::min(n - static_cast<int>(jobs.size()), slots.free_in(q.name));
    if (want <= 0) continue;
    auto more = claim(q.literal, want);
    std::move(more.begin(), more.end(), std::back_inserter(jobs));
  }
  return jobs;
}

Producer::Producer(std::string url, const WorkerConfig& cfg, const std::vector<std::string>& kinds,
                   const Identity& identity, Slots& slots, HeldJobs& held, Hooks hooks)
    : url_(std::move(url)),
      queues_(cfg.queues),
      poll_interval_(cfg.poll_interval),
      listen_url_(cfg.listen_url),
      literals_(claim_queues(cfg.queues, cfg.queue_concurrency)),
      kinds_literal_(db::text_array(kinds)),
      identity_(identity),
      slots_(slots),
      held_(held),
      hooks_(std::move(hooks)) {}

Producer::~Producer() {
  stop();
}

void Producer::start() {
  thread_ = std::jthread([this](const std::stop_token& st) { loop(st); });
}

void Producer::stop() {
  stopping_ = true;
  wake_.signal();
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  // A claim the completer began before `stopping_` has handed its jobs over once this is ours.
  std::lock_guard claims_done(claim_mutex_);
}

Refill Producer::refill() {
  Refill refill;
  refill.queues_literal = literals_.open;
  refill.kinds_literal = kinds_literal_;
  refill.begin = [this](const std::string& worker) -> std::optional<Refill::Claim> {
    if (!quota_claims_.load() || stopping_.load() || literals_.open.empty()) return std::nullopt;
    std::unique_lock lock(claim_mutex_, std::try_to_lock);
    // The producer is claiming (it will see the freed slots), or we are stopping, or the
    // outcomes belong to an identity this process lost: complete only.
    if (!lock.owns_lock() || stopping_.load() || worker != identity_.get()) return std::nullopt;
    const int n = slots_.claimable();
    if (n <= 0) return std::nullopt;
    return Refill::Claim{std::move(lock), n};
  };
  refill.deliver = [this](std::vector<db::ClaimedJob>& jobs, const Refill::Claim& claim, const std::string& worker) {
    claims_.fetch_add(1);
    const bool full = static_cast<int>(jobs.size()) == claim.limit;
    hooks_.deliver(jobs, worker);
    if (full || rate_limited_.load()) look();  // there may be more: let the producer look
  };
  refill.in_doubt = [this] {
    held_.doubt();
    wake_.signal();
  };
  refill.settled = [this](const std::vector<std::int64_t>& ids) { held_.settle(ids); };
  return refill;
}

void Producer::written(bool refilled) {
  if (refilled) return;  // the completions already claimed into the freed slots
  look();
}

void Producer::reconcile(db::Session& session, const std::string& worker) {
  std::vector<db::ClaimedJob> lost;
  try {
    lost = held_.unheld([&] { return session.running_jobs(worker); });
  } catch (const Unavailable&) {
    throw;  // the connection: logged as db.unavailable, the next claim reconciles again
  } catch (const std::exception& e) {
    // No claim until the comparison is made (a lost claim's jobs would stay stranded): say so,
    // apart from an ordinary failed claim, since this worker now claims nothing until it is fixed.
    log::error("reconcile.failed", {{"worker", worker},
                                    {"error", e.what()},
                                    {"action", "no claims until the jobs running under this worker are read"}});
    throw;
  }
  for (const auto& job : lost) {
    // Never run here: handed back without counting the attempt (the write is fenced, so a job
    // whose outcome was written meanwhile is left alone).
    log::warn("job.claim_lost", {{"job_id", job.id},
                                 {"kind", job.kind},
                                 {"queue", job.queue},
                                 {"attempt", job.attempt},
                                 {"worker", worker},
                                 {"reason", "claimed by a claim whose answer was lost; handed back"}});
    hooks_.hand_back(job, worker);
  }
}

void Producer::loop(const std::stop_token& stop) {
  db::Session session(url_, "docket-producer", db::Session::Plans::pinned);
  // LISTEN needs a session of its own: the claim session's, or through a transaction pooler the
  // listen URL's (around the pooler); without one the producer polls.
  std::unique_ptr<db::Session> own_listener;
  db::Session* listener = &session;
  if (session.pooled()) {
    listener = nullptr;
    if (!listen_url_.empty()) {
      own_listener = std::make_unique<db::Session>(listen_url_, "docket-listener", db::Session::Plans::custom,
                                                   db::Session::Route::direct);
      listener = own_listener.get();
    }
    log::info("worker.pooled",
              {{"listen", listener ? "listen_url" : "none: polling"}, {"poll_interval_ms", poll_interval_.count()}});
  }
  if (listener) {
    for (const char* channel : {"docket_jobs", "docket_cancel", "docket_control"}) listener->listen(channel);
  }
  ReconnectDelay listener_delay;
  auto listener_retry_at = SteadyClock::time_point::min();
  const std::set<std::string> queue_set(queues_.begin(), queues_.end());
  std::mt19937_64 prng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  auto next_poll_after = [&](SteadyClock::time_point now) {
    return now + std::chrono::duration_cast<SteadyClock::duration>(poll_interval_ * jitter(prng));
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
  bool any_quota = true;   // one of our limited kinds has a quota (asked when the path turns quota)
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
      const Notice notice = read_notice(n, queue_set, listener == &session);
      if (notice.cancel) hooks_.cancel(*notice.cancel);
      if (notice.doubt) held_.doubt();
      if (notice.want) want = true;
      if (notice.open_path) claim_path = db::Session::ClaimPath::open;
    }
  };

  while (!stop.stop_requested() && !stopping_.load()) {
    const auto now = SteadyClock::now();
    if (now >= next_poll) {
      want = true;
      claim_path = db::Session::ClaimPath::open;  // a quota may have gone (or a notice been missed)
    }
    if (now >= rate_wake) {
      want = true;
      rate_wake = SteadyClock::time_point::max();
    }
    const int running_now = slots_.running();
    const int capacity = slots_.concurrency() - running_now;
    const auto decision =
        decide_claim({slots_.concurrency(), slots_.claim_batch(), running_now, last_full,
                      deferred_since != SteadyClock::time_point::max() && now - deferred_since >= kClaimWindow});
    if (want && decision.defer && deferred_since == SteadyClock::time_point::max()) deferred_since = now;
    if (want && decision.jobs > 0 && now >= retry_at) {
      deferred_since = SteadyClock::time_point::max();
      try {
        std::unique_lock claim_lock(claim_mutex_);
        // Counted again under the lock: the completer may have claimed into the free slots.
        if (held_.in_doubt()) reconcile(session, identity_.get());
        const int n = slots_.claimable();
        if (n <= 0) continue;
        const std::string worker_id = identity_.get();
        std::optional<double> rate_wait_s;
        const auto path_before = claim_path;
        auto jobs = claim_across(literals_, slots_, n, [&](const std::string& queues, int limit) {
          return session.claim(worker_id, queues, kinds_literal_, limit, claim_path, &rate_wait_s);
        });
        claims_.fetch_add(1);
        const bool quota_path = claim_path == db::Session::ClaimPath::quota;
        // The limits may have changed whenever the open path found a limited kind again (at each
        // poll, and after a control notice): ask then whether one of them is a quota.
        if (quota_path && path_before == db::Session::ClaimPath::open) {
          try {
            any_quota = session.any_quota(kinds_literal_);
          } catch (const std::exception& e) {
            log::warn("claim.quota_lookup_failed", {{"error", e.what()}});  // keeps the last answer
          }
        }
        quota_claims_ = quota_path && any_quota;
        last_full = static_cast<int>(jobs.size()) == n;
        want = last_full;  // a full batch: there may be more
        next_poll = next_poll_after(SteadyClock::now());
        if (rate_wait_s) {
          rate_limited_ = true;
          rate_wake = SteadyClock::now() + rate_wake_delay(*rate_wait_s, poll_interval_);
        }
        hooks_.deliver(jobs, worker_id);
        claim_lock.unlock();
        handle_notifications();
        if (delay.failing()) log::info("db.reconnected", {{"component", "producer"}});
        delay.reset();
      } catch (const Unavailable& e) {
        held_.doubt();  // the claim may have committed with its answer lost
        const auto wait = delay.next();
        log::warn("db.unavailable", {{"component", "producer"}, {"error", e.what()}, {"retry_in_ms", wait.count()}});
        retry_at = SteadyClock::now() + wait;
      } catch (const std::exception& e) {
        log::error("claim.failed", {{"error", e.what()}});
        retry_at = SteadyClock::now() + poll_interval_;
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
        if (session.listen_for_jobs(literals_.all, kinds_literal_)) {
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
        if (session.listen_for_jobs(literals_.all, kinds_literal_)) want = true;
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
    pollfd fds[2] = {{wake_.fd(), POLLIN, 0}, {listener ? listener->socket() : -1, POLLIN, 0}};
    const nfds_t nfds = fds[1].fd >= 0 ? 2 : 1;
    ::poll(fds, nfds, timeout_ms);
    if (fds[0].revents & POLLIN) {
      wake_.drain();
      if (flushed_.exchange(false)) want = true;
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

}  // namespace docket
