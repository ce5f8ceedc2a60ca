#include "docket/client.hpp"

#include <future>
#include <mutex>
#include <regex>

#include "core/secret.hpp"
#include "core/text.hpp"
#include "core/watch.hpp"
#include "db/crawl_store.hpp"
#include "db/pool.hpp"
#include "db/session.hpp"
#include "db/sql.hpp"
#include "docket/errors.hpp"
#include "executors/control.hpp"
#include "queue/finish.hpp"

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
    std::call_once(watch_started,
                   [this] { watch_ = std::make_unique<JobWatch>(url, options.listen_url, options.statement_timeout); });
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

namespace {

/// docket.callback_check's and docket.callback_finish's answer as a CallbackResult.
CallbackResult callback_answer(const std::string& answer) {
  if (answer == "unknown") return {CallbackAnswer::unknown_job, {}};
  if (answer == "forbidden") return {CallbackAnswer::bad_token, {}};
  if (answer == "finished") return {CallbackAnswer::finished, {}};
  if (answer == "stale") return {CallbackAnswer::stale, {}};
  return {CallbackAnswer::applied, answer == "ok" ? std::string("running") : answer};
}

/// Whether `token` is job `id`'s current callback token, comparing digests in constant time:
/// nullopt when it is, else the refusal. The fenced write checks again under the row's lock.
std::optional<CallbackResult> refuse_token(db::Session& s, std::int64_t id, const std::string& hash) {
  const auto stored = s.callback_hash(id);
  if (!stored) return CallbackResult{CallbackAnswer::unknown_job, {}};
  if (!constant_time_equal(stored->value_or(""), hash)) return CallbackResult{CallbackAnswer::bad_token, {}};
  return std::nullopt;
}

}  // namespace

CallbackResult Client::callback_progress(std::int64_t id, const std::string& token, const Json& progress) {
  const std::string hash = sha256_hex(token);
  const std::string json = clean_json_text(progress.dump(-1, ' ', false, Json::error_handler_t::replace));
  return impl_->with_session(
      [&](db::Session& s) {
        if (auto refused = refuse_token(s, id, hash)) return *refused;
        return callback_answer(s.callback_progress(id, hash, json));
      },
      false);
}

CallbackResult Client::callback_outcome(std::int64_t id, const std::string& token, const Json& outcome) {
  // The same protocol as a command's control lines and a url kind's body: one mapping.
  std::optional<Json> progress;
  ControlChannel control([&progress](Json value) { progress = std::move(value); });
  control.apply(outcome, "outcome");
  if (!control.error().empty()) throw InvalidInput(control.error());
  if (!control.decided() && !control.has_result()) {
    throw InvalidInput("outcome: give one of result (complete), retry, discard or snooze");
  }
  const db::FinishItem item =
      finish_item_of(id, 0, 0, control.decide(Outcome::complete()), [] { return std::optional<Millis>(); });
  std::optional<std::string> progress_json;
  if (progress) progress_json = clean_json_text(progress->dump(-1, ' ', false, Json::error_handler_t::replace));
  const std::string hash = sha256_hex(token);
  return impl_->with_session(
      [&](db::Session& s) {
        if (auto refused = refuse_token(s, id, hash)) return *refused;
        return callback_answer(s.callback_finish(id, hash, item, progress_json));
      },
      false);
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
  return impl_->with_session([&](db::Session& s) { return db::CrawlStore(s).list(filter); }, true);
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
  impl_->watch().wait(id, timeout,
                      [done = std::move(done)](const std::shared_ptr<const JobRecord>& job, std::exception_ptr error) {
                        done(job ? std::optional<JobRecord>(*job) : std::nullopt, std::move(error));
                      });
}

std::optional<JobRecord> Client::wait(std::int64_t id, std::chrono::milliseconds timeout) {
  auto answer = std::make_shared<std::promise<std::optional<JobRecord>>>();
  auto future = answer->get_future();
  wait_async(id, timeout, [answer](std::optional<JobRecord> job, const std::exception_ptr& error) {
    if (error) {
      answer->set_exception(error);
    } else {
      answer->set_value(std::move(job));
    }
  });
  return future.get();
}

std::optional<CrawlRecord> Client::crawl(std::int64_t id) {
  return impl_->with_session([&](db::Session& s) { return db::CrawlStore(s).get(id); }, true);
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
