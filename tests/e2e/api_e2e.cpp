// The API and metrics endpoints as processes: docket api, docket worker's metrics, docket dev.
#include <httplib.h>

#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

TEST(ApiProcess, ServesAndStopsOnSigterm) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"}, {{"DATABASE_URL", db->url()}}, dir / "api.log");
  const int port = api_port_from_log(api, "url");
  ASSERT_GT(port, 0) << api.log_text();
  httplib::Client http("127.0.0.1", port);
  auto r = http.Post("/jobs", R"({"kind":"report","args":{"n":1}})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'report'"), 1);
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(10s), 0) << api.log_text();
}

TEST(ApiProcess, RefusesAPublicAddressWithoutAToken) {
  auto r = run({DOCKET_BIN, "api", "--listen", "0.0.0.0:0"}, {{"DATABASE_URL", "postgresql:///x"}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("refusing to listen on 0.0.0.0 without an API token"), std::string::npos) << r.err;
  r = run({DOCKET_BIN, "api", "--listen", "0.0.0.0:0"},
          {{"DATABASE_URL", "postgresql:///x"}, {"DOCKET_API_TOKENS", "short"}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("at least 16 characters"), std::string::npos) << r.err;
}

TEST(ApiProcess, WorkerMetricsEndpointCountsClaimsOutcomesAndDurations) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  docket::test::write_file(dir / "docket.toml", R"(
[worker]
metrics_listen = "127.0.0.1:0"
[kinds.noop]
builtin = "noop"
[kinds.nope]
builtin = "fail"
max_retries = 0
)");
  Child worker({DOCKET_BIN, "--config", (dir / "docket.toml").string(), "worker"}, {{"DATABASE_URL", db->url()}},
               dir / "worker.log");
  const int port = api_port_from_log(worker, "url");
  ASSERT_GT(port, 0) << worker.log_text();
  Client client(db->url());
  client.enqueue_many(std::vector<EnqueueRequest>(5, EnqueueRequest{.kind = "noop"}));
  client.enqueue({.kind = "nope"});
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 5 && count_state(*db, "failed") == 1; }, 20s));
  httplib::Client http("127.0.0.1", port);
  std::string body;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = http.Get("/metrics");
        body = r ? r->body : "";
        return body.find("docket_jobs_finished_total{kind=\"nope\",state=\"failed\"} 1") != std::string::npos;
      },
      10s))
      << body;
  EXPECT_NE(body.find("docket_jobs_claimed_total{kind=\"noop\"} 5"), std::string::npos) << body;
  EXPECT_NE(body.find("docket_jobs_finished_total{kind=\"noop\",state=\"completed\"} 5"), std::string::npos) << body;
  EXPECT_NE(body.find("docket_job_duration_seconds_count{kind=\"noop\"} 5"), std::string::npos) << body;
  EXPECT_NE(body.find("docket_job_queue_latency_seconds_count{queue=\"default\"} 6"), std::string::npos) << body;
  EXPECT_NE(body.find("docket_job_wait_seconds_count{kind=\"noop\"} 5"), std::string::npos) << body;
  // Schedule gauges, read from the database at scrape time (no schedule yet: zeros, then counts).
  EXPECT_NE(body.find("docket_schedules{state=\"enabled\"} 0"), std::string::npos) << body;
  db->query(
      "SELECT docket.schedule('a', '@hourly', 'noop'); SELECT docket.schedule('b', '@hourly', 'noop', enabled => "
      "false)");
  body = http.Get("/metrics")->body;
  EXPECT_NE(body.find("docket_schedules{state=\"enabled\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("docket_schedules{state=\"paused\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("docket_schedules_late 0"), std::string::npos) << body;
  const auto check = run({"/usr/bin/promtool", "check", "metrics"}, {}, body);
  EXPECT_EQ(check.status, 0) << check.out << check.err;
  worker.signal(SIGTERM);
  EXPECT_EQ(worker.wait(20s), 0);
}
