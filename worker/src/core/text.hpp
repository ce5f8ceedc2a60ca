#pragma once
// Text that came from a job (errors, stderr tails, results, progress, response snippets) before it
// is stored: PostgreSQL refuses NUL and invalid UTF-8, and one refused value must not sink a batch.
#include <cstddef>
#include <string>
#include <string_view>

namespace docket {

/// Which end of an over-long text is kept.
enum class Keep { head, tail };

/// `text` as valid UTF-8 without NUL (each invalid byte and each NUL becomes U+FFFD), at most
/// `max_bytes` long, cut on a character boundary; a cut is marked with "..." on the cut side.
std::string clean_text(std::string_view text, std::size_t max_bytes = std::string::npos, Keep keep = Keep::head);

/// Serialized JSON made storable as jsonb: invalid UTF-8 replaced and every \u0000 escape turned
/// into \ufffd (jsonb refuses it), without re-parsing.
std::string clean_json_text(std::string_view json);

}  // namespace docket
