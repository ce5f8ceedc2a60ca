// The decoders of db/rows.hpp: one per result shape, by column name.
#include "db/rows.hpp"

#include <cmath>

#include "db/array.hpp"
#include "db/session_impl.hpp"

namespace docket::db::rows {

namespace {

/// The column `name` as T, nullopt when NULL.
template <class T>
std::optional<T> opt(const pqxx::row& row, const char* name) {
  const auto f = row[name];
  return f.is_null() ? std::nullopt : std::optional<T>(f.as<T>());
}

std::string text(const pqxx::row& row, const char* name) {
  const auto f = row[name];
  return std::string(f.c_str(), f.size());
}

/// A state name the database wrote; anything else is a schema this binary does not know.
JobState state(const pqxx::row& row, const char* name) {
  const auto s = parse_job_state(row[name].c_str());
  if (!s) throw Error(std::string("unknown job state from the database: ") + row[name].c_str());
  return *s;
}

}  // namespace

ClaimedJob claimed(const pqxx::row& row) {
  ClaimedJob j;
  j.id = row["id"].as<std::int64_t>();
  j.kind = text(row, "kind");
  j.queue = text(row, "queue");
  j.args = text(row, "args");
  j.attempt = row["attempt"].as<int>();
  j.max_retries = row["max_retries"].as<int>();
  j.priority = row["priority"].as<int>();
  j.unique_key = opt_text(row["unique_key"]);
  j.queue_latency_s = opt<double>(row, "queue_latency_s").value_or(0.0);
  if (const auto ms = opt<double>(row, "timeout_ms")) j.timeout = std::chrono::milliseconds(std::llround(*ms));
  return j;
}

ClaimedJob running(const pqxx::row& row) {
  ClaimedJob j;
  j.id = row["id"].as<std::int64_t>();
  j.kind = text(row, "kind");
  j.queue = text(row, "queue");
  j.attempt = row["attempt"].as<int>();
  j.max_retries = row["max_retries"].as<int>();
  return j;
}

Finished finished(const pqxx::row& row) {
  const bool has_state = row.size() > 1;  // job_complete returns id only
  return {row["id"].as<std::int64_t>(), has_state ? state(row, "state") : JobState::completed};
}

JobRecord job(const pqxx::row& row) {
  return parse_job(row["job"]);
}

EnqueueResult enqueued(const pqxx::row& row) {
  EnqueueResult r{row["id"].as<std::int64_t>(), row["created"].as<bool>()};
  if (row.size() > 2) r.warning = opt_text(row["unserved"]);
  return r;
}

Submitted submitted(const pqxx::row& row) {
  return {job(row), row["created"].as<bool>(), opt_text(row["unserved"])};
}

KindLimit kind_limit(const pqxx::row& row) {
  KindLimit k;
  k.kind = text(row, "kind");
  k.max_running = opt<int>(row, "max_running");
  k.running = row["running"].as<std::int64_t>();
  k.max_retries = opt<int>(row, "max_retries");
  k.source = opt_text(row["limit_source"]);
  k.config_max_running = opt<int>(row, "config_max_running");
  k.rate_limit = opt<int>(row, "rate_limit");
  k.rate_period_s = opt<double>(row, "rate_period_s");
  k.rate_burst = opt<double>(row, "rate_burst");
  k.rate_tokens = opt<double>(row, "rate_tokens");
  k.at_limit = row["at_limit"].as<bool>();
  k.partition = opt_text(row["partition"]);
  k.max_running_per_key = opt<int>(row, "max_running_per_key");
  k.max_key_running = opt<std::int64_t>(row, "max_key_running").value_or(k.max_key_running);
  k.rate_per_key = opt<int>(row, "rate_per_key_limit");
  k.rate_per_key_period_s = opt<double>(row, "rate_per_key_period_s");
  k.rate_per_key_burst = opt<double>(row, "rate_per_key_burst");
  k.keys_at_limit = row["keys_at_limit"].as<std::int64_t>();
  return k;
}

QueueSummary queue_summary(const pqxx::row& row) {
  QueueSummary q;
  q.queue = text(row, "queue");
  q.available = row["available"].as<std::int64_t>();
  q.running = row["running"].as<std::int64_t>();
  q.waiting = row["waiting"].as<std::int64_t>();
  q.oldest_available_age_s = opt<double>(row, "oldest_available_age_s");
  q.paused = row["paused"].as<bool>();
  return q;
}

KeyLimit key_limit(const pqxx::row& row) {
  KeyLimit k;
  k.key = text(row, "key");
  k.running = row["running"].as<std::int64_t>();
  k.rate_tokens = opt<double>(row, "rate_tokens");
  k.at_limit = row["at_limit"].as<bool>();
  k.available = row["available"].as<std::int64_t>();
  return k;
}

Session::SeedOutcome seed_outcome(const pqxx::row& row) {
  return {row["existed"].as<bool>(),         opt<int>(row, "max_running_before"), opt<int>(row, "max_running"),
          opt_text(row["limit_source"]),     opt<int>(row, "config_max_running"), opt<bool>(row, "partition_applied"),
          opt_text(row["partition_source"]), opt_text(row["partition_now"])};
}

std::optional<double> rate_wait(const pqxx::row& row) {
  return opt<double>(row, "rate_wait_s");
}

Promoted promoted(const pqxx::row& row) {
  return {row["promoted"].as<int>(), opt<double>(row, "next_due_in")};
}

ScheduleTick schedule_tick(const pqxx::row& row) {
  ScheduleTick t;
  t.enqueued = row["enqueued"].as<int>();
  for (const auto& v : parse_text_array(row["lateness_s"].c_str())) t.lateness_s.push_back(std::stod(v));
  t.next_due_in_s = opt<double>(row, "next_due_in");
  return t;
}

ScheduleCounts schedule_counts(const pqxx::row& row) {
  return {row["enabled"].as<std::int64_t>(), row["paused"].as<std::int64_t>(), row["late"].as<std::int64_t>()};
}

CrawlState crawl_state(const pqxx::row& row) {
  CrawlState s;
  s.collection = opt_text(row["collection"]).value_or(std::string());
  if (const auto duplicate = opt<std::int64_t>(row, "duplicate_of")) {
    s.duplicate_of = duplicate;
    return s;
  }
  s.id = row["crawl_id"].as<std::int64_t>();
  s.status = text(row, "status");
  s.pages = row["pages"].as<int>();
  s.items = row["items"].as<int>();
  s.next_url = opt_text(row["next_url"]);
  s.last_error = opt_text(row["last_error"]);
  return s;
}

}  // namespace docket::db::rows
