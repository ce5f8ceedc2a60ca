#pragma once
// `{args.NAME}` templates: one crawl kind serves every entity by taking parts of its URL (and, in
// SQL, its collection) from the job's args. Values are hostile: only strings and numbers, bounded,
// and percent-encoded into a URL so they never choose the host, the path's shape or headers.
#include <string>
#include <string_view>
#include <vector>

#include "docket/json.hpp"

namespace docket {

/// Longest value (bytes) an arg may put into a template; the same bound as in
/// docket.crawl_collection_for.
constexpr std::size_t kMaxArgValueBytes = 200;

/// One `{args.a.b}` in a template.
struct ArgPlaceholder {
  std::size_t pos = 0;            ///< offset of '{' in the template
  std::size_t len = 0;            ///< length up to and including '}'
  std::string name;               ///< "args.a.b", as errors name it
  std::vector<std::string> path;  ///< {"a", "b"}: object keys (or array indexes) into the args
};

/// The `{args.NAME}` placeholders of `text`, checked: any other `{...}` than those in `allowed`
/// (e.g. "{page}"), `{args.}`, a NAME other than dot-separated [A-Za-z0-9_-] segments, or an
/// unclosed brace throws ConfigError naming `field`.
std::vector<ArgPlaceholder> arg_placeholders(std::string_view text, const std::string& field,
                                             const std::vector<std::string_view>& allowed = {});

/// The text an arg puts into a template: a string (1 to kMaxArgValueBytes bytes) or a number.
/// Anything else (missing, null, boolean, object, array, empty, longer) throws InvalidInput naming
/// the arg (`args.NAME`).
std::string arg_value(const Json& args, const ArgPlaceholder& placeholder);

/// Checks a crawl URL template at config load (`field` e.g. "kinds.X.crawl.url"): placeholders as
/// arg_placeholders allows ({page} and {cursor} too), and none before the path, so an arg can never
/// choose the scheme, host or port (nor where the kind's credentials go).
void check_url_template(const std::string& url, const std::string& field);

/// `url` with each `{args.NAME}` replaced by its value, percent-encoded (every byte but A-Z a-z 0-9
/// - _ . ~). Throws InvalidInput naming the arg for a value arg_value refuses or one that would
/// make a "." or ".." path segment. Other placeholders ({page}, {cursor}) are left in place.
std::string expand_url_args(const std::string& url, const Json& args);

}  // namespace docket
