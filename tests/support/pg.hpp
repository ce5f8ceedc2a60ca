#pragma once
// Throwaway PostgreSQL for tests: one cluster per ctest run (the pg_cluster_start fixture, found
// through DOCKET_TEST_PG_DIR) or, when a test binary runs on its own, a private one. Each test gets
// a fresh database cloned from a migrated template, so every test starts from an empty schema.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "docket/embedded.hpp"

namespace docket::test {

class PgCluster;
class PgBouncer;

/// PgBouncer's pool size in the PgBouncer reruns of the e2e suites.
constexpr int kTestPoolSize = 10;

/// A database of its own, dropped when the object goes away.
class TestDatabase {
 public:
  TestDatabase(PgCluster& cluster, std::string name);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  /// The URL workers and clients use: the database itself, or with DOCKET_TEST_PGBOUNCER set (the
  /// PgBouncer reruns of the e2e suites) the database through a PgBouncer in transaction mode.
  const std::string& url() const { return url_; }
  /// The database itself, never through a pooler.
  const std::string& direct_url() const { return direct_url_; }
  const std::string& name() const { return name_; }
  /// A connection for the test's own queries (opened on first use).
  pqxx::connection& conn();
  /// Runs one statement and returns the first column of the first row as text ("" for no row/NULL).
  std::string scalar(const std::string& sql);
  long long count(const std::string& sql) { return std::stoll(scalar(sql)); }
  pqxx::result query(const std::string& sql);
  /// Creates a login role `<database>_<suffix>` that is a member of `granted` (e.g. docket_worker)
  /// and returns this database's URL as that role; the role is dropped with the database.
  std::string login_role(const std::string& suffix, const std::string& granted);

 private:
  PgCluster& cluster_;
  std::string name_;
  std::string direct_url_;
  std::unique_ptr<PgBouncer> bouncer_;
  std::string url_;
  std::unique_ptr<pqxx::connection> conn_;
  std::vector<std::string> roles_;
};

class PgCluster {
 public:
  /// The cluster of this test run.
  static PgCluster& shared();
  /// Starts (initdb if needed) a cluster in `dir` with a migrated template database.
  explicit PgCluster(std::filesystem::path dir, bool owned);
  ~PgCluster();

  std::string url(const std::string& database) const { return cluster_.url(database); }
  /// A fresh, migrated, empty database.
  std::unique_ptr<TestDatabase> fresh_database();
  /// A fresh database with no docket schema at all.
  std::unique_ptr<TestDatabase> empty_database();
  embedded::Cluster& cluster() { return cluster_; }
  void restart() { cluster_.restart(); }
  /// Prepares the template (idempotent); used by the fixture's start step.
  void prepare_template();

 private:
  std::unique_ptr<TestDatabase> create(bool from_template);
  std::filesystem::path dir_;
  bool owned_;
  embedded::Cluster cluster_;
};

/// Polls `condition` every `step` until it is true or `timeout` passes. Returns the last result.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(20));

/// Settings for test clusters: durability off (tests never need it), room for many connections.
embedded::ClusterOptions test_cluster_options(const std::filesystem::path& dir);

}  // namespace docket::test
