#pragma once
// A throwaway PgBouncer (Debian's /usr/sbin/pgbouncer) in front of one test database, for the
// tests that prove Docket through a pooler. Its server connections log in as the role
// docket_bouncer, so pg_stat_activity tells them apart from everyone else's.
#include <filesystem>
#include <memory>
#include <string>

#include "pg.hpp"
#include "process.hpp"

namespace docket::test {

class PgBouncer {
 public:
  /// Starts PgBouncer for `database` of the shared cluster in `pool_mode` with at most
  /// `pool_size` server connections, and waits until it answers. Throws when it cannot start.
  PgBouncer(const std::string& database, const std::string& pool_mode, int pool_size);
  ~PgBouncer();
  PgBouncer(const PgBouncer&) = delete;
  PgBouncer& operator=(const PgBouncer&) = delete;

  /// The URL clients use: the database through PgBouncer.
  const std::string& url() const { return url_; }
  /// The pooler's log (what it refused, when a test fails).
  std::string log_text() const;
  /// The role PgBouncer's server connections log in as.
  static constexpr const char* kServerRole = "docket_bouncer";

 private:
  TempDir dir_;
  std::string url_;
  std::unique_ptr<Child> child_;
};

/// Whether /usr/sbin/pgbouncer is installed (scripts/deps.sh test installs it).
bool pgbouncer_available();

}  // namespace docket::test
