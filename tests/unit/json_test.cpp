#include <gtest/gtest.h>

#include "docket/errors.hpp"
#include "docket/json.hpp"

using docket::Json;

namespace {
std::string nested(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') + std::string(static_cast<std::size_t>(depth), ']');
}
}  // namespace

TEST(BoundedJson, AcceptsNestingUpToTheLimit) {
  EXPECT_NO_THROW(docket::parse_json(nested(docket::kMaxJsonDepth), "args"));
  EXPECT_EQ(docket::parse_json(R"({"a": [1, 2.5, "x", null, true]})", "args")["a"][1], 2.5);
}

TEST(BoundedJson, RefusesDeepNestingWithoutRecursing) {
  // 200,000 levels crashed the worker and the API when copied or dumped.
  const std::string deep = nested(200000);
  std::string error;
  EXPECT_FALSE(docket::try_parse_json(deep, "result", &error));
  EXPECT_EQ(error, "result: nested deeper than 64 levels");
  std::string objects;
  for (int i = 0; i < 70000; ++i) objects += R"({"a":)";
  EXPECT_THROW(docket::parse_json(objects, "args", 64), docket::InvalidInput);
  EXPECT_THROW(docket::parse_json(nested(65), "args"), docket::InvalidInput);
}

TEST(BoundedJson, RefusesNumbersThatWouldChangeSilently) {
  std::string error;
  EXPECT_FALSE(docket::try_parse_json(R"({"n": 1e400})", "args", &error));
  EXPECT_NE(error.find("args: "), std::string::npos) << error;
  EXPECT_FALSE(docket::try_parse_json(R"({"n": 123456789012345678901234567890})", "args", &error));
  EXPECT_NE(error.find("64 bits"), std::string::npos) << error;
  EXPECT_EQ(docket::parse_json("18446744073709551615", "n").get<std::uint64_t>(), 18446744073709551615ULL);
  EXPECT_EQ(docket::parse_json("-9223372036854775808", "n").get<std::int64_t>(), INT64_MIN);
}

TEST(BoundedJson, MalformedInputNamesTheField) {
  std::string error;
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "nul", "\"\\u0000", "1 2"}) {
    EXPECT_FALSE(docket::try_parse_json(bad, "body", &error)) << bad;
    EXPECT_EQ(error.rfind("body: ", 0), 0U) << error;
  }
}
