#pragma once
// Writes job outcomes in batches through the one fenced finish statement, on connections of its
// own. Batching completions is the main throughput lever: whatever piled up while the previous
// batch was in flight goes out in the next round trip. The finishing write costs the server about
// twice a claim (a completed row enters seven indexes, a running one two), so one connection
// writing outcomes was what bounded a draining worker: a second writer takes the outcomes that
// pile up while the first one's batch is in flight, and connects only then. A failed write is
// retried (never turned into a job failure): outcomes wait in memory until the database is back.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "db/session.hpp"
#include "docket/metrics.hpp"
#include "queue/finish.hpp"

namespace docket {

struct CompleterCounters {
  std::uint64_t completed = 0, retried = 0, failed = 0, cancelled = 0, snoozed = 0, released = 0, stale = 0;
  std::uint64_t writes = 0;   ///< finish round trips (batches)
  std::uint64_t refills = 0;  ///< of those, the ones that also claimed (Refill: kinds with a quota)
};

/// Lets a batch of outcomes also claim the jobs that take the freed slots, in the same round trip
/// and transaction (db::Session::finish_and_claim). Under a quota every freed slot is
/// a claim, and this saves the second round trip and commit per slot.
struct Refill {
  struct Claim {
    std::unique_lock<std::mutex> lock;  ///< the worker's claim lock, held until the jobs are handed over
    int limit = 0;
  };
  /// What the worker claims from: its queues and kinds (array literals).
  std::string queues_literal;
  std::string kinds_literal;
  /// Before a batch of outcomes of `worker` is written: the claim to make with it, or
  /// nullopt to write the completions alone.
  std::function<std::optional<Claim>(const std::string& worker)> begin;
  /// Hands the claimed jobs over, with the claim lock still held.
  std::function<void(std::vector<db::ClaimedJob>& jobs, const Claim& claim, const std::string& worker)> deliver;
  /// A write that carried a claim lost its connection: whether that claim committed is unknown.
  std::function<void()> in_doubt;
  /// These jobs' outcomes are written (applied, or refused as stale): the process holds them no
  /// longer.
  std::function<void(const std::vector<std::int64_t>& ids)> settled;
};

class Completer {
 public:
  /// `on_flush` runs after each written batch (the producer may claim into freed quota slots);
  /// its argument says whether the batch already claimed for them (see Refill).
  Completer(const std::string& url, std::function<void(bool refilled)> on_flush, std::shared_ptr<Metrics> metrics,
            Refill refill = {});
  /// Most batches written at once (each on its own connection, opened at its first batch).
  static constexpr int kWriters = 2;
  ~Completer();

  void push(PendingFinish finish);
  /// Latest progress of a running job; coalesced per job.
  void progress(const std::string& worker, std::int64_t id, int attempt, std::string json);
  /// Writes everything queued, then stops. Gives up after `timeout` if the database is down.
  void drain(std::chrono::milliseconds timeout);
  CompleterCounters counters() const;
  std::size_t pending() const;

 private:
  /// Writer `index`'s thread: writer 0 takes outcomes whenever there are some, the others only
  /// while another writer's batch is in flight.
  void loop(const std::stop_token& stop, int index);
  /// Returns whether a claim went with the write (only when `claim_too`).
  bool write(db::Session& session, std::vector<PendingFinish>& batch, bool claim_too = true);
  /// After a batch failed for its content: writes each outcome alone, and one the database still
  /// refuses as an error on its job instead. On Unavailable, `batch` keeps the unwritten ones.
  void write_each(db::Session& session, std::vector<PendingFinish>& batch);

  std::vector<std::unique_ptr<db::Session>> sessions_;  ///< one per writer
  std::function<void(bool)> on_flush_;
  std::shared_ptr<Metrics> metrics_;
  Refill refill_;
  mutable std::mutex mutex_;
  std::condition_variable_any ready_;
  std::deque<PendingFinish> queue_;
  std::map<std::int64_t, std::tuple<std::string, int, std::string>> progress_;
  CompleterCounters counters_;
  bool draining_ = false;
  bool flood_ = false;  ///< the last batch was large: outcomes are pouring in
  /// A writer has taken outcomes and not yet written the progress it took with them: no other
  /// writer takes any meanwhile, so a job's last progress is always written before its outcome.
  bool taking_ = false;
  int writing_ = 0;  ///< writers with a batch of outcomes in flight
  std::chrono::steady_clock::time_point drain_deadline_;
  std::vector<std::jthread> threads_;
};

}  // namespace docket
