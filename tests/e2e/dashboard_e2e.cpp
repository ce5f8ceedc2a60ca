// The dashboard in a real browser: `docket api` with a write and a read-only token, jobs in every
// state, and Debian's chromium driven headless by tests/tools/dashboard/check.mjs (puppeteer-core,
// installed from its lock file on first use). The script opens every page, asserts what is on
// screen and performs every action; this test then checks that the database changed exactly so.
#include <httplib.h>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {

constexpr const char* kWriteToken = "dash-write-token-0123456789abcdef";
constexpr const char* kReadToken = "dash-read-token-0123456789abcdef0";

/// Inserts one job as the dashboard will find it; returns its id.
std::string insert_job(TestDatabase& db, const std::string& columns, const std::string& values) {
  return db.scalar("INSERT INTO docket.jobs (" + columns + ") VALUES (" + values + ") RETURNING id");
}

std::string chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (std::filesystem::exists(path)) return path;
  }
  return {};
}

}  // namespace

TEST(DashboardE2e, EveryPageAndActionInHeadlessChromium) {
  const std::string browser = chromium();
  if (browser.empty()) GTEST_SKIP() << "chromium is not installed: `make deps-test` (scripts/deps.sh test) installs it";
  const std::filesystem::path tools = std::filesystem::path(DOCKET_SOURCE_DIR) / "tests/tools/dashboard";
  if (!std::filesystem::exists(tools / "node_modules/puppeteer-core")) {
    const auto install =
        run({"/usr/bin/env", "npm", "ci", "--prefix", tools.string(), "--no-audit", "--no-fund", "--loglevel=error"});
    ASSERT_EQ(install.status, 0) << "npm ci failed: " << install.err;
  }

  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  // Jobs in every state. mail: one of each; reports: a paused queue; resize: two failed (retry all);
  // bulk: 60 finished (two pages of 50); billing: the queue the cross-site and read-only requests aim at.
  const std::string worker = db->scalar(
      "INSERT INTO docket.workers (name, host, pid, queues, kinds, concurrency) "
      "VALUES ('web-1', 'host-a', 4242, '{mail}', '{send_email}', 4) RETURNING id");
  const std::string cols =
      "kind, queue, state, args, attempt, run_at, started_at, finished_at, errors, result, progress";
  auto job = [&](const std::string& values) { return insert_job(*db, cols, values); };
  const std::string available =
      job("'send_email', 'mail', 'available', '{\"to\":\"a@example.com\"}', 0, now(), NULL, NULL, '[]', NULL, NULL");
  job("'send_email', 'mail', 'scheduled', '{}', 0, now() + interval '1 hour', NULL, NULL, '[]', NULL, NULL");
  db->scalar(
      "INSERT INTO docket.jobs (kind, queue, state, attempt, started_at, worker) VALUES "
      "('send_email', 'mail', 'running', 1, now(), '" +
      worker + "')");
  job("'send_email', 'mail', 'retryable', '{}', 1, now() + interval '5 minutes', now() - interval '1 minute', NULL, "
      "'[{\"attempt\":1,\"at\":\"2026-01-01T00:00:00Z\",\"error\":\"boom\"}]', NULL, NULL");
  const std::string completed =
      job("'send_email', 'mail', 'completed', '{}', 1, now() - interval '3 minutes', now() - interval '150 seconds', "
          "now() - interval '2 minutes', '[]', '{\"sent\": 12}', '{\"done\": 12, \"total\": 12}'");
  const std::string failed = job(
      "'send_email', 'mail', 'failed', '{}', 1, now() - interval '9 minutes', now() - interval '8 minutes', "
      "now() - interval '7 minutes', '[{\"attempt\":1,\"at\":\"2026-01-01T00:00:00Z\",\"error\":\"x\"}]', NULL, NULL");
  const std::string failed2 =
      job("'send_email', 'mail', 'failed', '{\"to\":\"ops@example.com\"}', 2, now() - interval '6 minutes', "
          "now() - interval '5 minutes', now() - interval '4 minutes', "
          "jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now() - interval '6 minutes', 'error', 'smtp "
          "timeout'), "
          "jsonb_build_object('attempt', 2, 'at', now() - interval '4 minutes', 'error', 'smtp timeout again')), NULL, "
          "NULL");
  job("'send_email', 'mail', 'cancelled', '{}', 0, now(), NULL, now(), '[]', NULL, NULL");
  job("'build_report', 'reports', 'available', '{}', 0, now(), NULL, NULL, '[]', NULL, NULL");
  db->query("INSERT INTO docket.queues (name, paused_at) VALUES ('reports', now())");
  job("'bill', 'billing', 'available', '{}', 0, now(), NULL, NULL, '[]', NULL, NULL");
  for (int i = 0; i < 2; ++i)
    job("'resize', 'images', 'failed', '{}', 1, now(), now(), now() - interval '1 minute', '[]', NULL, NULL");
  db->query(
      "INSERT INTO docket.jobs (kind, queue, state, finished_at) "
      "SELECT 'bulk', 'bulk', 'completed', now() - interval '30 minutes' FROM generate_series(1, 60)");
  const std::string crawl_job =
      job("'crawl_products', 'crawls', 'running', '{}', 1, now(), now(), NULL, '[]', NULL, NULL");
  db->query("INSERT INTO docket.crawls (job_id, kind, collection, status, pages, items, last_error) VALUES (" +
            crawl_job + ", 'crawl_products', 'products', 'crawling', 3, 120, 'page 2 failed: HTTP 503')");
  // Markup in every field a page shows: it must appear as text and never run.
  const std::string hostile =
      job("'<img src=x onerror=window.pwned=1>', '<b>bold</b>', 'failed', "
          "'{\"html\": \"<script>window.pwned=2</script>\"}', 1, now(), now(), now(), "
          "'[{\"attempt\":1,\"at\":\"2026-01-01T00:00:00Z\",\"error\":\"<img src=y onerror=window.pwned=3>\"}]', NULL, "
          "NULL");
  db->query("INSERT INTO docket.kinds (kind) VALUES ('build_report')");
  db->query("SELECT docket.schedule('nightly', '0 3 * * *', 'build_report')");
  const long long jobs_before = db->count("SELECT count(*) FROM docket.jobs");

  Child api(
      {DOCKET_BIN, "api", "--listen", "127.0.0.1:0"},
      {{"DATABASE_URL", db->url()}, {"DOCKET_API_TOKENS", std::string(kWriteToken) + "," + kReadToken + ";scope=read"}},
      dir / "api.log");
  const int port = api_port_from_log(api, "url");
  ASSERT_GT(port, 0) << api.log_text();

  const std::filesystem::path shots = std::filesystem::path(DOCKET_BIN).parent_path() / "dashboard-screens";
  std::filesystem::create_directories(shots);
  const Json fixture = {{"available", std::stoll(available)},
                        {"completed", std::stoll(completed)},
                        {"failed", std::stoll(failed)},
                        {"failed2", std::stoll(failed2)},
                        {"hostile", std::stoll(hostile)}};
  const auto started = std::chrono::steady_clock::now();
  const auto check = run({"/usr/bin/env", "node", (tools / "check.mjs").string()},
                         {{"DASH_URL", "http://127.0.0.1:" + std::to_string(port)},
                          {"DASH_TOKEN", kWriteToken},
                          {"DASH_READ_TOKEN", kReadToken},
                          {"DASH_SHOTS", shots.string()},
                          {"DASH_FIXTURE", fixture.dump()},
                          {"CHROMIUM", browser},
                          {"PATH", std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"},
                          {"HOME", dir.path().string()}});
  std::cerr << "check.mjs took " << seconds_since(started) << " s\n";
  const Json seen = Json::parse(check.out.substr(check.out.rfind('{', check.out.size() - 2)), nullptr, false);
  ASSERT_FALSE(seen.is_discarded()) << check.out << check.err << api.log_text();
  ASSERT_TRUE(seen.value("ok", false)) << check.out << check.err;

  // What the actions did, and only that.
  EXPECT_EQ(db->scalar("SELECT paused_at IS NOT NULL FROM docket.queues WHERE name = 'mail'"), "t");
  EXPECT_EQ(db->scalar("SELECT paused_at IS NULL FROM docket.queues WHERE name = 'reports'"), "t");
  EXPECT_EQ(db->scalar("SELECT max_running FROM docket.kinds WHERE kind = 'send_email'"), "3");
  EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + available), "cancelled");
  EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + failed), "available");
  EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + failed2), "failed");  // only what was clicked
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'resize' AND state = 'available'"), 2);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'live'"), 1);
  // Run now: the schedules routes come from another branch; on a tree without them the page says so.
  const long long scheduled = db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'nightly'");
  if (seen.at("schedule_run") == "done") {
    EXPECT_EQ(scheduled, 1);
  } else {
    EXPECT_EQ(seen.at("schedule_run"), "route_missing") << seen.dump();
    EXPECT_EQ(scheduled, 0);
  }
  // Refused: cross-site form posts (with the session cookie, same site, other port) and a read-only token.
  EXPECT_EQ(seen.at("cross_site_pause"), 401) << seen.dump();
  EXPECT_EQ(seen.at("cross_site_enqueue"), 401) << seen.dump();
  EXPECT_EQ(seen.at("read_only_write"), 403);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.queues WHERE name = 'billing'"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'evil'"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), jobs_before + 1 + scheduled);
  for (const char* page : {"overview", "kinds", "jobs", "job", "workers", "crawls", "schedules"})
    EXPECT_TRUE(std::filesystem::exists(shots / (std::string(page) + ".png"))) << page;

  // The server is still up and answering.
  httplib::Client http("127.0.0.1", port);
  const auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(10s), 0) << api.log_text();
}
