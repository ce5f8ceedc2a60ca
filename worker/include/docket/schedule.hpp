#pragma once
// Periodic work: a schedule enqueues its kind's job at every slot of a cron expression, once per
// slot across the fleet (README: Schedules). Managed from SQL, HTTP, the CLI and TOML alike.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "docket/job.hpp"

namespace docket {

/// What docket.schedule() takes; the SQL function validates every field.
struct ScheduleSpec {
  std::string name;
  std::string cron;  ///< 5 fields, @hourly/@daily/..., or "@every 5m"
  std::string kind;
  Json args = Json::object();
  std::string tz = "UTC";                           ///< IANA zone the expression is read in
  std::optional<std::string> queue;                 ///< default: the enqueue default
  std::optional<std::chrono::milliseconds> spread;  ///< slots shift by a fixed offset in [0, spread)
  std::string on_overlap = "skip";                  ///< skip | allow | replace
  std::string on_missed = "skip";                   ///< skip | latest | all
  bool enabled = true;
  int priority = 0;
  std::optional<int> max_retries;
  std::string source = "runtime";  ///< runtime, or config (declared in TOML)
};

/// Schedules per state, for /metrics.
struct ScheduleCounts {
  std::int64_t enabled = 0;
  std::int64_t paused = 0;
  std::int64_t late = 0;  ///< enabled, due more than 5 s ago, its job not yet enqueued
};

/// What applying the config's [schedules] did (docket migrate, a worker's start).
struct ScheduleDeploy {
  std::vector<std::string> applied;  ///< created or updated with source config
  std::vector<std::string> runtime;  ///< a run-time schedule has the name: left as it is
  std::vector<std::string> deleted;  ///< config schedules no longer in the file (prune only)
};

}  // namespace docket
