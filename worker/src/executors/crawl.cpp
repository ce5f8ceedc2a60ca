#include "executors/executors.hpp"

namespace docket {

Handler crawl_handler(const CrawlExecutor& /*spec*/, const std::string& /*database_url*/) {
  return [](JobContext&) { return Outcome::fail("crawl executor is not available in this build"); };
}

}  // namespace docket
