#include <ctime>
#include <random>

#include "core/secret.hpp"
#include "db/pool.hpp"
#include "docket/json.hpp"
#include "executors/control.hpp"
#include "executors/executors.hpp"
#include "executors/fetch.hpp"
#include "queue/finish.hpp"

namespace docket {

namespace {
/// An IMF-fixdate (`Fri, 01 Jan 2027 00:00:00 GMT`) as seconds since the epoch.
std::optional<std::time_t> parse_http_date(const std::string& value) {
  std::tm tm{};
  if (::strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return std::nullopt;
  return ::timegm(&tm);
}
}  // namespace

std::optional<Millis> parse_retry_after(const std::string& value, const std::string& date) {
  if (value.empty()) return std::nullopt;
  constexpr long long kMaxS = kMaxRetryDelay.count() / 1000;
  if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c) || c == ' '; })) {
    try {
      return Millis(std::min(std::stoll(value), kMaxS) * 1000);
    } catch (const std::out_of_range&) {
      return kMaxRetryDelay;  // more digits than a long long: far beyond the cap
    } catch (...) {
      return std::nullopt;
    }
  }
  const auto at = parse_http_date(value);
  if (!at) return std::nullopt;
  const std::time_t now = parse_http_date(date).value_or(std::time(nullptr));
  return Millis(std::clamp<long long>(static_cast<long long>(*at - now), 0, kMaxS) * 1000);
}

namespace {

/// A response's outcome by its status: 2xx completes (a JSON body is the result unless it was a
/// control object), 422 discards, 408/429/5xx retry honouring Retry-After, the rest fail.
Outcome status_outcome(const Job& job, const FetchResult& res, const std::string& what, bool controlled) {
  const int status = res.status;
  if (status >= 200 && status < 300)
    return controlled ? Outcome::complete() : complete_with_output(job, res.body, what);
  const std::string snippet = tail(res.body, 500);
  const std::string msg = "HTTP " + std::to_string(status) + (snippet.empty() ? "" : ": " + snippet);
  if (status == 422) return Outcome::fail("discarded: " + msg);
  if (status == 429 || status == 408 || status >= 500) {
    return Outcome::retry(msg, parse_retry_after(res.header("Retry-After"), res.header("Date")));
  }
  return Outcome::fail(msg);
}

/// A callback run's token: made before the request, only its hash stored (fenced like every
/// finishing write, so a worker that lost the job sends no token).
struct CallbackToken {
  std::string token;
  std::string hash;
};

std::optional<CallbackToken> arm_callback(const CallbackContext& cb, const Job& job) {
  CallbackToken t{random_hex(32), {}};
  t.hash = sha256_hex(t.token);
  auto session = cb.pool->acquire();
  if (!session->callback_arm(job.worker_id, job.id, job.attempt, t.hash)) return std::nullopt;
  return t;
}

/// After the endpoint's 202: the job waits for its callback for its timeout; the kind's backoff
/// for this attempt is stored for the deadline's retry.
void park_callback(const CallbackContext& cb, const Job& job, const CallbackToken& t) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const double backoff_s = delay_seconds(cb.backoff.wait_after(job.attempt, rng));
  auto session = cb.pool->acquire();
  // False: the callback already ended the run (it may come before the 202), or the job was taken
  // from this worker; either way nothing is left for this run to write.
  session->callback_wait(job.worker_id, job.id, job.attempt, t.hash, static_cast<double>(job.timeout.count()) / 1000.0,
                         backoff_s);
}

}  // namespace

Handler http_handler(const HttpExecutor& spec, Millis timeout, std::optional<CallbackContext> callback) {
  const auto configured = parse_http_url(spec.url);
  const std::string origin = configured ? configured->origin : "";
  std::string base = callback ? callback->base_url : "";
  while (!base.empty() && base.back() == '/') base.pop_back();
  return [spec, origin, timeout, callback, base](JobContext& ctx) -> Outcome {
    const Job& job = ctx.job();
    const Json body = {{"id", job.id},     {"kind", job.kind},       {"queue", job.queue},
                       {"args", job.args}, {"attempt", job.attempt}, {"max_retries", job.max_retries}};
    FetchRequest req;
    req.method = "POST";
    req.url = spec.url;
    req.headers = {{"X-Docket-Job-Id", std::to_string(job.id)}, {"X-Docket-Attempt", std::to_string(job.attempt)}};
    req.credentials = spec.headers;
    req.credentials_origin = origin;
    std::optional<CallbackToken> token;
    if (callback) {
      token = arm_callback(*callback, job);
      if (!token) return Outcome::retry("this worker no longer holds the job; no callback token was sent");
      // Credentials: sent to the kind's configured origin only, never to where a redirect points.
      req.credentials["Docket-Job-Id"] = std::to_string(job.id);
      req.credentials["Docket-Callback-Url"] = base + "/jobs/" + std::to_string(job.id);
      req.credentials["Docket-Callback-Token"] = token->token;
    }
    req.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    req.content_type = "application/json";
    req.max_bytes = spec.max_response;
    // The run's timeout (the job's own, else the kind's) bounds the whole request, not each read:
    // the worker's watchdog stops the job at it (through the stop token); the request's own
    // deadline is a backstop.
    req.timeout = (job.timeout.count() > 0 ? job.timeout : timeout) + Millis(500);
    req.stop = ctx.stop_token();
    const FetchResult res = fetch(req);
    // Stopped or timed out: the worker's watchdog reason (cancel, timeout, shutdown) decides.
    if (res.too_large) return Outcome::fail(res.error);  // the same answer again next time
    if (res.status == 0) return Outcome::retry(res.error);
    if (token && res.status == 202) {
      park_callback(*callback, job, *token);
      return Outcome::await_callback();
    }
    const std::string what = "the response of " + spec.url;
    // A JSON object of control keys ({"snooze": "10m"}, {"result": ..., "progress": ...}) decides
    // like a command's control lines, whatever the status; any other body keeps the status rules.
    ControlChannel control([&ctx](Json value) { ctx.progress(std::move(value)); });
    std::string body_error;
    const auto answer = try_parse_json(res.body, what, &body_error);
    const bool controlled = answer && ControlChannel::is_control_object(*answer);
    if (controlled) control.apply(*answer, what);
    return control.decide(status_outcome(job, res, what, controlled));
  };
}

}  // namespace docket
