#pragma once
// RFC 3339 timestamps and relative times ("+30s") for run_at.
#include <optional>
#include <string>
#include <string_view>

#include "docket/job.hpp"

namespace docket {

/// "2026-11-21T10:00:00Z", "2026-11-21 10:00:00.5+02:00"; nullopt when unreadable.
std::optional<Clock::time_point> parse_timestamp(std::string_view text);
/// An absolute timestamp, or a delay from now: "+30s", "in 10m", "30s".
std::optional<Clock::time_point> parse_run_at(std::string_view text);
/// UTC, microseconds: 2026-11-21T10:00:00.000000Z
std::string format_timestamp(Clock::time_point t);

}  // namespace docket
