#pragma once
// Structured logging: one event per line, `job.completed job_id=42 kind=import`, or JSON objects
// with --log-format json. Job args are logged only at debug.
#include <spdlog/spdlog.h>
#include <initializer_list>
#include <string>
#include <string_view>

#include "docket/job.hpp"

namespace docket::log {

struct Field {
  std::string_view key;
  Json value;
};

/// Sets the level (trace..error) and format (text|json) of the default logger (stderr).
void setup(const std::string& level, const std::string& format);
bool json_format();
/// trace, debug, info, warn, error, fatal: the names every log shipper expects.
std::string_view level_name(spdlog::level::level_enum level);
/// Whether each completed job is logged at info (log.jobs); otherwise at debug.
void set_log_jobs(bool on);
bool log_jobs();

void event(spdlog::level::level_enum level, std::string_view name, std::initializer_list<Field> fields);

inline void debug(std::string_view name, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::debug)) event(spdlog::level::debug, name, fields);
}
inline void info(std::string_view name, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::info)) event(spdlog::level::info, name, fields);
}
inline void warn(std::string_view name, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::warn)) event(spdlog::level::warn, name, fields);
}
inline void error(std::string_view name, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::err)) event(spdlog::level::err, name, fields);
}

}  // namespace docket::log
