// Fuzz target: the API's job decoding (api/requests.cpp parse_enqueue), the path every POST /jobs
// body takes. The first line of the input is the Idempotency-Key header (empty: none), the rest
// the body. Refusals are api::ApiError (400/413/422) or docket::Error; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "docket/errors.hpp"
#include "errors.hpp"
#include "requests.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto nl = input.find('\n');
  std::optional<std::string> key;
  std::string body = input;
  if (nl != std::string::npos) {
    if (nl > 0) key = input.substr(0, nl);
    body = input.substr(nl + 1);
  }
  try {
    const auto r = docket::api::parse_enqueue(body, key);
    if (!r.args.is_object()) __builtin_trap();  // accepted args are always an object
  } catch (const docket::api::ApiError&) {
  } catch (const docket::Error&) {
  }
  return 0;
}
