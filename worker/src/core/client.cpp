#include "docket/client.hpp"

#include <future>
#include <mutex>
#include <regex>

#include "db/pool.hpp"
#include "db/session.hpp"
#include "core/text.hpp"
#include "core/watch.hpp"
#include "db/sql.hpp"
#include "docket/errors.hpp"

namespace docket {

struct Client::Impl {
  Impl(const std::string& url, const ClientOptions& o)
      : pool(url, o.connections, o.application_name, o.statement_timeout, o.lock_timeout),
        check_schema(o.check_schema),
        url(url),
        options(o) {}

  /// Runs `op` on a leased session. A connection that died while idle is replaced before use
  /// (Session::connect checks); a read that fails because the connection broke mid-call is tried
  /// once more on a fresh connection. Writes are not repeated: the first may have committed.
  template <class F>
  auto with_session(F&& op, bool idempotent) -> decltype(op(std::declval<db::Session&>())) {
    auto lease = pool.acquire();
    for (int attempt = 1;; ++attempt) {
      try {
        if (check_schema) lease->check_schema();
        return op(*lease);
      } catch (const Unavailable&) {
        if (!idempotent || attempt >= 2 || lease->connected()) throw;
      }
    }
  }

  /// The waits' watch, started by the first wait: a client that never waits opens no extra connection.
  JobWatch& watch() {
    std::call_once(watch_started, [this] {
      watch_ = std::make_unique<JobWatch>(url, options.listen_url, options.statement_timeout);
    });
    return *watch_;
  }

  db::Pool pool;
  bool check_schema;
  std::string url;
  ClientOptions options;
  std::once_flag watch_started;
  std::unique_ptr<JobWatch> watch_;  ///< last: destroyed first, ending its waits while the rest stands
};

Client::Client(const std::string& database_url, const ClientOptions& options)
    : impl_(std::make_unique<Impl>(database_url, options)) {}

Client::~Client() = default;

EnqueueResult Client::enqueue(const EnqueueRequest& request) {
  return impl_->with_session([&](db::Session& s) { return s.enqueue(request); }, false);
}

std::vector<EnqueueResult> Client::enqueue_many(const std::vector<EnqueueRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->with_session([&](db::Session& s) { return s.enqueue_many(requests); }, false);
}

std::vector<Submitted> Client::submit_many(const std::vector<EnqueueRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->with_session([&](db::Session& s) { return s.submit_many(requests); }, false);
}

std::optional<JobRecord> Client::job(std::int64_t id) {
  return impl_->with_session([&](db::Session& s) { return s.job(id); }, true);
}

std::vector<JobRecord> Client::jobs(const JobFilter& filter) {
  if (filter.limit < 0) throw InvalidInput("limit must be >= 0, got " + std::to_string(filter.limit));
  return impl_->with_session([&](db::Session& s) { return s.jobs(filter); }, true);
}

CancelResult Client::cancel(std::int64_t id) {
  return impl_->with_session([&](db::Session& s) { return s.cancel(id); }, false);
}

void Client::retry(std::int64_t id) {
  impl_->with_session([&](db::Session& s) { s.retry(id); }, false);
}

void Client::set_limit(const std::string& kind, std::optional<int> max_running) {
  impl_->with_session([&](db::Session& s) { s.set_limit(kind, max_running); }, true);
}

void Client::set_rate(const std::string& kind, const std::optional<std::string>& rate, std::optional<int> burst) {
  impl_->with_session([&](db::Session& s) { s.set_rate(kind, rate, burst); }, true);
}

void Client::set_partition(const std::string& kind, const PartitionLimit& limit) {
  impl_->with_session([&](db::Session& s) { s.set_partition(kind, limit); }, true);
}

void Client::check_partition(const PartitionLimit& limit) {
  impl_->with_session([&](db::Session& s) { s.check_partition(limit); }, false);
}

std::vector<KeyLimit> Client::hot_keys(const std::string& kind, int top) {
  return impl_->with_session([&](db::Session& s) { return s.hot_keys(kind, top); }, false);
}

bool Client::reset_limit(const std::string& kind) {
  return impl_->with_session([&](db::Session& s) { return s.reset_limit(kind); }, true);
}

void Client::pause(const std::string& queue) {
  impl_->with_session([&](db::Session& s) { s.pause(queue); }, true);
}

void Client::resume(const std::string& queue) {
  impl_->with_session([&](db::Session& s) { s.resume(queue); }, true);
}

Json Client::stats() {
  return impl_->with_session([&](db::Session& s) { return s.stats(); }, true);
}

Json Client::throughput() {
  // 61 minutes per queue; past this many rows the busiest queues' tail is cut, not the answer.
  constexpr int kMaxRows = 61 * 200;
  return impl_->with_session([&](db::Session& s) { return s.throughput(kMaxRows); }, true);
}

RetryBatch Client::retry_failed(const std::string& kind, const std::optional<std::string>& after, int limit) {
  if (limit < 1 || limit > 1000) throw InvalidInput("limit must be 1-1000, got " + std::to_string(limit));
  std::optional<std::pair<std::int64_t, std::int64_t>> cursor;
  if (after) {
    // "<finished_at in µs>.<id>", as this function returned it: digits only, each within int64.
    static const std::regex shape(R"((\d{1,18})\.(\d{1,18}))");
    std::smatch m;
    if (!std::regex_match(*after, m, shape))
      throw InvalidInput("after \"" + after->substr(0, 64) + "\" is not a cursor this API returned");
    cursor.emplace(std::stoll(m[1].str()), std::stoll(m[2].str()));
  }
  const auto page = impl_->with_session([&](db::Session& s) { return s.failed_page(kind, cursor, limit); }, true);
  RetryBatch out;
  for (const auto& [id, finished_us] : page) {
    try {
      retry(id);
      ++out.retried;
    } catch (const Conflict&) {
      ++out.skipped;  // running again, or its unique_key is held: the rest still go
    } catch (const NotFound&) {
      ++out.skipped;  // pruned meanwhile
    }
  }
  if (static_cast<int>(page.size()) == limit)
    out.next = std::to_string(page.back().second) + "." + std::to_string(page.back().first);
  return out;
}

std::vector<QueueSummary> Client::queues() {
  return impl_->with_session([&](db::Session& s) { return s.queues(); }, true);
}

Json Client::unserved() {
  return impl_->with_session([&](db::Session& s) { return s.unserved(); }, true);
}

std::vector<KindLimit> Client::limits() {
  return impl_->with_session([&](db::Session& s) { return s.limits(); }, true);
}

std::vector<std::tuple<std::string, std::string, std::int64_t>> Client::queue_states() {
  return impl_->with_session([&](db::Session& s) { return s.queue_states(); }, true);
}

std::vector<CrawlRecord> Client::crawls(const CrawlFilter& filter) {
  if (filter.limit < 0) throw InvalidInput("limit must be >= 0, got " + std::to_string(filter.limit));
  if (filter.status) {
    const auto& names = crawl_status_names();
    if (std::find(names.begin(), names.end(), *filter.status) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw InvalidInput("unknown crawl status \"" + *filter.status + "\"; use one of: " + list);
    }
  }
  return impl_->with_session([&](db::Session& s) { return s.crawls(filter); }, true);
}

std::optional<JobRecord> Client::job_by_key(const std::string& key) {
  return impl_->with_session([&](db::Session& s) { return s.job_by_key(key); }, true);
}

void Client::wait_async(std::int64_t id, std::chrono::milliseconds timeout,
                        std::function<void(std::optional<JobRecord>, std::exception_ptr)> done) {
  if (timeout < std::chrono::milliseconds(0) || timeout > kMaxWait) {
    throw InvalidInput("wait must be between 0s and " + std::to_string(kMaxWait.count()) + "s, got " +
                       std::to_string(timeout.count()) + "ms");
  }
  impl_->watch().wait(id, timeout, std::move(done));
}

std::optional<JobRecord> Client::wait(std::int64_t id, std::chrono::milliseconds timeout) {
  auto answer = std::make_shared<std::promise<std::optional<JobRecord>>>();
  auto future = answer->get_future();
  wait_async(id, timeout, [answer](std::optional<JobRecord> job, std::exception_ptr error) {
    if (error) {
      answer->set_exception(error);
    } else {
      answer->set_value(std::move(job));
    }
  });
  return future.get();
}

std::optional<CrawlRecord> Client::crawl(std::int64_t id) {
  return impl_->with_session([&](db::Session& s) { return s.crawl(id); }, true);
}

namespace {

/// jsonb refuses \u0000 with a message that names no field: refused here, naming it.
void check_schedule_args(const ScheduleSpec& spec, const std::string& where) {
  const std::string args = spec.args.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (args != clean_json_text(args)) throw InvalidInput(where + "args must not contain NUL characters (\\u0000)");
}

}  // namespace

Json Client::schedule(const ScheduleSpec& spec) {
  check_schedule_args(spec, "");
  return impl_->with_session([&](db::Session& s) { return s.schedule(spec); }, false);
}

Json Client::schedules(int limit, const std::optional<std::string>& after) {
  return impl_->with_session([&](db::Session& s) { return s.schedules(std::nullopt, limit, after); }, true);
}

std::optional<Json> Client::find_schedule(const std::string& name) {
  Json found = impl_->with_session([&](db::Session& s) { return s.schedules(name, 1); }, true);
  if (found.empty()) return std::nullopt;
  return found.at(0);
}

ScheduleDeploy Client::deploy_schedules(const std::vector<ScheduleSpec>& specs, bool prune) {
  for (const auto& spec : specs) check_schedule_args(spec, "schedules." + spec.name + ": ");
  return impl_->with_session([&](db::Session& s) { return s.deploy_schedules(specs, prune); }, false);
}

ScheduleCounts Client::schedule_counts() {
  return impl_->with_session([&](db::Session& s) { return s.schedule_counts(); }, true);
}

bool Client::unschedule(const std::string& name) {
  return impl_->with_session([&](db::Session& s) { return s.unschedule(name); }, false);
}

void Client::pause_schedule(const std::string& name) {
  impl_->with_session([&](db::Session& s) { s.pause_schedule(name); }, true);
}

void Client::resume_schedule(const std::string& name) {
  impl_->with_session([&](db::Session& s) { s.resume_schedule(name); }, true);
}

std::optional<std::int64_t> Client::run_schedule_now(const std::string& name) {
  return impl_->with_session([&](db::Session& s) { return s.run_schedule_now(name); }, false);
}

void Client::ping() {
  auto lease = impl_->pool.acquire();
  lease->ping();
}

void set_pooler(Pooler pooler) {
  db::set_transaction_pooling(pooler == Pooler::transaction);
}

int migrate(const std::string& database_url) {
  db::Session session(database_url, "docket-migrate");
  return session.migrate();
}

int database_schema_version(const std::string& database_url, int timeout_seconds) {
  db::Session session(db::with_timeouts(database_url, timeout_seconds), "docket-ready");
  return session.schema_version();
}

int known_schema_version() {
  return db::migrations().empty() ? 0 : db::migrations().back().version;
}

}  // namespace docket
