// `docket dev` with no configuration: embedded PostgreSQL, demo kinds, CLI in a second terminal.
#include <httplib.h>

#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

TEST(Dev, ZeroConfigRunsJobsOnItsOwnPostgres) {
  TempDir dir;
  std::map<std::string, std::string> env = {{"DATABASE_URL", ""}};
  Child dev({"/bin/sh", "-c", std::string("cd ") + dir.path().string() + " && exec " + DOCKET_BIN + " dev"}, env,
            dir / "dev.log");
  auto cli = [&](std::vector<std::string> args) {
    std::string cmd = std::string("cd ") + dir.path().string() + " && " + DOCKET_BIN;
    for (const auto& a : args) cmd += " '" + a + "'";
    return run({"/bin/sh", "-c", cmd}, env);
  };
  // The first run seeds three demo jobs; the demo echo completes.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto r = cli({"jobs", "--kind", "demo.echo", "--json"});
        return r.status == 0 && r.out.find("completed") != std::string::npos;
      },
      60s))
      << dev.log_text();
  const auto r = cli({"enqueue", "demo.echo", "{\"hi\":1}"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string id = r.out.substr(0, r.out.find('\n'));
  ASSERT_TRUE(wait_until(
      [&] {
        return cli({"job", id, "--json"}).out.find("\"completed\"") != std::string::npos;
      },
      20s));
  EXPECT_NE(cli({"job", id, "--json"}).out.find("\"hi\":1"), std::string::npos);
  EXPECT_NE(dev.log_text().find("docket enqueue demo.echo"), std::string::npos);  // the banner tells how
  // The banner's curl example works: the API runs inside docket dev.
  std::smatch m;
  const std::string log = dev.log_text();
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(curl -s http://127\.0\.0\.1:(\d+)/jobs -d)"))) << log;
  httplib::Client http("127.0.0.1", std::stoi(m[1]));
  auto posted = http.Post("/jobs", R"({"kind":"demo.echo","args":{"hi":2}})", "application/json");
  ASSERT_TRUE(posted);
  ASSERT_EQ(posted->status, 201) << posted->body;
  const auto http_id = Json::parse(posted->body).at("id").get<long long>();
  ASSERT_TRUE(wait_until(
      [&] {
        auto got = http.Get("/jobs/" + std::to_string(http_id));
        return got && Json::parse(got->body).at("state") == "completed";
      },
      20s));
  // The dashboard is served too, without tokens (loopback): no sign-in, full scope.
  EXPECT_NE(log.find("dashboard  http://127.0.0.1:" + m[1].str() + "/"), std::string::npos) << log;
  const auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("/dashboard/app.js"), std::string::npos);
  EXPECT_EQ(Json::parse(http.Get("/session")->body),
            (Json{{"auth_required", false}, {"signed_in", true}, {"scope", "write"}}));
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("docket_jobs_finished_total{kind=\"demo.echo\",state=\"completed\"}"),
            std::string::npos);
  dev.signal(SIGTERM);
  EXPECT_EQ(dev.wait(60s), 0) << dev.log_text();
  // It stopped the PostgreSQL it started.
  EXPECT_NE(cli({"jobs"}).status, 0);
}
