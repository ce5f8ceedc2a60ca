#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <atomic>
#include <chrono>
#include <ctime>

namespace docket::log {

namespace {
std::atomic<bool> g_json{false};
std::atomic<bool> g_jobs{false};

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c >= 0x7f) return true;
  }
  return false;
}

/// RFC 3339, UTC, milliseconds: 2026-11-29T03:50:12.345Z (the same in text and JSON lines).
std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}
}  // namespace

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "fatal";
    case spdlog::level::off:
    case spdlog::level::n_levels:
      break;
  }
  return "off";
}

// The one logger, installed as spdlog's default before main runs, so before any thread that logs
// exists (the stop-signal thread starts before the configuration is read): setup() then changes
// only its level and pattern, which spdlog synchronizes. Replacing the default logger later raced
// with that thread's reads (ThreadSanitizer, make test-tsan).
[[maybe_unused]] const bool g_installed = [] {
  spdlog::set_default_logger(spdlog::stderr_logger_mt("docket"));
  return true;
}();

void setup(const std::string& level, const std::string& format) {
  g_json = format == "json";
  spdlog::set_level(spdlog::level::from_str(level));
  // Every line carries its own timestamp and level, written by event(): spdlog's own names
  // ("warning", "critical") are not the conventional ones and its clock is local time.
  spdlog::set_pattern("%v");
  spdlog::flush_on(spdlog::level::info);
}

bool json_format() {
  return g_json;
}
void set_log_jobs(bool on) {
  g_jobs = on;
}
bool log_jobs() {
  return g_jobs;
}

void event(spdlog::level::level_enum level, std::string_view name, std::initializer_list<Field> fields) {
  if (g_json) {
    Json line = Json::object();
    line["ts"] = utc_now();
    line["level"] = level_name(level);
    line["event"] = name;
    for (const auto& f : fields) line[std::string(f.key)] = f.value;
    spdlog::log(level, "{}", line.dump(-1, ' ', false, Json::error_handler_t::replace));
    return;
  }
  std::string text = utc_now();
  text += ' ';
  const auto lname = level_name(level);
  text += lname;
  text.append(lname.size() < 5 ? 5 - lname.size() : 0, ' ');
  text += ' ';
  text += name;
  for (const auto& f : fields) {
    text += ' ';
    text += f.key;
    text += '=';
    if (f.value.is_string()) {
      const auto& s = f.value.get_ref<const std::string&>();
      text += needs_quotes(s) ? Json(s).dump(-1, ' ', false, Json::error_handler_t::replace) : s;
    } else {
      text += f.value.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
  }
  spdlog::log(level, "{}", text);
}

}  // namespace docket::log
