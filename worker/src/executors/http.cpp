#include <ctime>

#include "executors/executors.hpp"
#include "executors/fetch.hpp"

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

Handler http_handler(const HttpExecutor& spec, Millis timeout) {
  const auto configured = parse_http_url(spec.url);
  const std::string origin = configured ? configured->origin : "";
  return [spec, origin, timeout](JobContext& ctx) -> Outcome {
    const Job& job = ctx.job();
    const Json body = {{"id", job.id},     {"kind", job.kind},       {"queue", job.queue},
                       {"args", job.args}, {"attempt", job.attempt}, {"max_retries", job.max_retries}};
    FetchRequest req;
    req.method = "POST";
    req.url = spec.url;
    req.headers = {{"X-Docket-Job-Id", std::to_string(job.id)}, {"X-Docket-Attempt", std::to_string(job.attempt)}};
    req.credentials = spec.headers;
    req.credentials_origin = origin;
    req.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    req.content_type = "application/json";
    req.max_bytes = spec.max_response;
    // The kind's timeout bounds the whole request, not each read: the worker's watchdog stops the
    // job at `timeout` (through the stop token); the request's own deadline is a backstop.
    req.timeout = timeout + Millis(500);
    req.stop = ctx.stop_token();
    const FetchResult res = fetch(req);
    // Stopped or timed out: the worker's watchdog reason (cancel, timeout, shutdown) decides.
    if (res.too_large) return Outcome::fail(res.error);  // the same answer again next time
    if (res.status == 0) return Outcome::retry(res.error);
    const int status = res.status;
    const std::string snippet = tail(res.body, 500);
    if (status >= 200 && status < 300) return complete_with_output(job, res.body, "the response of " + spec.url);
    const std::string msg = "HTTP " + std::to_string(status) + (snippet.empty() ? "" : ": " + snippet);
    if (status == 429 || status == 408 || status >= 500) {
      return Outcome::retry(msg, parse_retry_after(res.header("Retry-After"), res.header("Date")));
    }
    return Outcome::fail(msg);
  };
}

}  // namespace docket
