// Fuzz target: timestamps and durations (worker/src/core/time.cpp, config durations): run_at of
// every enqueue path and every duration in a config or a DOCKET_* variable. Answers are nullopt
// or ConfigError; an accepted timestamp formats and parses back to the same instant.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "docket/config.hpp"
#include "docket/errors.hpp"
#include "docket/time.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto t = docket::parse_timestamp(text)) {
    const auto back = docket::parse_timestamp(docket::format_timestamp(*t));
    if (!back || *back != *t) __builtin_trap();
  }
  (void)docket::parse_run_at(text);
  try {
    const auto d = docket::parse_duration(text, "fuzz");
    if (d.count() < 0) __builtin_trap();
    (void)docket::format_duration(d);
  } catch (const docket::ConfigError&) {
  }
  return 0;
}
