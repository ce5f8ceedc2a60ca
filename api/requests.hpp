#pragma once
// Parsing and validating request bodies and query strings into docket types.
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "docket/config.hpp"
#include "docket/job.hpp"
#include "docket/schedule.hpp"

namespace docket::api {

/// POST /jobs. An Idempotency-Key header is the job's unique_key (it must agree with a body one).
EnqueueRequest parse_enqueue(const std::string& body, const std::optional<std::string>& idempotency_key);
/// GET /jobs?kind=&queue=&state=&limit=&after= ; limit is capped at `max_limit`.
JobFilter parse_job_filter(const std::multimap<std::string, std::string>& params, int max_limit);
/// GET /jobs/{id}?wait=30s: how long to wait for the job to finish ("500ms", "30s", "1m", or a
/// number of seconds), at most kMaxWait; else 400 naming `wait`. nullopt: no wait asked for. Any
/// other parameter is a 400 too.
std::optional<std::chrono::milliseconds> parse_wait(const std::multimap<std::string, std::string>& params);
/// GET /crawls?collection=&status=&limit=&after= ; limit is capped at `max_limit`.
CrawlFilter parse_crawl_filter(const std::multimap<std::string, std::string>& params, int max_limit);
/// PUT /limits/{kind}: what to change; an absent field is left as it is.
struct LimitChange {
  std::optional<std::optional<int>> max_running;   ///< N, or null to remove the quota
  std::optional<std::optional<std::string>> rate;  ///< "N/PERIOD", or null to remove the rate
  std::optional<int> burst;                        ///< with rate only
  /// The keyed limits, set together when the body has "partition" (null removes them all).
  std::optional<PartitionLimit> keyed;
};
/// PUT /limits/{kind}: {"max_running": N | null, "rate": "100/1m" | null, "burst": N,
/// "partition": "args.tenant" | null, "max_running_per_key": N, "rate_per_key": "N/PERIOD",
/// "burst_per_key": N}, at least one of max_running, rate and partition.
LimitChange parse_limit(const std::string& body);
/// A schedule's name (from the path, or `field` of the query): 1 to 200 characters of valid
/// UTF-8, no control characters; else 422 naming the field (nothing reaches the database).
std::string schedule_name(const std::string& text, const std::string& field = "name");
/// PUT /schedules/{name}: {"cron", "kind", "args", "tz", "queue", "spread", "on_overlap",
/// "on_missed", "enabled", "priority", "max_retries"}; the SQL function checks the values.
ScheduleSpec parse_schedule(const std::string& name, const std::string& body);
/// GET /schedules?limit=&after=NAME ; limit is capped at `max_limit`.
struct ScheduleFilter {
  int limit = 100;
  std::optional<std::string> after;  ///< names sorting after this one
};
/// Reads GET /schedules' query string.
ScheduleFilter parse_schedule_filter(const std::multimap<std::string, std::string>& params, int max_limit);
/// A request body as a JSON object, or a 400 that says what is wrong with it.
Json parse_object(const std::string& body);

}  // namespace docket::api
