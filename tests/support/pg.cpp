#include "pg.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>

#include "docket/client.hpp"
#include "pgbouncer.hpp"

namespace docket::test {

namespace fs = std::filesystem;

embedded::ClusterOptions test_cluster_options(const fs::path& dir) {
  embedded::ClusterOptions o;
  o.dir = dir;
  o.settings = {{"fsync", "off"},
                {"synchronous_commit", "off"},
                {"full_page_writes", "off"},
                {"max_connections", "400"},
                {"shared_buffers", "'256MB'"},
                {"log_min_messages", "warning"},
                {"autovacuum_naptime", "'5s'"}};
  return o;
}

TestDatabase::TestDatabase(PgCluster& cluster, std::string name)
    : cluster_(cluster), name_(std::move(name)), direct_url_(cluster.url(name_)), url_(direct_url_) {
  if (const char* pooled = std::getenv("DOCKET_TEST_PGBOUNCER"); pooled && *pooled) {
    // The rerun of the engine suites through PgBouncer: children get DOCKET_POOLER from ctest,
    // this process's Clients the same setting here.
    bouncer_ = std::make_unique<PgBouncer>(name_, "transaction", kTestPoolSize);
    url_ = bouncer_->url();
    docket::set_pooler(Pooler::transaction);
    std::cout << "test database " << name_ << " through PgBouncer (transaction pool of " << kTestPoolSize
              << "): " << url_ << "\n";
  }
}

TestDatabase::~TestDatabase() {
  conn_.reset();
  bouncer_.reset();
  try {
    pqxx::connection admin(cluster_.url("postgres"));
    pqxx::nontransaction tx(admin);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
    for (const auto& role : roles_) tx.exec("DROP ROLE IF EXISTS " + tx.quote_name(role));
  } catch (...) {
  }
}

std::string TestDatabase::login_role(const std::string& suffix, const std::string& granted) {
  const std::string role = name_ + "_" + suffix;
  {
    pqxx::connection admin(cluster_.url("postgres"));
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE ROLE " + tx.quote_name(role) + " LOGIN");
    roles_.push_back(role);
    tx.exec("GRANT " + tx.quote_name(granted) + " TO " + tx.quote_name(role));
  }
  std::string url = direct_url_;
  const auto at = url.find("user=postgres");
  url.replace(at, std::string("user=postgres").size(), "user=" + role);
  return url;
}

pqxx::connection& TestDatabase::conn() {
  if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(direct_url_);
  return *conn_;
}

pqxx::result TestDatabase::query(const std::string& sql) {
  for (int attempt = 0;; ++attempt) {
    try {
      pqxx::nontransaction tx(conn());
      return tx.exec(sql);
    } catch (const pqxx::broken_connection&) {
      conn_.reset();  // the server restarted under us (a restart test): reconnect once
      if (attempt >= 20) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
}

std::string TestDatabase::scalar(const std::string& sql) {
  auto r = query(sql);
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].c_str();
}

PgCluster& PgCluster::shared() {
  static std::unique_ptr<PgCluster> instance = [] {
    if (const char* dir = std::getenv("DOCKET_TEST_PG_DIR"); dir && *dir && fs::exists(fs::path(dir) / "pgdata")) {
      return std::make_unique<PgCluster>(dir, false);
    }
    const fs::path dir = fs::temp_directory_path() / ("docket-test-" + std::to_string(::getpid()));
    return std::make_unique<PgCluster>(dir, true);
  }();
  return *instance;
}

PgCluster::PgCluster(fs::path dir, bool owned)
    : dir_(std::move(dir)), owned_(owned), cluster_(test_cluster_options(dir_)) {
  if (owned_) {
    cluster_.start();
    prepare_template();
  }
}

PgCluster::~PgCluster() {
  if (owned_) {
    try {
      cluster_.stop();
    } catch (...) {
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

void PgCluster::prepare_template() {
  pqxx::connection admin(url("postgres"));
  {
    pqxx::nontransaction tx(admin);
    if (tx.exec("SELECT 1 FROM pg_database WHERE datname = 'docket_template'").empty()) {
      tx.exec("CREATE DATABASE docket_template");
    }
  }
  docket::migrate(url("docket_template"));
  pqxx::nontransaction tx(admin);
  if (tx.exec("SELECT 1 FROM pg_database WHERE datname = 'empty_template'").empty()) {
    tx.exec("CREATE DATABASE empty_template");
  }
}

std::unique_ptr<TestDatabase> PgCluster::create(bool from_template) {
  static std::atomic<int> counter{0};
  const std::string name = "t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  pqxx::connection admin(url("postgres"));
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + name + " TEMPLATE " + (from_template ? "docket_template" : "empty_template"));
  return std::make_unique<TestDatabase>(*this, name);
}

std::unique_ptr<TestDatabase> PgCluster::fresh_database() {
  return create(true);
}
std::unique_ptr<TestDatabase> PgCluster::empty_database() {
  return create(false);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(step);
  }
}

}  // namespace docket::test
