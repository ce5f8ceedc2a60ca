#include "docket/time.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>

#include "docket/config.hpp"
#include "docket/errors.hpp"

namespace docket {

namespace {

/// Reads exactly `n` digits at `i`, advancing it; -1 when they are not all there.
int digits(std::string_view s, std::size_t& i, int n) {
  int v = 0;
  for (int k = 0; k < n; ++k, ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool expect(std::string_view s, std::size_t& i, std::string_view one_of) {
  if (i >= s.size() || one_of.find(s[i]) == std::string_view::npos) return false;
  ++i;
  return true;
}

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

/// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm).
long long days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * static_cast<unsigned>(m + (m > 2 ? -3 : 9)) + 2) / 5 + static_cast<unsigned>(d) - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

}  // namespace

bool time_in_range(Clock::time_point t) {
  return t >= Clock::time_point(kMinTime) && t < Clock::time_point(kMaxTime);
}

std::optional<Clock::time_point> parse_timestamp(std::string_view s) {
  std::size_t i = 0;
  const int y = digits(s, i, 4);
  if (y < 0 || !expect(s, i, "-")) return std::nullopt;
  const int mo = digits(s, i, 2);
  if (mo < 1 || mo > 12 || !expect(s, i, "-")) return std::nullopt;
  const int d = digits(s, i, 2);
  if (d < 1 || d > days_in_month(y, mo) || !expect(s, i, "Tt ")) return std::nullopt;
  const int h = digits(s, i, 2);
  if (h < 0 || h > 23 || !expect(s, i, ":")) return std::nullopt;
  const int mi = digits(s, i, 2);
  if (mi < 0 || mi > 59 || !expect(s, i, ":")) return std::nullopt;
  const int sec = digits(s, i, 2);
  if (sec < 0 || sec > 59) return std::nullopt;
  long long micros = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const std::size_t first = i;
    long long scale = 100000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - first < 9) {
      micros += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == first) return std::nullopt;
  }
  long long offset_s = 0;
  if (expect(s, i, "Zz")) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int sign = s[i++] == '+' ? 1 : -1;
    const int oh = digits(s, i, 2);
    if (oh < 0 || oh > 23 || !expect(s, i, ":")) return std::nullopt;
    const int om = digits(s, i, 2);
    if (om < 0 || om > 59) return std::nullopt;
    offset_s = sign * (oh * 3600LL + om * 60LL);
  } else {
    return std::nullopt;  // a timestamp without a zone is ambiguous: refuse it
  }
  if (i != s.size()) return std::nullopt;
  const long long secs = days_from_civil(y, mo, d) * 86400 + h * 3600LL + mi * 60LL + sec - offset_s;
  // Checked in seconds before any conversion to the clock's nanoseconds, which could wrap.
  if (secs < kMinTime.count() || secs >= kMaxTime.count()) return std::nullopt;
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(secs) + std::chrono::microseconds(micros)));
}

std::optional<Clock::time_point> parse_run_at(std::string_view text) {
  if (auto t = parse_timestamp(text)) return t;
  std::string_view rel = text;
  if (rel.starts_with("in ")) rel.remove_prefix(3);
  if (rel.starts_with("+")) rel.remove_prefix(1);
  Millis delay{};
  try {
    delay = parse_duration(rel, "run_at");
  } catch (const ConfigError&) {
    return std::nullopt;
  }
  const auto now = Clock::now();
  // Compared in milliseconds: now + delay in nanoseconds could wrap for delays of centuries.
  const auto room = std::chrono::duration_cast<Millis>(Clock::time_point(kMaxTime) - now);
  if (delay >= room) return std::nullopt;
  return now + delay;
}

Clock::time_point parse_time_field(std::string_view text, std::string_view field, bool relative) {
  if (auto t = relative ? parse_run_at(text) : parse_timestamp(text)) return *t;
  const std::string shown(text.substr(0, 60));
  throw InvalidInput(std::string(field) + " must be an RFC 3339 timestamp with a zone, like 2026-11-21T10:00:00Z" +
                     (relative ? " or a delay like +30s" : "") +
                     ", between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z; got \"" + shown + "\"");
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
