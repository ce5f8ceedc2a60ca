#include "docket/job.hpp"

#include <algorithm>
#include <array>

#include "docket/errors.hpp"
#include "docket/time.hpp"

namespace docket {

namespace {
constexpr std::array kAllStates = {JobState::available, JobState::scheduled, JobState::running,  JobState::retryable,
                                   JobState::completed, JobState::failed,    JobState::cancelled};

template <class T>
std::optional<T> opt(const Json& in, const char* key) {
  auto it = in.find(key);
  if (it == in.end() || it->is_null()) return std::nullopt;
  return it->get<T>();
}
}  // namespace

std::string_view to_string(JobState state) {
  // No default: a new state fails to compile (-Werror=switch) until it is named here.
  switch (state) {
    case JobState::available:
      return "available";
    case JobState::scheduled:
      return "scheduled";
    case JobState::running:
      return "running";
    case JobState::retryable:
      return "retryable";
    case JobState::completed:
      return "completed";
    case JobState::failed:
      return "failed";
    case JobState::cancelled:
      return "cancelled";
  }
  return "unknown";  // unreachable for a valid enum value
}

std::optional<JobState> parse_job_state(std::string_view name) {
  for (const auto state : kAllStates) {
    if (to_string(state) == name) return state;
  }
  return std::nullopt;
}

const std::vector<std::string>& job_state_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    out.reserve(kAllStates.size());
    for (const auto state : kAllStates) out.emplace_back(to_string(state));
    return out;
  }();
  return names;
}

void to_json(Json& out, const JobRecord& j) {
  auto nullable = [](const std::optional<std::string>& v) { return v ? Json(*v) : Json(nullptr); };
  out = Json{{"id", j.id},
             {"kind", j.kind},
             {"queue", j.queue},
             {"state", to_string(j.state)},
             {"args", j.args},
             {"priority", j.priority},
             {"attempt", j.attempt},
             {"max_retries", j.max_retries},
             {"run_at", j.run_at},
             {"inserted_at", j.inserted_at},
             {"started_at", nullable(j.started_at)},
             {"finished_at", nullable(j.finished_at)},
             {"cancel_requested_at", nullable(j.cancel_requested_at)},
             {"errors", j.errors},
             {"result", j.result},
             {"progress", j.progress},
             {"unique_key", nullable(j.unique_key)},
             {"worker", nullable(j.worker)},
             {"result_expired_at", nullable(j.result_expired_at)}};
}

void from_json(const Json& in, JobRecord& j) {
  j.id = in.at("id").get<std::int64_t>();
  j.kind = in.at("kind").get<std::string>();
  j.queue = in.at("queue").get<std::string>();
  j.args = in.value("args", Json::object());
  j.state = parse_job_state(in.at("state").get<std::string>()).value_or(JobState::available);
  j.priority = in.value("priority", 0);
  j.attempt = in.value("attempt", 0);
  j.max_retries = in.value("max_retries", 0);
  j.run_at = in.value("run_at", std::string());
  j.inserted_at = in.value("inserted_at", std::string());
  j.started_at = opt<std::string>(in, "started_at");
  j.finished_at = opt<std::string>(in, "finished_at");
  j.cancel_requested_at = opt<std::string>(in, "cancel_requested_at");
  j.errors = in.value("errors", Json::array());
  j.result = in.contains("result") ? in.at("result") : Json();
  j.progress = in.contains("progress") ? in.at("progress") : Json();
  j.unique_key = opt<std::string>(in, "unique_key");
  j.worker = opt<std::string>(in, "worker");
  j.result_expired_at = opt<std::string>(in, "result_expired_at");
}

const std::vector<std::string>& crawl_status_names() {
  static const std::vector<std::string> names = {"waiting", "crawling", "retrying", "finalizing", "done", "failed"};
  return names;
}

void to_json(Json& out, const CrawlRecord& c) {
  auto nullable = [](const std::optional<std::string>& v) { return v ? Json(*v) : Json(nullptr); };
  out = Json{{"id", c.id},
             {"job_id", c.job_id},
             {"kind", c.kind},
             {"collection", c.collection},
             {"status", c.status},
             {"pages", c.pages},
             {"items", c.items},
             {"next_url", nullable(c.next_url)},
             {"cursor", nullable(c.cursor)},
             {"last_error", nullable(c.last_error)},
             {"inserted_at", c.inserted_at},
             {"started_at", nullable(c.started_at)},
             {"updated_at", c.updated_at},
             {"finished_at", nullable(c.finished_at)},
             {"job_state", nullable(c.job_state)},
             {"attempt", c.attempt}};
}

void from_json(const Json& in, CrawlRecord& c) {
  c.id = in.at("id").get<std::int64_t>();
  c.job_id = in.value("job_id", std::int64_t{0});
  c.kind = in.value("kind", std::string());
  c.collection = in.value("collection", std::string());
  c.status = in.value("status", std::string());
  c.pages = in.value("pages", 0);
  c.items = in.value("items", 0);
  c.next_url = opt<std::string>(in, "next_url");
  c.cursor = opt<std::string>(in, "cursor");
  c.last_error = opt<std::string>(in, "last_error");
  c.inserted_at = in.value("inserted_at", std::string());
  c.started_at = opt<std::string>(in, "started_at");
  c.updated_at = in.value("updated_at", std::string());
  c.finished_at = opt<std::string>(in, "finished_at");
  c.job_state = opt<std::string>(in, "job_state");
  c.attempt = in.contains("attempt") && !in.at("attempt").is_null() ? in.at("attempt").get<int>() : 0;
}

void to_json(Json& out, const QueueSummary& q) {
  out = Json{{"queue", q.queue},
             {"available", q.available},
             {"running", q.running},
             {"waiting", q.waiting},
             {"paused", q.paused},
             {"oldest_available_age_s", q.oldest_available_age_s ? Json(*q.oldest_available_age_s) : Json()}};
}

void to_json(Json& out, const KindLimit& k) {
  out = Json{{"kind", k.kind},
             {"max_running", k.max_running ? Json(*k.max_running) : Json()},
             {"running", k.running},
             {"max_retries", k.max_retries ? Json(*k.max_retries) : Json()},
             {"rate_limit", k.rate_limit ? Json(*k.rate_limit) : Json()},
             {"rate_period_s", k.rate_period_s ? Json(*k.rate_period_s) : Json()},
             {"rate_burst", k.rate_burst ? Json(*k.rate_burst) : Json()},
             {"rate_tokens", k.rate_tokens ? Json(*k.rate_tokens) : Json()},
             {"at_limit", k.at_limit},
             {"source", k.source ? Json(*k.source) : Json()},
             {"config_max_running", k.config_max_running ? Json(*k.config_max_running) : Json()},
             {"partition", k.partition ? Json(*k.partition) : Json()},
             {"max_running_per_key", k.max_running_per_key ? Json(*k.max_running_per_key) : Json()},
             {"max_key_running", k.max_key_running},
             {"rate_per_key", k.rate_per_key ? Json(*k.rate_per_key) : Json()},
             {"rate_per_key_period_s", k.rate_per_key_period_s ? Json(*k.rate_per_key_period_s) : Json()},
             {"rate_per_key_burst", k.rate_per_key_burst ? Json(*k.rate_per_key_burst) : Json()},
             {"keys_at_limit", k.keys_at_limit}};
}

void to_json(Json& out, const KeyLimit& k) {
  out = Json{{"key", k.key},
             {"running", k.running},
             {"rate_tokens", k.rate_tokens ? Json(*k.rate_tokens) : Json()},
             {"at_limit", k.at_limit},
             {"available", k.available}};
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(n) >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points beyond U+10FFFF are not UTF-8.
    static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += static_cast<std::size_t>(n) + 1;
  }
  return true;
}

namespace {

/// Characters as PostgreSQL's length() counts them: UTF-8 lead bytes.
std::size_t characters(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

void check_name(const std::string& field, const std::string& value) {
  const bool blank = value.find_first_not_of(' ') == std::string::npos;
  const bool printable =
      std::none_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (blank || characters(value) > 200 || !printable || !valid_utf8(value)) {
    throw InvalidInput(field + " must be a non-empty string of at most 200 printable characters");
  }
}

}  // namespace

void check_enqueue_request(const EnqueueRequest& r, const std::string& where) {
  check_name(where + "kind", r.kind);
  if (r.queue) check_name(where + "queue", *r.queue);
  if (!r.args.is_object()) {
    throw InvalidInput(where + "args must be a JSON object, got " + std::string(r.args.type_name()));
  }
  if (r.priority < 0 || r.priority > 1000) {
    throw InvalidInput(where + "priority must be between 0 (runs first) and 1000, got " + std::to_string(r.priority));
  }
  if (r.max_retries && *r.max_retries < 0) {
    throw InvalidInput(where + "max_retries must be >= 0, got " + std::to_string(*r.max_retries));
  }
  if (r.unique_key) {
    if (r.unique_key->empty() || characters(*r.unique_key) > 1000) {
      throw InvalidInput(where + "unique_key must be 1 to 1000 characters");
    }
    if (!valid_utf8(*r.unique_key) || r.unique_key->find('\0') != std::string::npos) {
      throw InvalidInput(where + "unique_key must be valid UTF-8 without NUL characters");
    }
  }
  if (r.run_at && !time_in_range(*r.run_at)) {
    throw InvalidInput(where + "run_at must be between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z");
  }
  const auto check_period = [&](const std::optional<std::chrono::milliseconds>& d, const char* field) {
    if (d && (d->count() <= 0 || *d > kMaxJobTimeout)) {
      throw InvalidInput(where + field + " must be more than 0 and at most 365 days, got " +
                         std::to_string(d->count()) + "ms");
    }
  };
  check_period(r.timeout, "timeout");
  check_period(r.unique_for, "unique_for");
  check_period(r.result_ttl, "result_ttl");
  if (r.unique_states) check_unique_states(*r.unique_states, where + "unique_states");
}

void check_unique_states(const std::vector<std::string>& states, const std::string& field) {
  if (states.empty() || states.size() > 7) {
    throw InvalidInput(field + " must list 1 to 7 job states, got " + std::to_string(states.size()) + " entries");
  }
  for (const auto& s : states) {
    if (!parse_job_state(s)) {
      // Echo only a short, valid name: the message goes into JSON answers and logs.
      const std::string shown = s.size() <= 60 && valid_utf8(s) && s.find('\0') == std::string::npos
                                    ? s
                                    : "(" + std::to_string(s.size()) + " bytes)";
      throw InvalidInput(field + " has an unknown state \"" + shown + "\"; states are " +
                         "available, scheduled, running, retryable, completed, failed, cancelled");
    }
  }
  for (const char* unfinished : {"available", "scheduled", "running", "retryable"}) {
    if (std::find(states.begin(), states.end(), unfinished) == states.end()) {
      throw InvalidInput(field + " must include every unfinished state (available, scheduled, running, retryable): " +
                         unfinished + " is missing");
    }
  }
}

}  // namespace docket
