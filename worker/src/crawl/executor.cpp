// The crawl executor: walks a paginated HTTP source page by page into docket.crawl_cache, one
// transaction per page with the checkpoint, politely (a minimum delay between requests, one
// request at a time per host across the fleet, Retry-After honoured), then activates the cache
// into docket.live_items (or the kind's own table) in one transaction.
#include <random>
#include <thread>

#include "core/arg_template.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "core/url.hpp"
#include "crawl/executor.hpp"
#include "db/crawl_store.hpp"
#include "db/pool.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "executors/executors.hpp"
#include "executors/fetch.hpp"
#include "maintenance/sweep.hpp"

namespace docket {

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr double kMaxInlineRetryAfterS = 30;  // longer waits snooze the job instead of holding a slot
constexpr int kMaxThrottledInARow = 10;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

/// The rel="next" target of a Link header, if any.
std::optional<std::string> link_next(const std::string& header) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    const auto open = header.find('<', pos);
    if (open == std::string::npos) break;
    const auto close = header.find('>', open);
    if (close == std::string::npos) break;
    const auto end =
        header.find(",<", close) == std::string::npos ? header.find(", <", close) : header.find(",<", close);
    const std::string params = header.substr(close + 1, end == std::string::npos ? std::string::npos : end - close - 1);
    if (params.find("rel=\"next\"") != std::string::npos || params.find("rel=next") != std::string::npos) {
      return header.substr(open + 1, close - open - 1);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return std::nullopt;
}

Json::json_pointer pointer(const std::string& text, const std::string& what) {
  try {
    return Json::json_pointer(text);
  } catch (const Json::exception&) {
    throw ConfigError(what + " \"" + text + "\" is not a JSON pointer; write it like \"/items\" or \"/data/results\"");
  }
}

/// What went wrong with a page: whether retrying can help, and how long the source asked to wait.
struct PageError {
  std::string message;
  bool permanent = false;
  std::optional<double> retry_after_s;
};

/// One run (attempt) of a crawl job.
class CrawlRun {
 public:
  CrawlRun(const CrawlExecutor& spec, const Json::json_pointer& items, const Json::json_pointer& key, db::Pool& pool,
           JobContext& ctx)
      : spec_(spec), items_(items), key_(key), pool_(pool), ctx_(ctx), origin_(parse_http_url(spec.url)->origin) {
    const Job& job = ctx.job();
    fence_ = {job.id, job.worker_id, job.attempt};
    holder_ = job.worker_id + ":" + std::to_string(job.id) + ":" + std::to_string(job.attempt);
  }

  Outcome run();

 private:
  template <class F>
  auto db(F&& op) {
    auto lease = pool_.acquire();
    return op(*lease);
  }
  bool stopping() const { return ctx_.stop_requested(); }
  /// Sleeps, waking early on a stop request. False when stopped.
  bool sleep_for(double seconds);
  std::variant<FetchResult, PageError> get_page(const std::string& url);
  /// Why the crawl may not follow `next` from a page; "" when it may.
  std::string refuse_link(const std::string& next) const;
  Outcome page_failed(const PageError& e);
  Outcome activate();
  Outcome lost() { return Outcome::retry("this worker no longer owns the crawl's job"); }

  const CrawlExecutor& spec_;
  const Json::json_pointer& items_;
  const Json::json_pointer& key_;
  db::Pool& pool_;
  JobContext& ctx_;
  db::JobFence fence_;
  std::string holder_;
  std::int64_t crawl_ = 0;
  int pages_ = 0;
  int items_total_ = 0;
  std::optional<SteadyClock::time_point> last_request_;
  std::string origin_;      ///< the configured url's origin: the only one that gets spec_.headers
  std::string url_;         ///< spec_.url with this job's {args.NAME} in it ({page}, {cursor} still open)
  std::string collection_;  ///< this job's collection (spec_.collection evaluated on its args at enqueue)
  std::mt19937 rng_{std::random_device{}()};
};

bool CrawlRun::sleep_for(double seconds) {
  const auto until =
      SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(seconds));
  while (SteadyClock::now() < until) {
    if (stopping()) return false;
    const SteadyClock::duration left = until - SteadyClock::now();
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(std::chrono::milliseconds(20), left));
  }
  return !stopping();
}

std::variant<FetchResult, PageError> CrawlRun::get_page(const std::string& url) {
  const auto u = parse_http_url(url);
  if (!u) return PageError{"\"" + url + "\" is not an http(s) URL", true, std::nullopt};
  const double timeout_s = std::chrono::duration<double>(spec_.request_timeout).count();
  const double delay_s = std::chrono::duration<double>(spec_.delay).count();
  // One request at a time per host across every worker: take the host's lease (it expires by
  // itself if we die holding it) and wait out its not_before (the last request's delay or
  // Retry-After), then this crawl's own delay.
  std::optional<double> wait_s;
  std::uniform_int_distribution<int> jitter(15, 40);
  while (!(wait_s = db([&](db::Session& s) {
             return db::CrawlStore(s).host_acquire(u->host, holder_, fence_.worker, timeout_s + 10);
           }))) {
    if (!sleep_for(jitter(rng_) / 1000.0)) return PageError{"stopped", false, std::nullopt};
  }
  double wait = *wait_s;
  if (last_request_) {
    const double since = std::chrono::duration<double>(SteadyClock::now() - *last_request_).count();
    wait = std::max(wait, delay_s - since);
  }
  auto release = [&](double gap_s) {
    db([&](db::Session& s) { db::CrawlStore(s).host_release(u->host, holder_, gap_s); });
  };
  if (!sleep_for(wait)) {
    release(0);
    return PageError{"stopped", false, std::nullopt};
  }
  FetchRequest req;
  req.url = url;
  req.headers = {{"Accept", "application/json"}, {"User-Agent", "docket-crawler/" DOCKET_VERSION}};
  req.credentials = spec_.headers;
  req.credentials_origin = origin_;
  req.max_bytes = spec_.max_response;
  req.timeout = spec_.request_timeout;
  req.max_redirects = 5;
  req.stop = ctx_.stop_token();
  FetchResult res = fetch(req);
  last_request_ = SteadyClock::now();
  double gap = delay_s;
  std::optional<double> retry_after;
  if (res.status == 429 || res.status == 503) {
    if (auto ra = parse_retry_after(res.header("Retry-After"), res.header("Date"))) {
      retry_after = std::chrono::duration<double>(*ra).count();
      gap = std::max(gap, *retry_after);  // every crawl of this host waits, not only this one
    }
  }
  release(gap);
  if (res.stopped) return PageError{"stopped", false, std::nullopt};
  // A page over the cap will be over it again: fail the crawl rather than fetch it max_retries times.
  if (res.status == 0) return PageError{res.error, res.too_large, std::nullopt};
  if (res.status >= 200 && res.status < 300) return res;
  const std::string msg = "GET " + res.url + ": HTTP " + std::to_string(res.status) +
                          (tail(res.body, 200).empty() ? "" : " " + tail(res.body, 200));
  const bool transient = res.status == 408 || res.status == 429 || res.status >= 500;
  return PageError{msg, !transient, retry_after};
}

std::string CrawlRun::refuse_link(const std::string& next) const {
  const auto u = parse_http_url(next);
  if (!u) return "the next link \"" + next + "\" is not an http(s) URL";
  if (u->origin == origin_) return "";
  const std::string host =
      u->host.substr(0, u->host.rfind(':') == std::string::npos ? u->host.size() : u->host.rfind(':'));
  for (const auto& allowed : spec_.allow_hosts) {
    if (allowed == u->host || allowed == host) return "";
  }
  return "the next link " + next + " leaves " + origin_ + "; list its host in crawl.allow_hosts to follow it";
}

Outcome CrawlRun::page_failed(const PageError& raw) {
  if (stopping()) return Outcome::retry("stopped");
  const PageError e{clean_text(raw.message, 4096, Keep::head), raw.permanent, raw.retry_after_s};
  const Job& job = ctx_.job();
  const bool final = e.permanent || job.attempt > job.max_retries;
  if (!db([&](db::Session& s) { return db::CrawlStore(s).error(crawl_, fence_, e.message, final); })) return lost();
  log::warn("crawl.page_failed",
            {{"crawl_id", crawl_}, {"job_id", job.id}, {"page", pages_ + 1}, {"final", final}, {"error", e.message}});
  return final ? Outcome::fail(e.message) : Outcome::retry(e.message);
}

Outcome CrawlRun::activate() {
  const Job& job = ctx_.job();
  if (spec_.activate_sql.empty() && spec_.max_shrink < 1.0) {
    // A source that suddenly answers far fewer items is more often broken than emptied: refuse
    // to wipe the live set, keep it as it is, and say so in docket.crawls.
    const auto [removed, live] = db([&](db::Session& s) { return db::CrawlStore(s).shrink(crawl_); });
    if (live > 0 && static_cast<double>(removed) > spec_.max_shrink * static_cast<double>(live)) {
      return page_failed({"refused to activate: it would remove " + std::to_string(removed) + " of " +
                              std::to_string(live) + " live items (more than crawl.max_shrink = " +
                              Json(spec_.max_shrink).dump() + "); the live items are unchanged",
                          true, std::nullopt});
    }
  }
  const bool ok = db([&](db::Session& s) {
    return spec_.activate_sql.empty()
               ? db::CrawlStore(s).activate(crawl_, fence_)
               : db::CrawlStore(s).activate_custom(crawl_, fence_, spec_.activate_sql, collection_);
  });
  if (!ok) return lost();
  log::info("crawl.activated", {{"crawl_id", crawl_},
                                {"job_id", job.id},
                                {"collection", collection_},
                                {"pages", pages_},
                                {"items", items_total_}});
  return Outcome::complete(
      Json{{"crawl_id", crawl_}, {"collection", collection_}, {"pages", pages_}, {"items", items_total_}});
}

Outcome CrawlRun::run() {
  const Job& job = ctx_.job();
  enum class Mode { page, pointer, link };
  const Mode mode = spec_.next.empty() ? Mode::page : spec_.next == "link" ? Mode::link : Mode::pointer;
  // The job's args in the URL: one that does not fit fails the crawl before any request.
  std::string bad_args;
  try {
    url_ = expand_url_args(spec_.url, job.args);
    if (const auto u = parse_http_url(url_); !u || u->origin != origin_) {
      bad_args = "crawl.url with the job's args leaves " + origin_;  // cannot happen: values are encoded
    }
  } catch (const InvalidInput& e) {
    bad_args = e.what();
  }
  if (!bad_args.empty()) url_ = spec_.url;
  const std::string first = mode == Mode::page ? replace_all(url_, "{page}", "1") : replace_all(url_, "{cursor}", "");
  std::optional<db::CrawlState> state;
  try {
    state = db([&](db::Session& s) { return db::CrawlStore(s).start(fence_, job.kind, spec_.collection, first); });
  } catch (const Conflict& e) {
    return Outcome::fail(e.what());
  } catch (const InvalidInput& e) {
    log::warn("crawl.refused", {{"job_id", job.id}, {"error", e.what()}});
    return Outcome::fail(e.what());  // the collection template does not fit the args: no crawl row, no request
  }
  if (!state) return lost();
  collection_ = state->collection;
  if (state->duplicate_of) {
    return Outcome::complete(Json{{"duplicate_of", *state->duplicate_of}, {"collection", collection_}});
  }
  crawl_ = state->id;
  pages_ = state->pages;
  items_total_ = state->items;
  if (state->status == "done") {
    return Outcome::complete(Json{{"crawl_id", crawl_}, {"pages", pages_}, {"items", items_total_}});
  }
  if (state->status == "failed") return Outcome::fail(state->last_error.value_or("the crawl failed"));
  if (state->status == "finalizing") return activate();
  if (!bad_args.empty()) {
    log::warn("crawl.refused", {{"crawl_id", crawl_}, {"job_id", job.id}, {"error", bad_args}});
    return page_failed({"crawl.url: " + bad_args + " (no request was sent)", true, std::nullopt});
  }
  ctx_.progress(Json{{"crawl_id", crawl_}, {"status", "crawling"}, {"pages", pages_}, {"items", items_total_}});
  log::info("crawl.started", {{"crawl_id", crawl_},
                              {"job_id", job.id},
                              {"collection", collection_},
                              {"resume_at_page", pages_ + 1},
                              {"url", state->next_url.value_or(first)}});

  std::string url = state->next_url.value_or(first);
  int throttled = 0;
  for (;;) {
    if (stopping()) return Outcome::retry("stopped");
    if (pages_ >= spec_.max_pages) {
      return page_failed(
          {"gave up after " + std::to_string(pages_) + " pages (crawl.max_pages); is the source looping?", true,
           std::nullopt});
    }
    auto fetched = get_page(url);
    if (auto* e = std::get_if<PageError>(&fetched)) {
      // Throttled with a short Retry-After: wait here (the host's next request is already held
      // back for everyone) instead of spending an attempt.
      if (e->retry_after_s && *e->retry_after_s <= kMaxInlineRetryAfterS && ++throttled <= kMaxThrottledInARow) {
        if (!db([&](db::Session& s) { return db::CrawlStore(s).error(crawl_, fence_, e->message, false); }))
          return lost();
        continue;
      }
      if (e->retry_after_s && *e->retry_after_s > kMaxInlineRetryAfterS) {
        if (!db([&](db::Session& s) { return db::CrawlStore(s).error(crawl_, fence_, e->message, false); }))
          return lost();
        return Outcome::snooze(std::chrono::milliseconds(static_cast<long long>(*e->retry_after_s * 1000)));
      }
      return page_failed(*e);
    }
    throttled = 0;
    const auto& res = std::get<FetchResult>(fetched);
    const std::string where = "page " + std::to_string(pages_ + 1) + " (" + url + ")";
    const std::string type = res.header("Content-Type");
    if (!type.empty() && type.find("json") == std::string::npos) {
      return page_failed({where + ": expected a JSON response, got Content-Type " + type, false, std::nullopt});
    }
    std::string parse_error;
    const auto parsed = try_parse_json(res.body, "the response is not valid JSON", &parse_error);
    if (!parsed) {
      return page_failed(
          {where + ": " + parse_error + " (" + std::to_string(res.body.size()) + " bytes: " + tail(res.body, 80) + ")",
           false, std::nullopt});
    }
    const Json& body = *parsed;
    // A page must have the items array in every mode: a 200 without it (a maintenance page, an
    // error object) is an error, never "the last page" (that would activate and wipe the live set).
    if (!body.is_structured() || !body.contains(items_)) {
      return page_failed({where + ": the response has no items at " + spec_.items, false, std::nullopt});
    }
    const Json& items = body.at(items_);
    if (!items.is_array()) {
      return page_failed(
          {where + ": " + spec_.items + " is " + std::string(items.type_name()) + ", not an array of items", false,
           std::nullopt});
    }

    // Where the next page is; nullopt when this page is the last.
    std::optional<std::string> next, cursor;
    if (mode == Mode::page) {
      if (!items.empty()) next = replace_all(url_, "{page}", std::to_string(pages_ + 2));
    } else if (mode == Mode::link) {
      if (auto n = link_next(res.header("Link"))) next = resolve_url(url, *n);
    } else {
      const auto ptr = Json::json_pointer(spec_.next);
      if (body.contains(ptr) && !body.at(ptr).is_null()) {
        const Json& v = body.at(ptr);
        const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
        if (!text.empty()) {
          cursor = clean_text(text, 4096);  // stored as text: no NUL, valid UTF-8
          if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0 || text.front() == '/') {
            next = resolve_url(url, text);
          } else if (url_.find("{cursor}") != std::string::npos) {
            next = replace_all(url_, "{cursor}", url_encode(text));
          } else {
            return page_failed({where + ": the next value at " + spec_.next + " (\"" + text +
                                    "\") is not a URL and crawl.url has no {cursor} to put it in",
                                true, std::nullopt});
          }
        }
      }
    }
    if (next) {
      if (const std::string why = refuse_link(*next); !why.empty())
        return page_failed({where + ": " + why, true, std::nullopt});
    }
    if (mode == Mode::page && items.empty()) {
      // The page after the last: nothing to store.
      if (!db([&](db::Session& s) { return db::CrawlStore(s).finalizing(crawl_, fence_); })) return lost();
      return activate();
    }

    // Keys unique within the page (the last item of a key wins), as the cache expects.
    std::map<std::string, const Json*> by_key;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const Json& item = items[i];
      if (!item.is_object() || !item.contains(key_) || item.at(key_).is_null() || item.at(key_).is_structured()) {
        return page_failed(
            {where + ": item " + std::to_string(i) + " has no key at " + spec_.key, false, std::nullopt});
      }
      const Json& k = item.at(key_);
      by_key[k.is_string() ? k.get<std::string>() : k.dump()] = &item;
    }
    Json rows = Json::array();
    for (const auto& [k, item] : by_key) rows.push_back(Json{{"key", k}, {"item", *item}});
    const auto stored = db([&](db::Session& s) {
      return db::CrawlStore(s).page(
          crawl_, fence_, clean_json_text(rows.dump(-1, ' ', false, Json::error_handler_t::replace)), next, cursor);
    });
    if (!stored) return lost();
    pages_ = stored->first;
    items_total_ = stored->second;
    log::debug("crawl.page", {{"crawl_id", crawl_}, {"page", pages_}, {"items", items_total_}, {"url", url}});
    if (!next) return activate();  // that was the last page: the crawl is finalizing
    url = *next;
  }
}

}  // namespace

Handler crawl_handler(const CrawlExecutor& spec, const std::shared_ptr<db::Pool>& pool) {
  if (!parse_http_url(spec.url)) {
    throw ConfigError("crawl.url must be an http:// or https:// URL without spaces, got \"" + spec.url + "\"");
  }
  if (spec.next.empty() && spec.url.find("{page}") == std::string::npos) {
    throw ConfigError("crawl.url \"" + spec.url +
                      "\" has no {page}: put {page} where the page number goes, or set crawl.next to a JSON pointer "
                      "(cursor or next URL in the body) or to \"link\" (the Link header)");
  }
  if (spec.collection.empty()) throw ConfigError("crawl.collection must not be empty");
  check_url_template(spec.url, "crawl.url");
  arg_placeholders(spec.collection, "crawl.collection");
  auto items = std::make_shared<Json::json_pointer>(pointer(spec.items, "crawl.items"));
  auto key = std::make_shared<Json::json_pointer>(pointer(spec.key, "crawl.key"));
  if (!spec.next.empty() && spec.next != "link") pointer(spec.next, "crawl.next");
  return [spec, items, key, pool](JobContext& ctx) { return CrawlRun(spec, *items, *key, *pool, ctx).run(); };
}

// Every worker sweeps (whether or not it runs crawl kinds): a crawl whose job no longer runs it is
// abandoned, on the maintainer's rescue cadence.
const bool kCrawlSweepRegistered =
    register_sweep({"crawl.abandoned", [](db::Session& s) { return db::CrawlStore(s).sweep(); }});

}  // namespace docket
