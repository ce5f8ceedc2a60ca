// `docket wait ID` against a real worker: its exit code says how the job ended (0 completed,
// 1 failed or cancelled, 124 still unfinished at --timeout, 2 bad input or no such job) and it
// prints the job as JSON.
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

TEST(CliWait, ExitCodesFollowTheFinalStateAndTheJobIsPrinted) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(*db, dir, R"([worker]
name = "w"
concurrency = 4
[kinds.ok]
command = ["/bin/sh", "-c", "sleep 0.5; echo '{\"rows\": 3}'"]
[kinds.bad]
command = ["/bin/sh", "-c", "echo broken >&2; exit 1"]
max_retries = 0
[kinds.slow]
command = ["/bin/sh", "-c", "sleep 30"]
)");
  ASSERT_TRUE(wait_registered(*db, "w")) << w->log_text();
  Client client(db->url());
  const Cli docket{db->url()};
  const auto ok = std::to_string(client.enqueue({.kind = "ok"}).id);
  const auto bad = std::to_string(client.enqueue({.kind = "bad"}).id);
  const auto slow = std::to_string(client.enqueue({.kind = "slow"}).id);

  auto r = docket({"wait", ok, "--timeout", "20s"});
  EXPECT_EQ(r.status, 0) << r.err;
  auto job = Json::parse(r.out);
  EXPECT_EQ(job.at("state"), "completed");
  EXPECT_EQ(job.at("result"), (Json{{"rows", 3}}));

  r = docket({"wait", bad, "--timeout", "20s"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(Json::parse(r.out).at("state"), "failed");

  const auto started = std::chrono::steady_clock::now();
  r = docket({"wait", slow, "--timeout", "700ms"});
  const double took = seconds_since(started);
  EXPECT_EQ(r.status, 124) << r.err;
  job = Json::parse(r.out);
  EXPECT_TRUE(job.at("state") == "running" || job.at("state") == "available") << r.out;
  EXPECT_GE(took, 0.7);
  EXPECT_LT(took, 5.0);

  // Cancelling a waited job answers the wait: exit 1, state cancelled.
  auto waiting = std::make_unique<Child>(
      std::vector<std::string>{DOCKET_BIN, "wait", slow, "--timeout", "30s"},
      std::map<std::string, std::string>{{"DATABASE_URL", db->url()}, {"DOCKET_LOG_LEVEL", "warn"}}, dir / "wait.out");
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count(
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = "
                   "'docket-waiter'") > 0;
      },
      10s));
  EXPECT_EQ(docket({"cancel", slow}).status, 0);
  EXPECT_EQ(waiting->wait(20s), std::optional<int>(1)) << waiting->log_text();
  EXPECT_NE(waiting->log_text().find("\"state\":\"cancelled\""), std::string::npos) << waiting->log_text();

  // Bad input and unknown jobs: exit 2, a message naming what is wrong, nothing written.
  const auto jobs_before = db->count("SELECT count(*) FROM docket.jobs");
  r = docket({"wait", "999999", "--timeout", "1s"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("no job with id 999999"), std::string::npos) << r.err;
  r = docket({"wait", "abc"});
  EXPECT_EQ(r.status, 2) << r.err;
  r = docket({"wait", ok, "--timeout", "soon"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--timeout"), std::string::npos) << r.err;
  r = docket({"wait", ok, "--timeout", "25h"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--timeout must be at most 24h"), std::string::npos) << r.err;
  r = docket({"wait", ok, "--timeout", "-1s"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), jobs_before);
  // The worker is still alive and running jobs.
  const auto again = std::to_string(client.enqueue({.kind = "ok"}).id);
  EXPECT_EQ(docket({"wait", again, "--timeout", "20s"}).status, 0);
}
