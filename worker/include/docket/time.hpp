#pragma once
// RFC 3339 timestamps and relative times ("+30s") for run_at: one validated type for SQL, HTTP,
// CLI and config. Every timestamp Docket accepts lies in [kMinTime, kMaxTime), the range a
// nanosecond Clock::time_point and docket.check_time both hold, so nothing wraps.
#include <optional>
#include <string>
#include <string_view>

#include "docket/job.hpp"

namespace docket {

/// The earliest timestamp accepted: 1970-01-01T00:00:00Z (as docket.check_time).
inline constexpr std::chrono::seconds kMinTime{0};
/// The first timestamp refused: 2200-01-01T00:00:00Z (as docket.check_time).
inline constexpr std::chrono::seconds kMaxTime{7258118400};

/// "2026-11-21T10:00:00Z", "2026-11-21 10:00:00.5+02:00": a real calendar date, seconds 00-59,
/// an offset up to ±23:59, within [kMinTime, kMaxTime); nullopt otherwise.
std::optional<Clock::time_point> parse_timestamp(std::string_view text);
/// An absolute timestamp, or a delay from now: "+30s", "in 10m", "30s"; nullopt when unreadable
/// or outside [kMinTime, kMaxTime).
std::optional<Clock::time_point> parse_run_at(std::string_view text);
/// parse_timestamp (or, when `relative`, parse_run_at), throwing InvalidInput that names `field`
/// and says what is accepted.
Clock::time_point parse_time_field(std::string_view text, std::string_view field, bool relative);
/// Whether `t` lies in [kMinTime, kMaxTime).
bool time_in_range(Clock::time_point t);
/// UTC, microseconds: 2026-11-21T10:00:00.000000Z
std::string format_timestamp(Clock::time_point t);

}  // namespace docket
