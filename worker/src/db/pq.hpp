#pragma once
// Translation of pqxx errors into docket::Error (used only inside src/db/).
#include <pqxx/except>
#include <string>

namespace docket::db {

/// The first line of a server message, without the "ERROR:" prefix.
std::string first_line(const char* what);
/// libpq's connection failure, one line: with a multi-host URL it reports each host it tried on
/// a line of its own ("connection to server ... failed: ..."); every one is kept, joined by "; ",
/// so an operator sees why the replica was skipped too. Bounded to 2,000 bytes.
std::string connect_failures(const char* what);
/// SQLSTATEs that mean the connection (or server) is gone: reconnect.
bool is_connection_state(const std::string& sqlstate);
/// Throws the docket::Error subclass matching the SQLSTATE.
[[noreturn]] void throw_translated(const pqxx::sql_error& e);

}  // namespace docket::db
