#pragma once
// Configuration: a TOML file (--config), overridden by DOCKET_* environment variables, then flags.
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "docket/crawl.hpp"
#include "docket/schedule.hpp"

namespace docket {

using Millis = std::chrono::milliseconds;

/// How long to wait before retry number `attempt` (1-based: the wait after the first failure).
struct Backoff {
  enum class Strategy { fixed, linear, exponential };
  Strategy strategy = Strategy::exponential;
  Millis base{1000};        ///< exponential: first wait; linear: the step
  Millis max{3600 * 1000};  ///< cap for linear and exponential
  Millis delay{5000};       ///< fixed: the wait
  double jitter = 0.1;      ///< +/- fraction applied to the wait, 0..1

  /// The wait after failed attempt `attempt` (>= 1). Never negative, never above max (+jitter),
  /// defined for every int.
  Millis wait_after(int attempt, std::mt19937_64& rng) const;
};

/// Run a program per job: job JSON on stdin, exit code decides the outcome.
struct CommandExecutor {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  ///< set in the command's (clean) environment
  std::vector<std::string> env_pass;       ///< worker environment variables passed on by name
};

/// POST the job JSON to a URL: 2xx completes, 429/5xx/timeouts retry, other 4xx fail.
struct HttpExecutor {
  std::string url;
  std::map<std::string, std::string> headers;
  std::size_t max_response = 16 << 20;  ///< response body bytes; a larger one fails the attempt
  /// The endpoint is sent a per-attempt callback token; its 202 Accepted leaves the job running
  /// until the token's holder reports the outcome (README: Callbacks), within the job's timeout.
  bool callback = false;
};

/// Built-in demo kinds (docket dev): echo, sleep, fail.
struct BuiltinExecutor {
  std::string name;
};

using Executor = std::variant<std::monostate, CommandExecutor, HttpExecutor, CrawlExecutor, BuiltinExecutor>;

/// A kind's keyed limits as set together (docket.set_partition): no partition removes them all.
struct PartitionLimit {
  std::optional<std::string> partition;     ///< "args.tenant": a path into args (1-8 names)
  std::optional<int> max_running_per_key;   ///< nullopt: no running limit per key
  std::optional<std::string> rate_per_key;  ///< "N/PERIOD" as a kind's rate; nullopt: none
  std::optional<int> burst_per_key;         ///< nullopt: one second's worth of rate_per_key
};

/// A kind's uniqueness (`[kinds.X] unique = { by = ["args.report"], period = "10m", states = [...] }`):
/// jobs enqueued without a unique_key get one derived from the kind and these args (seeds
/// docket.kinds.unique_by / unique_for / unique_states).
struct KindUnique {
  std::vector<std::string> by;                     ///< {"args"} (all args) or paths into args
  std::optional<Millis> period;                    ///< dedup within this period; nullopt: while unfinished
  std::optional<std::vector<std::string>> states;  ///< the states that dedup (default: unfinished)
};

/// Default and hard cap of a kind's max_result_bytes: a result above it is dropped (with a
/// docket_result_dropped marker) instead of stored.
inline constexpr std::size_t kMaxResultBytesCap = 1 << 20;

/// Per-kind settings. Without an executor the kind needs a C++ handler (Worker::handle).
struct KindConfig {
  std::string kind;
  Executor executor;
  std::optional<int> max_retries;  ///< seeds docket.kinds.max_retries (default for new jobs)
  Backoff backoff;
  Millis timeout{30 * 60 * 1000};   ///< a run longer than this is stopped and retried
  std::optional<std::string> rate;  ///< "100/1m": seeds docket.set_rate at worker start
  std::optional<int> burst;         ///< the rate's bucket size (default: one second's worth)
  /// partition ("args.tenant"), max_running_per_key, rate_per_key, burst_per_key: seed
  /// docket.set_partition at worker start when partition is set (else the stored ones stay).
  PartitionLimit keyed;
  /// Seeds the kind's quota (docket.kinds.config_max_running); it applies unless an operator set
  /// one with `docket limit`, which holds until `docket limit KIND --reset`.
  std::optional<int> max_running;
  std::optional<std::string> queue;        ///< where enqueues that name no queue land (docket.kinds.queue)
  std::optional<Millis> retain_completed;  ///< how long its completed jobs are kept (else the fleet default)
  std::optional<Millis> retain_failed;     ///< how long its failed and cancelled jobs are kept
  std::optional<KindUnique> unique;        ///< seeds the kind's derived unique key (docket.kinds.unique_by)
  std::optional<Millis> result_ttl;        ///< how long a completed job's result is kept (docket.kinds.result_ttl)
  /// Largest result stored, in bytes of JSON (1 to kMaxResultBytesCap); a larger one is dropped.
  std::size_t max_result_bytes = kMaxResultBytesCap;
};

/// How this process's connections reach PostgreSQL (README, Beyond one host).
enum class Pooler {
  none,         ///< directly, or through a pooler in session mode
  transaction,  ///< through a pooler in transaction mode: no session state, no named prepared statements
};
/// "none" or "transaction"; anything else is a ConfigError naming `field`.
Pooler parse_pooler(const std::string& text, const std::string& field);

struct WorkerConfig {
  std::vector<std::string> queues{"default"};
  /// Per-queue concurrency (TOML `queues = { default = 10, imports = 2 }`): at most this many jobs
  /// of the queue run at once in this process, within `concurrency`. A queue without an entry is
  /// capped by `concurrency` alone.
  std::map<std::string, int> queue_concurrency;
  int concurrency = 8;             ///< jobs this process runs at once
  Millis shutdown_timeout{30000};  ///< SIGTERM: how long running jobs may finish
  /// A job stopped for its timeout or a cancel whose handler has not returned this long after is
  /// stuck: its outcome (a retry, or cancelled) is written without it, `job.stuck` is logged and
  /// docket_worker_stuck_jobs counts it; its thread and slot stay taken until it returns.
  Millis stuck_after{15000};
  Millis lease{30000};            ///< a worker silent this long is dead; its jobs are rescued
  Millis heartbeat_interval{0};   ///< 0: lease / 6
  Millis rescue_interval{0};      ///< 0: lease / 4
  Millis poll_interval{1000};     ///< claim poll when no NOTIFY arrives (jittered)
  Millis promote_interval{1000};  ///< longest sleep of the scheduler between checks
  int claim_batch = 500;          ///< most jobs claimed in one round trip
  Millis prune_interval{60000};
  /// Retention of this worker's kinds that set none in [kinds.X] (unset: the fleet default in
  /// docket.settings, 24h and 7d). It never applies to kinds this worker does not run.
  std::optional<Millis> retain_completed;
  std::optional<Millis> retain_failed;
  std::string name;            ///< shown in docket.workers (default host:pid)
  std::string metrics_listen;  ///< host:port for this worker's /metrics ("" = none)
  /// A direct (or session-pooled) URL for LISTEN when the database URL goes through a
  /// transaction pooler; "" there: poll only. Unused without a transaction pooler.
  std::string listen_url;
  /// The API's base URL as the endpoints of callback kinds reach it (http or https), sent to them
  /// as Docket-Callback-Url; required when a kind sets callback = true.
  std::string callback_base_url;

  Millis effective_heartbeat() const;
  Millis effective_rescue() const;
};

struct ApiConfig {
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> tokens;
  bool metrics_auth = false;       ///< require a token for /metrics
  std::size_t max_body = 1 << 20;  ///< bytes; larger bodies get 413
  int threads = 16;                ///< handler pool; slow or idle connections never hold one
  int max_list_limit = 500;
  int db_connections = 4;
  Millis statement_timeout{5000};           ///< per database statement of an API call: past it, 503
  Millis lock_timeout{2000};                ///< per lock wait (a unique_key held by an open transaction): past it, 503
  int max_connections = 1024;               ///< open connections; more get 503 and are closed
  std::size_t max_header_bytes = 16 << 10;  ///< request line plus headers; more get 431
  std::size_t max_response = 8 << 20;       ///< list pages stop adding rows past this many bytes
  Millis header_timeout{10'000};            ///< to receive a request's head; then 408 and close
  Millis body_timeout{30'000};              ///< to receive a body (and to send an answer)
  Millis idle_timeout{5'000};               ///< a keep-alive connection waiting for its next request
  /// Where GET /jobs/{id}?wait= LISTENs around a transaction pooler: the top-level listen_url (not
  /// an [api] key; `docket api` copies it here).
  std::string listen_url;
};

struct LogConfig {
  std::string level = "info";   ///< trace, debug, info, warn, error
  std::string format = "text";  ///< text or json
  bool jobs = false;            ///< log every completed job at info (failures and retries always are)
};

struct Config {
  std::string database_url;      ///< empty: the embedded cluster under ./.docket
  Pooler pooler = Pooler::none;  ///< what database_url goes through (top-level `pooler`)
  WorkerConfig worker;
  ApiConfig api;
  LogConfig log;
  std::map<std::string, KindConfig> kinds;
  /// [schedules.NAME]: applied with source config by `docket migrate` and at a worker's start.
  std::map<std::string, ScheduleSpec> schedules;
  /// The file has a [schedules] table (even empty): `docket migrate` then deletes the config
  /// schedules it no longer declares. Without one, a deploy deletes nothing.
  bool schedules_declared = false;

  /// Reads a TOML file. Unknown keys are errors that name the key and suggest the right one.
  static Config load_file(const std::filesystem::path& path);
  /// Parses TOML text (`origin` names it in errors).
  static Config parse(std::string_view toml, const std::string& origin = "config");
  /// Applies DOCKET_* variables and DATABASE_URL from `env` (pass environ-style "K=V" strings).
  void apply_env(const std::vector<std::string>& env);
  /// Applies the process environment.
  void apply_process_env();
  /// Checks cross-field rules; throws ConfigError.
  void validate() const;
  /// Checks that every command kind's program exists and is executable (a bare name is looked
  /// up on PATH), so a worker refuses a typo at start instead of failing each job. Throws
  /// ConfigError naming the kind and the path.
  void check_programs() const;
};

/// Parses "250ms", "30s", "10m", "2h", "7d" (decimals allowed). Throws ConfigError naming `what`.
Millis parse_duration(std::string_view text, const std::string& what);
/// Checks a rate limit "N/PERIOD" (100/1m, 20/s, 5/500ms): N in 1..1000000, the period one of
/// ms, s, m, h, d (number optional) between 1ms and 1d; docket.parse_rate is the same rule in SQL.
/// Throws ConfigError naming `what`.
void check_rate(std::string_view text, const std::string& what);
/// Checks a partition path (args.tenant) as docket.partition_path does. Throws ConfigError naming `what`.
void check_partition_path(std::string_view text, const std::string& what);
/// Checks worker.callback_base_url for the callback kind named by `kind_field`: present, http://
/// or https:// with a host, printable, without query or fragment, at most 2000 bytes. Throws
/// ConfigError naming both.
void check_callback_base_url(const std::string& url, const std::string& kind_field);
/// What a worker's config says about one kind that lives in the database (docket.kinds), as one
/// value: docket.seed_kind takes it whole (as a JSON object, db::kind_settings_json), so a new
/// per-kind setting changes this struct, its JSON, a migration and that one function. A nullopt
/// leaves the stored value. Quota and keyed limits keep an operator's setting until
/// `docket limit KIND --reset`; the rate applies at each start.
struct KindSettings {
  std::string kind;                             ///< the kind's name
  std::optional<int> max_retries;               ///< default for new jobs that set none
  std::optional<int> max_running;               ///< the TOML quota (config_max_running)
  std::optional<std::string> crawl_collection;  ///< crawl kinds: their live-table collection
  std::optional<Millis> timeout;                ///< the kind's run timeout (docket.stuck_jobs)
  std::optional<std::string> queue;             ///< where enqueues that name no queue land
  std::optional<Millis> retain_completed;       ///< how long completed jobs are kept
  std::optional<Millis> retain_failed;          ///< how long failed and cancelled jobs are kept
  std::optional<std::string> rate;              ///< "N/PERIOD" (docket.set_rate); nullopt leaves it
  std::optional<int> burst;                     ///< the rate's bucket size
  PartitionLimit keyed;                         ///< keyed limits, seeded when keyed.partition is set
  std::optional<KindUnique> unique;             ///< the kind's derived unique key, set exactly
  std::optional<Millis> result_ttl;             ///< how long a completed job's result is kept
};

/// A kind's settings from its [kinds.X] table; the worker's retention applies where it sets none.
KindSettings kind_settings(const std::string& kind, const KindConfig& config, const WorkerConfig& worker);

/// "1500ms" -> "1.5s": the shortest readable spelling.
std::string format_duration(Millis d);
/// The closest of `known` to `key` (edit distance), or "" when nothing is close.
std::string suggest(const std::string& key, const std::vector<std::string>& known);

}  // namespace docket
