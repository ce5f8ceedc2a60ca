// The crawl executor: walks a paginated HTTP source page by page into docket.crawl_cache, one
// transaction per page with the checkpoint, politely (a minimum delay between requests, one
// request at a time per host across the fleet, Retry-After honoured), then activates the cache
// into docket.live_items (or the kind's own table) in one transaction.
#include <httplib.h>

#include <random>
#include <thread>

#include "core/log.hpp"
#include "core/url.hpp"
#include "db/pool.hpp"
#include "docket/errors.hpp"
#include "executors/executors.hpp"

namespace docket {

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr double kMaxInlineRetryAfterS = 30;  // longer waits snooze the job instead of holding a slot
constexpr int kMaxThrottledInARow = 10;

struct Url {
  std::string origin;  // scheme://host[:port]
  std::string target;  // /path?query
  std::string host;    // host[:port]: the politeness key
};

std::optional<Url> parse_url(const std::string& url) {
  const bool https = url.rfind("https://", 0) == 0;
  if (!https && url.rfind("http://", 0) != 0) return std::nullopt;
  const std::size_t start = https ? 8 : 7;
  const std::size_t slash = url.find_first_of("/?#", start);
  Url u;
  u.host = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
  if (u.host.empty()) return std::nullopt;
  u.origin = url.substr(0, start) + u.host;
  u.target = slash == std::string::npos ? "/" : url.substr(slash);
  if (u.target.front() != '/') u.target = "/" + u.target;
  if (auto hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
  return u;
}

/// A link from a page, resolved against the page's URL.
std::string resolve(const std::string& base, const std::string& ref) {
  if (ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0) return ref;
  const auto u = parse_url(base);
  if (!u) return ref;
  if (ref.rfind("//", 0) == 0) return base.substr(0, base.find("//")) + ref;
  if (!ref.empty() && ref.front() == '/') return u->origin + ref;
  if (!ref.empty() && ref.front() == '?') return u->origin + u->target.substr(0, u->target.find('?')) + ref;
  const std::string path = u->target.substr(0, u->target.find('?'));
  return u->origin + path.substr(0, path.rfind('/') + 1) + ref;
}

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
      : spec_(spec), items_(items), key_(key), pool_(pool), ctx_(ctx) {
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
  std::variant<httplib::Response, PageError> fetch(const std::string& url);
  Outcome page_failed(const PageError& e);
  Outcome activate();
  Outcome lost() { return Outcome::retry("this worker no longer owns the crawl's job"); }

  const CrawlExecutor& spec_;
  const Json::json_pointer& items_;
  const Json::json_pointer& key_;
  db::Pool& pool_;
  JobContext& ctx_;
  db::Session::JobFence fence_;
  std::string holder_;
  std::int64_t crawl_ = 0;
  int pages_ = 0;
  int items_total_ = 0;
  std::optional<SteadyClock::time_point> last_request_;
  std::map<std::string, std::unique_ptr<httplib::Client>> clients_;
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

std::variant<httplib::Response, PageError> CrawlRun::fetch(const std::string& url) {
  const auto u = parse_url(url);
  if (!u) return PageError{"\"" + url + "\" is not an http(s) URL", true, std::nullopt};
  const double timeout_s = std::chrono::duration<double>(spec_.request_timeout).count();
  const double delay_s = std::chrono::duration<double>(spec_.delay).count();
  // One request at a time per host across every worker: take the host's lease (it expires by
  // itself if we die holding it) and wait out its not_before (the last request's delay or
  // Retry-After), then this crawl's own delay.
  std::optional<double> wait_s;
  std::uniform_int_distribution<int> jitter(15, 40);
  while (!(wait_s = db([&](db::Session& s) {
             return s.crawl_host_acquire(u->host, holder_, fence_.worker, timeout_s + 10);
           }))) {
    if (!sleep_for(jitter(rng_) / 1000.0)) return PageError{"stopped", false, std::nullopt};
  }
  double wait = *wait_s;
  if (last_request_) {
    const double since = std::chrono::duration<double>(SteadyClock::now() - *last_request_).count();
    wait = std::max(wait, delay_s - since);
  }
  auto release = [&](double gap_s) { db([&](db::Session& s) { s.crawl_host_release(u->host, holder_, gap_s); }); };
  if (!sleep_for(wait)) {
    release(0);
    return PageError{"stopped", false, std::nullopt};
  }
  auto& client = clients_[u->origin];
  if (!client) {
    client = std::make_unique<httplib::Client>(u->origin);
    const auto secs = static_cast<time_t>(timeout_s);
    const auto usecs = static_cast<time_t>((timeout_s - static_cast<double>(secs)) * 1e6);
    client->set_connection_timeout(std::min<time_t>(secs, 10), secs < 10 ? usecs : 0);
    client->set_read_timeout(secs, usecs);
    client->set_follow_location(true);
    client->set_keep_alive(true);
  }
  httplib::Headers headers = {{"Accept", "application/json"}, {"User-Agent", "docket-crawler/" DOCKET_VERSION}};
  for (const auto& [k, v] : spec_.headers) headers.emplace(k, v);
  auto res = client->Get(u->target, headers);
  last_request_ = SteadyClock::now();
  double gap = delay_s;
  std::optional<double> retry_after;
  if (res && (res->status == 429 || res->status == 503)) {
    if (auto ra = parse_retry_after(res->get_header_value("Retry-After"))) {
      retry_after = std::chrono::duration<double>(*ra).count();
      gap = std::max(gap, *retry_after);  // every crawl of this host waits, not only this one
    }
  }
  release(gap);
  if (!res) {
    clients_.erase(u->origin);  // a broken connection is not reused
    return PageError{"GET " + url + " failed: " + httplib::to_string(res.error()), false, std::nullopt};
  }
  if (res->status >= 200 && res->status < 300) return std::move(res.value());
  const std::string msg = "GET " + url + ": HTTP " + std::to_string(res->status) +
                          (tail(res->body, 200).empty() ? "" : " " + tail(res->body, 200));
  const bool transient = res->status == 408 || res->status == 429 || res->status >= 500;
  return PageError{msg, !transient, retry_after};
}

Outcome CrawlRun::page_failed(const PageError& e) {
  if (stopping()) return Outcome::retry("stopped");
  const Job& job = ctx_.job();
  const bool final = e.permanent || job.attempt > job.max_retries;
  if (!db([&](db::Session& s) { return s.crawl_error(crawl_, fence_, e.message, final); })) return lost();
  log::warn("crawl.page_failed",
            {{"crawl_id", crawl_}, {"job_id", job.id}, {"page", pages_ + 1}, {"final", final}, {"error", e.message}});
  return final ? Outcome::fail(e.message) : Outcome::retry(e.message);
}

Outcome CrawlRun::activate() {
  const Job& job = ctx_.job();
  const bool ok = db([&](db::Session& s) {
    return spec_.activate_sql.empty() ? s.crawl_activate(crawl_, fence_)
                                      : s.crawl_activate_custom(crawl_, fence_, spec_.activate_sql, spec_.collection);
  });
  if (!ok) return lost();
  log::info("crawl.activated", {{"crawl_id", crawl_},
                                {"job_id", job.id},
                                {"collection", spec_.collection},
                                {"pages", pages_},
                                {"items", items_total_}});
  return Outcome::complete(
      Json{{"crawl_id", crawl_}, {"collection", spec_.collection}, {"pages", pages_}, {"items", items_total_}});
}

Outcome CrawlRun::run() {
  const Job& job = ctx_.job();
  enum class Mode { page, pointer, link };
  const Mode mode = spec_.next.empty() ? Mode::page : spec_.next == "link" ? Mode::link : Mode::pointer;
  const std::string first =
      mode == Mode::page ? replace_all(spec_.url, "{page}", "1") : replace_all(spec_.url, "{cursor}", "");
  std::optional<db::Session::CrawlState> state;
  try {
    state = db([&](db::Session& s) { return s.crawl_start(fence_, job.kind, spec_.collection, first); });
  } catch (const Conflict& e) {
    return Outcome::fail(e.what());
  }
  if (!state) return lost();
  if (state->duplicate_of) {
    return Outcome::complete(Json{{"duplicate_of", *state->duplicate_of}, {"collection", spec_.collection}});
  }
  crawl_ = state->id;
  pages_ = state->pages;
  items_total_ = state->items;
  if (state->status == "done") {
    return Outcome::complete(Json{{"crawl_id", crawl_}, {"pages", pages_}, {"items", items_total_}});
  }
  if (state->status == "failed") return Outcome::fail(state->last_error.value_or("the crawl failed"));
  if (state->status == "finalizing") return activate();
  ctx_.progress(Json{{"crawl_id", crawl_}, {"status", "crawling"}, {"pages", pages_}, {"items", items_total_}});
  log::info("crawl.started", {{"crawl_id", crawl_},
                              {"job_id", job.id},
                              {"collection", spec_.collection},
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
    auto fetched = fetch(url);
    if (auto* e = std::get_if<PageError>(&fetched)) {
      // Throttled with a short Retry-After: wait here (the host's next request is already held
      // back for everyone) instead of spending an attempt.
      if (e->retry_after_s && *e->retry_after_s <= kMaxInlineRetryAfterS && ++throttled <= kMaxThrottledInARow) {
        if (!db([&](db::Session& s) { return s.crawl_error(crawl_, fence_, e->message, false); })) return lost();
        continue;
      }
      if (e->retry_after_s && *e->retry_after_s > kMaxInlineRetryAfterS) {
        if (!db([&](db::Session& s) { return s.crawl_error(crawl_, fence_, e->message, false); })) return lost();
        return Outcome::snooze(std::chrono::milliseconds(static_cast<long long>(*e->retry_after_s * 1000)));
      }
      return page_failed(*e);
    }
    throttled = 0;
    const auto& res = std::get<httplib::Response>(fetched);
    const std::string where = "page " + std::to_string(pages_ + 1) + " (" + url + ")";
    const std::string type = res.get_header_value("Content-Type");
    if (!type.empty() && type.find("json") == std::string::npos) {
      return page_failed({where + ": expected a JSON response, got Content-Type " + type, false, std::nullopt});
    }
    Json body = Json::parse(res.body, nullptr, false);
    if (body.is_discarded()) {
      return page_failed({where + ": the response is not valid JSON (" + std::to_string(res.body.size()) +
                              " bytes: " + tail(res.body, 80) + ")",
                          false, std::nullopt});
    }
    const bool has_items = body.contains(items_);
    if (has_items && !body.at(items_).is_array()) {
      return page_failed(
          {where + ": " + spec_.items + " is " + std::string(body.at(items_).type_name()) + ", not an array of items",
           false, std::nullopt});
    }
    if (!has_items && mode != Mode::page) {
      return page_failed({where + ": the response has no items at " + spec_.items, false, std::nullopt});
    }
    const Json empty = Json::array();
    const Json& items = has_items ? body.at(items_) : empty;

    // Where the next page is; nullopt when this page is the last.
    std::optional<std::string> next, cursor;
    if (mode == Mode::page) {
      if (!items.empty()) next = replace_all(spec_.url, "{page}", std::to_string(pages_ + 2));
    } else if (mode == Mode::link) {
      if (auto n = link_next(res.get_header_value("Link"))) next = resolve(url, *n);
    } else {
      const auto ptr = Json::json_pointer(spec_.next);
      if (body.contains(ptr) && !body.at(ptr).is_null()) {
        const Json& v = body.at(ptr);
        const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
        if (!text.empty()) {
          cursor = text;
          if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0 || text.front() == '/') {
            next = resolve(url, text);
          } else if (spec_.url.find("{cursor}") != std::string::npos) {
            next = replace_all(spec_.url, "{cursor}", url_encode(text));
          } else {
            return page_failed({where + ": the next value at " + spec_.next + " (\"" + text +
                                    "\") is not a URL and crawl.url has no {cursor} to put it in",
                                true, std::nullopt});
          }
        }
      }
    }
    if (mode == Mode::page && items.empty()) {
      // The page after the last: nothing to store.
      if (!db([&](db::Session& s) { return s.crawl_finalizing(crawl_, fence_); })) return lost();
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
      return s.crawl_page(crawl_, fence_, rows.dump(-1, ' ', false, Json::error_handler_t::replace), next, cursor);
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
  if (spec.url.rfind("http://", 0) != 0 && spec.url.rfind("https://", 0) != 0) {
    throw ConfigError("crawl.url must start with http:// or https://, got \"" + spec.url + "\"");
  }
  if (spec.next.empty() && spec.url.find("{page}") == std::string::npos) {
    throw ConfigError("crawl.url \"" + spec.url +
                      "\" has no {page}: put {page} where the page number goes, or set crawl.next to a JSON pointer "
                      "(cursor or next URL in the body) or to \"link\" (the Link header)");
  }
  if (spec.collection.empty()) throw ConfigError("crawl.collection must not be empty");
  auto items = std::make_shared<Json::json_pointer>(pointer(spec.items, "crawl.items"));
  auto key = std::make_shared<Json::json_pointer>(pointer(spec.key, "crawl.key"));
  if (!spec.next.empty() && spec.next != "link") pointer(spec.next, "crawl.next");
  return [spec, items, key, pool](JobContext& ctx) { return CrawlRun(spec, *items, *key, *pool, ctx).run(); };
}

}  // namespace docket
