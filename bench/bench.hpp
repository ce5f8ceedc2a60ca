#pragma once
// `docket bench SCENARIO`: no-op jobs against DATABASE_URL, ending with one JSON line.
#include <string>

#include "docket/job.hpp"

namespace docket::bench {

struct Options {
  std::string scenario;  ///< drain, enqueue, enqueue_sql, growth, latency, steady, quota, quota_mix, keyed, rate,
                         ///< bloat, schedules, soak
  std::string url;
  int jobs = 0;         ///< 0: the scenario's default
  int workers = 1;      ///< worker processes
  int concurrency = 0;  ///< jobs each worker runs at once (0: the scenario's default)
  int batch = 0;        ///< claim batch (0: the worker's default)
  double seconds =
      0;  ///< steady, soak, schedules, rate, enqueue_sql, growth: how long to run (0: the scenario's default)
  bool large = false;  ///< growth: also 1M queued and 10M finished rows (minutes, GBs of disk)
  int rounds = 3;      ///< enqueue_sql: interleaved rounds of its three variants
  std::string docket;  ///< this binary, to start worker processes
  std::string metric;  ///< the name its JSON line carries (default: the scenario)
  int run = 1;         ///< repetition number, for interleaved runs (make bench-peers)
  std::string csv;     ///< soak: where the per-sample figures go (default soak.csv)
};

/// Runs the scenario and returns its JSON line (also printed by the CLI).
Json run(const Options& options);

const std::vector<std::string>& scenarios();

}  // namespace docket::bench
