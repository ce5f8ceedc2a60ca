#include "docket/job.hpp"

#include <array>

namespace docket {

namespace {
constexpr std::array<std::string_view, 7> kStateNames = {"available", "scheduled", "running",  "retryable",
                                                         "completed", "failed",    "cancelled"};

template <class T>
std::optional<T> opt(const Json& in, const char* key) {
  auto it = in.find(key);
  if (it == in.end() || it->is_null()) return std::nullopt;
  return it->get<T>();
}
}  // namespace

std::string_view to_string(JobState state) {
  return kStateNames[static_cast<std::size_t>(state)];
}

std::optional<JobState> parse_job_state(std::string_view name) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == name) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

const std::vector<std::string>& job_state_names() {
  static const std::vector<std::string> names(kStateNames.begin(), kStateNames.end());
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
             {"worker", nullable(j.worker)}};
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
             {"max_retries", k.max_retries ? Json(*k.max_retries) : Json()}};
}

}  // namespace docket
