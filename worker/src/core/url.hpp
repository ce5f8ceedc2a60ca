#pragma once
// Percent-encoding for URLs (crawl cursors, libpq URIs).
#include <string>
#include <string_view>

namespace docket {

/// Percent-encodes every byte but unreserved characters (A-Z a-z 0-9 - _ . ~) and those in `keep`.
std::string url_encode(std::string_view text, std::string_view keep = "");

}  // namespace docket
