#include <httplib.h>

#include <ctime>

#include "executors/executors.hpp"

namespace docket {

namespace {
struct Url {
  std::string origin;  // scheme://host:port
  std::string path;    // /path?query
};

Url split_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  const auto path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  if (path_start == std::string::npos) return {url, "/"};
  return {url.substr(0, path_start), url.substr(path_start)};
}
}  // namespace

std::optional<Millis> parse_retry_after(const std::string& value) {
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c) || c == ' '; })) {
    try {
      return Millis(std::stoll(value) * 1000);
    } catch (...) {
      return std::nullopt;
    }
  }
  std::tm tm{};
  if (::strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return std::nullopt;
  const std::time_t at = ::timegm(&tm);
  const std::time_t now = std::time(nullptr);
  return Millis(std::max<long long>(0, static_cast<long long>(at - now)) * 1000);
}

Handler http_handler(const HttpExecutor& spec, Millis timeout) {
  const Url url = split_url(spec.url);
  return [spec, url, timeout](JobContext& ctx) -> Outcome {
    const Job& job = ctx.job();
    const Json body = {{"id", job.id},     {"kind", job.kind},       {"queue", job.queue},
                       {"args", job.args}, {"attempt", job.attempt}, {"max_retries", job.max_retries}};
    httplib::Client client(url.origin);
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
    const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count() % 1000000;
    client.set_connection_timeout(std::min<long long>(secs, 10), secs < 10 ? usecs : 0);
    client.set_read_timeout(secs, usecs);
    client.set_write_timeout(secs, usecs);
    httplib::Headers headers = {{"X-Docket-Job-Id", std::to_string(job.id)},
                                {"X-Docket-Attempt", std::to_string(job.attempt)}};
    for (const auto& [k, v] : spec.headers) headers.emplace(k, v);
    auto res = client.Post(url.path, headers, body.dump(), "application/json");
    if (!res) {
      return Outcome::retry("POST " + spec.url + " failed: " + httplib::to_string(res.error()));
    }
    const int status = res->status;
    const std::string snippet = tail(res->body, 500);
    if (status >= 200 && status < 300) {
      Json result = Json::parse(res->body, nullptr, false);
      return Outcome::complete(result.is_discarded() ? Json() : result);
    }
    const std::string msg = "HTTP " + std::to_string(status) + (snippet.empty() ? "" : ": " + snippet);
    if (status == 429 || status == 408 || status >= 500) {
      return Outcome::retry(msg, parse_retry_after(res->get_header_value("Retry-After")));
    }
    return Outcome::fail(msg);
  };
}

}  // namespace docket
