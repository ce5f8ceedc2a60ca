#pragma once
// The C++ handler API: a handler receives a JobContext and returns an Outcome (or throws = retry).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include "docket/job.hpp"

namespace docket {

/// The claimed job as a handler sees it.
struct Job {
  std::int64_t id = 0;
  std::string kind;
  std::string queue;
  Json args;
  int attempt = 0;  ///< 1 on the first run
  int max_retries = 0;
  int priority = 0;
  std::optional<std::string> unique_key;
  /// This run's timeout: the job's own (enqueued with `timeout`), else its kind's.
  std::chrono::milliseconds timeout{0};
  /// The worker id the job was claimed under: fence your own writes with it (state = 'running'
  /// AND worker = this AND attempt = attempt) to make their effects exactly-once.
  std::string worker_id;
};

/// What a handler decided. Build one with the static functions.
class Outcome {
 public:
  enum class Kind { complete, retry, snooze, fail, cancel, callback };

  /// Done; `result` (any JSON) is stored in docket.jobs.result.
  static Outcome complete(Json result = nullptr);
  /// Try again later (counts an attempt); without a delay the kind's backoff decides.
  static Outcome retry(std::string error, std::optional<std::chrono::milliseconds> delay = std::nullopt);
  /// Run again after `delay` without counting an attempt.
  static Outcome snooze(std::chrono::milliseconds delay);
  /// Permanent failure: no more retries.
  static Outcome fail(std::string error);
  /// Give up on this job: state `cancelled`.
  static Outcome cancel(std::string reason);
  /// The job stays `running` without this worker: the holder of its callback token reports the
  /// outcome (url kinds with callback = true whose endpoint answered 202; README: Callbacks).
  static Outcome await_callback();

  Kind kind() const { return kind_; }
  const Json& result() const { return result_; }
  const std::string& error() const { return error_; }
  std::optional<std::chrono::milliseconds> delay() const { return delay_; }

 private:
  Kind kind_ = Kind::complete;
  Json result_;
  std::string error_;
  std::optional<std::chrono::milliseconds> delay_;
};

/// Per-job handle given to a handler: the job, a stop token and progress reporting.
class JobContext {
 public:
  JobContext(Job job, std::stop_token stop, std::function<void(Json)> report_progress)
      : job_(std::move(job)), stop_(std::move(stop)), report_progress_(std::move(report_progress)) {}

  const Job& job() const { return job_; }
  const Json& args() const { return job_.args; }
  /// True once the job timed out, was cancelled, or the worker is shutting down: return soon.
  bool stop_requested() const { return stop_.stop_requested(); }
  std::stop_token stop_token() const { return stop_; }
  /// Records progress (any JSON) in docket.jobs.progress; fenced like every finishing write.
  void progress(Json value) const {
    if (report_progress_) report_progress_(std::move(value));
  }

 private:
  Job job_;
  std::stop_token stop_;
  std::function<void(Json)> report_progress_;
};

/// A job handler. Throwing is the same as Outcome::retry(what()).
using Handler = std::function<Outcome(JobContext&)>;

}  // namespace docket
