#include "db/session.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>

#include "db/array.hpp"
#include "db/rows.hpp"
#include "db/session_impl.hpp"
#include "docket/time.hpp"

namespace docket::db {

namespace {

/// A duration as PostgreSQL interval text.
std::string interval_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " milliseconds";
}

bool has_param(const std::string& url, const std::string& name) {
  return url.find(name + "=") != std::string::npos;
}

/// A connection failure that retrying cannot mend: the server answered and refused these
/// settings (authentication, a role or database that does not exist). Anything else (refused,
/// timed out, starting up, DNS) may pass and is retried.
bool refused_for_good(const std::string& message) {
  for (const char* fragment :
       {"password authentication failed", "no pg_hba.conf entry", "authentication failed", "no password supplied",
        "does not exist", "permission denied for database", "is not permitted to log in", "invalid connection option",
        "invalid URI", "invalid sslmode", "invalid integer value", "invalid port number"}) {
    if (message.find(fragment) != std::string::npos) return true;
  }
  return false;
}

/// Refuses at once what libpq cannot parse: no server is asked, nothing is retried.
void check_connection_string(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options) {
    PQconninfoFree(options);
    return;
  }
  std::string why = error ? first_line(error) : "out of memory";
  if (error) PQfreemem(error);
  throw ConfigError("the database URL cannot be parsed: " + why +
                    " (DATABASE_URL or --database-url: use postgresql://user@host:5432/dbname or "
                    "\"host=... dbname=...\")");
}

}  // namespace

std::string with_connection_defaults(const std::string& url) {
  // TCP keepalives so a half-dead connection (failover, dropped NAT) is noticed in seconds, and
  // tcp_user_timeout so data sent into a cut link (a query, a COMMIT) fails after 30 s instead of
  // the kernel's ~15 minutes of retransmissions, which keepalives do not shorten; libpq ignores
  // both on unix sockets.
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"connect_timeout", "5"},     {"keepalives", "1"},       {"keepalives_idle", "10"},
      {"keepalives_interval", "5"}, {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
  };
  std::string out = url;
  const bool is_uri = url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
  for (const auto& [name, value] : defaults) {
    if (has_param(url, name)) continue;
    if (is_uri) {
      out += (out.find('?') == std::string::npos ? '?' : '&');
      out += name + "=" + value;
    } else {
      out += (out.empty() ? "" : " ") + name + "=" + value;
    }
  }
  return out;
}

namespace {
std::atomic<bool> g_transaction_pooling{false};
}  // namespace

void set_transaction_pooling(bool on) {
  g_transaction_pooling = on;
}

bool transaction_pooling() {
  return g_transaction_pooling.load();
}

std::string with_timeouts(const std::string& url, int seconds) {
  const std::string n = std::to_string(seconds);
  const std::string ms = std::to_string(seconds * 1000);
  if (transaction_pooling()) {
    // PgBouncer refuses the `options` startup parameter: only the connect timeout here (the
    // statement's is the pooler's query_timeout).
    return url +
           (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0
                ? (url.find('?') == std::string::npos ? "?" : "&")
                : (url.empty() ? "" : " ")) +
           "connect_timeout=" + n;
  }
  // Later parameters win in libpq, so these override the URL's own.
  if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=" + n +
           "&options=-c%20statement_timeout%3D" + ms;
  }
  return url + (url.empty() ? "" : " ") + "connect_timeout=" + n + " options='-c statement_timeout=" + ms + "'";
}

Session::Session(std::string url, std::string application_name, Plans plans, Route route)
    : url_(std::move(url)),
      application_name_(std::move(application_name)),
      plans_(plans),
      pooled_(route == Route::process_default && transaction_pooling()),
      impl_(std::make_unique<Impl>()) {
  impl_->pooled = pooled_;
}

Session::~Session() {
  disconnect();
}

bool Session::connected() const {
  return impl_->conn && impl_->conn->is_open();
}

void Session::disconnect() {
  impl_->receivers.clear();
  impl_->prepared.clear();
  if (impl_->conn) {
    try {
      impl_->conn->disconnect();
    } catch (...) {
    }
  }
  impl_->conn.reset();
}

void Session::set_timeouts(std::chrono::milliseconds statement, std::chrono::milliseconds lock) {
  statement_timeout_ = statement;
  lock_timeout_ = lock;
  impl_->local_settings.clear();
  if (pooled_ && (statement.count() > 0 || lock.count() > 0)) {
    impl_->local_settings = "SET LOCAL statement_timeout = " + std::to_string(statement.count()) +
                            "; SET LOCAL lock_timeout = " + std::to_string(lock.count());
  }
}

void Session::connect() {
  if (impl_->conn) {
    // An idle connection whose socket is readable has either a notification or an error/EOF
    // waiting (e.g. the server restarted). Find out now, not in the middle of a statement.
    // A restarted server sends its FATAL message and then closes: the first read takes the
    // message and succeeds, only the next one sees the end. So read until nothing is left (a
    // notification leaves nothing behind; a closed socket stays readable and fails the read).
    const int fd = impl_->conn->sock();
    bool broken = fd < 0 || !impl_->conn->is_open();
    for (int reads = 0; !broken && reads < 4; ++reads) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      try {
        impl_->conn->get_notifs();
      } catch (...) {
        broken = true;
      }
      if (!impl_->conn->is_open() || (reads == 3 && (p.revents & (POLLHUP | POLLERR)) != 0)) broken = true;
    }
    if (!broken) return;
    disconnect();
  }
  check_connection_string(url_);
  try {
    auto conn = std::make_unique<pqxx::connection>(with_connection_defaults(url_));
    // We set session state (time zone, application_name) and reconnect ourselves: libpqxx's
    // silent reactivation would lose both. Deprecated in 6.4, still the only switch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    pqxx::nontransaction tx(*conn);
    if (pooled_) {
      // A transaction pooler carries only the parameters the server reports (application_name,
      // TimeZone) from one server session to the next; any other SET would stay behind on a
      // server session another client gets. Timeouts go with each statement (set_timeouts).
      tx.exec("SET application_name = " + tx.quote(application_name_) + "; SET TIME ZONE 'UTC'");
    } else {
      tx.exec("SET application_name = " + tx.quote(application_name_) +
              "; SET TIME ZONE 'UTC'; SET idle_in_transaction_session_timeout = '60s'" +
              "; SET statement_timeout = " + std::to_string(statement_timeout_.count()) +
              "; SET lock_timeout = " + std::to_string(lock_timeout_.count()) +
              (plans_ == Plans::custom ? "; SET plan_cache_mode = force_custom_plan"
                                       : "; SET enable_seqscan = off; SET enable_bitmapscan = off;"
                                         " SET plan_cache_mode = force_generic_plan"));
    }
    impl_->conn = std::move(conn);
  } catch (const pqxx::broken_connection& e) {
    const std::string why = first_line(e.what());
    if (refused_for_good(why)) {
      throw ConfigError("PostgreSQL refused the connection settings: " + why +
                        " (check the user, password and database name in DATABASE_URL or --database-url)");
    }
    throw Unavailable("cannot connect to PostgreSQL: " + connect_failures(e.what()));
  } catch (const pqxx::sql_error& e) {
    throw_translated(e);
  }
  for (const auto& channel : impl_->channels) {
    impl_->receivers.push_back(std::make_unique<Receiver>(*impl_->conn, channel, impl_->pending));
  }
  // A reconnect may have missed notifications: tell the caller to look for work.
  if (!impl_->channels.empty()) impl_->pending.push_back({"docket_reconnect", ""});
}

int Session::schema_version() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto installed = tx.exec("SELECT to_regclass('docket.schema_migrations') IS NOT NULL");
    if (!installed[0][0].as<bool>()) return -1;
    auto r = tx.exec("SELECT coalesce(max(version), 0) FROM docket.schema_migrations");
    return r[0][0].as<int>();
  });
}

void Session::check_schema() {
  if (impl_->schema_checked && connected()) return;
  const int have = schema_version();
  const int want = migrations().empty() ? 0 : migrations().back().version;
  if (have < 0) {
    throw SchemaMismatch("the database has no docket schema: run `docket migrate` first");
  }
  if (have < want) {
    throw SchemaMismatch("the docket schema is at version " + std::to_string(have) + " but this binary needs " +
                         std::to_string(want) + ": run `docket migrate`");
  }
  if (have > want) {
    throw SchemaMismatch("the docket schema is at version " + std::to_string(have) +
                         ", newer than this binary knows (" + std::to_string(want) +
                         "): upgrade docket before running it against this database");
  }
  impl_->schema_checked = true;
}

int Session::migrate() {
  if (pooled_) {
    // The migration lock is a session advisory lock: through a transaction pooler it would stay
    // on whichever server session took it, and the unlock could run on another.
    throw ConfigError(
        "docket migrate needs a session of its own, not a transaction pooler: set listen_url (DOCKET_LISTEN_URL) "
        "to a direct URL, or run it with --database-url of the server or of a session pool");
  }
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    // One migrator at a time across all processes; the lock is released with the session.
    {
      pqxx::nontransaction tx(c);
      tx.exec("SELECT pg_advisory_lock(7036170716331542347)");
    }
    int applied = 0;
    try {
      {
        pqxx::work tx(c);
        tx.exec("CREATE SCHEMA IF NOT EXISTS docket");
        tx.exec(
            "CREATE TABLE IF NOT EXISTS docket.schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
        tx.commit();
      }
      int have = 0;
      {
        pqxx::nontransaction tx(c);
        have = tx.exec("SELECT coalesce(max(version), 0) FROM docket.schema_migrations")[0][0].as<int>();
      }
      const int want = migrations().empty() ? 0 : migrations().back().version;
      if (have > want) {
        throw SchemaMismatch("the docket schema is at version " + std::to_string(have) +
                             ", newer than this binary knows (" + std::to_string(want) + "): upgrade docket");
      }
      for (const auto& m : migrations()) {
        if (m.version <= have) continue;
        pqxx::work tx(c);
        tx.exec(m.sql);
        tx.exec("INSERT INTO docket.schema_migrations (version, name) VALUES (" + std::to_string(m.version) + ", " +
                tx.quote(m.name) + ")");
        tx.commit();
        ++applied;
      }
    } catch (...) {
      try {
        pqxx::nontransaction tx(c);
        tx.exec("SELECT pg_advisory_unlock_all()");
      } catch (...) {
      }
      throw;
    }
    pqxx::nontransaction tx(c);
    tx.exec("SELECT pg_advisory_unlock_all()");
    return applied;
  });
}

EnqueueResult Session::enqueue(const EnqueueRequest& r) {
  if (r.unique_states) check_unique_states(*r.unique_states, "unique_states");
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    Params p{r.kind,
             r.args.dump(),
             r.queue,
             std::to_string(r.priority),
             r.run_at ? std::optional<std::string>(format_timestamp(*r.run_at)) : std::nullopt,
             r.max_retries ? std::optional<std::string>(std::to_string(*r.max_retries)) : std::nullopt,
             r.unique_key,
             r.timeout ? std::optional<std::string>(interval_text(*r.timeout)) : std::nullopt,
             r.unique_for ? std::optional<std::string>(interval_text(*r.unique_for)) : std::nullopt,
             r.unique_states ? std::optional<std::string>(text_array(*r.unique_states)) : std::nullopt,
             r.result_ttl ? std::optional<std::string>(interval_text(*r.result_ttl)) : std::nullopt};
    auto res = run(c, *impl_, q::job_enqueue, p);
    return rows::enqueued(res[0]);
  });
}

namespace {
/// The queue of a job that names none and whose kind has no queue of its own.
const std::string kDefaultQueue = "default";

/// The JSON array docket.enqueue_many takes.
std::string batch_json(const std::vector<EnqueueRequest>& requests) {
  Json batch = Json::array();
  for (const auto& r : requests) {
    // State names are echoed into JSON: refuse what is no state before the strict dump below.
    if (r.unique_states)
      check_unique_states(*r.unique_states, "jobs[" + std::to_string(batch.size()) + "].unique_states");
    Json item = {{"kind", r.kind}, {"args", r.args}, {"priority", r.priority}};
    if (r.queue) item["queue"] = *r.queue;
    if (r.run_at) item["run_at"] = format_timestamp(*r.run_at);
    if (r.max_retries) item["max_retries"] = *r.max_retries;
    if (r.unique_key) item["unique_key"] = *r.unique_key;
    if (r.timeout) item["timeout"] = interval_text(*r.timeout);
    if (r.unique_for) item["unique_for"] = interval_text(*r.unique_for);
    if (r.unique_states) item["unique_states"] = *r.unique_states;
    if (r.result_ttl) item["result_ttl"] = interval_text(*r.result_ttl);
    batch.push_back(std::move(item));
  }
  return batch.dump(-1, ' ', false, Json::error_handler_t::strict);
}
}  // namespace

std::vector<Submitted> Session::submit_many(const std::vector<EnqueueRequest>& requests) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = run(c, *impl_, q::job_enqueue_many_jobs, Params{batch_json(requests)});
    std::vector<Submitted> out;
    out.reserve(res.size());
    for (const auto& row : res) out.push_back(rows::submitted(row));
    return out;
  });
}

namespace {

/// Streams the requests into a COPY of docket.jobs whose columns are kind, queue, args, then
/// priority, max_retries, and run_at + state when the flags say so (in that order).
template <bool Priority, bool Retries, bool Timed>
void copy_rows(pqxx::stream_to& copy, const std::vector<EnqueueRequest>& requests, const std::string& now_text,
               Clock::time_point db_now) {
  std::string args;
  std::string retries;
  for (const auto& r : requests) {
    args = r.args.dump(-1, ' ', false, Json::error_handler_t::strict);
    if (args.size() > (1u << 20))
      throw TooLarge("args is " + std::to_string(args.size()) + " bytes; the limit is 1 MiB");
    auto row = std::tuple_cat(
        std::make_tuple(std::cref(r.kind), std::cref(r.queue ? *r.queue : kDefaultQueue), std::cref(args)), [&] {
          if constexpr (Priority)
            return std::make_tuple(r.priority);
          else
            return std::tuple<>();
        }());
    auto with_retries = std::tuple_cat(row, [&] {
      if constexpr (Retries) {
        retries = r.max_retries ? std::to_string(*r.max_retries) : std::string();
        return std::make_tuple(r.max_retries ? retries.c_str() : static_cast<const char*>(nullptr));
      } else {
        return std::tuple<>();
      }
    }());
    if constexpr (Timed) {
      copy << std::tuple_cat(with_retries, std::make_tuple(r.run_at ? format_timestamp(*r.run_at) : now_text,
                                                           r.run_at && *r.run_at > db_now ? "scheduled" : "available"));
    } else {
      copy << with_retries;
    }
  }
}

}  // namespace

std::vector<EnqueueResult> Session::enqueue_many(const std::vector<EnqueueRequest>& requests) {
  // COPY writes no per-job timeout, uniqueness or result_ttl: such a batch takes the function path.
  const bool plain = std::none_of(requests.begin(), requests.end(), [](const auto& r) {
    return r.unique_key || r.timeout || r.unique_for || r.unique_states || r.result_ttl;
  });
  if (plain && !requests.empty()) {
    // Jobs without unique keys (and of no crawl kind) go in by COPY: several times faster than
    // any INSERT, the statement trigger still sends the NOTIFY, and reading back what this
    // transaction inserted gives the ids in request order.
    auto copied = guarded(*this, impl_->conn, [&](pqxx::connection& c) -> std::optional<std::vector<EnqueueResult>> {
      // Kinds whose enqueue must go through docket.enqueue_many (crawls, default queues) and
      // strict mode (a NULL row): the function path checks and resolves them.
      std::set<std::string, std::less<>> function_kinds;
      for (const auto& row : DOCKET_RUN(q::kind_crawl_kinds)) {
        if (row[0].is_null()) return std::nullopt;
        function_kinds.insert(row[0].c_str());
      }
      for (std::size_t i = 0; i < requests.size(); ++i) {
        if (function_kinds.contains(requests[i].kind)) return std::nullopt;
        // The rules of docket.check_job_fields, for the COPY path that bypasses it (CHECK
        // constraints remain the backstop).
        check_enqueue_request(requests[i], "jobs[" + std::to_string(i) + "].");
      }
      if (impl_->copy_denied) return std::nullopt;
      try {
        pqxx::work tx(c);
        const auto floor_row = exec_query(tx, *impl_, q::job_copy_floor)[0];
        const auto floor = floor_row["floor"].as<std::int64_t>();
        const auto db_now = Clock::time_point(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(floor_row["now_s"].as<double>())));
        const std::string now_text = format_timestamp(db_now);
        {
          // Only the columns some request sets: every column COPY parses costs the server time,
          // and the defaults (priority 0, run_at now(), state available) are what most bulk
          // enqueues want.
          const bool priorities =
              std::any_of(requests.begin(), requests.end(), [](const auto& r) { return r.priority != 0; });
          const bool retries =
              std::any_of(requests.begin(), requests.end(), [](const auto& r) { return r.max_retries.has_value(); });
          const bool timed =
              std::any_of(requests.begin(), requests.end(), [](const auto& r) { return r.run_at.has_value(); });
          std::vector<std::string> columns{"kind", "queue", "args"};
          if (priorities) columns.emplace_back("priority");
          if (retries) columns.emplace_back("max_retries");
          if (timed) columns.insert(columns.end(), {"run_at", "state"});
          pqxx::stream_to copy(tx, "docket.jobs", columns);
          using CopyRows =
              void (*)(pqxx::stream_to&, const std::vector<EnqueueRequest>&, const std::string&, Clock::time_point);
          static constexpr CopyRows kCopyRows[] = {
              copy_rows<false, false, false>, copy_rows<false, false, true>, copy_rows<false, true, false>,
              copy_rows<false, true, true>,   copy_rows<true, false, false>, copy_rows<true, false, true>,
              copy_rows<true, true, false>,   copy_rows<true, true, true>,
          };
          kCopyRows[(priorities ? 4 : 0) + (retries ? 2 : 0) + (timed ? 1 : 0)](copy, requests, now_text, db_now);
          copy.complete();
        }
        std::vector<EnqueueResult> out;
        out.reserve(requests.size());
        const auto n = static_cast<std::int64_t>(requests.size());
        const auto last = exec_query(tx, *impl_, q::job_copy_last)[0][0].as<std::int64_t>();
        if (last - floor == n) {
          // Nobody else drew ids meanwhile: ours are floor+1 .. last, in input order.
          for (std::int64_t id = floor + 1; id <= last; ++id) out.push_back({id, true});
        } else {
          const auto ids = exec_query(tx, *impl_, q::job_copied_ids, floor);
          for (const auto& row : ids) out.push_back({row[0].as<std::int64_t>(), true});
        }
        if (out.size() != requests.size()) {
          throw Error("bulk enqueue inserted " + std::to_string(out.size()) + " jobs for " +
                      std::to_string(requests.size()) + " requests");
        }
        tx.commit();
        return out;
      } catch (const pqxx::insufficient_privilege&) {
        // A role that may only enqueue through docket.enqueue_many (docket_enqueuer) cannot COPY
        // into docket.jobs: the function path below is the one it is granted.
        impl_->copy_denied = true;
        return std::nullopt;
      }
    });
    if (copied) return std::move(*copied);
  }
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = run(c, *impl_, q::job_enqueue_many, Params{batch_json(requests)});
    std::vector<EnqueueResult> out;
    out.reserve(res.size());
    for (const auto& row : res) out.push_back(rows::enqueued(row));
    return out;
  });
}

std::optional<JobRecord> Session::job(std::int64_t id) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) -> std::optional<JobRecord> {
    auto res = DOCKET_RUN(q::job_get, std::to_string(id));
    if (res.empty()) return std::nullopt;
    return rows::job(res[0]);
  });
}

std::vector<JobRecord> Session::jobs_by_id(const std::vector<std::int64_t>& ids) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::job_get_many, int_array(ids));
    std::vector<JobRecord> out;
    out.reserve(res.size());
    for (const auto& row : res) out.push_back(rows::job(row));
    return out;
  });
}

void Session::watch_jobs(const std::string& watch, const std::vector<std::int64_t>& add,
                         const std::vector<std::int64_t>& drop, std::chrono::milliseconds hold) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    DOCKET_RUN(q::job_watch, watch, int_array(add), int_array(drop), std::to_string(hold.count()));
  });
}

bool Session::listen_for_jobs(const std::string& queues_literal, const std::string& kinds_literal) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::queue_listen, queues_literal, kinds_literal);
    return !res.empty() && !res[0][0].is_null() && res[0][0].as<bool>();
  });
}

bool Session::any_quota(const std::string& kinds_literal) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::kind_any_quota, kinds_literal);
    return !res.empty() && !res[0][0].is_null() && res[0][0].as<bool>();
  });
}

std::optional<JobRecord> Session::job_by_key(const std::string& key) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) -> std::optional<JobRecord> {
    auto res = DOCKET_RUN(q::job_by_key, key);
    if (res.empty()) return std::nullopt;
    return rows::job(res[0]);
  });
}

std::vector<JobRecord> Session::jobs(const JobFilter& f) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    Params p{f.kind,
             f.queue,
             f.state ? std::optional<std::string>(std::string(to_string(*f.state))) : std::nullopt,
             f.after ? std::optional<std::string>(std::to_string(*f.after)) : std::nullopt,
             std::to_string(f.limit),
             f.unique_key};
    auto res = run(c, *impl_, q::job_list, p);
    std::vector<JobRecord> out;
    out.reserve(res.size());
    for (const auto& row : res) out.push_back(rows::job(row));
    return out;
  });
}

CancelResult Session::cancel(std::int64_t id) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::job_cancel, std::to_string(id));
    const bool changed = res[0]["changed"].as<bool>();
    if (!changed) return CancelResult::already_finished;
    return res[0]["before"].c_str() == std::string_view("running") ? CancelResult::cancel_requested
                                                                   : CancelResult::cancelled;
  });
}

void Session::retry(std::int64_t id) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::job_retry, std::to_string(id)); });
}

void Session::set_limit(const std::string& kind, std::optional<int> max_running) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    DOCKET_RUN(q::kind_set_limit, kind,
               max_running ? std::optional<std::string>(std::to_string(*max_running)) : std::nullopt);
  });
}

void Session::set_rate(const std::string& kind, const std::optional<std::string>& rate, std::optional<int> burst) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    DOCKET_RUN(q::kind_set_rate, kind, rate, burst ? std::optional<std::string>(std::to_string(*burst)) : std::nullopt);
  });
}

namespace {
std::optional<std::string> opt_number(std::optional<int> n) {
  return n ? std::optional<std::string>(std::to_string(*n)) : std::nullopt;
}
}  // namespace

void Session::set_partition(const std::string& kind, const PartitionLimit& limit) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    DOCKET_RUN(q::kind_set_partition, kind, limit.partition, opt_number(limit.max_running_per_key), limit.rate_per_key,
               opt_number(limit.burst_per_key));
  });
}

void Session::check_partition(const PartitionLimit& limit) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    DOCKET_RUN(q::kind_check_partition, limit.partition, opt_number(limit.max_running_per_key), limit.rate_per_key,
               opt_number(limit.burst_per_key));
  });
}

std::vector<KeyLimit> Session::hot_keys(const std::string& kind, int top) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::kind_hot_keys, kind, std::to_string(top));
    std::vector<KeyLimit> out;
    for (const auto& row : res) out.push_back(rows::key_limit(row));
    return out;
  });
}

void Session::pause(const std::string& queue) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::queue_pause, queue); });
}

void Session::resume(const std::string& queue) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::queue_resume, queue); });
}

Json Session::stats() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res = DOCKET_RUN(q::stats_snapshot);
    return Json::parse(std::string_view(res[0][0].c_str(), res[0][0].size()));
  });
}

Json Session::throughput(int max_rows) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res = DOCKET_RUN(q::stats_throughput, std::to_string(max_rows));
    return Json::parse(std::string_view(res[0][0].c_str(), res[0][0].size()));
  });
}

std::vector<std::pair<std::int64_t, std::int64_t>> Session::failed_page(
    const std::string& kind, const std::optional<std::pair<std::int64_t, std::int64_t>>& after, int limit) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res =
        DOCKET_RUN(q::job_failed_page, kind, after ? std::optional(std::to_string(after->first)) : std::nullopt,
                   after ? std::optional(std::to_string(after->second)) : std::nullopt, std::to_string(limit));
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (const auto& row : res) out.emplace_back(row["id"].as<std::int64_t>(), row["finished_us"].as<std::int64_t>());
    return out;
  });
}

std::vector<QueueSummary> Session::queues() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::queue_summary);
    std::vector<QueueSummary> out;
    for (const auto& row : res) out.push_back(rows::queue_summary(row));
    return out;
  });
}

Json Session::unserved() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res = DOCKET_RUN(q::unserved_jobs);
    return Json::parse(std::string_view(res[0][0].c_str(), res[0][0].size()));
  });
}

std::vector<KindLimit> Session::limits() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::kind_limits);
    std::vector<KindLimit> out;
    for (const auto& row : res) out.push_back(rows::kind_limit(row));
    return out;
  });
}

std::vector<std::tuple<std::string, std::string, std::int64_t>> Session::queue_states() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::queue_states);
    std::vector<std::tuple<std::string, std::string, std::int64_t>> out;
    for (const auto& row : res)
      out.emplace_back(row["queue"].c_str(), row["state"].c_str(), row["jobs"].as<std::int64_t>());
    return out;
  });
}

void Session::ping() {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::ping); });
}

std::vector<ClaimedJob> Session::running_jobs(const std::string& worker) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    std::vector<ClaimedJob> jobs;
    for (const auto& row : DOCKET_RUN(q::worker_running_jobs, worker)) jobs.push_back(rows::running(row));
    return jobs;
  });
}

std::vector<ClaimedJob> Session::claim(const std::string& worker, const std::string& queues_literal,
                                       const std::string& kinds_literal, int limit) {
  ClaimPath path = ClaimPath::open;
  return claim(worker, queues_literal, kinds_literal, limit, path);
}

std::vector<ClaimedJob> Session::claim(const std::string& worker, const std::string& queues_literal,
                                       const std::string& kinds_literal, int limit, ClaimPath& path,
                                       std::optional<double>* rate_wait_s) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const std::string n = std::to_string(limit);
    pqxx::result res;
    if (path == ClaimPath::open) {
      res = DOCKET_RUN(q::job_claim_open, worker, queues_literal, kinds_literal, n);
      // A row with a NULL id: a kind has a quota, so claim through docket.claim (it takes the locks).
      if (!res.empty() && res[0]["id"].is_null()) path = ClaimPath::quota;
    }
    if (path == ClaimPath::quota) res = DOCKET_RUN(q::job_claim, worker, queues_literal, kinds_literal, n);
    std::vector<ClaimedJob> out;
    out.reserve(res.size());
    for (const auto& row : res) {
      if (!row["id"].is_null()) {
        out.push_back(rows::claimed(row));
      } else if (rate_wait_s) {
        // job_claim's extra row: see docket.rate_wait (the open path declines before any limit).
        if (const auto wait = rows::rate_wait(row)) *rate_wait_s = wait;
      }
    }
    return out;
  });
}

std::string_view to_string(FinishOutcome outcome) {
  switch (outcome) {
    case FinishOutcome::complete:
      return "complete";
    case FinishOutcome::retry:
      return "retry";
    case FinishOutcome::fail:
      return "fail";
    case FinishOutcome::cancel:
      return "cancel";
    case FinishOutcome::snooze:
      return "snooze";
    case FinishOutcome::release:
      return "release";
  }
  return "fail";  // unreachable: the switch names every outcome (-Werror=switch)
}

namespace {

/// The finish statement's arrays, one entry per item.
struct FinishArrays {
  explicit FinishArrays(const std::vector<const FinishItem*>& items) {
    std::vector<std::int64_t> i, a, m;
    std::vector<std::string> o;
    std::vector<double> d;
    std::vector<std::optional<std::string>> r, e;
    for (const auto* it : items) {
      i.push_back(it->id);
      a.push_back(it->attempt);
      m.push_back(it->max_retries);
      o.emplace_back(to_string(it->outcome));
      d.push_back(it->delay_s);
      r.push_back(it->result);
      e.push_back(it->error);
    }
    ids = int_array(i), attempts = int_array(a), max_retries = int_array(m);
    outcomes = text_array(o), delays = float_array(d), results = text_array(r), errors = text_array(e);
  }
  std::string ids, attempts, outcomes, delays, results, errors, max_retries;
};

std::vector<const FinishItem*> pointers(const std::vector<FinishItem>& items) {
  std::vector<const FinishItem*> out;
  out.reserve(items.size());
  for (const auto& it : items) out.push_back(&it);
  return out;
}

}  // namespace

std::vector<Finished> Session::finish(const std::string& worker, const std::vector<FinishItem>& items) {
  // Plain completions (the bulk of a busy queue) take the two-array statement; the rest the
  // general one, which decides retry/fail/cancel per row.
  std::vector<std::int64_t> done_ids, done_attempts;
  std::vector<const FinishItem*> general;
  for (const auto& it : items) {
    if (it.outcome == FinishOutcome::complete && !it.result) {
      done_ids.push_back(it.id);
      done_attempts.push_back(it.attempt);
    } else {
      general.push_back(&it);
    }
  }
  const FinishArrays a(general);
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    std::vector<Finished> out;
    out.reserve(items.size());
    if (!done_ids.empty()) {
      for (const auto& row : DOCKET_RUN(q::job_complete, worker, int_array(done_ids), int_array(done_attempts))) {
        out.push_back(rows::finished(row));
      }
    }
    if (!general.empty()) {
      for (const auto& row : DOCKET_RUN(q::job_finish, worker, a.ids, a.attempts, a.outcomes, a.delays, a.results,
                                        a.errors, a.max_retries)) {
        out.push_back(rows::finished(row));
      }
    }
    return out;
  });
}

FinishedAndClaimed Session::finish_and_claim(const std::string& worker, const std::vector<FinishItem>& items,
                                             const std::string& queues_literal, const std::string& kinds_literal,
                                             int limit) {
  const FinishArrays a(pointers(items));
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    FinishedAndClaimed out;
    for (const auto& row : DOCKET_RUN(q::job_finish_claim, worker, a.ids, a.attempts, a.outcomes, a.delays, a.results,
                                      a.errors, a.max_retries, queues_literal, kinds_literal, std::to_string(limit))) {
      if (row["claimed"].as<bool>()) {
        out.claimed.push_back(rows::claimed(row));
      } else {
        out.finished.push_back(rows::finished(row));
      }
    }
    return out;
  });
}

bool Session::progress(const std::string& worker, std::int64_t id, int attempt, const std::string& json) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::job_progress, worker, std::to_string(id), std::to_string(attempt), json);
    return res.affected_rows() > 0;
  });
}

std::string Session::register_worker(const WorkerRow& w) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::worker_register, w.name, w.host, std::to_string(w.pid), text_array(w.queues),
                          text_array(w.kinds), std::to_string(w.concurrency), std::to_string(w.lease_s));
    return std::string(res[0][0].c_str());
  });
}

bool Session::heartbeat(const std::string& worker) {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return !DOCKET_RUN(q::worker_heartbeat, worker).empty(); });
}

void Session::worker_stopping(const std::string& worker) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::worker_stopping, worker); });
}

void Session::worker_stopped(const std::string& worker) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::worker_stopped, worker); });
}

std::vector<std::int64_t> Session::cancel_requests(const std::string& worker) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::worker_cancel_requests, worker);
    std::vector<std::int64_t> out;
    for (const auto& row : res) out.push_back(row[0].as<std::int64_t>());
    return out;
  });
}

int Session::rescue() {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) { return DOCKET_RUN(q::job_rescue)[0][0].as<int>(); });
}

bool Session::callback_arm(const std::string& worker, std::int64_t id, int attempt, const std::string& hash) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    return DOCKET_RUN(q::job_callback_arm, worker, std::to_string(id), std::to_string(attempt), hash)[0][0].as<bool>();
  });
}

bool Session::callback_wait(const std::string& worker, std::int64_t id, int attempt, const std::string& hash,
                            double deadline_s, double backoff_s) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    return DOCKET_RUN(q::job_callback_wait, worker, std::to_string(id), std::to_string(attempt), hash,
                      std::to_string(deadline_s), std::to_string(backoff_s))[0][0]
        .as<bool>();
  });
}

std::optional<std::optional<std::string>> Session::callback_hash(std::int64_t id) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) -> std::optional<std::optional<std::string>> {
    auto res = DOCKET_RUN(q::job_callback_hash, std::to_string(id));
    if (res.empty()) return std::nullopt;
    if (res[0][0].is_null()) return std::optional<std::string>();
    return std::optional<std::string>(res[0][0].c_str());
  });
}

std::string Session::callback_progress(std::int64_t id, const std::string& hash, const std::string& json) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    return std::string(DOCKET_RUN(q::job_callback_progress, std::to_string(id), hash, json)[0][0].c_str());
  });
}

std::string Session::callback_finish(std::int64_t id, const std::string& hash, const FinishItem& item,
                                     const std::optional<std::string>& progress) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const std::optional<std::string> delay =
        item.delay_s < 0 ? std::nullopt : std::optional<std::string>(std::to_string(item.delay_s));
    return std::string(DOCKET_RUN(q::job_callback_finish, std::to_string(id), hash,
                                  std::string(to_string(item.outcome)), delay, item.result, item.error, progress)[0][0]
                           .c_str());
  });
}

int Session::callback_expire() {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return DOCKET_RUN(q::job_callback_expire)[0][0].as<int>(); });
}

Promoted Session::promote() {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return rows::promoted(DOCKET_RUN(q::job_promote)[0]); });
}

Json Session::schedule(const ScheduleSpec& s) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res =
        DOCKET_RUN(q::schedule_upsert, s.name, s.cron, s.kind, s.args.dump(), s.tz, s.queue,
                   s.spread ? std::optional<std::string>(std::to_string(s.spread->count() / 1000.0)) : std::nullopt,
                   s.on_overlap, s.on_missed, s.enabled ? "true" : "false", std::to_string(s.priority),
                   s.max_retries ? std::optional<std::string>(std::to_string(*s.max_retries)) : std::nullopt, s.source);
    return Json::parse(std::string_view(res[0][0].c_str(), res[0][0].size()));
  });
}

Json Session::schedules(const std::optional<std::string>& name, int limit, const std::optional<std::string>& after) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res = DOCKET_RUN(q::schedule_list, name, std::to_string(limit), after);
    return Json::parse(std::string_view(res[0][0].c_str(), res[0][0].size()));
  });
}

ScheduleDeploy Session::deploy_schedules(const std::vector<ScheduleSpec>& specs, bool prune) {
  Json rows = Json::array();
  for (const auto& s : specs) {
    rows.push_back({{"name", s.name},
                    {"cron", s.cron},
                    {"kind", s.kind},
                    {"args", s.args},
                    {"tz", s.tz},
                    {"queue", s.queue ? Json(*s.queue) : Json()},
                    {"spread_s", s.spread ? Json(static_cast<double>(s.spread->count()) / 1000.0) : Json()},
                    {"on_overlap", s.on_overlap},
                    {"on_missed", s.on_missed},
                    {"enabled", s.enabled},
                    {"priority", s.priority},
                    {"max_retries", s.max_retries ? Json(*s.max_retries) : Json()}});
  }
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res = DOCKET_RUN(q::schedule_deploy, rows.dump(-1, ' ', false, Json::error_handler_t::replace),
                                prune ? "true" : "false");
    ScheduleDeploy d;
    for (const auto& a : Json::parse(res[0]["applied"].c_str())) {
      (a.at("source") == "config" ? d.applied : d.runtime).push_back(a.at("name"));
    }
    for (const auto& n : Json::parse(res[0]["deleted"].c_str())) d.deleted.push_back(n);
    return d;
  });
}

ScheduleCounts Session::schedule_counts() {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return rows::schedule_counts(DOCKET_RUN(q::schedule_counts)[0]); });
}

bool Session::unschedule(const std::string& name) {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return DOCKET_RUN(q::schedule_delete, name)[0][0].as<bool>(); });
}

void Session::pause_schedule(const std::string& name) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::schedule_pause, name); });
}

void Session::resume_schedule(const std::string& name) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) { DOCKET_RUN(q::schedule_resume, name); });
}

std::optional<std::int64_t> Session::run_schedule_now(const std::string& name) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) -> std::optional<std::int64_t> {
    const auto res = DOCKET_RUN(q::schedule_run, name);
    if (res[0][0].is_null()) return std::nullopt;
    return res[0][0].as<std::int64_t>();
  });
}

ScheduleTick Session::schedule_tick() {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return rows::schedule_tick(DOCKET_RUN(q::schedule_tick)[0]); });
}

int Session::prune(int batch) {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return DOCKET_RUN(q::job_prune, std::to_string(batch))[0][0].as<int>(); });
}

std::string kind_settings_json(const KindSettings& settings) {
  nlohmann::json j = {{"kind", settings.kind}};
  const auto put = [&j](const char* field, const auto& value) {
    if (value) j[field] = *value;
  };
  const auto put_seconds = [&j](const char* field, const std::optional<std::chrono::milliseconds>& d) {
    if (d) j[field] = static_cast<double>(d->count()) / 1000.0;
  };
  put("max_retries", settings.max_retries);
  put("max_running", settings.max_running);
  put("crawl_collection", settings.crawl_collection);
  put_seconds("timeout_s", settings.timeout);
  put("queue", settings.queue);
  put_seconds("retain_completed_s", settings.retain_completed);
  put_seconds("retain_failed_s", settings.retain_failed);
  put("rate", settings.rate);
  put("burst", settings.burst);
  put("partition", settings.keyed.partition);
  put("max_running_per_key", settings.keyed.max_running_per_key);
  put("rate_per_key", settings.keyed.rate_per_key);
  put("burst_per_key", settings.keyed.burst_per_key);
  if (settings.unique) {
    j["unique_by"] = settings.unique->by;
    put_seconds("unique_for_s", settings.unique->period);
    put("unique_states", settings.unique->states);
  }
  put_seconds("result_ttl_s", settings.result_ttl);
  return j.dump();
}

Session::SeedOutcome Session::seed_kind(const KindSettings& settings) {
  const auto json = kind_settings_json(settings);
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    const auto res = DOCKET_RUN(q::kind_seed, json);
    return rows::seed_outcome(res[0]);
  });
}

bool Session::reset_limit(const std::string& kind) {
  return guarded(*this, impl_->conn,
                 [&](pqxx::connection& c) { return DOCKET_RUN(q::kind_reset_limit, kind)[0][0].as<bool>(); });
}

std::vector<std::vector<std::optional<std::string>>> Session::query(
    const Query& query, const std::vector<std::optional<std::string>>& params) {
  return guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    auto res = run(c, *impl_, query, params);
    std::vector<std::vector<std::optional<std::string>>> rows;
    for (const auto& row : res) {
      std::vector<std::optional<std::string>> out;
      for (const auto& f : row) out.push_back(opt_text(f));
      rows.push_back(std::move(out));
    }
    return rows;
  });
}

void Session::utility(const Query& query) {
  guarded(*this, impl_->conn, [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec(std::string(query.text));
  });
}

void Session::listen(const std::string& channel) {
  impl_->channels.push_back(channel);
  if (connected()) {
    guarded(*this, impl_->conn, [&](pqxx::connection& c) {
      impl_->receivers.push_back(std::make_unique<Receiver>(c, channel, impl_->pending));
    });
  }
}

int Session::socket() const {
  return impl_->conn ? impl_->conn->sock() : -1;
}

std::vector<Notification> Session::take_notifications() {
  if (impl_->conn) {
    try {
      impl_->conn->get_notifs();
    } catch (const pqxx::broken_connection& e) {
      disconnect();
      throw Unavailable(std::string("lost the PostgreSQL connection: ") + first_line(e.what()));
    } catch (const pqxx::failure& e) {
      disconnect();
      throw Unavailable(std::string("database failure: ") + first_line(e.what()));
    }
  }
  std::vector<Notification> out;
  out.swap(impl_->pending);
  return out;
}

}  // namespace docket::db
