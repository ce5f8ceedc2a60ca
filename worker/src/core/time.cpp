#include "docket/time.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>

#include "docket/config.hpp"
#include "docket/errors.hpp"

namespace docket {

namespace {
/// Seconds from the epoch that Clock (nanoseconds, 64 bits) holds with room for a delay on top.
constexpr std::time_t kMaxClockSeconds = 9'000'000'000;
}  // namespace

std::optional<Clock::time_point> parse_timestamp(std::string_view text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  std::string str(text);
  int consumed = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6) {
    return std::nullopt;
  }
  // sscanf's %d also takes signs and spaces ("2026-01-01T-1:-1:-1Z"): the fields must be the
  // fixed digits of RFC 3339, YYYY-MM-DD?hh:mm:ss.
  if (consumed != 19) return std::nullopt;
  for (std::size_t k : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}) {
    if (!std::isdigit(static_cast<unsigned char>(str[k]))) return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::size_t i = static_cast<std::size_t>(consumed);
  long long micros = 0;
  if (i < str.size() && str[i] == '.') {
    ++i;
    long long scale = 100000;
    while (i < str.size() && std::isdigit(static_cast<unsigned char>(str[i]))) {
      micros += (str[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  long offset_s = 0;
  if (i < str.size()) {
    if (str[i] == 'Z' || str[i] == 'z') {
      ++i;
    } else if (str[i] == '+' || str[i] == '-') {
      // Exactly +hh:mm (RFC 3339), hours to 23 and minutes to 59.
      const std::string_view off = std::string_view(str).substr(i + 1);
      auto digit = [&](std::size_t k) { return std::isdigit(static_cast<unsigned char>(off[k])) != 0; };
      if (off.size() != 5 || !digit(0) || !digit(1) || off[2] != ':' || !digit(3) || !digit(4)) return std::nullopt;
      const int oh = (off[0] - '0') * 10 + (off[1] - '0');
      const int om = (off[3] - '0') * 10 + (off[4] - '0');
      if (oh > 23 || om > 59) return std::nullopt;
      offset_s = (oh * 3600 + om * 60) * (str[i] == '+' ? 1 : -1);
      i = str.size();
    } else {
      return std::nullopt;
    }
  } else {
    return std::nullopt;  // a timestamp without a zone is ambiguous: refuse it
  }
  if (i != str.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::time_t t = ::timegm(&tm) - offset_s;
  // Clock counts nanoseconds in 64 bits: 1678..2261. Outside that the conversion below overflows
  // (UBSan, found by tests/fuzz/fuzz_enqueue with run_at 1013-11-21): refuse instead.
  if (t < -kMaxClockSeconds || t > kMaxClockSeconds) return std::nullopt;
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(t) + std::chrono::microseconds(micros)));
}

std::optional<Clock::time_point> parse_run_at(std::string_view text) {
  if (auto t = parse_timestamp(text)) return t;
  std::string_view rel = text;
  if (rel.starts_with("in ")) rel.remove_prefix(3);
  if (rel.starts_with("+")) rel.remove_prefix(1);
  try {
    return Clock::now() + parse_duration(rel, "run_at");
  } catch (const ConfigError&) {
    return std::nullopt;
  }
}

std::string format_timestamp(Clock::time_point t) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(micros / 1000000);
  long frac = static_cast<long>(micros % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

}  // namespace docket
