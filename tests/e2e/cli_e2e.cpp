// The docket binary as users and scripts run it: happy paths, bad input, exit codes.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {
struct Cli {
  std::string url;
  docket::test::RunResult operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), DOCKET_BIN);
    return run(args, {{"DATABASE_URL", url}, {"DOCKET_LOG_LEVEL", "warn"}});
  }
};
}  // namespace

TEST(Cli, EnqueueInspectSteer) {
  auto db = PgCluster::shared().fresh_database();
  const Cli docket{db->url()};
  auto r = docket({"enqueue", "report", "{\"month\": \"2026-10\"}", "--queue", "reports", "--priority", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string id = r.out.substr(0, r.out.find('\n'));
  r = docket({"job", id, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto job = Json::parse(r.out);
  EXPECT_EQ(job.at("kind"), "report");
  EXPECT_EQ(job.at("queue"), "reports");
  EXPECT_EQ(job.at("priority"), 3);
  EXPECT_EQ(job.at("args").at("month"), "2026-10");
  EXPECT_EQ(job.at("state"), "available");

  r = docket({"job", id});
  EXPECT_NE(r.out.find("state        available"), std::string::npos) << r.out;
  r = docket({"jobs", "--queue", "reports"});
  EXPECT_NE(r.out.find("report"), std::string::npos) << r.out;
  r = docket({"jobs", "--state", "available", "--json"});
  EXPECT_EQ(Json::parse(r.out).size(), 1u);

  r = docket({"enqueue", "report", "--unique-key", "u1", "--json"});
  r = docket({"enqueue", "report", "--unique-key", "u1", "--json"});
  EXPECT_FALSE(Json::parse(r.out).at("created").get<bool>());

  r = docket({"enqueue", "later", "--run-at", "+1h", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(
      docket({"job", std::to_string(Json::parse(r.out).at("id").get<long long>()), "--json"}).out.find("scheduled") !=
          std::string::npos,
      true);

  EXPECT_EQ(docket({"limit", "report", "5"}).status, 0);
  r = docket({"limit", "--json"});
  EXPECT_EQ(Json::parse(r.out).at(0).at("max_running"), 5);
  EXPECT_EQ(docket({"limit", "report", "none"}).status, 0);
  EXPECT_EQ(db->scalar("SELECT max_running FROM docket.kinds WHERE kind = 'report'"), "");

  EXPECT_EQ(docket({"pause", "reports"}).status, 0);
  r = docket({"stats", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  bool paused = false;
  const Json stats = Json::parse(r.out);
  for (const auto& q : stats.at("queues")) {
    if (q.at("queue") == "reports") paused = q.at("paused");
  }
  EXPECT_TRUE(paused) << r.out;
  EXPECT_EQ(docket({"resume", "reports"}).status, 0);
  EXPECT_EQ(docket({"stats"}).status, 0);

  EXPECT_EQ(docket({"cancel", id}).status, 0);
  r = docket({"cancel", id});
  EXPECT_EQ(r.status, 4);  // conflict: already finished
  EXPECT_NE(r.err.find("already finished"), std::string::npos);
  EXPECT_EQ(docket({"retry", id}).status, 0);
  EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + id), "available");
}

TEST(Cli, BadInputGetsAClearErrorANonZeroExitAndWritesNothing) {
  auto db = PgCluster::shared().fresh_database();
  const Cli docket{db->url()};
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"enqueue", "k", "{not json"}, 2, "not valid JSON"},
      {{"enqueue", "k", "[1,2]"}, 2, "args must be a JSON object"},
      {{"enqueue", ""}, 2, "kind must be a non-empty string"},
      {{"enqueue", "k", "--priority", "-5"}, 2, "priority must be between 0"},
      {{"enqueue", "k", "--run-at", "next tuesday"}, 2, "--run-at must be an RFC 3339 timestamp"},
      {{"enqueue", "k", "--run-at", "9999-01-01T00:00:00Z"}, 2, "between 1970-01-01T00:00:00Z and 2199-12-31"},
      {{"enqueue", "k", "--run-at", "+100000d"}, 2, "--run-at must be an RFC 3339 timestamp"},
      {{"enqueue", "k", "--max-retries", "-3"}, 2, "max-retries"},
      {{"enqueue", "k", "--max-retries", "-1"}, 2, "--max-retries must be >= 0, got -1"},
      {{"enqueue", "k", std::string(70, '[') + std::string(70, ']')}, 2, "nested deeper than 64 levels"},
      {{"enqueue", "k", R"({"n": 1e400})"}, 2, "at n: number overflow parsing '1e400'"},
      {{"pause", std::string("q\x01")}, 2, "queue must be a non-empty string of at most 200 printable"},
      {{"pause", std::string(100000, 'q')}, 2, "queue must be a non-empty string of at most 200 printable"},
      {{"limit", std::string("k\tx"), "3"}, 2, "kind must be a non-empty string of at most 200 printable"},
      {{"jobs", "--state", "bogus"}, 2, "unknown state \"bogus\""},
      {{"jobs", "--limit", "-1"}, 2, "--limit must be >= 0"},
      {{"job", "abc"}, 2, "positive integer"},
      {{"job", "424242"}, 3, "no job with id 424242"},
      {{"cancel", "424242"}, 3, "no job with id"},
      {{"retry", "424242"}, 3, "no job with id"},
      {{"limit", "k", "lots"}, 2, "must be a number"},
      {{"limit", "k", "--", "-3"}, 2, "max_running must be >= 0"},
      {{"pause", ""}, 2, "queue must be a non-empty string"},
      {{"frobnicate"}, 2, ""},
  };
  for (const auto& c : cases) {
    const auto r = docket(c.args);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    EXPECT_EQ(r.status, c.status) << shown << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << shown << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << shown << "\nstdout: " << r.out;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.kinds"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.queues"), 0);
}

TEST(Cli, UnmigratedDatabaseNamesDocketMigrate) {
  auto db = PgCluster::shared().empty_database();
  const Cli docket{db->url()};
  auto r = docket({"jobs"});
  EXPECT_EQ(r.status, 6);
  EXPECT_NE(r.err.find("docket migrate"), std::string::npos) << r.err;
  r = docket({"worker", "--demo"});
  EXPECT_EQ(r.status, 6);
  EXPECT_NE(r.err.find("docket migrate"), std::string::npos) << r.err;
  r = docket({"migrate"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(docket({"jobs"}).status, 0);
}

TEST(Cli, ConfigErrorsNameTheKeyAndTheFix) {
  TempDir dir;
  docket::test::write_file(dir / "bad.toml", "[worker]\nconcurency = 4\n");
  const auto r =
      run({DOCKET_BIN, "--config", (dir / "bad.toml").string(), "worker"}, {{"DATABASE_URL", "postgresql:///x"}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("did you mean \"concurrency\""), std::string::npos) << r.err;
}

TEST(Cli, HelpExplainsEverySubcommand) {
  const auto r = run({DOCKET_BIN, "--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* sub :
       {"migrate", "worker", "dev", "enqueue", "jobs", "job", "cancel", "retry", "limit", "pause", "resume", "stats"}) {
    EXPECT_NE(r.out.find(sub), std::string::npos) << sub;
    EXPECT_EQ(run({DOCKET_BIN, sub, "--help"}).status, 0) << sub;
  }
}
