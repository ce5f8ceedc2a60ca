#pragma once
// Translation of pqxx errors into docket::Error (used only inside src/db/).
#include <pqxx/except>
#include <string>

namespace docket::db {

/// The first line of a server message, without the "ERROR:" prefix.
std::string first_line(const char* what);
/// SQLSTATEs that mean the connection (or server) is gone: reconnect.
bool is_connection_state(const std::string& sqlstate);
/// Throws the docket::Error subclass matching the SQLSTATE.
[[noreturn]] void throw_translated(const pqxx::sql_error& e);

}  // namespace docket::db
