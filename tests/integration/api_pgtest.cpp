// The HTTP API over real HTTP against a real database: every route, idempotency under
// concurrency, every error status, a bad-input corpus, promtool and an OpenAPI validator.
#include <gtest/gtest.h>
#include <httplib.h>

#include <barrier>
#include <filesystem>
#include <thread>

#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "pg.hpp"
#include "process.hpp"
#include "server.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

constexpr const char* kToken = "test-token-0123456789abcdef";

/// An API server on a free port over a fresh database, served on a thread.
class ApiFixture {
 public:
  explicit ApiFixture(ApiConfig config = {}, std::string url = "") {
    db_ = PgCluster::shared().fresh_database();
    server_ = std::make_unique<api::Server>(url.empty() ? db_->url() : url, config, std::make_shared<Metrics>());
    server_->bind("127.0.0.1:0");
    thread_ = std::thread([this] { server_->run(); });
    for (int i = 0; i < 200 && !httplib::Client("127.0.0.1", server_->port()).Get("/openapi.json"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~ApiFixture() {
    server_->stop();
    thread_.join();
  }
  httplib::Client http() const {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  test::TestDatabase& db() { return *db_; }
  long long jobs() { return db_->count("SELECT count(*) FROM docket.jobs"); }

 private:
  std::unique_ptr<test::TestDatabase> db_;
  std::unique_ptr<api::Server> server_;
  std::thread thread_;
};

Json body_of(const httplib::Result& r) {
  return Json::parse(r->body);
}

std::string error_code(const httplib::Result& r) {
  return body_of(r).at("error").at("code");
}
std::string error_message(const httplib::Result& r) {
  return body_of(r).at("error").at("message");
}

}  // namespace

TEST(Api, EveryRouteHappyPath) {
  ApiFixture api;
  auto http = api.http();
  // POST /jobs
  auto r = http.Post("/jobs", R"({"kind":"report","args":{"month":"2026-10"},"queue":"reports","priority":3,
                                  "max_retries":2,"run_at":"2030-01-01T00:00:00Z"})",
                     "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  const auto job = body_of(r);
  const auto id = job.at("id").get<long long>();
  EXPECT_EQ(r->get_header_value("Location"), "/jobs/" + std::to_string(id));
  EXPECT_EQ(job.at("state"), "scheduled");
  EXPECT_EQ(job.at("queue"), "reports");
  EXPECT_EQ(job.at("priority"), 3);
  EXPECT_EQ(job.at("max_retries"), 2);
  EXPECT_EQ(job.at("args").at("month"), "2026-10");
  for (const char* field : {"attempt", "run_at", "started_at", "finished_at", "errors", "result", "progress",
                            "unique_key", "worker", "inserted_at"}) {
    EXPECT_TRUE(job.contains(field)) << field;
  }
  // GET /jobs/{id}
  r = http.Get("/jobs/" + std::to_string(id));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r).at("id"), id);
  // GET /jobs with filters and keyset pagination
  for (int i = 0; i < 5; ++i) http.Post("/jobs", R"({"kind":"page"})", "application/json");
  r = http.Get("/jobs?kind=page&limit=3");
  ASSERT_EQ(r->status, 200);
  auto page = body_of(r);
  ASSERT_EQ(page.at("jobs").size(), 3u);
  ASSERT_FALSE(page.at("next_after").is_null());
  r = http.Get("/jobs?kind=page&limit=3&after=" + std::to_string(page.at("next_after").get<long long>()));
  page = body_of(r);
  EXPECT_EQ(page.at("jobs").size(), 2u);
  EXPECT_TRUE(page.at("next_after").is_null());
  EXPECT_EQ(body_of(http.Get("/jobs?state=scheduled&queue=reports")).at("jobs").size(), 1u);
  // cancel, then 409 on the finished job, then retry
  r = http.Post("/jobs/" + std::to_string(id) + "/cancel", "", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("state"), "cancelled");
  r = http.Post("/jobs/" + std::to_string(id) + "/retry", "", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("state"), "available");
  // queues
  r = http.Post("/queues/reports/pause", "", "application/json");
  ASSERT_EQ(r->status, 200);
  EXPECT_TRUE(body_of(r).at("paused").get<bool>());
  r = http.Get("/queues");
  ASSERT_EQ(r->status, 200);
  bool found = false;
  const Json queues = body_of(r);
  for (const auto& q : queues.at("queues")) {
    if (q.at("queue") != "reports") continue;
    found = true;
    EXPECT_TRUE(q.at("paused").get<bool>());
    EXPECT_EQ(q.at("states").at("available"), 1);
    EXPECT_EQ(q.at("states").at("failed"), 0);
    EXPECT_TRUE(q.contains("oldest_available_age_s"));
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(http.Post("/queues/reports/resume", "", "application/json")->status, 200);
  // limits
  r = http.Put("/limits/report", R"({"max_running": 4})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("max_running"), 4);
  r = http.Get("/limits");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r).at("limits").at(0).at("kind"), "report");
  EXPECT_EQ(body_of(http.Put("/limits/report", R"({"max_running": null})", "application/json")).at("max_running"),
            nullptr);
  r = http.Put("/limits/report", R"({"rate": "100/1m", "burst": 5})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("rate_limit"), 100);
  EXPECT_EQ(body_of(r).at("rate_period_s"), 60.0);
  EXPECT_EQ(body_of(r).at("rate_burst"), 5.0);
  EXPECT_EQ(body_of(r).at("max_running"), nullptr);  // an absent field is left as it is
  EXPECT_EQ(body_of(http.Put("/limits/report", R"({"rate": null})", "application/json")).at("rate_limit"), nullptr);
  // crawls
  api.db().query(
      "INSERT INTO docket.crawls (job_id, kind, collection, status, pages, items) "
      "VALUES (" +
      std::to_string(id) + ", 'projects', 'projects', 'crawling', 3, 42)");
  r = http.Get("/crawls?collection=projects");
  ASSERT_EQ(r->status, 200) << r->body;
  const auto crawls = body_of(r);
  ASSERT_EQ(crawls.at("crawls").size(), 1u);
  EXPECT_EQ(crawls.at("crawls").at(0).at("status"), "crawling");
  EXPECT_EQ(crawls.at("crawls").at(0).at("items"), 42);
  const auto crawl_id = crawls.at("crawls").at(0).at("id").get<long long>();
  r = http.Get("/crawls/" + std::to_string(crawl_id));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r).at("pages"), 3);
  EXPECT_EQ(http.Get("/crawls/999999")->status, 404);
  EXPECT_EQ(http.Get("/crawls?status=exploded")->status, 422);
  // health, metrics, openapi
  r = http.Get("/health");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r).at("status"), "ok");
  r = http.Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("docket_jobs{queue=\"reports\",state=\"available\"} 1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("docket_api_requests_total"), std::string::npos);
  r = http.Get("/openapi.json");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r).at("openapi"), "3.1.0");
}

TEST(Api, SixteenConcurrentIdenticalPostsMakeOneJob) {
  ApiFixture api;
  for (const bool use_header : {false, true}) {
    const std::string key = use_header ? "idem-header-1" : "idem-body-1";
    const std::string body = use_header ? R"({"kind":"import"})" : R"({"kind":"import","unique_key":"idem-body-1"})";
    std::vector<int> status(16);
    std::vector<long long> ids(16);
    std::barrier sync(16);
    std::vector<std::thread> threads;
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&, i] {
        auto http = api.http();
        httplib::Headers h;
        if (use_header) h.emplace("Idempotency-Key", key);
        sync.arrive_and_wait();
        auto r = http.Post("/jobs", h, body, "application/json");
        status[i] = r->status;
        ids[i] = body_of(r).at("id");
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(std::count(status.begin(), status.end(), 201), 1) << (use_header ? "header" : "body");
    EXPECT_EQ(std::count(status.begin(), status.end(), 200), 15);
    for (auto id : ids) EXPECT_EQ(id, ids[0]);
    EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.jobs WHERE unique_key = '" + key + "'"), 1);
  }
}

TEST(Api, EachErrorStatus) {
  ApiConfig config;
  config.tokens = {kToken, std::string("expired-token-0123456789;expires=2020-01-01T00:00:00Z")};
  config.max_body = 64 * 1024;
  ApiFixture api(config);
  auto http = api.http();
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  // 401: missing, wrong, expired, malformed header
  auto r = http.Get("/jobs");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(error_code(r), "unauthorized");
  EXPECT_EQ(http.Get("/jobs", {{"Authorization", "Bearer wrong-token-0123456789abcd"}})->status, 401);
  r = http.Get("/jobs", {{"Authorization", "Bearer expired-token-0123456789"}});
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(error_message(r).find("expired"), std::string::npos);
  EXPECT_EQ(http.Get("/jobs", {{"Authorization", kToken}})->status, 401);
  // /health is open; /metrics too unless api.metrics_auth
  EXPECT_EQ(http.Get("/health")->status, 200);
  EXPECT_EQ(http.Get("/metrics")->status, 200);
  // 400 malformed JSON, wrong types (the message names the field)
  r = http.Post("/jobs", auth, "{\"kind\": ", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_code(r), "bad_request");
  r = http.Post("/jobs", auth, R"({"kind": 5})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(error_message(r).find("kind must be a string"), std::string::npos);
  r = http.Post("/jobs", auth, R"({"kind": "k", "priority": "high"})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(error_message(r).find("priority must be an integer"), std::string::npos);
  // 404
  EXPECT_EQ(http.Get("/jobs/999999", auth)->status, 404);
  r = http.Get("/nowhere", auth);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(error_code(r), "route_not_found");
  // 409: cancel a finished job
  const auto id = body_of(http.Post("/jobs", auth, R"({"kind":"k"})", "application/json")).at("id").get<long long>();
  EXPECT_EQ(http.Post("/jobs/" + std::to_string(id) + "/cancel", auth, "", "application/json")->status, 200);
  r = http.Post("/jobs/" + std::to_string(id) + "/cancel", auth, "", "application/json");
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(error_code(r), "conflict");
  // 413 over the body cap
  r = http.Post("/jobs", auth, std::string(100 * 1024, ' ') + "{}", "application/json");
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(error_code(r), "payload_too_large");
  // 422 semantic
  r = http.Post("/jobs", auth, R"({"kind": "k", "priority": 5000})", "application/json");
  EXPECT_EQ(r->status, 422);
  EXPECT_NE(error_message(r).find("priority must be between 0"), std::string::npos);
  EXPECT_EQ(http.Get("/jobs?state=done", auth)->status, 422);
  EXPECT_EQ(http.Get("/jobs?limit=-5", auth)->status, 422);
  EXPECT_EQ(http.Put("/limits/k", auth, R"({"max_running": -1})", "application/json")->status, 422);
  EXPECT_EQ(api.jobs(), 1);
}

TEST(Api, DatabaseDownIs503AndTheServerStaysUp) {
  ApiFixture api({}, "postgresql:///nope?host=/nonexistent-socket-dir&connect_timeout=1");
  auto http = api.http();
  // /health is liveness: the process answers without the database; /ready says it is not ready.
  auto r = http.Get("/health");
  EXPECT_EQ(r->status, 200);
  r = http.Get("/ready");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(body_of(r).at("status"), "unavailable");
  EXPECT_EQ(http.Post("/jobs", R"({"kind":"k"})", "application/json")->status, 503);
  r = http.Get("/metrics");
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("docket_database_up 0"), std::string::npos);
}

TEST(Api, RefusesANonLoopbackAddressWithoutAToken) {
  auto db = PgCluster::shared().fresh_database();
  api::Server open(db->url(), ApiConfig{}, nullptr);
  EXPECT_THROW(open.bind("0.0.0.0:0"), ConfigError);
  ApiConfig with_token;
  with_token.tokens = {kToken};
  api::Server guarded(db->url(), with_token, nullptr);
  EXPECT_NO_THROW(guarded.bind("0.0.0.0:0"));
  EXPECT_THROW(api::parse_tokens({"short"}), ConfigError);
  EXPECT_THROW(api::parse_tokens({std::string(kToken) + ";expires=never"}), ConfigError);
  EXPECT_TRUE(api::is_loopback("127.0.0.1"));
  EXPECT_TRUE(api::is_loopback("127.10.0.1"));
  EXPECT_TRUE(api::is_loopback("::1"));
  EXPECT_FALSE(api::is_loopback("10.0.0.1"));
  EXPECT_FALSE(api::is_loopback("0.0.0.0"));
}

TEST(Api, BadInputCorpusGetsTheRight4xxAndChangesNothing) {
  ApiConfig config;
  config.tokens = {kToken};
  ApiFixture api(config);
  auto client = std::make_unique<httplib::Client>(api.http());
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  // A job that exists, so reads of it and its neighbours have something to hit.
  ASSERT_EQ(client->Post("/jobs", auth, R"({"kind":"seed"})", "application/json")->status, 201);
  const long long before = api.jobs();
  const std::string before_dump = api.db().scalar("SELECT string_agg(to_jsonb(j)::text, ',') FROM docket.jobs j");

  struct Case {
    std::string method, path, body;
    int status;
    bool with_auth = true;
  };
  const std::string ten_mib(10 << 20, 'x');
  std::vector<Case> cases = {
      {"POST", "/jobs", "", 400},
      {"POST", "/jobs", "{", 400},
      {"POST", "/jobs", "{\"kind\": \"k\"", 400},
      {"POST", "/jobs", "[1,2,3]", 400},
      {"POST", "/jobs", "\"just a string\"", 400},
      {"POST", "/jobs", "null", 400},
      {"POST", "/jobs", "{}", 400},
      {"POST", "/jobs", R"({"kind": null})", 400},
      {"POST", "/jobs", R"({"kind": ["a"]})", 400},
      {"POST", "/jobs", R"({"kind": "k", "args": [1]})", 400},
      {"POST", "/jobs", R"({"kind": "k", "args": "x"})", 400},
      {"POST", "/jobs", R"({"kind": "k", "priority": 1.5})", 400},
      {"POST", "/jobs", R"({"kind": "k", "priority": 99999999999})", 422},
      {"POST", "/jobs", R"({"kind": "k", "max_retries": -1})", 422},
      {"POST", "/jobs", R"({"kind": "k", "run_at": "tomorrow"})", 400},
      {"POST", "/jobs", R"({"kind": "k", "run_at": 12345})", 400},
      {"POST", "/jobs", R"({"kind": "k", "queue": ""})", 422},
      {"POST", "/jobs", R"({"kind": ""})", 422},
      {"POST", "/jobs", R"({"kind": "   "})", 422},
      {"POST", "/jobs", R"({"kind": "k", "unique_key": ""})", 422},
      {"POST", "/jobs", R"({"kind": "k", "extra": 1})", 400},
      {"POST", "/jobs", "{\"kind\": \"a\\u0000b\"}", 422},
      {"POST", "/jobs", "{\"kind\": \"k\", \"args\": {\"s\": \"\\u0000\"}}", 422},
      {"POST", "/jobs", std::string("{\"kind\": \"k\xff\xfe\"}"), 400},
      {"POST", "/jobs", "{\"kind\": \"k\", \"args\": {\"blob\": \"" + ten_mib + "\"}}", 413},
      {"POST", "/jobs", R"({"kind": "k'); DROP TABLE docket.jobs; --", "queue": ""})", 422},
      {"GET", "/jobs/1%20OR%201=1", "", 404},
      {"GET", "/jobs/1;DROP%20TABLE%20docket.jobs", "", 404},
      {"GET", "/jobs/../queues", "", 404},
      {"GET", "/jobs/%2e%2e%2fqueues", "", 404},
      {"GET", "/jobs/-1", "", 404},
      {"GET", "/jobs/99999999999999999999999", "", 404},
      {"GET", "/jobs/abc", "", 404},
      {"GET", "/jobs?state='%20OR%20'1'='1", "", 422},
      {"GET", "/jobs?limit=1;DELETE", "", 400},
      {"GET", "/jobs?limit=abc", "", 400},
      {"GET", "/jobs?after=0", "", 422},
      {"GET", "/jobs?frobnicate=1", "", 400},
      {"POST", "/jobs/1/cancel/../../retry", "", 404},
      {"POST", "/jobs/424242/cancel", "", 404},
      {"POST", "/jobs/424242/retry", "", 404},
      {"PUT", "/limits/k", "{\"max_running\": \"five\"}", 400},
      {"PUT", "/limits/k", "{\"max_running\": -3}", 422},
      {"PUT", "/limits/k", "{}", 400},
      {"PUT", "/limits/k", "{\"limit\": 3}", 400},
      {"PUT", "/limits/k", "not json", 400},
      {"PUT", "/limits/k", "{\"rate\": \"fast\"}", 422},
      {"PUT", "/limits/k", "{\"rate\": 5}", 400},
      {"PUT", "/limits/k", "{\"rate\": \"10/1s\", \"burst\": 0}", 422},
      {"PUT", "/limits/k", "{\"burst\": 3}", 400},
      {"PUT", "/limits/k", "{\"rate\": null, \"burst\": 3}", 422},
      {"PUT", "/limits/k", "{\"max_running\": 2, \"rate\": \"10/1w\"}", 422},
      {"GET", "/jobs", "", 401, false},
      {"POST", "/jobs", R"({"kind":"k"})", 401, false},
      {"DELETE", "/jobs/1", "", 404},
  };
  for (const auto& c : cases) {
    httplib::Headers h;
    if (c.with_auth) h = auth;
    httplib::Result r{nullptr, httplib::Error::Unknown};
    if (c.method == "GET") r = client->Get(c.path, h);
    if (c.method == "POST") r = client->Post(c.path, h, c.body, "application/json");
    if (c.method == "PUT") r = client->Put(c.path, h, c.body, "application/json");
    if (c.method == "DELETE") r = client->Delete(c.path, h);
    const std::string shown = c.method + " " + c.path + " " + c.body.substr(0, 80);
    ASSERT_TRUE(r) << shown << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, c.status) << shown << "\n" << r->body;
    const Json body = Json::parse(r->body, nullptr, false);
    EXPECT_TRUE(!body.is_discarded() && body.contains("error") && body.at("error").contains("code") &&
                body.at("error").contains("message"))
        << shown << "\n"
        << r->body;
    if (c.status == 413) client = std::make_unique<httplib::Client>(api.http());  // it may close after a 413
  }
  // The server is still up, and nothing changed.
  EXPECT_EQ(api.http().Get("/health")->status, 200);
  EXPECT_EQ(api.jobs(), before);
  EXPECT_EQ(api.db().scalar("SELECT string_agg(to_jsonb(j)::text, ',') FROM docket.jobs j"), before_dump);
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.kinds"), 0);
}

TEST(Api, MetricsPassPromtool) {
  ApiFixture api;
  auto http = api.http();
  http.Post("/jobs", R"({"kind":"k","queue":"q \"quoted\" \\ back"})", "application/json");
  http.Get("/jobs?state=bogus");
  const auto r = http.Get("/metrics");
  ASSERT_EQ(r->status, 200);
  const std::string promtool = "/usr/bin/promtool";
  ASSERT_TRUE(std::filesystem::exists(promtool)) << "promtool missing: make deps installs the prometheus package";
  const auto check = test::run({promtool, "check", "metrics"}, {}, r->body);
  EXPECT_EQ(check.status, 0) << check.out << check.err << "\n" << r->body;
}

TEST(Api, OpenApiDocumentPassesAValidatorAndMatchesTheRoutes) {
  ApiFixture api;
  const auto r = api.http().Get("/openapi.json");
  ASSERT_EQ(r->status, 200);
  const std::filesystem::path tools = std::filesystem::path(DOCKET_SOURCE_DIR) / "tests/tools/openapi";
  const auto validator = tools / "node_modules/.bin/validate-api";
  if (!std::filesystem::exists(validator)) {
    const auto install = test::run(
        {"/usr/bin/env", "npm", "ci", "--prefix", tools.string(), "--no-audit", "--no-fund", "--loglevel=error"});
    ASSERT_EQ(install.status, 0) << "npm ci failed: " << install.err;
  }
  test::TempDir dir;
  test::write_file(dir / "openapi.json", r->body);
  const auto check = test::run({"/usr/bin/env", "node", validator.string(), (dir / "openapi.json").string()});
  const Json verdict = Json::parse(check.out, nullptr, false);
  ASSERT_FALSE(verdict.is_discarded()) << check.out << check.err;
  EXPECT_TRUE(verdict.at("valid").get<bool>()) << check.out;
  // Every path the document promises answers (not with a 404 for an unknown route).
  auto http = api.http();
  const Json document = Json::parse(r->body);
  for (const auto& [path, item] : document.at("paths").items()) {
    std::string concrete = path;
    for (const auto& [from, to] :
         std::vector<std::pair<std::string, std::string>>{{"{id}", "1"}, {"{queue}", "default"}, {"{kind}", "k"}}) {
      if (auto pos = concrete.find(from); pos != std::string::npos) concrete.replace(pos, from.size(), to);
    }
    for (const auto& [method, op] : item.items()) {
      httplib::Result res{nullptr, httplib::Error::Unknown};
      if (method == "get") res = http.Get(concrete);
      if (method == "post") res = http.Post(concrete, "{}", "application/json");
      if (method == "put") res = http.Put(concrete, R"({"max_running": 1})", "application/json");
      ASSERT_TRUE(res) << method << " " << concrete;
      if (res->status == 404) {
        EXPECT_NE(error_code(res), "route_not_found") << method << " " << concrete << " " << res->body;
      }
    }
  }
}
