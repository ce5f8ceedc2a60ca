#pragma once
// The crawl contract: what a crawl kind is configured with (CrawlExecutor, [kinds.X] crawl = {...}),
// what a crawl looks like to its readers (CrawlRecord: docket.crawls, GET /crawls, docket crawls)
// and how they are listed. The executor lives in worker/src/crawl/, its statements in
// db::CrawlStore (worker/src/db/crawl_store.hpp).
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace docket {

using Json = nlohmann::json;
using Millis = std::chrono::milliseconds;

/// Walk a paginated HTTP source into docket.crawl_cache, then activate it into the live table.
struct CrawlExecutor {
  std::string url;               ///< may contain {page}
  std::string items = "/items";  ///< JSON pointer to the items array
  std::string key = "/id";       ///< JSON pointer (inside an item) to its key
  std::string collection;        ///< live-table collection name (default: the kind)
  std::string next;              ///< "" = {page} counting; "link" = Link header; else a JSON pointer
  Millis delay{0};               ///< minimum delay between two requests of this crawl
  Millis request_timeout{30000};
  std::map<std::string, std::string> headers;
  /// Optional: statements that move the cache into the user's own table, run in order in the
  /// activation transaction ($1 = crawl id, $2 = collection).
  std::vector<std::string> activate_sql;
  int max_pages = 100000;
  std::size_t max_response = 16 << 20;  ///< page body bytes; a larger page is a page error
  /// Hosts other than the url's that next links may point to (they get no configured headers).
  std::vector<std::string> allow_hosts;
  /// Largest fraction of the live items one activation may remove; 1.0 disables the guard.
  double max_shrink = 0.5;
};

/// A crawl: a crawl-kind job's progress through its paginated source (docket.crawls).
struct CrawlRecord {
  std::int64_t id = 0;
  std::int64_t job_id = 0;
  std::string kind;
  std::string collection;
  std::string status;  ///< waiting, crawling, retrying, finalizing, done, failed
  int pages = 0;
  int items = 0;
  std::optional<std::string> next_url;
  std::optional<std::string> cursor;
  std::optional<std::string> last_error;
  std::string inserted_at;
  std::optional<std::string> started_at;
  std::string updated_at;
  std::optional<std::string> finished_at;
  std::optional<std::string> job_state;
  int attempt = 0;
};

void to_json(Json& out, const CrawlRecord& c);
void from_json(const Json& in, CrawlRecord& c);

/// The crawl statuses, in order.
const std::vector<std::string>& crawl_status_names();

/// Filters for listing crawls, newest first.
struct CrawlFilter {
  std::optional<std::string> collection;
  std::optional<std::string> status;
  int limit = 50;
  std::optional<std::int64_t> after;
};

}  // namespace docket
