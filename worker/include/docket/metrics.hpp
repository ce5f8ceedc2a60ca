#pragma once
// Prometheus metrics of one process: worker events (claimed, completed, failed... with job
// duration and queue latency histograms) and API requests. Rendered in the text format with
// gauges read from the database at scrape time (see the API's /metrics).
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace docket {

/// A gauge sample computed at render time (jobs by queue and state, running by kind...).
struct GaugeSample {
  std::string name;
  std::string help;
  std::map<std::string, std::string> labels;
  double value = 0;
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// A job was claimed; `queue_latency_s` is run_at (or enqueue) -> claim.
  void job_claimed(const std::string& kind, const std::string& queue, double queue_latency_s);
  /// An outcome was written: state is completed, retryable, failed, cancelled, scheduled,
  /// available (handed back) or stale (refused by the fence).
  void job_finished(const std::string& kind, const std::string& state, double duration_s);
  /// A run of `kind` became stuck (+1: its handler had not returned long after it was stopped) or
  /// its stuck handler returned at last (-1): the gauge docket_worker_stuck_jobs.
  void job_stuck(const std::string& kind, int delta);
  /// A schedule's slot got its job `lateness_s` after the slot's time.
  void schedule_enqueued(double lateness_s);
  /// One HTTP request (route is the pattern, not the raw path).
  void api_request(const std::string& route, const std::string& method, int status, double seconds);

  /// The text exposition format: this process's metrics followed by `gauges`.
  std::string render(const std::vector<GaugeSample>& gauges) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace docket
