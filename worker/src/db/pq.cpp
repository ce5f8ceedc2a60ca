#include "db/pq.hpp"

#include "docket/errors.hpp"

namespace docket::db {

std::string first_line(const char* what) {
  std::string s(what ? what : "");
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  for (const char* prefix : {"ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "}) {
    if (s.rfind(prefix, 0) == 0) {
      s.erase(0, std::char_traits<char>::length(prefix));
      break;
    }
  }
  return s;
}

std::string connect_failures(const char* what) {
  std::string out;
  std::string_view rest(what ? what : "");
  while (!rest.empty() && out.size() < 2000) {
    const auto nl = rest.find('\n');
    const std::string line = first_line(std::string(rest.substr(0, nl)).c_str());
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty()) continue;
    out += (out.empty() ? "" : "; ") + line;
  }
  if (out.size() > 2000) out.resize(2000);
  return out;
}

bool is_connection_state(const std::string& sqlstate) {
  return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
         sqlstate == "53300" || sqlstate == "25006";
}

void throw_translated(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  const std::string msg = first_line(e.what());
  if (is_connection_state(state)) throw Unavailable("database unavailable: " + msg);
  if (state == "40001" || state == "40P01") throw Unavailable("transient conflict: " + msg);
  if (state == "55P03") throw Timeout("timed out waiting for a lock another transaction holds: " + msg);
  if (state == "57014") throw Timeout("statement timed out: " + msg);
  if (state == "26000" || state == "42P05") {
    // A named prepared statement vanished (or exists twice) between two calls on one connection:
    // something in between hands each transaction another server session.
    throw ConfigError(msg +
                      " (the database URL goes through a pooler in transaction mode, e.g. PgBouncer "
                      "pool_mode=transaction: set pooler = \"transaction\" (DOCKET_POOLER=transaction) and, for "
                      "LISTEN, listen_url to a direct URL; README, Beyond one host)");
  }
  if (state == "54000") throw TooLarge(msg);
  if (state == "P0002") throw NotFound(msg);
  if (state == "23505" || state == "55000") throw Conflict(msg);
  if (state.rfind("22", 0) == 0 || state == "23514" || state == "23502") throw InvalidInput(msg);
  if (state == "42P01" || state == "42883" || state == "3F000" || state == "42704") {
    throw SchemaMismatch(msg + " (is the docket schema installed and current? run `docket migrate`)");
  }
  // libpqxx 6 leaves sqlstate() empty for this class: know it by type.
  if (state == "42501" || dynamic_cast<const pqxx::insufficient_privilege*>(&e)) {
    throw Error(msg + " (the login role needs docket_enqueuer, docket_worker or docket_ops: README, Roles)");
  }
  throw Error(msg.empty() ? std::string("database error ") + state : msg);
}

}  // namespace docket::db
