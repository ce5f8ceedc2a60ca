#pragma once
// Jobs as users see them: states, enqueue requests, job records and filters.
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "docket/crawl.hpp"

namespace docket {

using Json = nlohmann::json;
using Clock = std::chrono::system_clock;

/// The seven states of docket.job_state (Lifecycle.CppStatesAreTheSqlEnum keeps the two equal).
/// Who moves a job into and out of each state (SQL functions in schema/migrations, newest wins):
///   available  in:  enqueue (run_at now), promote (a due scheduled/retryable job), rescue (its worker
///                   died), the `release` outcome (SIGTERM hands it back), retry (operator)
///              out: claim / finish_and_claim -> running; cancel -> cancelled
///   scheduled  in:  enqueue (run_at later), the `snooze` outcome, a schedule's slot
///              out: promote -> available; cancel -> cancelled
///   running    in:  claim / finish_and_claim (worker and attempt set)
///              out: the worker's fenced outcome (finish_and_claim: complete, retry, snooze, fail,
///                   cancel, release); rescue -> available / failed / cancelled
///   retryable  in:  the `retry` outcome with attempts left
///              out: promote -> available; cancel -> cancelled
///   completed, failed, cancelled (finished: finished_at set)
///              in:  outcomes, rescue past max_retries, cancel of a job that is not running
///              out: retry (operator) -> available; prune deletes them past their retention
enum class JobState { available, scheduled, running, retryable, completed, failed, cancelled };

/// Whether a job in `state` is finished (it will not run again unless an operator retries it).
constexpr bool is_finished(JobState state) {
  switch (state) {
    case JobState::available:
    case JobState::scheduled:
    case JobState::running:
    case JobState::retryable:
      return false;
    case JobState::completed:
    case JobState::failed:
    case JobState::cancelled:
      return true;
  }
  return false;  // unreachable: the switch names every state (-Wswitch)
}

/// The SQL spelling of a state.
std::string_view to_string(JobState state);
/// Parses a state name; std::nullopt for anything else.
std::optional<JobState> parse_job_state(std::string_view name);
/// Every state name, in enum order, for error messages and validation.
const std::vector<std::string>& job_state_names();

/// What `docket.enqueue` takes. Defaults match the SQL function's.
struct EnqueueRequest {
  std::string kind;
  Json args = Json::object();
  std::optional<std::string> queue;  ///< empty: the kind's queue ([kinds.X] queue), else "default"
  int priority = 0;
  std::optional<Clock::time_point> run_at;  ///< empty: now
  std::optional<int> max_retries;           ///< empty: the kind's default, else 20
  std::optional<std::string> unique_key;
  /// This job's run timeout, overriding its kind's; empty: the kind's. More than 0, at most
  /// kMaxJobTimeout.
  std::optional<std::chrono::milliseconds> timeout;
  /// A job with unique_key (or the kind's derived key) in one of unique_states made within this
  /// period is returned instead of a new one. More than 0, at most kMaxJobTimeout.
  std::optional<std::chrono::milliseconds> unique_for;
  /// The states that dedup (default: the unfinished ones); must include every unfinished state.
  std::optional<std::vector<std::string>> unique_states;
  /// How long the result is kept after the job completes (default: the kind's result_ttl, else
  /// until the job is pruned). More than 0, at most kMaxJobTimeout.
  std::optional<std::chrono::milliseconds> result_ttl;
};

/// Longest per-job timeout accepted (docket.timeout_ok).
inline constexpr std::chrono::milliseconds kMaxJobTimeout{365LL * 86400 * 1000};

/// docket.check_job_fields in C++, so a bad request is refused before it joins a batch: kind and
/// queue are 1-200 printable characters, priority 0-1000, max_retries >= 0, unique_key 1-1000
/// characters of valid UTF-8, run_at in the documented range, timeout, unique_for and result_ttl in (0,
/// kMaxJobTimeout], unique_states known states that include the unfinished ones. Throws InvalidInput whose message
/// starts with `where` ("" or "jobs[3].") and names the field.
void check_enqueue_request(const EnqueueRequest& r, const std::string& where = "");
/// A unique_states list: 1-7 known state names including every unfinished one (as
/// docket.check_unique_states); else InvalidInput naming `field`.
void check_unique_states(const std::vector<std::string>& states, const std::string& field);
/// Whether `s` is well-formed UTF-8 (what PostgreSQL accepts as text).
bool valid_utf8(std::string_view s);

/// The id of the enqueued job; created is false when a live job with the same unique_key existed.
struct EnqueueResult {
  std::int64_t id = 0;
  bool created = true;
  /// Why no live worker would run the job (a kind none runs, a queue none claims); empty when one
  /// would, and for enqueue_many (it does not look).
  std::optional<std::string> warning;
};

struct JobRecord;

/// One row of docket.jobs, as JSON-friendly values (timestamps are ISO 8601 strings).
struct JobRecord {
  std::int64_t id = 0;
  std::string kind;
  std::string queue;
  Json args;
  JobState state = JobState::available;
  int priority = 0;
  int attempt = 0;
  int max_retries = 0;
  std::string run_at;
  std::string inserted_at;
  std::optional<std::string> started_at;
  std::optional<std::string> finished_at;
  std::optional<std::string> cancel_requested_at;
  Json errors = Json::array();  ///< [{attempt, at, error}]
  Json result;                  ///< null until completed with a result
  Json progress;
  std::optional<std::string> unique_key;
  std::optional<std::string> worker;
  /// When the result expired (its result_ttl passed): `result` is null from then on.
  std::optional<std::string> result_expired_at;
};

void to_json(Json& out, const JobRecord& job);
void from_json(const Json& in, JobRecord& job);

/// An enqueued job as it now stands, and whether this call created it (false: a live job with
/// the same unique_key was there already).
struct Submitted {
  JobRecord job;
  bool created = true;
  std::optional<std::string> warning;  ///< as EnqueueResult::warning
};

/// Filters for listing jobs, newest first. `after` is the last id of the previous page.
struct JobFilter {
  std::optional<std::string> kind;
  std::optional<std::string> queue;
  std::optional<JobState> state;
  std::optional<std::string> unique_key;  ///< the jobs made with this key, newest first (jobs_key_idx)
  int limit = 50;
  std::optional<std::int64_t> after;
};

/// What cancelling did.
enum class CancelResult {
  cancelled,         ///< it was waiting and is now cancelled
  cancel_requested,  ///< it is running; its worker will stop it
  already_finished   ///< completed, failed or cancelled before
};

/// One line of `docket stats` / GET /queues.
struct QueueSummary {
  std::string queue;
  std::int64_t available = 0;
  std::int64_t running = 0;
  std::int64_t waiting = 0;  ///< scheduled + retryable
  std::optional<double> oldest_available_age_s;
  bool paused = false;
};

/// Running jobs of a kind against its global quota, and its rate limit.
struct KindLimit {
  std::string kind;
  std::optional<int> max_running;
  std::int64_t running = 0;
  std::optional<int> max_retries;
  std::optional<int> rate_limit;  ///< N jobs started per rate_period_s, across the fleet
  std::optional<double> rate_period_s;
  std::optional<double> rate_burst;   ///< the bucket's size
  std::optional<double> rate_tokens;  ///< starts the bucket allows right now
  bool at_limit = false;              ///< a limit holds the kind's jobs back right now
  /// Who set max_running: "config" (a worker's TOML) or "operator" (docket limit); empty: nobody.
  std::optional<std::string> source;
  std::optional<int> config_max_running;   ///< the workers' TOML value (applies after `docket limit K --reset`)
  std::optional<std::string> partition;    ///< JSON path into args whose value keys the per-key limits
  std::optional<int> max_running_per_key;  ///< most running jobs of one key
  std::int64_t max_key_running = 0;        ///< running jobs of the busiest key
  std::optional<int> rate_per_key;         ///< N starts per rate_per_key_period_s for each key
  std::optional<double> rate_per_key_period_s;
  std::optional<double> rate_per_key_burst;  ///< each key's bucket size
  std::int64_t keys_at_limit = 0;            ///< keys a per-key limit holds back right now
};

/// One busy key of a keyed kind (docket.kind_hot_keys): what holds it back, if anything.
struct KeyLimit {
  std::string key;
  std::int64_t running = 0;
  std::optional<double> rate_tokens;  ///< its bucket now (nullopt: full, or no rate per key)
  bool at_limit = false;              ///< at max_running_per_key or out of tokens
  std::int64_t available = 0;         ///< its jobs waiting (counted up to 100000)
};

void to_json(Json& out, const QueueSummary& q);
void to_json(Json& out, const KindLimit& k);
void to_json(Json& out, const KeyLimit& k);

}  // namespace docket
