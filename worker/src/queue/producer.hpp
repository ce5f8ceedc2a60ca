#pragma once
// The producer: decides when and how many jobs to claim, from which queues and kinds, and hands
// what it claims to the executor. It owns the claim session (with LISTEN on it, or on a listen_url
// around a transaction pooler), the claim lock shared with the completer's claims into freed slots
// (Refill), the claim path (one statement, or docket.claim once a kind has a quota), the capped
// queues' claims and the reconcile of lost claims (HeldJobs). How many to claim is
// queue/claim_size.hpp; what a notification asks (read_notice), how a claim spreads over capped
// queues (claim_across) and when an empty rate bucket is looked at again (rate_wake_delay) are
// pure functions here, unit-tested in tests/unit/producer_test.cpp.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/wake.hpp"
#include "db/session.hpp"
#include "docket/config.hpp"
#include "maintenance/maintainer.hpp"
#include "queue/completer.hpp"
#include "queue/held.hpp"
#include "queue/slots.hpp"

namespace docket {

/// What one notification asks of the producer.
struct Notice {
  bool want = false;                   ///< look for jobs
  bool open_path = false;              ///< back to the one-statement claim (a limit changed, a queue resumed, ...)
  bool doubt = false;                  ///< the claim session reconnected: a claim's answer may have been lost
  std::optional<std::int64_t> cancel;  ///< stop this running job
  bool operator==(const Notice&) const = default;  ///< for tests
};

/// Reads a notification (payloads are hostile: anyone allowed to NOTIFY can send one). `queues`:
/// the worker's queues; `on_claim_session`: the notification came on the claim session itself,
/// whose reconnect (docket_reconnect) may have lost a claim's answer.
Notice read_notice(const db::Notification& n, const std::set<std::string>& queues, bool on_claim_session);

/// How long after a claim that met an empty rate-limit bucket to claim again: when its next token
/// comes (`rate_wait_s`, from docket.rate_wait), at most the poll interval (a rate raised or removed
/// meanwhile is seen by then anyway), plus half a millisecond.
std::chrono::steady_clock::duration rate_wake_delay(double rate_wait_s, std::chrono::milliseconds poll_interval);

/// The queues a producer claims from, as array literals.
struct ClaimQueues {
  struct Capped {
    std::string name;
    std::string literal;
  };
  std::string all;   ///< every queue (claimed together when none has a cap; marked as slept on)
  std::string open;  ///< the queues without a cap ("" when every queue has one)
  std::vector<Capped> capped;
};
/// `queues` as the producer claims them, `caps` being worker.queue_concurrency (see split_queues).
ClaimQueues claim_queues(const std::vector<std::string>& queues, const std::map<std::string, int>& caps);

/// One claim statement: up to `limit` jobs of the queues in `queues_literal`.
using ClaimFn = std::function<std::vector<db::ClaimedJob>(const std::string& queues_literal, int limit)>;

/// One claim of up to `n` jobs: the queues without a cap together, then each capped queue for at
/// most its free slots (`slots.free_in`) and what is left of `n`.
std::vector<db::ClaimedJob> claim_across(const ClaimQueues& queues, const Slots& slots, int n, const ClaimFn& claim);

class Producer {
 public:
  struct Hooks {
    /// Hands claimed jobs over to run (the executor's submit), with the claim lock held.
    std::function<void(std::vector<db::ClaimedJob>& jobs, const std::string& worker)> deliver;
    /// Hands back a job this process does not hold (a lost claim's), without counting its attempt.
    std::function<void(const db::ClaimedJob& job, const std::string& worker)> hand_back;
    /// A cancel request for a job that may run here.
    std::function<void(std::int64_t id)> cancel;
  };

  /// Claims for the current id of `identity` from cfg.queues and `kinds`, into `slots`.
  Producer(std::string url, const WorkerConfig& cfg, const std::vector<std::string>& kinds, const Identity& identity,
           Slots& slots, HeldJobs& held, Hooks hooks);
  /// Stops (see stop).
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Starts the producer thread.
  void start();
  /// No more claims: stops the thread, and returns once a claim the completer began meanwhile has
  /// handed its jobs over (none starts after).
  void stop();

  /// What the completer's writes use to claim into the slots they free (under a quota, where every
  /// freed slot is a claim): the queues without a cap only (the producer claims the capped ones,
  /// counting their slots).
  Refill refill();
  /// The completer wrote a batch of outcomes; `refilled`: it claimed into their slots already.
  void written(bool refilled);
  /// Count the free slots again (a claim's worth is free, or nothing runs).
  void poke() { wake_.signal(); }
  /// Look for jobs at the next turn although the last claim came back short.
  void look() {
    flushed_ = true;
    wake_.signal();
  }
  /// Claim round trips so far (the producer's and the completer's).
  std::uint64_t claims() const { return claims_.load(); }

 private:
  void loop(const std::stop_token& stop);
  /// Hands back the jobs running under `worker` in the database that this process does not hold.
  /// Called with the claim lock held, so no claim adds to the held set meanwhile.
  void reconcile(db::Session& session, const std::string& worker);

  std::string url_;
  std::vector<std::string> queues_;
  std::chrono::milliseconds poll_interval_;
  std::string listen_url_;
  ClaimQueues literals_;
  std::string kinds_literal_;
  const Identity& identity_;
  Slots& slots_;
  HeldJobs& held_;
  Hooks hooks_;

  Wake wake_;
  /// Held while claiming and handing over (producer or completer), so two claims never count the
  /// same free slots.
  std::mutex claim_mutex_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> flushed_{false};  ///< there may be more jobs: claim at the next turn
  /// The producer's last claim went by the quota path and one of its kinds has a quota:
  /// completions then claim their replacements (Completer refill). Rates and keyed limits alone
  /// keep the producer's claims beside the completer's writes, as open kinds do.
  std::atomic<bool> quota_claims_{false};
  /// A claim met an empty rate-limit bucket: a short refill by the completer then wakes the
  /// producer, whose claim learns when the next token comes (docket.rate_wait).
  std::atomic<bool> rate_limited_{false};
  std::atomic<std::uint64_t> claims_{0};
  std::jthread thread_;  // last: it uses the members above
};

}  // namespace docket
