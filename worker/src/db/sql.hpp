#pragma once
// The SQL files of schema/, embedded at build time (cmake/embed_sql.cmake).
#include <map>
#include <string>
#include <vector>

namespace docket::db {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

/// schema/migrations/*.sql in version order.
const std::vector<Migration>& migrations();
/// schema/queries/*.sql by file name without .sql.
const std::map<std::string, std::string, std::less<>>& queries();

}  // namespace docket::db
