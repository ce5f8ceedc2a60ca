#include "requests.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "docket/client.hpp"
#include "docket/config.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "docket/time.hpp"
#include "errors.hpp"

namespace docket::api {

namespace {

const std::vector<std::string> kEnqueueFields = {"kind",       "args",          "queue",      "priority",
                                                 "run_at",     "max_retries",   "unique_key", "timeout",
                                                 "unique_for", "unique_states", "result_ttl"};

std::string unknown_field(const std::string& name, const std::vector<std::string>& known) {
  std::string msg = "unknown field \"" + name + "\"";
  const std::string hint = suggest(name, known);
  if (!hint.empty()) return msg + "; did you mean \"" + hint + "\"?";
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  return msg + "; fields are " + list;
}

void no_nul(const std::string& field, const std::string& value) {
  if (value.find('\0') != std::string::npos) throw unprocessable(field + " must not contain NUL characters");
}

std::string string_field(const Json& body, const std::string& field) {
  const auto& v = body.at(field);
  if (!v.is_string()) throw bad_request(field + " must be a string, got " + std::string(v.type_name()));
  const auto& s = v.get_ref<const std::string&>();
  no_nul(field, s);
  return s;
}

int int_field(const Json& body, const std::string& field) {
  const auto& v = body.at(field);
  if (!v.is_number_integer()) throw bad_request(field + " must be an integer, got " + std::string(v.type_name()));
  const auto n = v.get<long long>();
  if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
    throw unprocessable(field + " is out of range");
  }
  return static_cast<int>(n);
}

/// A duration field: "30s" (parse_duration's spellings) or a number of seconds. The range is
/// checked with the rest of the job (check_enqueue_request: 422).
std::chrono::milliseconds duration_field(const Json& body, const std::string& field) {
  const auto& v = body.at(field);
  if (v.is_number()) {
    const double s = v.get<double>();
    // Beyond a year is refused by the range check; clamp first so the cast cannot overflow.
    return std::chrono::milliseconds(static_cast<long long>(std::llround(std::clamp(s, -1.0, 1e9) * 1000)));
  }
  try {
    return parse_duration(string_field(body, field), field);
  } catch (const ConfigError& e) {
    throw bad_request(e.what());
  }
}

long long query_int(const std::string& name, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long n = std::stoll(text, &used);
    if (used == text.size()) return n;
  } catch (...) {
  }
  throw bad_request("query parameter " + name + " must be an integer, got \"" + text + "\"");
}

/// limit= and after= of a list: limit >= 0, capped; after is an id > 0. False for other names.
bool page_param(const std::string& name, const std::string& value, int max_limit, int& limit,
                std::optional<std::int64_t>& after) {
  if (name == "limit") {
    const long long n = query_int(name, value);
    if (n < 0) throw unprocessable("limit must be >= 0, got " + value);
    limit = static_cast<int>(std::min<long long>(n, max_limit));
    return true;
  }
  if (name == "after") {
    const long long n = query_int(name, value);
    if (n <= 0) throw unprocessable("after must be an id (> 0) from next_after, got " + value);
    after = n;
    return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

/// The query string of a list: only `filters` and limit/after are known (a typo gets a
/// suggestion), no NUL anywhere; `on_filter` receives each filter.
void list_params(const std::multimap<std::string, std::string>& params, std::vector<std::string> filters, int max_limit,
                 int& limit, std::optional<std::int64_t>& after,
                 const std::function<void(const std::string&, const std::string&)>& on_filter) {
  std::vector<std::string> known = std::move(filters);
  known.insert(known.end(), {"limit", "after"});
  for (const auto& [name, value] : params) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      const std::string hint = suggest(name, known);
      throw bad_request("unknown query parameter \"" + name + "\"" +
                        (hint.empty() ? "; known: " + join(known) : "; did you mean \"" + hint + "\"?"));
    }
    no_nul(name, value);
    if (!page_param(name, value, max_limit, limit, after)) on_filter(name, value);
  }
}

}  // namespace

Json parse_object(const std::string& body) {
  if (body.empty()) throw bad_request("the request body is empty; send a JSON object");
  // One level more than args may nest: args sits inside the body object. Depth, numbers beyond a
  // double and integers beyond 64 bits are refused while parsing, with the field's path.
  std::string error;
  auto parsed = try_parse_json(body, "the request body is not valid JSON", &error, kMaxJsonDepth + 1);
  if (!parsed) {
    if (error.find("nested deeper than") != std::string::npos) {
      error += " (args may nest at most " + std::to_string(kMaxJsonDepth) + " levels of arrays and objects)";
    }
    throw bad_request(error);
  }
  Json j = std::move(*parsed);
  if (!j.is_object()) throw bad_request("the request body must be a JSON object, got " + std::string(j.type_name()));
  return j;
}

EnqueueRequest parse_enqueue(const std::string& body_text, const std::optional<std::string>& idempotency_key) {
  const Json body = parse_object(body_text);
  for (const auto& [key, value] : body.items()) {
    if (std::find(kEnqueueFields.begin(), kEnqueueFields.end(), key) == kEnqueueFields.end()) {
      throw bad_request(unknown_field(key, kEnqueueFields));
    }
  }
  EnqueueRequest r;
  if (!body.contains("kind")) throw bad_request("kind is required");
  r.kind = string_field(body, "kind");
  if (body.contains("args") && !body.at("args").is_null()) {
    if (!body.at("args").is_object()) {
      throw bad_request("args must be a JSON object, got " + std::string(body.at("args").type_name()));
    }
    r.args = body.at("args");
  }
  if (body.contains("queue")) r.queue = string_field(body, "queue");
  if (body.contains("priority")) r.priority = int_field(body, "priority");
  if (body.contains("run_at") && !body.at("run_at").is_null()) {
    try {
      r.run_at = parse_time_field(string_field(body, "run_at"), "run_at", false);
    } catch (const InvalidInput& e) {
      throw bad_request(e.what());
    }
  }
  if (body.contains("max_retries") && !body.at("max_retries").is_null()) {
    r.max_retries = int_field(body, "max_retries");
  }
  if (body.contains("unique_key") && !body.at("unique_key").is_null()) r.unique_key = string_field(body, "unique_key");
  if (body.contains("timeout") && !body.at("timeout").is_null()) r.timeout = duration_field(body, "timeout");
  if (body.contains("unique_for") && !body.at("unique_for").is_null())
    r.unique_for = duration_field(body, "unique_for");
  if (body.contains("result_ttl") && !body.at("result_ttl").is_null())
    r.result_ttl = duration_field(body, "result_ttl");
  if (body.contains("unique_states") && !body.at("unique_states").is_null()) {
    const auto& v = body.at("unique_states");
    if (!v.is_array() || v.size() > 7 ||
        !std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); })) {
      throw unprocessable(
          "unique_states must be an array of 1 to 7 job state names, like [\"available\", "
          "\"scheduled\", \"running\", \"retryable\", \"completed\"]");
    }
    r.unique_states = v.get<std::vector<std::string>>();
  }
  if (idempotency_key) {
    // A header is raw bytes: refuse what no job's unique_key can be, before it joins a batch.
    if (idempotency_key->empty()) throw bad_request("the Idempotency-Key header is empty; send 1 to 1000 characters");
    if (!valid_utf8(*idempotency_key)) throw bad_request("the Idempotency-Key header must be valid UTF-8");
    no_nul("Idempotency-Key", *idempotency_key);
    if (r.unique_key && *r.unique_key != *idempotency_key) {
      throw unprocessable("the Idempotency-Key header and unique_key differ; send one of them");
    }
    r.unique_key = *idempotency_key;
  }
  return r;
}

JobFilter parse_job_filter(const std::multimap<std::string, std::string>& params, int max_limit) {
  JobFilter f;
  list_params(params, {"kind", "queue", "state", "unique_key"}, max_limit, f.limit, f.after,
              [&](const std::string& name, const std::string& value) {
                if (name == "kind") {
                  f.kind = value;
                } else if (name == "unique_key") {
                  f.unique_key = value;
                } else if (name == "queue") {
                  f.queue = value;
                } else {
                  f.state = parse_job_state(value);
                  if (!f.state)
                    throw unprocessable("unknown state \"" + value + "\"; use one of: " + join(job_state_names()));
                }
              });
  return f;
}

std::optional<std::chrono::milliseconds> parse_wait(const std::multimap<std::string, std::string>& params) {
  std::optional<std::chrono::milliseconds> wait;
  for (const auto& [name, value] : params) {
    if (name != "wait") throw bad_request("unknown query parameter \"" + name.substr(0, 64) + "\"; known: wait");
    if (wait) throw bad_request("wait is given more than once");
    const std::string shown = "\"" + value.substr(0, 64) + "\"";
    try {
      wait = parse_duration(value, "wait");
    } catch (const ConfigError&) {
      throw bad_request("wait must be a duration like \"30s\" or \"500ms\" (at most " +
                        std::to_string(kMaxWait.count()) + "s), got " + shown);
    }
    if (*wait > kMaxWait)
      throw bad_request("wait must be at most " + std::to_string(kMaxWait.count()) + "s, got " + shown);
  }
  return wait;
}

CrawlFilter parse_crawl_filter(const std::multimap<std::string, std::string>& params, int max_limit) {
  CrawlFilter f;
  list_params(params, {"collection", "status"}, max_limit, f.limit, f.after,
              [&](const std::string& name, const std::string& value) {
                if (name == "collection") {
                  f.collection = value;
                } else {
                  const auto& names = crawl_status_names();
                  if (std::find(names.begin(), names.end(), value) == names.end()) {
                    throw unprocessable("unknown crawl status \"" + value + "\"; use one of: " + join(names));
                  }
                  f.status = value;
                }
              });
  return f;
}

std::string schedule_name(const std::string& text, const std::string& field) {
  // 800 bytes: 200 characters of up to 4 bytes; the SQL function counts the characters.
  if (text.empty() || text.size() > 800 || !valid_utf8(text)) {
    throw unprocessable(field + " must be a schedule name: 1 to 200 characters of valid UTF-8");
  }
  for (const unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) throw unprocessable(field + " must not contain control characters");
  }
  return text;
}

ScheduleSpec parse_schedule(const std::string& name, const std::string& body_text) {
  static const std::vector<std::string> kFields = {
      "cron", "kind", "args", "tz", "queue", "spread", "on_overlap", "on_missed", "enabled", "priority", "max_retries"};
  const Json body = parse_object(body_text);
  for (const auto& [key, value] : body.items()) {
    if (key == "name") throw bad_request("name is the path (/schedules/{name}), not a body field");
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) throw bad_request(unknown_field(key, kFields));
  }
  ScheduleSpec s;
  s.name = schedule_name(name);
  for (const char* required : {"cron", "kind"}) {
    if (!body.contains(required)) throw bad_request(std::string(required) + " is required");
  }
  s.cron = string_field(body, "cron");
  s.kind = string_field(body, "kind");
  const auto present = [&body](const char* f) { return body.contains(f) && !body.at(f).is_null(); };
  if (present("args")) {
    if (!body.at("args").is_object()) {
      throw bad_request("args must be a JSON object, got " + std::string(body.at("args").type_name()));
    }
    s.args = body.at("args");
  }
  if (present("tz")) s.tz = string_field(body, "tz");
  if (present("queue")) s.queue = string_field(body, "queue");
  if (present("spread")) {
    try {
      s.spread = parse_duration(string_field(body, "spread"), "spread");
    } catch (const ConfigError& e) {
      throw unprocessable(e.what());
    }
  }
  if (present("on_overlap")) s.on_overlap = string_field(body, "on_overlap");
  if (present("on_missed")) s.on_missed = string_field(body, "on_missed");
  if (present("enabled")) {
    if (!body.at("enabled").is_boolean()) {
      throw bad_request("enabled must be true or false, got " + std::string(body.at("enabled").type_name()));
    }
    s.enabled = body.at("enabled").get<bool>();
  }
  if (present("priority")) s.priority = int_field(body, "priority");
  if (present("max_retries")) s.max_retries = int_field(body, "max_retries");
  return s;
}

ScheduleFilter parse_schedule_filter(const std::multimap<std::string, std::string>& params, int max_limit) {
  ScheduleFilter f;
  f.limit = std::min(f.limit, max_limit);
  std::vector<std::string> known = {"limit", "after"};
  for (const auto& [name, value] : params) {
    if (name == "limit") {
      const long long n = query_int(name, value);
      if (n < 0) throw unprocessable("limit must be >= 0, got " + value);
      f.limit = static_cast<int>(std::min<long long>(n, max_limit));
    } else if (name == "after") {
      f.after = schedule_name(value, "after");
    } else {
      const std::string hint = suggest(name, known);
      throw bad_request("unknown query parameter \"" + name + "\"" +
                        (hint.empty() ? "; known: limit, after" : "; did you mean \"" + hint + "\"?"));
    }
  }
  return f;
}

LimitChange parse_limit(const std::string& body_text) {
  const Json body = parse_object(body_text);
  static const std::vector<std::string> known = {"max_running",         "rate",         "burst",        "partition",
                                                 "max_running_per_key", "rate_per_key", "burst_per_key"};
  for (const auto& [key, value] : body.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) throw bad_request(unknown_field(key, known));
  }
  if (!body.contains("max_running") && !body.contains("rate") && !body.contains("partition"))
    throw bad_request(
        "max_running, rate or partition is required (max_running a number, rate \"N/PERIOD\", partition "
        "\"args.tenant\"; null removes it)");
  LimitChange out;
  if (body.contains("partition")) {
    // The keyed limits are set together: an absent one of them is removed (docket.set_partition).
    PartitionLimit keyed;
    if (!body.at("partition").is_null()) keyed.partition = string_field(body, "partition");
    if (body.contains("max_running_per_key") && !body.at("max_running_per_key").is_null())
      keyed.max_running_per_key = int_field(body, "max_running_per_key");
    if (body.contains("rate_per_key") && !body.at("rate_per_key").is_null())
      keyed.rate_per_key = string_field(body, "rate_per_key");
    if (body.contains("burst_per_key") && !body.at("burst_per_key").is_null())
      keyed.burst_per_key = int_field(body, "burst_per_key");
    out.keyed = std::move(keyed);
  } else {
    for (const char* field : {"max_running_per_key", "rate_per_key", "burst_per_key"}) {
      if (body.contains(field))
        throw unprocessable(std::string(field) +
                            " needs partition in the same request (the keyed limits are set together)");
    }
  }
  if (body.contains("max_running")) {
    if (body.at("max_running").is_null()) {
      out.max_running.emplace(std::nullopt);
    } else {
      const int n = int_field(body, "max_running");
      if (n < 0)
        throw unprocessable("max_running must be >= 0 (or null to remove the limit), got " + std::to_string(n));
      out.max_running = n;
    }
  }
  if (body.contains("rate")) {
    out.rate.emplace(body.at("rate").is_null() ? std::nullopt : std::optional<std::string>(string_field(body, "rate")));
  }
  if (body.contains("burst") && !body.at("burst").is_null()) {
    if (!out.rate || !*out.rate) throw unprocessable("burst needs a rate");
    out.burst = int_field(body, "burst");
  }
  return out;
}

}  // namespace docket::api
