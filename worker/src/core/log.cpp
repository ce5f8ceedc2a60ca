#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <atomic>

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
}  // namespace

void setup(const std::string& level, const std::string& format) {
  g_json = format == "json";
  auto logger = spdlog::stderr_logger_mt("docket");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  // JSON lines carry their own timestamp and level (see event()); text gets a compact prefix.
  spdlog::set_pattern(g_json ? "%v" : "%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
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
    const auto now = std::chrono::system_clock::now();
    line["ts"] = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() / 1000.0;
    line["level"] = spdlog::level::to_string_view(level).data();
    line["event"] = name;
    for (const auto& f : fields) line[std::string(f.key)] = f.value;
    spdlog::log(level, "{}", line.dump(-1, ' ', false, Json::error_handler_t::replace));
    return;
  }
  std::string text(name);
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
