#pragma once
// JSON from outside the process (HTTP bodies, job output, url responses, crawl pages, rows a
// user wrote with SQL) is parsed here and only here: nesting depth is bounded while parsing, so
// nothing later (copy, dump, compare, destroy) recurses deeper than kMaxJsonDepth.
#include <optional>
#include <string>
#include <string_view>

#include "docket/job.hpp"

namespace docket {

/// Deepest nesting of arrays and objects accepted anywhere (README: Limits and security).
inline constexpr int kMaxJsonDepth = 64;

/// Parses `text` as one JSON value. Refuses, with a message naming `what`: malformed JSON,
/// nesting deeper than `max_depth`, numbers beyond a double's range (1e400) and integers beyond
/// 64 bits (which would otherwise turn silently into rounded floats). Throws InvalidInput.
Json parse_json(std::string_view text, std::string_view what, int max_depth = kMaxJsonDepth);

/// As parse_json, but answers nullopt and the reason in `*error` instead of throwing.
std::optional<Json> try_parse_json(std::string_view text, std::string_view what, std::string* error,
                                   int max_depth = kMaxJsonDepth);

}  // namespace docket
