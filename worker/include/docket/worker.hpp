#pragma once
// docket::Worker: claims jobs of its queues and kinds, runs them, records outcomes.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "docket/config.hpp"
#include "docket/handler.hpp"
#include "docket/metrics.hpp"

namespace docket {

/// Counters of one worker process, for logs and /metrics.
struct WorkerStats {
  std::uint64_t claimed = 0;
  std::uint64_t completed = 0;
  std::uint64_t retried = 0;
  std::uint64_t failed = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t snoozed = 0;
  std::uint64_t stale = 0;  ///< finishing writes refused because the job was no longer ours
  /// Finishing writes that also claimed the freed slots' next jobs (only while a kind this worker
  /// claims has a quota, max_running).
  std::uint64_t refill_claims = 0;
  int running = 0;
};

/// A worker process's engine. Register handlers, then run(); request_stop() drains gracefully.
class Worker {
 public:
  Worker(std::string database_url, WorkerConfig config);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Registers a C++ handler for `kind`. `options` carries retries, backoff, timeout, quota.
  void handle(const std::string& kind, Handler handler, KindConfig options = {});
  /// Registers a kind run by an executor from the config (command, url, crawl, builtin).
  void add_kind(const KindConfig& kind);
  /// Registers every kind of a loaded config.
  void add_kinds(const Config& config);
  /// Records claims and outcomes in `metrics` (shared with an API in the same process).
  void set_metrics(std::shared_ptr<Metrics> metrics);

  /// Runs until request_stop(); returns after the graceful drain. Throws on start-up errors
  /// (no kinds, schema mismatch).
  void run();
  /// Runs, turning SIGTERM/SIGINT into request_stop(); a second signal exits at once.
  void run_until_signal();
  /// Stop claiming, let running jobs finish within shutdown_timeout, hand the rest back.
  void request_stop();
  /// True once run() has registered the worker and started claiming.
  bool started() const;

  WorkerStats stats() const;
  /// This process's current worker id (a fresh one per start, and after a lost lease).
  std::string id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Blocks SIGTERM/SIGINT/SIGPIPE in the calling thread (call before starting threads), waits for
/// the first SIGTERM/SIGINT in a dedicated thread and calls `on_first`; a second one calls _exit.
void install_stop_signals(std::function<void()> on_first);

}  // namespace docket
