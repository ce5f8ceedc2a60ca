#pragma once
// Handlers for kinds configured without C++ code: command, url, builtin (crawl: crawl/executor.hpp).
#include <memory>
#include <optional>
#include <string>

#include "docket/config.hpp"
#include "docket/handler.hpp"

namespace docket {

namespace db {
class Pool;
}

/// The handler for a configured kind. Throws ConfigError when the kind has no executor.
Handler make_executor_handler(const KindConfig& kind);

/// What a url kind with callback = true needs besides its spec.
struct CallbackContext {
  std::shared_ptr<db::Pool> pool;  ///< arms the run's token and parks the job after a 202
  std::string base_url;            ///< worker.callback_base_url
  Backoff backoff;                 ///< the kind's: stored on a parked job for its deadline
};

Handler command_handler(const CommandExecutor& spec);
/// A url kind; with `callback`, the endpoint gets a per-attempt token and may answer 202.
Handler http_handler(const HttpExecutor& spec, Millis timeout, std::optional<CallbackContext> callback = std::nullopt);
Handler builtin_handler(const std::string& name);

/// Names accepted by `builtin = "..."`.
const std::vector<std::string>& builtin_names();

/// Longest wait a retry or snooze is given (a Retry-After beyond it is clamped to it).
inline constexpr Millis kMaxRetryDelay{24LL * 3600 * 1000};

/// Retry-After: delta-seconds or an HTTP-date, at most kMaxRetryDelay. nullopt when absent or
/// unreadable. An HTTP-date counts from the response's `date` header (the server's clock, so a
/// worker whose clock is off waits what the server meant), else from the worker's clock.
std::optional<Millis> parse_retry_after(const std::string& value, const std::string& date = "");
/// The last `max` bytes of `text`, trimmed and cleaned (clean_text), for error messages.
std::string tail(const std::string& text, std::size_t max = 2000);
/// A successful run's output (stdout, a response body): its JSON is the result; well-formed JSON
/// the bounded parser refuses (too deep, huge integers) fails the job with the reason; text that
/// is not JSON completes with a trace as its result (complete_without_result).
Outcome complete_with_output(const Job& job, const std::string& output, const std::string& what);
/// Most bytes of an output that was not kept shown in its trace.
constexpr std::size_t kDroppedOutputMax = 4096;
/// A run that succeeded but whose output is not a result (not JSON, over the cap): completed with
/// {"docket_result_dropped": reason, "output": its first kDroppedOutputMax bytes as a string}, and
/// a job.result_dropped log line, so the loss is visible on the job and in the log.
Outcome complete_without_result(const Job& job, const std::string& reason, std::string_view output);

}  // namespace docket
