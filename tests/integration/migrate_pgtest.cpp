// docket migrate: idempotent, safe when run concurrently; binaries refuse unknown versions.
#include <gtest/gtest.h>

#include <thread>

#include "db/session.hpp"
#include "db/sql.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

TEST(Migrate, FourConcurrentMigratorsApplyEachMigrationOnce) {
  auto db = PgCluster::shared().empty_database();
  std::vector<std::thread> threads;
  std::atomic<int> applied{0}, errors{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        applied += migrate(db->url());
      } catch (const std::exception& e) {
        ++errors;
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  // Each migration once, numbered without gaps up to the version this binary knows.
  const auto files = static_cast<long long>(db::migrations().size());
  EXPECT_EQ(files, known_schema_version());
  EXPECT_EQ(applied.load(), files);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schema_migrations"), files);
  EXPECT_EQ(db->count("SELECT max(version) FROM docket.schema_migrations"), known_schema_version());
  EXPECT_EQ(migrate(db->url()), 0);  // idempotent
}

TEST(Migrate, ClientRefusesAMissingSchemaNamingTheFix) {
  auto db = PgCluster::shared().empty_database();
  Client client(db->url());
  try {
    client.enqueue({.kind = "a"});
    FAIL() << "expected SchemaMismatch";
  } catch (const SchemaMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("docket migrate"), std::string::npos) << e.what();
  }
}

TEST(Migrate, ANewerSchemaThanTheBinaryKnowsIsRefused) {
  auto db = PgCluster::shared().fresh_database();
  db->query("INSERT INTO docket.schema_migrations (version, name) VALUES (9999, 'from_the_future')");
  db::Session s(db->url(), "t");
  try {
    s.check_schema();
    FAIL() << "expected SchemaMismatch";
  } catch (const SchemaMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(migrate(db->url()), SchemaMismatch);
}

TEST(Migrate, UnreachableDatabaseIsUnavailable) {
  Client client("postgresql:///nope?host=/nonexistent-socket-dir&connect_timeout=1");
  EXPECT_THROW(client.ping(), Unavailable);
}

TEST(Migrate, AMultiHostUrlThatReachesNoWritableServerSaysWhyForEveryHost) {
  // The shared cluster is writable, so ask for a standby: libpq tries both hosts and skips both.
  const std::string socket = PgCluster::shared().cluster().socket_dir().string();
  Client client("postgresql:///postgres?host=/nonexistent-socket-dir," + socket +
                "&user=postgres&connect_timeout=2&target_session_attrs=standby");
  try {
    client.ping();
    FAIL() << "connected";
  } catch (const Unavailable& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/nonexistent-socket-dir"), std::string::npos) << what;
    EXPECT_NE(what.find(socket), std::string::npos) << what;
    EXPECT_NE(what.find("server is not in hot standby mode"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}
