#pragma once
// Session internals shared by the files that implement Session's operations (db/*.cpp).
#include <pqxx/pqxx>
#include <set>

#include "db/pq.hpp"
#include "db/queries.hpp"
#include "db/session.hpp"
#include "db/sql.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"

namespace docket::db {

/// Receives NOTIFYs on one channel into the session's pending list.
class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel, std::vector<Notification>& sink)
      : pqxx::notification_receiver(conn, channel), sink_(sink) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override { sink_.push_back({channel(), payload}); }

 private:
  std::vector<Notification>& sink_;
};

struct Session::Impl {
  std::unique_ptr<pqxx::connection> conn;
  std::set<std::string, std::less<>> prepared;
  std::vector<std::string> channels;
  std::vector<std::unique_ptr<Receiver>> receivers;
  std::vector<Notification> pending;
  bool schema_checked = false;
  /// The role may not COPY into docket.jobs (docket_enqueuer): bulk enqueues use the function.
  bool copy_denied = false;
  /// Through a transaction pooler (Session::pooled).
  bool pooled = false;
  /// Through a transaction pooler with timeouts: the SET LOCAL statements each query runs after.
  std::string local_settings;
};

/// Runs `body` on the session's connection, connecting first; translates pqxx errors into
/// docket::Error and drops a connection that broke.
template <class F>
inline auto guarded(Session& session, std::unique_ptr<pqxx::connection>& conn, F&& body) -> decltype(body(*conn)) {
  session.connect();
  try {
    return body(*conn);
  } catch (const pqxx::broken_connection& e) {
    session.disconnect();
    throw Unavailable(std::string("lost the PostgreSQL connection: ") + first_line(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    session.disconnect();
    throw Unavailable(std::string("lost the PostgreSQL connection during commit: ") + first_line(e.what()));
  } catch (const pqxx::sql_error& e) {
    if (is_connection_state(e.sqlstate())) session.disconnect();
    throw_translated(e);
  } catch (const pqxx::unexpected_rows& e) {
    throw Error(std::string("unexpected result: ") + e.what());
  } catch (const pqxx::conversion_error& e) {
    throw Error(std::string("cannot read a database value: ") + e.what());
  } catch (const pqxx::usage_error& e) {
    throw Error(std::string("database client misuse: ") + e.what());
  } catch (const pqxx::failure& e) {
    session.disconnect();
    throw Unavailable(std::string("database failure: ") + first_line(e.what()));
  }
}

using Params = std::vector<std::optional<std::string>>;

/// Runs `query` in `tx`: the one place that prepares. On a session of its own: a named prepared
/// statement, prepared on first use per connection. Through a transaction pooler: an unnamed one,
/// parsed with each run, because a statement prepared by name lives on one server session and the
/// pooler may hand the next transaction another.
template <class... Args>
pqxx::result exec_query(pqxx::transaction_base& tx, Session::Impl& impl, const Query& query, Args&&... args) {
  if (impl.pooled) return tx.exec_params(std::string(query.text), std::forward<Args>(args)...);
  const std::string name(query.name);
  if (!impl.prepared.contains(name)) {
    tx.conn().prepare(name, std::string(query.text));
    impl.prepared.insert(name);
  }
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

/// Runs `query` with text parameters (nullopt: NULL) in a statement of its own.
inline pqxx::result run(pqxx::connection& conn, Session::Impl& impl, const Query& query, const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    // libpq reads parameters as C strings: a NUL would silently cut the value short.
    if (p && p->find('\0') != std::string::npos) throw InvalidInput("text values must not contain NUL characters");
    values.push_back(p ? p->c_str() : nullptr);
  }
  if (!impl.local_settings.empty()) {
    // Through a transaction pooler the timeouts cannot be session settings (they would stay on a
    // server session other clients get next): SET LOCAL in the statement's own transaction.
    pqxx::work tx(conn);
    tx.exec(impl.local_settings);
    auto res = exec_query(tx, impl, query, pqxx::prepare::make_dynamic_params(values));
    tx.commit();
    return res;
  }
  pqxx::nontransaction tx(conn);
  return exec_query(tx, impl, query, pqxx::prepare::make_dynamic_params(values));
}

inline std::optional<std::string> opt_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string(f.c_str(), f.size());
}

/// A job row from docket.job_json: bounded like any outside JSON (a user's SQL wrote it), one
/// level deeper than args may nest because args sits inside the row object. docket.job_json
/// already replaces deeper columns with a note; a NULL (a job that vanished) is an Error.
inline JobRecord parse_job(const pqxx::field& f) {
  if (f.is_null()) throw Error("the job vanished before it could be read");
  std::string error;  // not the caller's input: an Error (500), never InvalidInput
  auto row = try_parse_json(std::string_view(f.c_str(), f.size()), "job row", &error, kMaxJsonDepth + 1);
  if (!row) throw Error(error);
  return row->get<JobRecord>();
}

}  // namespace docket::db

/// Runs one of the generated query constants (q::job_claim) on the guarded connection `c`.
#define DOCKET_RUN(query, ...) run(c, *impl_, query, Params{__VA_ARGS__})
