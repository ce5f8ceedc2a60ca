#pragma once
// The jobs this process holds: claimed here and not yet settled (running, or an outcome not yet
// written), and whether a claim's answer may have been lost. A claim can commit while its
// connection breaks; its jobs then run under this worker in the database although no thread here
// has them, and this worker's heartbeat keeps the rescue away from them. Whoever claims (the
// producer, or the completer claiming into freed slots) holds what it hands over and, when a
// claim failed on its connection, asks for a reconcile: before the next claim, the jobs the
// database has running under this worker that are not held here are handed back (Producer).
// Counted per run, not a set: a job released or retried at once can be claimed again here (by the
// producer, or by the claim in the same finish_and_claim) before its first run's outcome is
// settled, and that settling must not make the second run look unheld.
// No database in here, so the rules are unit-tested (tests/unit/held_test.cpp).
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "db/session.hpp"

namespace docket {

class HeldJobs {
 public:
  /// A claimed job handed over to run (called with the claim lock held, see Producer): one more
  /// run of it held.
  void hold(std::int64_t id);
  /// One run of each settles; a job leaves once none is held. Only what is known to be written
  /// settles: an outcome applied or refused as stale, a job parked for its callback, a job whose
  /// lease was lost (rescued elsewhere).
  void settle(std::int64_t id);
  void settle(const std::vector<std::int64_t>& ids);
  bool holds(std::int64_t id) const;
  std::size_t size() const;

  /// A claim (the producer's, or one carried by a completion) lost its connection, or the claiming
  /// session reconnected: whether a claim committed is unknown. Reconcile before the next claim.
  void doubt() { in_doubt_ = true; }
  bool in_doubt() const { return in_doubt_.load(); }

  /// The reconcile's comparison. Clears the doubt before `read` (a claim lost during the read asks
  /// again), reads the jobs the database has running under this worker, and returns those this
  /// process does not hold and did not settle during the read: claimed by a claim whose answer
  /// never arrived. Those are held from now on, until their hand-back settles. If `read` throws,
  /// the doubt stands. Call it with the claim lock held, so that no claim adds to the held set
  /// meanwhile.
  std::vector<db::ClaimedJob> unheld(const std::function<std::vector<db::ClaimedJob>()>& read);

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::int64_t, int> runs_;  ///< held runs per job
  bool reading_ = false;                        ///< unheld() is reading the database's view
  std::unordered_set<std::int64_t> settled_while_reading_;
  std::atomic<bool> in_doubt_{false};
};

}  // namespace docket
