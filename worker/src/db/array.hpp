#pragma once
// PostgreSQL array literals for batched statements (unnest($1::bigint[], ...)).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace docket::db {

/// {1,2,3}
std::string int_array(const std::vector<std::int64_t>& values);
/// {"a","b\"c",NULL}: every element quoted and escaped, std::nullopt as NULL.
std::string text_array(const std::vector<std::optional<std::string>>& values);
std::string text_array(const std::vector<std::string>& values);
/// {1.5,0}
std::string float_array(const std::vector<double>& values);
/// Parses a one-dimensional text[] literal as PostgreSQL prints it.
std::vector<std::string> parse_text_array(const std::string& literal);

}  // namespace docket::db
