// Fuzz target: the config loader, TOML text -> docket::Config -> validate(). Every refusal must
// be a docket::ConfigError (which the CLI turns into exit 2 and a message naming the key).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "docket/config.hpp"
#include "docket/errors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;  // load_file refuses files past 1 MiB; keep runs fast
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    docket::Config::parse(text, "fuzz.toml").validate();
  } catch (const docket::ConfigError&) {
  }
  return 0;
}
