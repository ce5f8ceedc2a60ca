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
  r = http.Put("/limits/report", R"({"partition": "args.tenant", "max_running_per_key": 2, "rate_per_key": "60/1m"})",
               "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("partition"), "args.tenant");
  EXPECT_EQ(body_of(r).at("max_running_per_key"), 2);
  EXPECT_EQ(body_of(r).at("rate_per_key"), 60);
  r = http.Get("/limits/report/keys?top=5");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("keys"), Json::array());
  EXPECT_EQ(body_of(http.Put("/limits/report", R"({"partition": null})", "application/json")).at("partition"), nullptr);
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
      {"PUT", "/limits/k", R"({"partition": "tenant"})", 422},
      {"PUT", "/limits/k", R"({"partition": "args.a;DROP TABLE docket.jobs"})", 422},
      {"PUT", "/limits/k", R"({"partition": 5})", 400},
      {"PUT", "/limits/k", R"({"partition": "args.tenant", "max_running_per_key": -1})", 422},
      {"PUT", "/limits/k", R"({"partition": "args.tenant", "rate_per_key": "fast"})", 422},
      {"PUT", "/limits/k", R"({"partition": "args.tenant", "burst_per_key": 3})", 422},
      {"PUT", "/limits/k", R"({"max_running_per_key": 2})", 400},
      // A good partition with a bad rate: refused before anything is written.
      {"PUT", "/limits/k", R"({"partition": "args.tenant", "max_running_per_key": 1, "rate": "10/1w"})", 422},
      {"GET", "/limits/k/keys?top=abc", "", 422},
      {"GET", "/limits/k/keys?top=0", "", 422},
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

// Keyed limits on /metrics: per kind, and for its busiest keys only (a key is hostile text: it is
// escaped), however many keys there are.
TEST(Api, MetricsShowKeyedLimitsAndOnlyTheHotKeys) {
  ApiFixture api;
  auto http = api.http();
  ASSERT_EQ(
      http.Put("/limits/k", R"({"partition": "args.tenant", "max_running_per_key": 1})", "application/json")->status,
      200);
  api.db().query(
      "INSERT INTO docket.jobs (kind, state, args, started_at) "
      "SELECT 'k', CASE WHEN g <= 50 THEN 'running' ELSE 'available' END::docket.job_state, "
      "       jsonb_build_object('tenant', CASE WHEN g % 50 = 0 THEN 'q \"x\" \\ y' ELSE 't' || g % 50 END), now() "
      "  FROM generate_series(1, 200) g");
  const auto r = http.Get("/metrics");
  ASSERT_EQ(r->status, 200);
  const auto check = test::run({"/usr/bin/promtool", "check", "metrics"}, {}, r->body);
  EXPECT_EQ(check.status, 0) << check.out << check.err << "\n" << r->body;
  EXPECT_NE(r->body.find("docket_kind_max_running_per_key{kind=\"k\"} 1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("docket_kind_keys_at_limit{kind=\"k\"} 50"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("docket_kind_at_limit{kind=\"k\"} 1"), std::string::npos) << r->body;
  std::size_t keys = 0;
  for (std::size_t at = r->body.find("\ndocket_key_running{"); at != std::string::npos;
       at = r->body.find("\ndocket_key_running{", at + 1)) {
    ++keys;
  }
  EXPECT_EQ(keys, 10u);  // 50 keys at their limit, the top 10 shown
  EXPECT_NE(r->body.find("docket_key_held_back{key=\"t1\",kind=\"k\"} 3"), std::string::npos) << r->body;
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
  // No worker runs kind k: its job is unserved work, with the oldest due age.
  EXPECT_NE(r->body.find("docket_unserved_jobs{kind=\"k\",queue=\"q \\\"quoted\\\" \\\\ back\"} 1"), std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("docket_unserved_oldest_due_age_seconds{kind=\"k\""), std::string::npos) << r->body;
  // GET /queues lists it too.
  const auto q = body_of(http.Get("/queues"));
  ASSERT_EQ(q.at("unserved").size(), 1U) << q.dump();
  EXPECT_EQ(q.at("unserved").at(0).at("kind"), "k");
  EXPECT_EQ(q.at("unserved").at(0).at("reason"), "no live worker runs kind k");
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
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"{id}", "1"}, {"{queue}", "default"}, {"{kind}", "k"}, {"{name}", "nightly"}}) {
      if (auto pos = concrete.find(from); pos != std::string::npos) concrete.replace(pos, from.size(), to);
    }
    for (const auto& [method, op] : item.items()) {
      httplib::Result res{nullptr, httplib::Error::Unknown};
      if (method == "get") res = http.Get(concrete);
      if (method == "post") res = http.Post(concrete, "{}", "application/json");
      if (method == "put") res = http.Put(concrete, R"({"max_running": 1})", "application/json");
      if (method == "delete") res = http.Delete(concrete);
      ASSERT_TRUE(res) << method << " " << concrete;
      if (res->status == 404) {
        EXPECT_NE(error_code(res), "route_not_found") << method << " " << concrete << " " << res->body;
      }
    }
  }
}

// --- the dashboard: its files, sign-in sessions, token scopes, its own routes ---------------------

namespace {

constexpr const char* kReadToken = "read-token-0123456789abcdef";

ApiConfig dashboard_config() {
  ApiConfig config;
  config.tokens = {kToken, std::string(kReadToken) + ";scope=read"};
  return config;
}

/// Signs in with `token`; the session cookie ("docket_session=...") or "" when refused.
std::string sign_in(httplib::Client& http, const std::string& token, int* status = nullptr) {
  const auto r = http.Post("/session", Json{{"token", token}}.dump(), "application/json");
  if (status) *status = r ? r->status : -1;
  if (!r || !r->has_header("Set-Cookie")) return {};
  const std::string set = r->get_header_value("Set-Cookie");
  return set.substr(0, set.find(';'));
}

/// Every schedule row as text: a refused request must leave it byte for byte.
std::string schedules_dump(test::TestDatabase& db) {
  return db.scalar("SELECT coalesce(string_agg(to_jsonb(s)::text, ',' ORDER BY name), '') FROM docket.schedules s");
}

}  // namespace

TEST(Dashboard, ServesItsFilesWithAStrictPolicyAndNoTokenNeeded) {
  ApiFixture api(dashboard_config());
  auto http = api.http();
  const auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<script type=\"module\" src=\"/dashboard/app.js\">"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  for (const char* file : {"/dashboard/app.js", "/dashboard/style.css"}) {
    const auto r = http.Get(file);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << file;
    EXPECT_GT(r->body.size(), 1000u) << file;
  }
  // No other path is a file; no data without a token.
  EXPECT_EQ(http.Get("/dashboard/nope.js")->status, 401);
  EXPECT_EQ(http.Get("/dashboard/nope.js", {{"Authorization", std::string("Bearer ") + kToken}})->status, 404);
  EXPECT_EQ(http.Get("/dashboard/../server.cpp")->status, 401);
  EXPECT_EQ(http.Get("/jobs")->status, 401);
  EXPECT_EQ(body_of(http.Get("/session")), (Json{{"auth_required", true}, {"signed_in", false}, {"scope", nullptr}}));
}

TEST(Dashboard, SessionCookieCountsOnlyWithTheHeaderAndReadScopeCannotWrite) {
  ApiFixture api(dashboard_config());
  auto http = api.http();
  // Refused sign-ins store nothing and set no cookie.
  int status = 0;
  EXPECT_EQ(sign_in(http, "wrong-token-0123456789abcdef", &status), "");
  EXPECT_EQ(status, 401);
  for (const std::string& body : {std::string(R"({"token": 5})"), std::string(R"({"token":"x","more":1})"),
                                  std::string("not json"), std::string(200, '[') + std::string(200, ']')}) {
    const auto r = http.Post("/session", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->status == 400 || r->status == 422) << body.substr(0, 40) << " " << r->status;
    EXPECT_FALSE(r->has_header("Set-Cookie")) << body.substr(0, 40);
  }
  const std::string cookie = sign_in(http, kToken, &status);
  ASSERT_EQ(status, 200);
  ASSERT_EQ(cookie.rfind("docket_session=", 0), 0u) << cookie;
  EXPECT_EQ(cookie.size(), std::string("docket_session=").size() + 64);
  {
    const auto r = http.Post("/session", Json{{"token", kToken}}.dump(), "application/json");
    const std::string set = r->get_header_value("Set-Cookie");
    EXPECT_NE(set.find("; HttpOnly"), std::string::npos) << set;
    EXPECT_NE(set.find("; SameSite=Strict"), std::string::npos) << set;
  }
  const httplib::Headers cookie_only = {{"Cookie", cookie}};
  const httplib::Headers dashboard = {{"Cookie", cookie}, {"X-Docket-Dashboard", "1"}};
  // The cookie alone (what a cross-site form sends) is refused, reads and writes.
  EXPECT_EQ(http.Get("/queues", cookie_only)->status, 401);
  EXPECT_EQ(http.Post("/queues/mail/pause", cookie_only, "", "text/plain")->status, 401);
  EXPECT_EQ(http.Post("/jobs", cookie_only, R"({"kind":"evil"})", "text/plain")->status, 401);
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.queues"), 0);
  EXPECT_EQ(api.jobs(), 0);
  // With the header it works; a foreign Origin is still refused.
  EXPECT_EQ(http.Get("/queues", dashboard)->status, 200);
  httplib::Headers foreign = dashboard;
  foreign.emplace("Origin", "http://evil.example");
  EXPECT_EQ(http.Post("/queues/mail/pause", foreign, "", "text/plain")->status, 403);
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.queues"), 0);
  EXPECT_EQ(http.Post("/queues/mail/pause", dashboard, "", "text/plain")->status, 200);
  EXPECT_EQ(api.db().scalar("SELECT paused_at IS NOT NULL FROM docket.queues WHERE name = 'mail'"), "t");
  EXPECT_EQ(body_of(http.Get("/session", dashboard)),
            (Json{{"auth_required", true}, {"signed_in", true}, {"scope", "write"}}));

  // A read-only token, by bearer or by session: reads answer, writes get 403 and write nothing.
  const std::string read_cookie = sign_in(http, kReadToken, &status);
  ASSERT_EQ(status, 200);
  const httplib::Headers read_session = {{"Cookie", read_cookie}, {"X-Docket-Dashboard", "1"}};
  const httplib::Headers read_bearer = {{"Authorization", std::string("Bearer ") + kReadToken}};
  for (const auto& h : {read_session, read_bearer}) {
    EXPECT_EQ(http.Get("/jobs", h)->status, 200);
    const auto w = http.Post("/jobs", h, R"({"kind":"k"})", "application/json");
    EXPECT_EQ(w->status, 403);
    EXPECT_EQ(error_code(w), "forbidden_scope");
    EXPECT_EQ(http.Post("/queues/mail/resume", h, "", "text/plain")->status, 403);
    EXPECT_EQ(http.Put("/limits/k", h, R"({"max_running": 1})", "application/json")->status, 403);
  }
  EXPECT_EQ(api.jobs(), 0);
  EXPECT_EQ(api.db().scalar("SELECT paused_at IS NOT NULL FROM docket.queues WHERE name = 'mail'"), "t");
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.kinds"), 0);
  EXPECT_EQ(body_of(http.Get("/session", read_session))["scope"], "read");

  // Signing out ends the session on the server, not just in the browser.
  EXPECT_EQ(http.Delete("/session", dashboard)->status, 200);
  EXPECT_EQ(http.Get("/queues", dashboard)->status, 401);
  EXPECT_EQ(http.Get("/health")->status, 200);
}

TEST(Dashboard, TokenScopeSyntax) {
  const std::string t(kToken);
  EXPECT_FALSE(api::parse_tokens({t}).at(0).read_only);
  EXPECT_TRUE(api::parse_tokens({t + ";scope=read"}).at(0).read_only);
  EXPECT_FALSE(api::parse_tokens({t + ";scope=write"}).at(0).read_only);
  const auto both = api::parse_tokens({t + ";scope=read;expires=2099-01-01T00:00:00Z"}).at(0);
  EXPECT_TRUE(both.read_only);
  EXPECT_TRUE(both.expires.has_value());
  EXPECT_EQ(both.secret, t);
  for (const std::string& bad : {t + ";scope=admin", t + ";scope=read;scope=write", t + ";", t + ";role=read"}) {
    try {
      api::parse_tokens({bad});
      ADD_FAILURE() << bad;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).find(t), std::string::npos) << "the secret is not echoed: " << e.what();
    }
  }
}

TEST(Dashboard, RetryFailedPagesThroughAKindAndSkipsWhatCannotBeRetried) {
  ApiFixture api;
  auto& db = api.db();
  db.query(
      "INSERT INTO docket.jobs (kind, state, finished_at, unique_key) "
      "SELECT 'resize', 'failed', now() - g * interval '1 s', CASE WHEN g = 2 THEN 'held' END "
      "  FROM generate_series(1, 5) g");
  db.query("INSERT INTO docket.jobs (kind, state, unique_key) VALUES ('resize', 'available', 'held')");
  db.query("INSERT INTO docket.jobs (kind, state, finished_at) VALUES ('other', 'failed', now())");
  auto http = api.http();
  // Hostile parameters: 422 naming the parameter, nothing retried.
  for (const std::string q : {"?limit=0", "?limit=1001", "?limit=x", "?after=1", "?after=1.2.3",
                              "?after=99999999999999999999.1", "?bogus=1"}) {
    const auto r = http.Post("/kinds/resize/retry_failed" + q, "", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << q << " " << r->body;
  }
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.jobs WHERE state = 'failed'"), 6);
  // Two per call: the held one is skipped, the rest go, oldest first; the other kind stays failed.
  std::optional<std::string> after;
  int retried = 0, skipped = 0, calls = 0;
  do {
    const auto r = http.Post("/kinds/resize/retry_failed?limit=2" + (after ? "&after=" + *after : std::string()), "",
                             "application/json");
    ASSERT_EQ(r->status, 200) << r->body;
    const Json b = body_of(r);
    retried += b.at("retried").get<int>();
    skipped += b.at("skipped").get<int>();
    after = b.at("next").is_null() ? std::nullopt : std::optional(b.at("next").get<std::string>());
    ASSERT_LT(++calls, 10);
  } while (after);
  EXPECT_EQ(retried, 4);
  EXPECT_EQ(skipped, 1);
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.jobs WHERE kind = 'resize' AND state = 'failed'"), 1);
  EXPECT_EQ(db.scalar("SELECT unique_key FROM docket.jobs WHERE kind = 'resize' AND state = 'failed'"), "held");
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.jobs WHERE kind = 'other' AND state = 'failed'"), 1);
}

TEST(Dashboard, ThroughputCountsTheLastHourPerQueueAndMinute) {
  ApiFixture api;
  api.db().query(
      "INSERT INTO docket.jobs (kind, queue, state, finished_at) VALUES "
      "('k', 'mail', 'completed', now()), ('k', 'mail', 'completed', now()), ('k', 'mail', 'failed', now()), "
      "('k', 'mail', 'completed', now() - interval '2 hours'), ('k', 'mail', 'cancelled', now()), "
      "('k', 'other', 'failed', now() - interval '30 minutes')");
  const Json t = body_of(api.http().Get("/stats/throughput")).at("throughput");
  ASSERT_EQ(t.size(), 2u) << t.dump();
  EXPECT_EQ(t[0].at("queue"), "mail");
  EXPECT_EQ(t[0].at("completed"), 2);
  EXPECT_EQ(t[0].at("failed"), 1);
  EXPECT_EQ(t[1].at("queue"), "other");
  EXPECT_EQ(t[1].at("failed"), 1);
  const Json stats = body_of(api.http().Get("/stats"));
  EXPECT_TRUE(stats.contains("kinds") && stats.contains("workers")) << stats.dump();
}

TEST(Api, EnqueueOfWorkNoLiveWorkerRunsCarriesAWarning) {
  ApiFixture api;
  auto http = api.http();
  api.db().query("INSERT INTO docket.workers (name, queues, kinds) VALUES ('w', '{default}', '{import}')");
  auto r = http.Post("/jobs", R"({"kind":"import"})", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_FALSE(body_of(r).contains("warnings")) << r->body;
  r = http.Post("/jobs", R"({"kind":"imprt"})", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;  // status unchanged: the job is in
  EXPECT_EQ(body_of(r).at("warnings"), Json::array({"no live worker runs kind imprt"}));
  EXPECT_EQ(body_of(r).at("state"), "available");
  r = http.Post("/jobs", R"({"kind":"import","queue":"nobody","unique_key":"u1"})", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body_of(r).at("warnings"), Json::array({"no live worker claims queue nobody"}));
  r = http.Post("/jobs", R"({"kind":"import","queue":"nobody","unique_key":"u1"})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;  // the existing job: still unserved, still said
  EXPECT_EQ(body_of(r).at("warnings"), Json::array({"no live worker claims queue nobody"}));
  EXPECT_EQ(api.jobs(), 3);
}

TEST(Api, StrictKindsRefusesAnUnregisteredKindWith422AndWritesNothing) {
  ApiFixture api;
  api.db().query("INSERT INTO docket.kinds (kind, seen_at) VALUES ('import', now())");
  api.db().query("ALTER DATABASE " + api.db().name() + " SET docket.strict_kinds = on");
  auto http = api.http();
  // (The API opens its connections on first use: they see the database's setting.)
  auto r = http.Post("/jobs", R"({"kind":"imprt"})", "application/json");
  ASSERT_EQ(r->status, 422) << r->body;
  EXPECT_EQ(error_code(r), "unprocessable");
  EXPECT_NE(error_message(r).find("kind \"imprt\" is not run by any worker that ever started"), std::string::npos)
      << r->body;
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.jobs WHERE kind = 'imprt'"), 0);
  r = http.Post("/jobs", R"({"kind":"import"})", "application/json");
  EXPECT_EQ(r->status, 201) << r->body;
}

TEST(Api, LimitsShowTheirSourceAndDeleteResetsAnOperatorsLimit) {
  ApiFixture api;
  api.db().query(
      "INSERT INTO docket.kinds (kind, max_running, config_max_running, limit_source) "
      "VALUES ('import', 5, 5, 'config')");
  auto http = api.http();
  auto r = http.Put("/limits/import", R"({"max_running": 3})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("max_running"), 3);
  EXPECT_EQ(body_of(r).at("source"), "operator");
  EXPECT_EQ(body_of(r).at("config_max_running"), 5);
  r = http.Delete("/limits/import");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("max_running"), 5);
  EXPECT_EQ(body_of(r).at("source"), "config");
  r = http.Get("/limits");
  EXPECT_EQ(body_of(r).at("limits").at(0).at("source"), "config");
  // A kind with no row: 200, no limit, nothing written.
  r = http.Delete("/limits/nothing");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(body_of(r).at("max_running").is_null());
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.kinds WHERE kind = 'nothing'"), 0);
}

TEST(Api, SchedulesEveryRouteHappyPath) {
  ApiFixture api;
  api.db().query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  auto http = api.http();
  // PUT creates (201 + Location), a second PUT updates (200); a name may hold "/" and spaces.
  auto r = http.Put("/schedules/project%2F42%20daily",
                    R"({"cron":"30 2 * * *","kind":"scrape","args":{"project_id":42},"tz":"Europe/Lisbon",
                        "queue":"scrapes","spread":"4h","on_overlap":"replace","on_missed":"latest","priority":3,
                        "max_retries":2})",
                    "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  // Sent percent-encoded (project%2F42%20daily); httplib's client decodes header values.
  EXPECT_EQ(r->get_header_value("Location"), "/schedules/project/42 daily");
  Json s = body_of(r);
  EXPECT_EQ(s.at("name"), "project/42 daily");
  EXPECT_EQ(s.at("cron"), "30 2 * * *");
  EXPECT_EQ(s.at("tz"), "Europe/Lisbon");
  EXPECT_EQ(s.at("args").at("project_id"), 42);
  EXPECT_EQ(s.at("queue"), "scrapes");
  EXPECT_EQ(s.at("spread"), "04:00:00");
  EXPECT_EQ(s.at("on_overlap"), "replace");
  EXPECT_EQ(s.at("on_missed"), "latest");
  EXPECT_EQ(s.at("priority"), 3);
  EXPECT_EQ(s.at("max_retries"), 2);
  EXPECT_EQ(s.at("source"), "runtime");
  EXPECT_TRUE(s.at("enabled").get<bool>());
  EXPECT_TRUE(s.at("next_run_at").is_string());
  EXPECT_TRUE(s.at("last_job_id").is_null());
  const Json next = s.at("next_run_at");
  r = http.Put("/schedules/project%2F42%20daily", R"({"cron":"30 2 * * *","kind":"scrape","tz":"Europe/Lisbon",
                                                      "spread":"4h","args":{"project_id":43}})",
               "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("args").at("project_id"), 43);
  EXPECT_EQ(body_of(r).at("next_run_at"), next);  // same timing: the slot it waits for stays
  EXPECT_EQ(api.db().count("SELECT count(*) FROM docket.schedules"), 1);
  // GET one, GET the list
  r = http.Get("/schedules/project%2F42%20daily");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("args").at("project_id"), 43);
  ASSERT_EQ(http.Put("/schedules/b", R"({"cron":"@every 1h","kind":"scrape"})", "application/json")->status, 201);
  r = http.Get("/schedules");
  ASSERT_EQ(r->status, 200);
  Json page = body_of(r);
  ASSERT_EQ(page.at("schedules").size(), 2u);
  EXPECT_EQ(page.at("schedules").at(0).at("name"), "b");
  EXPECT_TRUE(page.at("next_after").is_null());
  page = body_of(http.Get("/schedules?limit=1"));
  ASSERT_EQ(page.at("schedules").size(), 1u);
  EXPECT_EQ(page.at("next_after"), "b");
  page = body_of(http.Get("/schedules?limit=1&after=b"));
  ASSERT_EQ(page.at("schedules").size(), 1u);
  EXPECT_EQ(page.at("schedules").at(0).at("name"), "project/42 daily");
  // pause / resume
  r = http.Post("/schedules/b/pause", "", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_FALSE(body_of(r).at("enabled").get<bool>());
  r = http.Post("/schedules/b/resume", "", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(body_of(r).at("enabled").get<bool>());
  // run now: a job with the schedule's name and no slot; the next slot does not move
  const Json before = body_of(http.Get("/schedules/b")).at("next_run_at");
  r = http.Post("/schedules/b/run", "", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  const auto id = body_of(r).at("id").get<long long>();
  EXPECT_EQ(r->get_header_value("Location"), "/jobs/" + std::to_string(id));
  EXPECT_EQ(body_of(r).at("kind"), "scrape");
  EXPECT_EQ(
      api.db().scalar("SELECT schedule || '|' || coalesce(scheduled_for::text, 'none') FROM docket.jobs WHERE id = " +
                      std::to_string(id)),
      "b|none");
  s = body_of(http.Get("/schedules/b"));
  EXPECT_EQ(s.at("next_run_at"), before);
  EXPECT_EQ(s.at("last_job_id"), id);
  EXPECT_EQ(s.at("last_job_state"), "available");
  // The API's /metrics counts schedules per state; late: enabled and due over 5 s ago without its job.
  api.db().query("UPDATE docket.schedules SET next_run_at = now() - interval '1 minute' WHERE name = 'b'");
  http.Post("/schedules/project%2F42%20daily/pause", "", "application/json");
  const std::string metrics = http.Get("/metrics")->body;
  EXPECT_NE(metrics.find("docket_schedules{state=\"enabled\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("docket_schedules{state=\"paused\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("docket_schedules_late 1"), std::string::npos) << metrics;
  // DELETE, then 404 on every route of the gone schedule; its job stays
  r = http.Delete("/schedules/b");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r), (Json{{"name", "b"}, {"deleted", true}}));
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{{"GET", "/schedules/b"},
                                                                                     {"DELETE", "/schedules/b"},
                                                                                     {"POST", "/schedules/b/run"},
                                                                                     {"POST", "/schedules/b/pause"},
                                                                                     {"POST", "/schedules/b/resume"}}) {
    r = method == "GET"      ? http.Get(path)
        : method == "DELETE" ? http.Delete(path)
                             : http.Post(path, "", "application/json");
    ASSERT_TRUE(r) << method << " " << path;
    EXPECT_EQ(r->status, 404) << method << " " << path << " " << r->body;
    EXPECT_EQ(error_code(r), "not_found") << method << " " << path;
  }
  EXPECT_EQ(api.jobs(), 1);
}

TEST(Api, ScheduleBadInputGetsTheRight4xxNamesTheFieldAndWritesNothing) {
  ApiConfig config;
  config.tokens = {kToken};
  ApiFixture api(config);
  api.db().query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  auto client = std::make_unique<httplib::Client>(api.http());
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  ASSERT_EQ(client->Put("/schedules/keep", auth, R"({"cron":"@hourly","kind":"scrape"})", "application/json")->status,
            201);
  const std::string before = schedules_dump(api.db());
  const long long jobs_before = api.jobs();

  struct Case {
    std::string method, path, body;
    int status;
    std::string names;  ///< the message must contain this (the field)
    bool with_auth = true;
  };
  const std::string ten_mib(10 << 20, 'x');
  const std::string ok_tail = R"("kind":"scrape"})";
  std::vector<Case> cases = {
      {"PUT", "/schedules/n", "", 400, "empty"},
      {"PUT", "/schedules/n", "{", 400, "JSON"},
      {"PUT", "/schedules/n", "[]", 400, "object"},
      {"PUT", "/schedules/n", R"({"kind":"scrape"})", 400, "cron"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly"})", 400, "kind"},
      {"PUT", "/schedules/n", R"({"cron":5,)" + ok_tail, 400, "cron"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","crn":1})", 400, "cron"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","name":"other"})", 400, "name"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","args":[1]})", 400, "args"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","enabled":"yes"})", 400, "enabled"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","priority":1.5})", 400, "priority"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","priority":99999999999})", 422, "priority"},
      {"PUT", "/schedules/n", R"({"cron":"61 * * * *",)" + ok_tail, 422, "minute"},
      {"PUT", "/schedules/n", R"({"cron":"* * *",)" + ok_tail, 422, "5"},
      {"PUT", "/schedules/n", R"({"cron":"@every 0s",)" + ok_tail, 422, "1 second"},
      {"PUT", "/schedules/n", R"({"cron":"0 0 30 2 *",)" + ok_tail, 422, "no slot"},
      {"PUT", "/schedules/n", R"({"cron":"'; DROP TABLE docket.schedules; --",)" + ok_tail, 422, "cron"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","tz":"Mars/Olympus"})", 422, "tz"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","tz":"foo+3"})", 422, "tz"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","tz":5})", 400, "tz"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"nobody-runs-this"})", 422, "kind"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":""})", 422, "kind"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","queue":""})", 422, "queue"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","spread":"soon"})", 422, "spread"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","spread":"400d"})", 422, "spread"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","on_overlap":"queue"})", 422, "on_overlap"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","on_missed":"some"})", 422, "on_missed"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly","kind":"scrape","max_retries":-1})", 422, "max_retries"},
      {"PUT", "/schedules/n", "{\"cron\":\"@hourly\",\"kind\":\"scrape\",\"args\":{\"s\":\"\\u0000\"}}", 422, "args"},
      {"PUT", "/schedules/n", "{\"cron\":\"@hourly\",\"kind\":\"scrape\",\"args\":{\"b\":\"" + ten_mib + "\"}}", 413,
       ""},
      {"PUT", "/schedules/a%00b", R"({"cron":"@hourly",)" + ok_tail, 422, "name"},
      {"PUT", "/schedules/a%0Ab", R"({"cron":"@hourly",)" + ok_tail, 422, "name"},
      {"PUT", "/schedules/a%FFb", R"({"cron":"@hourly",)" + ok_tail, 422, "name"},
      {"PUT", "/schedules/" + std::string(201, 'n'), R"({"cron":"@hourly",)" + ok_tail, 422, "name"},
      {"PUT", "/schedules/%20%20", R"({"cron":"@hourly",)" + ok_tail, 422, "name"},
      {"PUT", "/schedules/", R"({"cron":"@hourly",)" + ok_tail, 404, "no route"},
      {"PUT", "/schedules/n", R"({"cron":"@hourly",)" + ok_tail, 401, "token", false},
      {"GET", "/schedules/a%00b", "", 422, "name"},
      {"GET", "/schedules/nope", "", 404, "nope"},
      {"GET", "/schedules/'%20OR%20'1'='1", "", 404, "no schedule"},
      {"GET", "/schedules?limit=-1", "", 422, "limit"},
      {"GET", "/schedules?limit=x", "", 400, "limit"},
      {"GET", "/schedules?after=%01", "", 422, "after"},
      {"GET", "/schedules?limt=1", "", 400, "limit"},
      {"GET", "/schedules", "", 401, "Authorization", false},
      {"DELETE", "/schedules/nope", "", 404, "nope"},
      {"DELETE", "/schedules/keep", "", 401, "token", false},
      {"POST", "/schedules/nope/run", "", 404, "nope"},
      {"POST", "/schedules/nope/pause", "", 404, "nope"},
      {"POST", "/schedules/nope/resume", "", 404, "nope"},
      {"POST", "/schedules/keep/run", "", 401, "token", false},
      {"POST", "/schedules/keep/pause", "", 401, "token", false},
  };
  for (const auto& c : cases) {
    httplib::Headers h;
    if (c.with_auth) h = auth;
    if (!c.with_auth && c.method != "GET") h = {{"Authorization", "Bearer wrong-token-0123456789"}};
    httplib::Result r{nullptr, httplib::Error::Unknown};
    if (c.method == "GET") r = client->Get(c.path, h);
    if (c.method == "POST") r = client->Post(c.path, h, c.body, "application/json");
    if (c.method == "PUT") r = client->Put(c.path, h, c.body, "application/json");
    if (c.method == "DELETE") r = client->Delete(c.path, h);
    const std::string shown = c.method + " " + c.path.substr(0, 80) + " " + c.body.substr(0, 80);
    ASSERT_TRUE(r) << shown << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, c.status) << shown << "\n" << r->body;
    const Json body = Json::parse(r->body, nullptr, false);
    ASSERT_TRUE(!body.is_discarded() && body.contains("error") && body.at("error").contains("message")) << shown << "\n"
                                                                                                        << r->body;
    EXPECT_NE(body.at("error").at("message").get<std::string>().find(c.names), std::string::npos) << shown << "\n"
                                                                                                  << r->body;
    if (c.status == 413) client = std::make_unique<httplib::Client>(api.http());  // it may close after a 413
  }
  // Still up, nothing written: the schedules byte for byte, no job.
  EXPECT_EQ(api.http().Get("/health")->status, 200);
  EXPECT_EQ(schedules_dump(api.db()), before);
  EXPECT_EQ(api.jobs(), jobs_before);
  EXPECT_EQ(client->Get("/schedules/keep", auth)->status, 200);
}

TEST(Api, ScheduleListingIsByteCappedAndPagesThroughEveryName) {
  ApiConfig config;
  config.max_response = 64 << 10;
  ApiFixture api(config);
  api.db().query("INSERT INTO docket.kinds (kind) VALUES ('scrape')");
  // 60 schedules of ~4 KiB args each: ~240 KiB, far past one 64 KiB answer.
  api.db().query(
      "SELECT docket.schedule('s' || lpad(i::text, 3, '0'), '@hourly', 'scrape', "
      "jsonb_build_object('pad', repeat('x', 4000))) FROM generate_series(1, 60) i");
  auto http = api.http();
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (;;) {
    auto r = http.Get("/schedules?limit=500" + (after.empty() ? std::string() : "&after=" + after));
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_LE(r->body.size(), config.max_response);
    const Json page = body_of(r);
    ASSERT_FALSE(page.at("schedules").empty());
    for (const auto& s : page.at("schedules")) seen.push_back(s.at("name"));
    ++pages;
    if (page.at("next_after").is_null()) break;
    after = page.at("next_after").get<std::string>();
    ASSERT_LT(pages, 100);
  }
  EXPECT_GE(pages, 4);
  ASSERT_EQ(seen.size(), 60u);
  for (int i = 0; i < 60; ++i) {
    char want[8];
    std::snprintf(want, sizeof want, "s%03d", i + 1);
    EXPECT_EQ(seen[static_cast<std::size_t>(i)], want);
  }
}

TEST(Api, JobsFilteredByUniqueKeyIncludeFinishedOnesNewestFirst) {
  ApiFixture api;
  // A report made once, finished, then requested again: both are "the jobs of key report-7".
  const auto first = api.db().scalar("SELECT docket.enqueue('report', unique_key => 'report-7')");
  api.db().query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE id = " + first);
  const auto second = api.db().scalar("SELECT docket.enqueue('report', unique_key => 'report-7')");
  ASSERT_NE(first, second);
  api.db().query("SELECT docket.enqueue('report', unique_key => 'report-8'); SELECT docket.enqueue('report')");
  auto http = api.http();
  auto r = http.Get("/jobs?unique_key=report-7");
  ASSERT_EQ(r->status, 200) << r->body;
  const Json jobs = body_of(r).at("jobs");
  ASSERT_EQ(jobs.size(), 2u) << r->body;
  EXPECT_EQ(jobs[0].at("id"), std::stoll(second));
  EXPECT_EQ(jobs[0].at("state"), "available");
  EXPECT_EQ(jobs[1].at("id"), std::stoll(first));
  EXPECT_EQ(jobs[1].at("state"), "completed");
  r = http.Get("/jobs?unique_key=report-7&state=completed");
  EXPECT_EQ(body_of(r).at("jobs").size(), 1u) << r->body;
  r = http.Get("/jobs?unique_key=nobody");
  EXPECT_TRUE(body_of(r).at("jobs").empty()) << r->body;
}
