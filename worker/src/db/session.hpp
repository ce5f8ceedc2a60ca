#pragma once
// One database connection and the domain operations Docket runs over it. Not thread-safe: each
// thread owns its Session (or leases one from a Pool). pqxx stays behind this header.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/sql.hpp"
#include "docket/config.hpp"
#include "docket/job.hpp"
#include "docket/schedule.hpp"

namespace docket::db {

/// A job as returned by docket.claim.
struct ClaimedJob {
  std::int64_t id = 0;
  std::string kind;
  std::string queue;
  std::string args;  ///< JSON text
  int attempt = 0;
  int max_retries = 0;
  int priority = 0;
  std::optional<std::string> unique_key;
  double queue_latency_s = 0;                        ///< run_at -> claim, by the database clock
  std::optional<std::chrono::milliseconds> timeout;  ///< the job's own timeout; empty: its kind's
};

/// What a fenced finishing write asks docket.finish_and_claim for (its p_outcomes): a handler's
/// Outcome, or `release` (a SIGTERM hands a running job back without counting the attempt).
enum class FinishOutcome { complete, retry, fail, cancel, snooze, release };

/// The SQL spelling of an outcome (docket.finish_and_claim's CASE).
std::string_view to_string(FinishOutcome outcome);

/// One fenced finishing write.
struct FinishItem {
  std::int64_t id = 0;
  int attempt = 0;
  int max_retries = 20;  ///< as claimed: a retry past it fails the job
  FinishOutcome outcome = FinishOutcome::complete;
  double delay_s = 0;
  std::optional<std::string> result;  ///< JSON text
  std::optional<std::string> error;
};

/// What the finish statement did with one item.
struct Finished {
  std::int64_t id = 0;
  JobState state = JobState::completed;  ///< the state the outcome left the job in
};

/// What finish_and_claim did: the outcomes that applied, and the jobs it claimed.
struct FinishedAndClaimed {
  std::vector<Finished> finished;
  std::vector<ClaimedJob> claimed;
};

struct WorkerRow {
  std::string name;
  std::string host;
  int pid = 0;
  std::vector<std::string> queues;
  std::vector<std::string> kinds;
  int concurrency = 0;
  double lease_s = 30;
};

struct Notification {
  std::string channel;
  std::string payload;
};

struct Promoted {
  int promoted = 0;
  std::optional<double> next_due_in_s;
};

/// What one schedule tick did (docket.schedule_tick).
struct ScheduleTick {
  int enqueued = 0;
  std::vector<double> lateness_s;  ///< per enqueued job: from its slot's time to its enqueue
  std::optional<double> next_due_in_s;
};

class Session {
 public:
  /// How the session plans its prepared statements.
  enum class Plans {
    /// Planned for the actual arguments and table sizes on every run: a generic plan cached
    /// while the table was small could scan it whole later.
    custom,
    /// Always the cached generic plan, with sequential and bitmap scans off so that plan is the
    /// index plan: the claim path, where planning on every wake-up (PostgreSQL kept choosing
    /// custom plans for the claim: 0.4 ms each) would cost latency.
    pinned,
  };
  /// Where the session's connection goes.
  enum class Route {
    process_default,  ///< as set_transaction_pooling says for the whole process
    direct,           ///< a session of its own (LISTEN, migrations), whatever the process default
  };
  Session(std::string url, std::string application_name, Plans plans = Plans::custom,
          Route route = Route::process_default);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// statement_timeout and lock_timeout for this session's statements (0: none), applied on
  /// every (re)connect. Set before the first use.
  void set_timeouts(std::chrono::milliseconds statement, std::chrono::milliseconds lock);
  /// Connects if not connected. Throws Unavailable.
  void connect();
  bool connected() const;
  /// Drops the connection (the next call reconnects).
  void disconnect();
  const std::string& url() const { return url_; }
  /// True when this session goes through a transaction pooler: each statement may run on
  /// another server session, so it keeps no session state and prepares nothing by name.
  bool pooled() const { return pooled_; }

  /// -1 when docket is not installed.
  int schema_version();
  /// Throws SchemaMismatch unless the schema is exactly the version this binary knows.
  void check_schema();
  /// Applies pending migrations under an advisory lock. Returns how many were applied.
  int migrate();

  // jobs -----------------------------------------------------------------------------------
  EnqueueResult enqueue(const EnqueueRequest& request);
  std::vector<EnqueueResult> enqueue_many(const std::vector<EnqueueRequest>& requests);
  std::vector<Submitted> submit_many(const std::vector<EnqueueRequest>& requests);
  std::optional<JobRecord> job(std::int64_t id);
  /// The jobs among `ids` that exist, in no particular order, in one round trip.
  std::vector<JobRecord> jobs_by_id(const std::vector<std::int64_t>& ids);
  /// docket.watch_jobs: watch `watch` starts waiting for `add` (for `hold` from now) and stops
  /// waiting for `drop`, so finishing one of `add` sends docket_finished (migration 0021).
  void watch_jobs(const std::string& watch, const std::vector<std::int64_t>& add, const std::vector<std::int64_t>& drop,
                  std::chrono::milliseconds hold);
  /// docket.job_by_key: the newest job with that unique_key, any state, or nullopt.
  std::optional<JobRecord> job_by_key(const std::string& key);
  std::vector<JobRecord> jobs(const JobFilter& filter);
  CancelResult cancel(std::int64_t id);
  void retry(std::int64_t id);
  void set_limit(const std::string& kind, std::optional<int> max_running);
  /// docket.set_rate: "N/PERIOD" or nullopt to remove; burst nullopt is the default.
  void set_rate(const std::string& kind, const std::optional<std::string>& rate, std::optional<int> burst);
  /// docket.set_partition: the keyed limits of a kind, all at once.
  void set_partition(const std::string& kind, const PartitionLimit& limit);
  /// docket.check_partition: refuses what set_partition would, writing nothing.
  void check_partition(const PartitionLimit& limit);
  /// docket.kind_hot_keys: a keyed kind's busiest keys.
  std::vector<KeyLimit> hot_keys(const std::string& kind, int top);
  void pause(const std::string& queue);
  void resume(const std::string& queue);
  std::vector<QueueSummary> queues();
  /// The stats document (schema/queries/stats_snapshot.sql): queues, kinds, workers, stuck, unserved.
  Json stats();
  /// Completed and failed jobs per queue and minute over the last hour (stats_throughput.sql),
  /// at most `max_rows` rows.
  Json throughput(int max_rows);
  /// A page of `kind`'s failed jobs after the cursor (finished_at in µs since the epoch, id),
  /// oldest failure first: each row's id and finished_at in µs.
  std::vector<std::pair<std::int64_t, std::int64_t>> failed_page(
      const std::string& kind, const std::optional<std::pair<std::int64_t, std::int64_t>>& after, int limit);
  std::vector<KindLimit> limits();
  /// docket.unserved_jobs as a JSON array.
  Json unserved();
  std::vector<std::tuple<std::string, std::string, std::int64_t>> queue_states();
  void ping();

  // the engine -------------------------------------------------------------------------------
  /// How a claim goes: `open` tries the one-statement claim first, which answers "a kind has a
  /// quota" when one does; `quota` goes straight to docket.claim, which enforces quotas (and is
  /// always correct, only a little slower). `claim` switches `path` to quota when it learns a
  /// quota applies, saving a round trip on later claims; the caller switches back to open when
  /// limits may have changed.
  enum class ClaimPath { open, quota };
  std::vector<ClaimedJob> claim(const std::string& worker, const std::string& queues_literal,
                                const std::string& kinds_literal, int limit);
  /// `rate_wait_s`, when given, is set to the seconds until an empty rate-limit bucket of these
  /// kinds has a token again, when the claim came back short because of one (else left as is).
  std::vector<ClaimedJob> claim(const std::string& worker, const std::string& queues_literal,
                                const std::string& kinds_literal, int limit, ClaimPath& path,
                                std::optional<double>* rate_wait_s = nullptr);
  /// The jobs the database has running under `worker` (id, attempt, kind, queue, max_retries; the
  /// rest of each ClaimedJob empty): compared with the jobs a worker holds after a lost claim.
  std::vector<ClaimedJob> running_jobs(const std::string& worker);
  std::vector<Finished> finish(const std::string& worker, const std::vector<FinishItem>& items);
  /// `finish` and a claim as `claim` on the quota path, in one round trip and one transaction:
  /// under a quota each freed slot is claimed at once.
  FinishedAndClaimed finish_and_claim(const std::string& worker, const std::vector<FinishItem>& items,
                                      const std::string& queues_literal, const std::string& kinds_literal, int limit);
  bool progress(const std::string& worker, std::int64_t id, int attempt, const std::string& json);
  std::string register_worker(const WorkerRow& row);
  /// False when the worker was declared dead (its lease expired): it must register again.
  bool heartbeat(const std::string& worker);
  void worker_stopping(const std::string& worker);
  void worker_stopped(const std::string& worker);
  std::vector<std::int64_t> cancel_requests(const std::string& worker);
  int rescue();
  /// Callback kinds (docket.callback_*; hashes are the token's SHA-256 as hex). The worker:
  /// store the run's hash before the request; false: the job is no longer this worker's.
  bool callback_arm(const std::string& worker, std::int64_t id, int attempt, const std::string& hash);
  /// The worker, after a 202: the job waits `deadline_s`; false: nothing left to wait for.
  bool callback_wait(const std::string& worker, std::int64_t id, int attempt, const std::string& hash,
                     double deadline_s, double backoff_s);
  /// The job's current token hash (nullopt inside: none yet), or nullopt: no such job.
  std::optional<std::optional<std::string>> callback_hash(std::int64_t id);
  /// A token holder's progress: docket.callback_check's answer ('ok' when stored).
  std::string callback_progress(std::int64_t id, const std::string& hash, const std::string& json);
  /// A token holder's outcome (item.outcome, delay_s < 0: the kind's backoff): the state
  /// reached, or docket.callback_check's refusal.
  std::string callback_finish(std::int64_t id, const std::string& hash, const FinishItem& item,
                              const std::optional<std::string>& progress);
  /// Waiting callback jobs past their deadline (or cancelled) ended: how many.
  int callback_expire();
  Promoted promote();
  /// docket.schedule: the row as JSON.
  Json schedule(const ScheduleSpec& spec);
  /// Schedules as JSON (docket.schedule_status), one by name or all.
  Json schedules(const std::optional<std::string>& name, int limit,
                 const std::optional<std::string>& after = std::nullopt);
  bool unschedule(const std::string& name);
  /// Schedules per state (enabled, paused, late).
  ScheduleCounts schedule_counts();
  /// The config's schedules, all or none (source config; run-time ones are left alone); with
  /// `prune`, config schedules not among them are deleted.
  ScheduleDeploy deploy_schedules(const std::vector<ScheduleSpec>& specs, bool prune);
  void pause_schedule(const std::string& name);
  void resume_schedule(const std::string& name);
  std::optional<std::int64_t> run_schedule_now(const std::string& name);
  /// Enqueues the jobs of due schedules, once per slot across the fleet.
  ScheduleTick schedule_tick();
  /// Deletes up to `batch` finished jobs past their kind's retention (the rule stored in the
  /// database), and clears up to `batch` expired results; returns how many rows it changed.
  int prune(int batch);
  /// What seeding a kind did to its quota and its keyed limits, so the worker can log each
  /// change it makes and each TOML value it does not apply, with its source.
  struct SeedOutcome {
    bool existed = false;                   ///< the kind had a row before
    std::optional<int> before;              ///< max_running before
    std::optional<int> after;               ///< max_running now
    std::optional<std::string> source;      ///< "config", "operator" or none
    std::optional<int> config_max_running;  ///< the TOML value stored for the kind
    /// Set when the settings had a partition: the TOML's keyed limits are in force now (false: an
    /// operator's hold).
    std::optional<bool> partition_applied;
    std::optional<std::string> partition_source;  ///< who set the keyed limits in force: config, operator
    std::optional<std::string> partition;         ///< the partition in force
  };
  /// docket.seed_kind: a worker's config seeds all of a kind's stored settings in one transaction
  /// (a nullopt leaves the stored value; see KindSettings for the operator's precedence).
  SeedOutcome seed_kind(const KindSettings& settings);
  /// Clears an operator's quota (the TOML value, or none, applies again); false when there was none.
  bool reset_limit(const std::string& kind);

  /// Runs a tool's own embedded query (`docket bench`: bench/queries, docket::bench::q) and returns
  /// its rows as text (NULL: nullopt); the engine uses the typed operations above.
  std::vector<std::vector<std::optional<std::string>>> query(
      const Query& query, const std::vector<std::optional<std::string>>& params = {});
  /// Runs a tool's utility statement (VACUUM, CHECKPOINT) outside a transaction.
  void utility(const Query& query);

  // notifications ------------------------------------------------------------------------------
  void listen(const std::string& channel);
  /// docket.listen_for_jobs: marks the queues (array literal) as slept on, so the next enqueue into
  /// one of them sends docket_jobs; true when one already holds an available job of the kinds.
  bool listen_for_jobs(const std::string& queues_literal, const std::string& kinds_literal);
  /// Whether any of the kinds (array literal) has a quota (docket.kinds.max_running).
  bool any_quota(const std::string& kinds_literal);
  /// The socket to poll for incoming notifications (-1 when not connected).
  int socket() const;
  /// Reads what arrived on the socket (non-blocking) and returns the notifications.
  std::vector<Notification> take_notifications();

  struct Impl;

 private:
  friend class CrawlStore;  // runs its statements on this session's connection
  std::string url_;
  std::string application_name_;
  Plans plans_;
  bool pooled_;
  std::chrono::milliseconds statement_timeout_{0};
  std::chrono::milliseconds lock_timeout_{0};
  std::unique_ptr<Impl> impl_;
};

/// The process default for new Sessions: through a pooler in transaction mode, or not.
void set_transaction_pooling(bool on);
bool transaction_pooling();

/// Adds keepalive and connect_timeout defaults to a libpq URI or conninfo string.
std::string with_connection_defaults(const std::string& url);
/// `url` with connect_timeout and statement_timeout set to `seconds`: for probes that must answer quickly.
std::string with_timeouts(const std::string& url, int seconds);

/// The JSON object docket.seed_kind takes: one field per set value (durations in seconds), none
/// for a nullopt.
std::string kind_settings_json(const KindSettings& settings);

}  // namespace docket::db
