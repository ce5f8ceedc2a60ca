// What operators and scripts see is true: exit codes for broken settings, global options in
// either place, stdout that carries only what scripts capture, columns and logs that mean what
// they say.
#include <httplib.h>

#include <csignal>
#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {

docket::test::RunResult docket_cli(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), DOCKET_BIN);
  env.emplace("DOCKET_LOG_LEVEL", "warn");
  return run(args, env);
}

/// Replaces the database name of a test cluster URL (postgresql:///NAME?host=...).
std::string with_database(const std::string& url, const std::string& name) {
  const auto q = url.find('?');
  return "postgresql:///" + name + url.substr(q);
}

}  // namespace

TEST(Operator, GlobalOptionsAreAcceptedAfterTheSubcommand) {
  auto db = PgCluster::shared().fresh_database();
  // No DATABASE_URL in the environment: only the trailing flag names the database.
  auto r = docket_cli({"enqueue", "report", "--database-url", db->url(), "--log-level", "warn"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'report'"), 1);
  r = docket_cli({"jobs", "--json", "--database-url", db->url()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out).size(), 1U);

  // The README's command: the config after the subcommand is read (its typo is reported).
  TempDir dir;
  docket::test::write_file(dir / "docket.toml", "[worker]\nconcurency = 4\n");
  r = docket_cli({"worker", "--config", (dir / "docket.toml").string()}, {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("did you mean \"concurrency\""), std::string::npos) << r.err;
}

TEST(Operator, BrokenDatabaseSettingsExitAtStartInsteadOfRetryingForever) {
  auto db = PgCluster::shared().fresh_database();
  struct Case {
    std::string url;
    std::string message;
  };
  const std::string host_part = db->url().substr(db->url().find('?'));
  const std::vector<Case> cases = {
      {"postgres:/oops", "cannot be parsed"},
      {"postgresql://[::1", "cannot be parsed"},
      {with_database(db->url(), "no_such_database_here"), "does not exist"},
      {"postgresql:///" + db->name() + host_part.substr(0, host_part.find("&user=")) + "&user=nobody_at_all",
       "does not exist"},
  };
  for (const auto& c : cases) {
    for (const char* sub : {"worker", "api"}) {
      std::vector<std::string> args = {sub};
      if (std::string(sub) == "worker") args.emplace_back("--demo");
      if (std::string(sub) == "api") args = {"api", "--listen", "127.0.0.1:0"};
      const auto started = std::chrono::steady_clock::now();
      const auto r = docket_cli(args, {{"DATABASE_URL", c.url}});
      EXPECT_EQ(r.status, 2) << sub << " " << c.url << "\n" << r.err;
      EXPECT_NE(r.err.find(c.message), std::string::npos) << sub << " " << c.url << "\n" << r.err;
      EXPECT_LT(seconds_since(started), 10.0) << sub << " " << c.url;
    }
    const auto r = docket_cli({"jobs"}, {{"DATABASE_URL", c.url}});
    EXPECT_EQ(r.status, 2) << c.url << "\n" << r.err;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.workers"), 0);

  // A server that is not there (yet) is transient: the worker waits for it and stops cleanly.
  TempDir dir;
  Child worker({DOCKET_BIN, "worker", "--demo"},
               {{"DATABASE_URL", "postgresql:///x?host=" + (dir / "no-server").string()}}, dir / "worker.log");
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(worker.running()) << worker.log_text();
  EXPECT_NE(worker.log_text().find("db.unavailable"), std::string::npos) << worker.log_text();
  worker.signal(SIGTERM);
  EXPECT_EQ(worker.wait(10s), 0) << worker.log_text();
}

TEST(Operator, EnqueueStdoutCarriesOnlyTheId) {
  auto db = PgCluster::shared().fresh_database();
  const std::map<std::string, std::string> env = {{"DATABASE_URL", db->url()}};
  auto first = docket_cli({"enqueue", "report", "--unique-key", "nightly"}, env);
  ASSERT_EQ(first.status, 0) << first.err;
  auto second = docket_cli({"enqueue", "report", "--unique-key", "nightly"}, env);
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(second.out, first.out);  // `id=$(docket enqueue ...)` captures the id and nothing else
  EXPECT_TRUE(std::regex_match(second.out, std::regex("[0-9]+\n"))) << second.out;
  EXPECT_NE(second.err.find("with unique key \"nightly\""), std::string::npos) << second.err;
}

TEST(Operator, JobsColumnsMeanWhatTheySayInEveryState) {
  auto db = PgCluster::shared().fresh_database();
  // A job that failed an attempt and then completed; one that failed for good, with a stale
  // future run_at; one waiting for its retry.
  db->query(
      "INSERT INTO docket.jobs (kind, state, attempt, run_at, started_at, finished_at, errors) VALUES "
      "('done', 'completed', 2, now() + interval '1 day', now() - interval '1 min', now(), "
      "   '[{\"attempt\": 1, \"at\": \"2026-01-01T00:00:00Z\", \"error\": \"first try broke\"}]'),"
      "('gave.up', 'failed', 3, now() + interval '1 day', now() - interval '1 min', now(), "
      "   '[{\"attempt\": 3, \"at\": \"2026-01-01T00:00:00Z\", \"error\": \"out of luck\"}]'),"
      "('later', 'retryable', 1, now() + interval '1 hour', NULL, NULL, "
      "   '[{\"attempt\": 1, \"at\": \"2026-01-01T00:00:00Z\", \"error\": \"try again\"}]')");
  const auto r = docket_cli({"jobs"}, {{"DATABASE_URL", db->url()}});
  ASSERT_EQ(r.status, 0) << r.err;
  std::map<std::string, std::string> line_of;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    for (const char* kind : {"done", "gave.up", "later"}) {
      if (line.find(std::string(" ") + kind + " ") != std::string::npos) line_of[kind] = line;
    }
  }
  ASSERT_EQ(line_of.size(), 3U) << r.out;
  EXPECT_NE(line_of["done"].find("finished "), std::string::npos) << r.out;
  EXPECT_EQ(line_of["done"].find("first try broke"), std::string::npos) << r.out;
  EXPECT_NE(line_of["gave.up"].find("finished "), std::string::npos) << r.out;
  EXPECT_EQ(line_of["gave.up"].find("runs "), std::string::npos) << r.out;
  EXPECT_NE(line_of["gave.up"].find("out of luck"), std::string::npos) << r.out;
  EXPECT_NE(line_of["later"].find("runs "), std::string::npos) << r.out;
  EXPECT_NE(line_of["later"].find("try again"), std::string::npos) << r.out;
}

TEST(Operator, LogLinesCarryRfc3339UtcTimesAndConventionalLevels) {
  TempDir dir;
  const std::string no_server = "postgresql:///x?host=" + (dir / "no-server").string();
  const std::regex ts("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z");
  for (const std::string format : {"json", "text"}) {
    Child worker({DOCKET_BIN, "worker", "--demo", "--log-format", format}, {{"DATABASE_URL", no_server}},
                 dir / (format + ".log"));
    ASSERT_TRUE(wait_until([&] { return worker.log_text().find("db.unavailable") != std::string::npos; }, 10s));
    worker.signal(SIGTERM);
    ASSERT_EQ(worker.wait(10s), 0);
    int warnings = 0;
    for (const auto& line : docket::test::read_lines(dir / (format + ".log"))) {
      if (line.empty()) continue;
      if (format == "json") {
        const Json j = Json::parse(line);
        EXPECT_TRUE(std::regex_match(j.at("ts").get<std::string>(), ts)) << line;
        const std::string level = j.at("level");
        EXPECT_TRUE(level == "info" || level == "warn" || level == "error" || level == "debug") << line;
        if (level == "warn") ++warnings;
      } else {
        EXPECT_TRUE(std::regex_match(line.substr(0, 24), ts)) << line;
        EXPECT_EQ(line.find("warning"), std::string::npos) << line;
        if (line.substr(25, 5) == "warn ") ++warnings;
      }
    }
    EXPECT_GT(warnings, 0) << format;
  }
}

TEST(Operator, ApiAnswersTheFirstRequestsAfterAPostgresRestart) {
  TempDir dir;
  PgCluster pg(dir / "cluster", true);  // our own cluster: restarting the shared one would hit other tests
  auto db = pg.fresh_database();
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"}, {{"DATABASE_URL", db->url()}}, dir / "api.log");
  const int port = api_port_from_log(api);
  ASSERT_GT(port, 0) << api.log_text();
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);
  // Warm every pooled connection, reads and writes, so each one is broken by the restart.
  for (int i = 0; i < 8; ++i) {
    auto r = http.Post("/jobs", R"({"kind":"before"})", "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
    ASSERT_EQ(http.Get("/jobs?limit=1")->status, 200);
  }
  for (int round = 0; round < 2; ++round) {
    pg.restart();
    ASSERT_EQ(db->scalar("SELECT 1"), "1");  // the database is back
    for (int i = 0; i < 8; ++i) {
      auto r = http.Post("/jobs", R"({"kind":"after"})", "application/json");
      ASSERT_TRUE(r) << "round " << round << " request " << i;
      EXPECT_EQ(r->status, 201) << "round " << round << " request " << i << ": " << r->body;
      auto g = http.Get("/jobs?limit=1");
      ASSERT_TRUE(g);
      EXPECT_EQ(g->status, 200) << "round " << round << " request " << i << ": " << g->body;
    }
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'after'"), 16);
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(10s), 0) << api.log_text();
}
