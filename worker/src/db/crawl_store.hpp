#pragma once
// The crawl statements (schema/queries/crawl_*.sql) on a Session's connection: the crawl executor's
// fenced page-by-page writes and activation, the per-host request leases, the maintainer's sweep
// of abandoned crawls, and the crawl views. A CrawlStore is a view over a Session it does not own.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "db/session.hpp"
#include "docket/crawl.hpp"

namespace docket::db {

/// A crawl as its executor sees it at (re)start: its checkpoint.
struct CrawlState {
  std::int64_t id = 0;
  std::string status;
  int pages = 0;
  int items = 0;
  std::optional<std::string> next_url;
  std::optional<std::string> last_error;
  std::optional<std::int64_t> duplicate_of;
  std::string collection;  ///< the crawl's collection, its template evaluated on the job's args
};

/// Fence for the crawl writes: the job, the worker id it was claimed under, the attempt.
struct JobFence {
  std::int64_t job = 0;
  std::string worker;
  int attempt = 0;
};

class CrawlStore {
 public:
  /// The statements run on `session`'s connection; it must outlive the store.
  explicit CrawlStore(Session& session) : session_(session), impl_(session.impl_) {}

  /// nullopt: the job is no longer ours. InvalidInput: the job's args do not fit the collection
  /// template (crawl.collection with {args.NAME}).
  std::optional<CrawlState> start(const JobFence& fence, const std::string& kind,
                                  const std::string& collection_template, const std::string& first_url);
  /// {pages, items} after the page; nullopt: the job is no longer ours.
  std::optional<std::pair<int, int>> page(std::int64_t crawl, const JobFence& fence, const std::string& items,
                                          const std::optional<std::string>& next_url,
                                          const std::optional<std::string>& cursor);
  /// Records a page error (final: the crawl failed); false: the job is no longer ours.
  bool error(std::int64_t crawl, const JobFence& fence, const std::string& error, bool final);
  /// Marks the crawl finalizing; false: the job is no longer ours.
  bool finalizing(std::int64_t crawl, const JobFence& fence);
  /// Activates the cache into docket.live_items; false: the job is no longer ours.
  bool activate(std::int64_t crawl, const JobFence& fence);
  /// {removed, live}: the live items of the crawl's collection its activation would remove, and
  /// how many there are now (the shrink guard's figures).
  std::pair<std::int64_t, std::int64_t> shrink(std::int64_t crawl);
  /// Activation by the kind's own statements ($1 crawl id, $2 collection), in order, in one
  /// transaction with the cache clean-up. False: the job is no longer ours (nothing was done).
  bool activate_custom(std::int64_t crawl, const JobFence& fence, const std::vector<std::string>& statements,
                       const std::string& collection);
  /// Seconds to wait before requesting; nullopt when another crawl holds the host.
  std::optional<double> host_acquire(const std::string& host, const std::string& holder, const std::string& worker,
                                     double lease_s);
  /// Gives the host back; the next request waits `gap_s` (the delay or a Retry-After).
  void host_release(const std::string& host, const std::string& holder, double gap_s);
  /// Marks the crawls whose job no longer runs them abandoned; how many.
  int sweep();
  /// docket.crawls, newest first.
  std::vector<CrawlRecord> list(const CrawlFilter& filter);
  /// One crawl by id.
  std::optional<CrawlRecord> get(std::int64_t id);

 private:
  Session& session_;
  std::unique_ptr<Session::Impl>& impl_;  ///< the session's connection state (DOCKET_RUN)
};

}  // namespace docket::db
