#pragma once
// The crawl executor (crawl kinds): walks a paginated HTTP source into docket.crawl_cache through
// db::CrawlStore, then activates it; it registers its own sweep of abandoned crawls with the
// maintainer (maintenance/sweep.hpp). The contract it implements: docket/crawl.hpp.
#include <memory>

#include "docket/crawl.hpp"
#include "docket/handler.hpp"

namespace docket {

namespace db {
class Pool;
}

/// The handler of a crawl kind. `pool`: the crawl's database connections (shared by the worker's
/// crawl kinds). Throws ConfigError naming the field for a spec it cannot run.
Handler crawl_handler(const CrawlExecutor& spec, const std::shared_ptr<db::Pool>& pool);

}  // namespace docket
