// Every embedded query (the engine's schema/queries and docket bench's bench/queries) prepares on a
// freshly migrated database, with as many parameters as its text numbers: a query that no longer
// matches the schema (a renamed column, a dropped function, a changed signature) fails here, not
// in production on the first call that reaches it.
#include <gtest/gtest.h>

#include <regex>

#include "bench/queries.hpp"
#include "db/queries.hpp"
#include "pg.hpp"

using docket::test::PgCluster;

namespace {

/// The highest $N in a statement's text (0: none).
int highest_parameter(std::string_view text) {
  static const std::regex param(R"(\$([0-9]+))");
  int highest = 0;
  const std::string s(text);
  for (auto it = std::sregex_iterator(s.begin(), s.end(), param); it != std::sregex_iterator(); ++it) {
    highest = std::max(highest, std::stoi((*it)[1].str()));
  }
  return highest;
}

/// Utility statements (VACUUM, CHECKPOINT, bench soak's SET + BEGIN and COMMIT) cannot be
/// prepared: Session::utility runs them as text.
bool is_utility(std::string_view text) {
  static const std::regex utility(R"(^\s*(VACUUM|CHECKPOINT|SET|BEGIN|COMMIT)\b)", std::regex::icase);
  std::string body;
  for (std::size_t at = 0; at < text.size();) {  // the statement without its leading -- comments
    const auto end = std::min(text.find('\n', at), text.size());
    const auto line = text.substr(at, end - at);
    if (line.rfind("--", 0) != 0) body += std::string(line) + "\n";
    at = end + 1;
  }
  return std::regex_search(body, utility);
}

/// Prepares each query on `db` and checks its parameter count; the names of those it prepared.
std::vector<std::string> prepare_all(docket::test::TestDatabase& db, const auto& queries) {
  std::vector<std::string> prepared;
  pqxx::connection conn(db.url());
  for (const docket::db::Query* q : queries) {
    SCOPED_TRACE(std::string(q->name));
    if (is_utility(q->text)) continue;
    const std::string name(q->name);
    pqxx::nontransaction tx(conn);
    try {
      tx.exec("PREPARE " + name + " AS " + std::string(q->text));  // parameter types inferred, as libpq's prepare
    } catch (const pqxx::sql_error& e) {
      ADD_FAILURE() << q->name << " does not prepare on the migrated schema: " << e.what();
      continue;
    }
    const auto count =
        tx.exec("SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = " + tx.quote(name));
    if (count.empty()) {
      ADD_FAILURE() << q->name << " was not prepared";
      continue;
    }
    EXPECT_EQ(count[0][0].as<int>(), highest_parameter(q->text)) << q->name << ": a $N is missing or unused";
    prepared.push_back(name);
  }
  return prepared;
}

}  // namespace

TEST(Queries, EveryEngineQueryPreparesOnTheMigratedSchema) {
  auto db = PgCluster::shared().fresh_database();
  const auto prepared = prepare_all(*db, docket::db::queries());
  EXPECT_EQ(prepared.size(), docket::db::queries().size());
  EXPECT_GT(prepared.size(), 60u);  // the whole set, not an empty list
}

TEST(Queries, EveryBenchQueryPreparesOnTheMigratedSchema) {
  auto db = PgCluster::shared().fresh_database();
  const auto prepared = prepare_all(*db, docket::bench::queries());
  // All but the four utility statements: VACUUM, CHECKPOINT, the soak hold's BEGIN and its COMMIT.
  EXPECT_EQ(prepared.size() + 4, docket::bench::queries().size());
}

TEST(Queries, APreparedQueryThatNoLongerMatchesTheSchemaFails) {
  // The check can fail: the same prepare of job_get after its function is gone is refused.
  auto db = PgCluster::shared().fresh_database();
  db->query("DROP FUNCTION docket.job_json(docket.jobs) CASCADE");
  pqxx::connection conn(db->url());
  pqxx::nontransaction tx(conn);
  EXPECT_THROW(tx.exec("PREPARE job_get AS " + std::string(docket::db::q::job_get.text)), pqxx::sql_error);
}
