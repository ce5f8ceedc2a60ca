#pragma once
// The outcome protocol of jobs written in any language: JSON control lines a command writes on
// its fd 3, the same keys in a url kind's JSON response body, and the body of a callback token
// holder's POST /jobs/{id}/outcome (README: Outcomes).
//   {"progress": any}                 stored on the job while it runs
//   {"result": any}                   the result (instead of stdout / the body)
//   {"retry": "reason", "in": "30s"}  retry (counts an attempt); "in" optional, else backoff
//   {"snooze": "10m"}                 run again later without counting an attempt
//   {"discard": "reason"}             failed now, no retries
// The last retry/snooze/discard decides, whatever the exit code or status. A line that breaks
// the protocol (not a JSON object, an unknown key, a bad duration, too long, too many lines)
// fails the job for good: a rerun of the same program would break it the same way.
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "docket/handler.hpp"

namespace docket {

/// Longest control line read (longer ones break the protocol).
inline constexpr std::size_t kMaxControlLine = 1 << 20;
/// Most control lines one run may write.
inline constexpr std::size_t kMaxControlLines = 100000;

/// A command's exit codes, without a deciding control line: 0 completes, kExitRetry retries,
/// kExitDiscard fails now, kExitSnooze snoozes for kExitSnoozeDelay; any other code retries.
inline constexpr int kExitRetry = 75;
inline constexpr int kExitDiscard = 76;
inline constexpr int kExitSnooze = 77;
/// How long exit kExitSnooze snoozes (a control line {"snooze": ...} picks another delay).
inline constexpr std::chrono::milliseconds kExitSnoozeDelay{60000};

/// Reads one run's control messages and decides its outcome with them.
class ControlChannel {
 public:
  /// `progress` stores a progress value on the job (coalesced by the worker).
  explicit ControlChannel(std::function<void(Json)> progress) : progress_(std::move(progress)) {}

  /// One line from fd 3 (without its newline); `too_long`: it had more than kMaxControlLine bytes.
  void line(std::string_view text, bool too_long = false);
  /// One control object (a line, a response body); `where` names it in errors.
  void apply(const Json& message, const std::string& where);
  /// Whether `body` is a control object: a JSON object whose keys are all control keys.
  static bool is_control_object(const Json& body);

  /// Why the protocol was broken ("" when it was not).
  const std::string& error() const { return error_; }
  /// True when a retry, snooze or discard was given.
  bool decided() const { return decision_.has_value(); }
  /// True when a result was given (then result() is it).
  bool has_result() const { return result_.has_value(); }
  /// The last {"result": ...}.
  const Json& result() const { return *result_; }
  /// The outcome: a protocol error first, then the last decision, else `by_exit` (the exit code's
  /// or status's), whose result is replaced by the control result when there is one.
  Outcome decide(Outcome by_exit) const;

 private:
  void broken(std::string why);

  std::function<void(Json)> progress_;
  std::optional<Json> result_;
  std::optional<Outcome> decision_;
  std::string error_;
  std::size_t lines_ = 0;
};

struct ProcessResult;
/// A finished command's outcome by its exit code (or signal); a control result replaces stdout.
Outcome exit_outcome(const Job& job, const ProcessResult& r, const ControlChannel& control);

}  // namespace docket
