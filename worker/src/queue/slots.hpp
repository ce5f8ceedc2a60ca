#pragma once
// The worker's slots: how many jobs run here now, in all and in each queue with its own
// concurrency (worker.queue_concurrency). The executor takes a slot per job handed over and frees
// it when the run ends; the producer reads them to size its claims (queue/claim_size.hpp) and is
// woken by what freeing a slot decides (SlotFreed). No database, no threads of its own: unit-tested
// in tests/unit/slots_test.cpp.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace docket {

/// A queue with its own concurrency: at most `cap` of its jobs run here at once.
struct QueueCap {
  std::string name;
  int cap = 0;
  bool operator==(const QueueCap&) const = default;  ///< for tests
};

/// A worker's queues as it claims them: those without a cap together, each capped one on its own.
struct QueueSplit {
  std::vector<std::string> open;
  std::vector<QueueCap> capped;
};

/// Splits `queues` (in order) by whether `caps` has an entry for them; caps of other queues are
/// ignored.
QueueSplit split_queues(const std::vector<std::string>& queues, const std::map<std::string, int>& caps);

/// What freeing a slot asks of the producer.
struct SlotFreed {
  int running = 0;    ///< jobs still running here
  bool wake = false;  ///< count the free slots again: a claim's worth is free, or nothing runs
  /// Also look for jobs although the last claim came back short: a full capped queue has a slot
  /// again (its jobs were left behind by the claims meanwhile).
  bool look = false;
  bool operator==(const SlotFreed&) const = default;  ///< for tests
};

class Slots {
 public:
  Slots(int concurrency, int claim_batch, const std::vector<QueueCap>& capped);
  Slots(const Slots&) = delete;
  Slots& operator=(const Slots&) = delete;

  int concurrency() const { return concurrency_; }
  int claim_batch() const { return claim_batch_; }
  /// Jobs running here (handed over, outcome not yet handed to the completer).
  int running() const { return running_.load(); }
  /// How many jobs a claim may take now: the free slots, at most a batch.
  int claimable() const;
  /// The free slots of capped queue `queue` (0 for a queue without a cap: claimed with the others).
  int free_in(const std::string& queue) const;
  /// Jobs handed over since the start (the claimed count).
  std::uint64_t taken() const { return taken_.load(); }

  /// A claimed job of `queue` is handed over to run.
  void take(const std::string& queue);
  /// A job of `queue` ended (its outcome is handed over, or it was dropped): whom to wake. Wakes
  /// the producer only when the free slots reach a claim's worth (half a batch, see
  /// batch_threshold) or the last job ends, not once per job.
  SlotFreed release(const std::string& queue);

 private:
  struct Capped {
    std::string name;
    int cap = 0;
    std::atomic<int> running{0};
  };
  Capped* capped(const std::string& queue) const;

  int concurrency_;
  int claim_batch_;
  int batch_threshold_;  ///< free slots worth a claim round trip while jobs still run
  std::atomic<int> running_{0};
  std::atomic<std::uint64_t> taken_{0};
  std::vector<std::unique_ptr<Capped>> capped_;
};

}  // namespace docket
