// Fuzz target: docket::parse_json, the one parser for JSON from outside the process. Any input
// must either parse (depth <= kMaxJsonDepth, and dump/re-parse to the same value) or be refused
// with docket::InvalidInput: never a crash, a hang or unbounded recursion.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "docket/errors.hpp"
#include "docket/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto parsed = docket::try_parse_json(text, "fuzz", &error);
  if (!parsed) return 0;
  // What we accepted must survive a round trip: a job's args are stored and read back.
  const auto again = docket::parse_json(parsed->dump(), "fuzz round trip");
  if (again != *parsed) __builtin_trap();
  return 0;
}
