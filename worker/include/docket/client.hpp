#pragma once
// docket::Client: enqueue and steer jobs from C++ (the CLI and the HTTP API are built on it).
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "docket/config.hpp"
#include "docket/job.hpp"
#include "docket/schedule.hpp"

namespace docket {

struct ClientOptions {
  int connections = 2;  ///< the pool's size: concurrent calls beyond it wait
  std::string application_name = "docket-client";
  bool check_schema = true;                        ///< refuse a database whose schema version this binary does not know
  std::chrono::milliseconds statement_timeout{0};  ///< per statement; 0: none (a timeout throws Timeout)
  std::chrono::milliseconds lock_timeout{0};       ///< per lock wait; 0: none (a timeout throws Timeout)
  /// Where wait() LISTENs: a session of its own around a transaction pooler (the top-level
  /// listen_url); empty: the database URL, or, through a transaction pooler, no LISTEN (the waited
  /// jobs are then read together every 500 ms).
  std::string listen_url;
};

/// The longest wait Client::wait, GET /jobs/{id}?wait= and `docket wait` accept.
inline constexpr std::chrono::seconds kMaxWait{60};

/// What one call of Client::retry_failed did.
struct RetryBatch {
  int retried = 0;                  ///< failed jobs now available again
  int skipped = 0;                  ///< could not be retried (e.g. another unfinished job holds the unique_key)
  std::optional<std::string> next;  ///< the cursor for the next call; nullopt when no failed job is left
};

/// What the call of a callback token's holder did (POST /jobs/{id}/progress and /outcome).
enum class CallbackAnswer {
  applied,      ///< written
  unknown_job,  ///< no such job
  bad_token,    ///< not this job's current callback token (wrong, or an earlier run's)
  finished,     ///< the token's job is completed, failed or cancelled
  stale,        ///< the token's run is over (its deadline passed, it was retried): the job is not finished
};

/// A callback call's answer, and the state the job reached when an outcome was applied.
struct CallbackResult {
  CallbackAnswer answer = CallbackAnswer::applied;
  std::string state;
};

/// A thread-safe handle to a Docket database with a small fixed pool of connections.
class Client {
 public:
  explicit Client(const std::string& database_url, const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// docket.enqueue. Throws InvalidInput for bad fields.
  EnqueueResult enqueue(const EnqueueRequest& request);
  /// Bulk enqueue in one statement, honouring unique_key; results in request order.
  std::vector<EnqueueResult> enqueue_many(const std::vector<EnqueueRequest>& requests);
  /// Bulk enqueue returning each job, in request order, in one round trip.
  std::vector<Submitted> submit_many(const std::vector<EnqueueRequest>& requests);
  /// One job, or nullopt.
  std::optional<JobRecord> job(std::int64_t id);
  /// docket.job_by_key: the newest job made with that unique_key, in any state, or nullopt.
  std::optional<JobRecord> job_by_key(const std::string& key);
  /// Blocks until job `id` is finished (completed, failed, cancelled) or `timeout` (at most
  /// kMaxWait, else InvalidInput) has passed, woken by the database's notice, holding none of the
  /// pool's connections: the job as it then stands, nullopt when there is no such job. All waits
  /// of a client share one thread and one connection of their own.
  std::optional<JobRecord> wait(std::int64_t id, std::chrono::milliseconds timeout);
  /// wait() without blocking: `done` is called exactly once, on the client's waiting thread, with
  /// the job (nullopt: no such job) or the error that kept it from being read. Pending waits end
  /// with Unavailable when the client is destroyed.
  void wait_async(std::int64_t id, std::chrono::milliseconds timeout,
                  std::function<void(std::optional<JobRecord>, std::exception_ptr)> done);
  /// Stores `progress` (any JSON) on job `id` for the holder of its run's callback `token`
  /// (compared as SHA-256 digests in constant time); anything but `applied` wrote nothing.
  CallbackResult callback_progress(std::int64_t id, const std::string& token, const Json& progress);
  /// Ends job `id`'s run for the holder of its callback `token`. `outcome` is a control object
  /// ({"result": any} completes; {"retry": reason, "in": "30s"}, {"snooze": "10m"},
  /// {"discard": reason}; "progress" may come along), mapped and bounded as a worker's outcome.
  /// Throws InvalidInput naming the key before anything is read or written.
  CallbackResult callback_outcome(std::int64_t id, const std::string& token, const Json& outcome);
  /// Jobs matching the filter, newest first.
  std::vector<JobRecord> jobs(const JobFilter& filter);
  /// Throws NotFound for an unknown id.
  CancelResult cancel(std::int64_t id);
  /// Throws NotFound, or Conflict for a running job.
  void retry(std::int64_t id);
  /// The global quota; nullopt removes it. Throws InvalidInput for a negative limit.
  /// An operator's value: it holds across worker restarts (their TOML does not replace it).
  void set_limit(const std::string& kind, std::optional<int> max_running);
  /// The fleet-wide rate: "N/PERIOD" (100/1m) or nullopt to remove it; burst nullopt is one
  /// second's worth. Throws InvalidInput naming the field for a bad rate or burst.
  void set_rate(const std::string& kind, const std::optional<std::string>& rate,
                std::optional<int> burst = std::nullopt);
  /// The keyed limits of a kind, all at once (docket.set_partition); a partition of nullopt
  /// removes them. Throws InvalidInput naming the field (partition, max_running_per_key,
  /// rate_per_key, burst_per_key) and then writes nothing.
  void set_partition(const std::string& kind, const PartitionLimit& limit);
  /// Checks keyed limits as set_partition would, writing nothing (adapters check first).
  void check_partition(const PartitionLimit& limit);
  /// A keyed kind's busiest keys, at most `top` (1-1000): running, bucket, held back.
  std::vector<KeyLimit> hot_keys(const std::string& kind, int top);
  /// Clears an operator's quota so the workers' TOML max_running (or none) applies again; false
  /// when the kind had no operator value.
  bool reset_limit(const std::string& kind);
  void pause(const std::string& queue);
  void resume(const std::string& queue);
  std::vector<QueueSummary> queues();
  /// What an on-call person looks at first, as one JSON document: queues, kinds (running vs
  /// quota, completed/failed over 5 min and 1 h, failure rate, run and wait p50/p95), live workers,
  /// stuck jobs and unserved work (README: Watching it run).
  Json stats();
  /// Completed and failed jobs per queue and minute over the last hour, as a JSON array of
  /// {queue, minute, completed, failed} (the dashboard's chart; at most 61 rows per queue).
  Json throughput();
  /// Retries up to `limit` (1-1000) of `kind`'s failed jobs, oldest failure first, after the
  /// cursor a previous call returned. Each job is retried on its own, so one that cannot be is
  /// skipped and counted. Throws InvalidInput for a bad cursor or limit.
  RetryBatch retry_failed(const std::string& kind, const std::optional<std::string>& after, int limit);
  std::vector<KindLimit> limits();
  /// Waiting jobs no live worker can run (docket.unserved_jobs): queue, kind, jobs, due,
  /// oldest_due_age_s and the reason, as a JSON array.
  Json unserved();
  /// Jobs per queue and state (the docket.queue_states view).
  std::vector<std::tuple<std::string, std::string, std::int64_t>> queue_states();
  /// Crawls, newest first.
  std::vector<CrawlRecord> crawls(const CrawlFilter& filter);
  /// One crawl, or nullopt.
  std::optional<CrawlRecord> crawl(std::int64_t id);
  /// Creates or updates a schedule (docket.schedule); the row as JSON. Throws InvalidInput
  /// naming the field, with nothing written.
  Json schedule(const ScheduleSpec& spec);
  /// Schedules with next/last slot and last job state, by name (docket.schedule_status).
  /// `after`: only names sorting after it (the next page of a keyset listing).
  Json schedules(int limit = 1000, const std::optional<std::string>& after = std::nullopt);
  /// One schedule, or nullopt.
  std::optional<Json> find_schedule(const std::string& name);
  /// Applies a config's [schedules] (docket migrate): all or none, source config; run-time
  /// schedules are never changed; with `prune`, config schedules not in `specs` are deleted.
  ScheduleDeploy deploy_schedules(const std::vector<ScheduleSpec>& specs, bool prune);
  /// Schedules per state (enabled, paused, late), for /metrics.
  ScheduleCounts schedule_counts();
  /// Deletes a schedule (its jobs stay); false when there was none.
  bool unschedule(const std::string& name);
  /// Throw NotFound for an unknown name.
  void pause_schedule(const std::string& name);
  void resume_schedule(const std::string& name);
  /// A job now, without moving the next slot; nullopt when the kind's unique job is unfinished.
  std::optional<std::int64_t> run_schedule_now(const std::string& name);
  /// Throws Unavailable when the database cannot be reached.
  void ping();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Sets how the connections this process opens from now on reach PostgreSQL: call once at start,
/// before any Client or Worker (the CLI does, from the `pooler` setting).
void set_pooler(Pooler pooler);

/// Applies pending migrations (idempotent, safe to run concurrently). Returns the number applied.
int migrate(const std::string& database_url);
/// The schema version this binary was built with.
int known_schema_version();
/// The schema version recorded in the database at `database_url` (-1: no docket schema), over a
/// fresh connection that gives up after `timeout_seconds` to connect and to answer. Throws Unavailable.
int database_schema_version(const std::string& database_url, int timeout_seconds);

}  // namespace docket
