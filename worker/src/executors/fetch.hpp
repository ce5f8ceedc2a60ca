#pragma once
// The one outgoing HTTP request of the url and crawl executors: a total deadline (connect, headers
// and body, however slowly the server trickles), the job's stop token honoured within 50 ms, a byte
// cap on the body, and configured credentials sent only to the origin they were configured for.
#include <httplib.h>

#include <map>
#include <optional>
#include <stop_token>
#include <string>

#include "docket/config.hpp"

namespace docket {

/// An http(s) URL split for httplib.
struct HttpUrl {
  std::string origin;  ///< scheme://host[:port], host lowercased: where credentials may go
  std::string target;  ///< /path?query
  std::string host;    ///< host[:port] as written: the crawl's politeness key
};

/// nullopt when `url` is not http(s)://host...
std::optional<HttpUrl> parse_http_url(const std::string& url);
/// A link (absolute, //host, /path, ?query or relative) resolved against `base`.
std::string resolve_url(const std::string& base, const std::string& ref);

/// One request.
struct FetchRequest {
  std::string method = "GET";
  std::string url;
  httplib::Headers headers;                        ///< sent wherever the request goes
  std::map<std::string, std::string> credentials;  ///< the kind's headers: only to `credentials_origin`
  std::string credentials_origin;                  ///< HttpUrl::origin of the kind's configured URL
  std::string body;
  std::string content_type;
  std::size_t max_bytes = 16 << 20;  ///< body cap; more fails the request
  Millis timeout{30000};             ///< total, across redirects
  int max_redirects = 0;             ///< 0: a 3xx is the answer
  std::stop_token stop;
};

/// The answer, or why there is none.
struct FetchResult {
  int status = 0;  ///< 0: no answer, see error
  std::string body;
  httplib::Headers headers;
  std::string url;    ///< the URL that answered (after redirects)
  std::string error;  ///< set when status is 0
  bool stopped = false;
  bool timed_out = false;
  bool too_large = false;

  /// A response header, "" when absent.
  std::string header(const std::string& name) const;
};

/// Sends `request`; never throws for network trouble.
FetchResult fetch(const FetchRequest& request);

}  // namespace docket
