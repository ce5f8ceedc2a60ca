#pragma once
// The SQL files of schema/, embedded at build time: the migrations (cmake/embed_sql.cmake) and the
// Query type of the generated query constants (cmake/embed_queries.cmake: db/queries.hpp).
#include <string>
#include <string_view>
#include <vector>

namespace docket::db {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

/// schema/migrations/*.sql in version order.
const std::vector<Migration>& migrations();

/// One embedded statement, named by its file: use the generated constants (docket::db::q::job_claim
/// for schema/queries/job_claim.sql), never a name typed as a string, so a misspelt or deleted
/// query fails to compile.
struct Query {
  std::string_view name;  ///< the file name without .sql; also its prepared statement's name
  std::string_view text;  ///< the statement
};

}  // namespace docket::db
