// The worker side of the trust boundary, with real `docket worker` processes: hostile job output,
// url responses and crawl pages (too deep, too large, trickled, unstorable text, absurd
// Retry-After), credentials and redirects across origins, and what a job program's environment
// holds. Each case checks the exact answer, what was written, and that the worker still runs.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "e2e.hpp"
#include "page_server.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::PageServer;
using Json = nlohmann::json;

namespace {

constexpr int kDeep = 200000;

std::string deep_json() {
  return std::string(kDeep, '[') + std::string(kDeep, ']');
}

/// A small HTTP server with hostile answers; it records each request's path and Authorization.
class HostileServer {
 public:
  HostileServer() {
    server_.Get("/deep", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(deep_json(), "application/json");
    });
    server_.Post("/deep", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(deep_json(), "application/json");
    });
    server_.Post("/later", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_header("Retry-After", "3153600000");  // 100 years
    });
    server_.Get("/trickle", [this](const httplib::Request& req, httplib::Response& res) { trickle(req, res); });
    server_.Get("/huge", [this](const httplib::Request& req, httplib::Response& res) { huge(req, res); });
    server_.Post("/huge", [this](const httplib::Request& req, httplib::Response& res) { huge(req, res); });
    server_.Post("/trickle", [this](const httplib::Request& req, httplib::Response& res) { trickle(req, res); });
    // Crawl pages: /pages?page=N has one item on page 1, none after.
    server_.Get("/pages", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      const int page = std::stoi(req.get_param_value("page").empty() ? "1" : req.get_param_value("page"));
      res.set_content(page == 1 ? R"({"items": [{"id": 1}]})" : R"({"items": []})", "application/json");
    });
    // A cursor crawl whose next link points at `next_` (another server).
    server_.Get("/cursor", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      const bool first = req.get_param_value("cursor").empty();
      res.set_content(first ? Json{{"items", {{{"id", 1}}}}, {"next", next_}}.dump()
                            : Json{{"items", Json::array()}, {"next", nullptr}}.dump(),
                      "application/json");
    });
    server_.Post("/redirect", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.status = 307;
      res.set_header("Location", next_);
    });
    server_.Post("/pages", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.set_content("{}", "application/json");
    });
    server_.Get("/redirect", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.status = 302;
      res.set_header("Location", next_ + "?page=" + req.get_param_value("page"));
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~HostileServer() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  int port() const { return port_; }
  void set_next(std::string next) { next_ = std::move(next); }
  /// (path, Authorization header) of each recorded request.
  std::vector<std::pair<std::string, std::string>> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t huge_sent() const { return sent_; }

 private:
  /// One byte a second, for a minute: every read succeeds, the whole never arrives.
  void trickle(const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [this](std::size_t offset, httplib::DataSink& sink) {
      if (offset >= 60 || stopping_) return false;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      sink.write(" ", 1);
      return true;
    });
  }
  /// 300 MB, generated as it is sent.
  void huge(const httplib::Request&, httplib::Response& res) {
    constexpr std::size_t kTotal = 300u << 20;
    res.set_content_provider(kTotal, "application/json",
                             [this](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                               static const std::string chunk(1 << 16, ' ');
                               sent_ = offset;
                               sink.write(chunk.data(), std::min(length, chunk.size()));
                               return !stopping_;
                             });
  }
  void record(const httplib::Request& req) {
    std::lock_guard lock(mutex_);
    seen_.emplace_back(req.path, req.get_header_value("Authorization"));
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> sent_{0};
  std::string next_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> seen_;
};

bool finished(Client& client, std::int64_t id) {
  const auto s = client.job(id)->state;
  return s == JobState::completed || s == JobState::failed || s == JobState::cancelled;
}

std::string last_error(Client& client, std::int64_t id) {
  const auto j = client.job(id);
  return j->errors.empty() ? std::string() : j->errors.back().at("error").get<std::string>();
}

/// A `[worker]` section named `name`, then the kinds.
std::string worker_toml(const std::string& name, const std::string& kinds) {
  return "[worker]\nname = \"" + name + "\"\nconcurrency = 8\nlease = \"5s\"\nrescue_interval = \"250ms\"\n" + kinds;
}

/// VmHWM (peak resident set) of `pid` in KiB.
long peak_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

/// The worker survived what the test threw at it, and still drains and exits cleanly.
void expect_alive_then_stop(Child& w) {
  EXPECT_TRUE(w.running());
  w.signal(SIGTERM);
  EXPECT_EQ(w.wait(20s), 0);
}

}  // namespace

TEST(Hostile, TooDeepJsonFromACommandAUrlOrArgsFailsTheJobOnceAndTheWorkerLives) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer server;
  // 200,000 nested arrays on stdout.
  auto w = start_docket_worker(*db, dir, worker_toml("w", R"([kinds.deepcmd]
command = ["/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\000' '['; head -c 200000 /dev/zero | tr '\\000' ']'"]
[kinds.deepurl]
url = ")" + server.url("/deep") + R"("
[kinds.echo]
command = ["/bin/cat"]
[kinds.logline]
command = ["/bin/echo", "[INFO] imported 5 rows"]
[kinds.bigint]
command = ["/bin/echo", "{\"n\": 123456789012345678901234567890}"]
max_retries = 3
)"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto cmd = client.enqueue({.kind = "deepcmd"}).id;
  const auto url = client.enqueue({.kind = "deepurl"}).id;
  // Args 1000 levels deep, written straight into the table (as any SQL user can): PostgreSQL stores
  // them; the worker must not recurse through them.
  const std::int64_t args =
      std::stoll(db->scalar("INSERT INTO docket.jobs (kind, args) VALUES ('echo', (repeat('{\"a\": ', 1000) || '1' || "
                            "repeat('}', 1000))::jsonb) "
                            "RETURNING id"));
  const auto fine = client.enqueue({.kind = "echo", .args = Json{{"x", 1}}}).id;
  ASSERT_TRUE(
      wait_until([&] { return finished(client, cmd) && finished(client, url) && finished(client, args); }, 30s));
  ASSERT_TRUE(wait_until([&] { return finished(client, fine); }, 10s));
  for (const std::int64_t id : {cmd, url, args}) {
    const auto j = client.job(id);
    EXPECT_EQ(j->state, JobState::failed) << id;
    EXPECT_EQ(j->attempt, 1) << "a permanent failure, not a retry storm";
    EXPECT_NE(last_error(client, id).find("nested deeper than 64 levels"), std::string::npos) << last_error(client, id);
    EXPECT_TRUE(j->result.is_null());
  }
  EXPECT_EQ(client.job(fine)->state, JobState::completed);
  // Text that only looks like JSON is not a result; well-formed JSON the parser refuses fails.
  const auto logline = client.enqueue({.kind = "logline"}).id;
  const auto bigint = client.enqueue({.kind = "bigint"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, logline) && finished(client, bigint); }, 10s));
  EXPECT_EQ(client.job(logline)->state, JobState::completed);
  EXPECT_EQ(client.job(logline)->result.at("docket_result_dropped"), "the command's stdout is not JSON");
  EXPECT_EQ(client.job(logline)->result.at("output"), "[INFO] imported 5 rows\n");
  EXPECT_EQ(client.job(bigint)->state, JobState::failed);
  EXPECT_EQ(client.job(bigint)->attempt, 1);
  EXPECT_EQ(last_error(client, bigint),
            "the command's stdout: at n: integer 123456789012345678901234567890 does not fit in 64 bits (send it as a "
            "string)");
  EXPECT_TRUE(w->running());
  const auto after = client.enqueue({.kind = "echo", .args = Json{{"y", 2}}}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, after); }, 10s));
  EXPECT_EQ(client.job(after)->state, JobState::completed);
  expect_alive_then_stop(*w);
}

TEST(Hostile, UnstorableTextFromJobsIsCleanedAndTheRestOfTheBatchIsWritten) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  // 5000 x U+00E9 (10000 bytes): the 8 KiB error cap falls inside a character.
  auto w = start_docket_worker(*db, dir, worker_toml("w", R"(
[kinds.nul]
command = ["/bin/sh", "-c", "printf 'before\\000after' >&2; exit 3"]
max_retries = 0
[kinds.latin1]
command = ["/bin/sh", "-c", "printf 'caf\\351' >&2; exit 3"]
max_retries = 0
[kinds.long]
command = ["/bin/sh", "-c", "i=0; while [ $i -lt 5000 ]; do printf '\\303\\251'; i=$((i+1)); done >&2; exit 75"]
max_retries = 1
backoff = { strategy = "fixed", delay = "1h" }
[kinds.nulresult]
command = ["/bin/sh", "-c", "printf '{\"a\": \"x\\\\u0000y\", \"b\": \"\\\\\\\\u0000\"}'"]
[kinds.ok]
command = ["/bin/true"]
)"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  std::vector<std::int64_t> ok;
  const auto nul = client.enqueue({.kind = "nul"}).id;
  const auto latin1 = client.enqueue({.kind = "latin1"}).id;
  const auto lng = client.enqueue({.kind = "long"}).id;
  const auto nulresult = client.enqueue({.kind = "nulresult"}).id;
  for (int i = 0; i < 5; ++i) ok.push_back(client.enqueue({.kind = "ok"}).id);
  auto settled = [&](std::int64_t id) { return finished(client, id) || client.job(id)->state == JobState::retryable; };
  ASSERT_TRUE(wait_until([&] { return settled(nul) && settled(latin1) && settled(lng) && settled(nulresult); }, 20s))
      << w->log_text();
  EXPECT_EQ(client.job(nul)->state, JobState::failed);
  EXPECT_EQ(last_error(client, nul),
            "exit 3: before\xEF\xBF\xBD"
            "after");
  EXPECT_EQ(client.job(latin1)->state, JobState::failed);
  EXPECT_EQ(last_error(client, latin1), "exit 3: caf\xEF\xBF\xBD");
  EXPECT_EQ(client.job(lng)->state, JobState::retryable);
  const std::string long_error = last_error(client, lng);
  EXPECT_LE(long_error.size(), 8192u);
  EXPECT_EQ(long_error.find("\xEF\xBF\xBD"), std::string::npos) << "cut on a character boundary, nothing replaced";
  EXPECT_EQ(long_error.rfind("exit 75 (retry requested): ...\xC3\xA9", 0), 0u) << long_error.substr(0, 60);
  EXPECT_EQ(client.job(nulresult)->state, JobState::completed);
  EXPECT_EQ(client.job(nulresult)->result, (Json{{"a", "x\xEF\xBF\xBDy"}, {"b", "\\u0000"}}));
  for (const auto id : ok) {
    ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 10s));
    EXPECT_EQ(client.job(id)->state, JobState::completed);
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 0);
  expect_alive_then_stop(*w);
}

TEST(Hostile, AnOutcomeTheDatabaseRefusesIsRecordedAsAnErrorNeverLeftRunning) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  // The completion of one job fails inside the database (as a value or a constraint it refuses would).
  db->query(
      "CREATE FUNCTION refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.args ? 'victim' AND NEW.state = 'completed' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
      "RETURN NEW; END $$");
  db->query("CREATE TRIGGER refuse BEFORE UPDATE ON docket.jobs FOR EACH ROW EXECUTE FUNCTION refuse_victim()");
  auto w = start_docket_worker(*db, dir, worker_toml("w", "[kinds.ok]\ncommand = [\"/bin/true\"]\n"));
  Client client(db->url());
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(client.enqueue({.kind = "ok", .args = i == 2 ? Json{{"victim", true}} : Json{{"n", i}}}).id);
  const auto victim = ids[2];
  ASSERT_TRUE(wait_registered(*db, "w"));
  ASSERT_TRUE(wait_until(
      [&] { return std::all_of(ids.begin(), ids.end(), [&](auto id) { return finished(client, id); }); }, 20s))
      << w->log_text();
  for (const auto id : ids) EXPECT_EQ(client.job(id)->state, id == victim ? JobState::failed : JobState::completed);
  EXPECT_EQ(last_error(client, victim).rfind("the outcome (complete) could not be stored: ", 0), 0u)
      << last_error(client, victim);
  EXPECT_NE(last_error(client, victim).find("refused by the test"), std::string::npos) << last_error(client, victim);
  EXPECT_EQ(client.job(victim)->attempt, 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state = 'running'"), 0);
  expect_alive_then_stop(*w);
}

TEST(Hostile, RetryAfterOfAHundredYearsIsClampedToADay) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer server;
  auto w = start_docket_worker(*db, dir,
                               worker_toml("w", "[kinds.later]\nurl = \"" + server.url("/later") +
                                                    "\"\n"
                                                    "[kinds.ok]\ncommand = [\"/bin/true\"]\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto later = client.enqueue({.kind = "later"}).id;
  const auto ok = client.enqueue({.kind = "ok"}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(later)->state == JobState::retryable && finished(client, ok); }, 20s))
      << w->log_text();
  const double wait_s = std::stod(
      db->scalar("SELECT extract(epoch FROM run_at - now()) FROM docket.jobs WHERE id = " + std::to_string(later)));
  EXPECT_GT(wait_s, 24 * 3600 - 60);
  EXPECT_LE(wait_s, 24 * 3600);
  EXPECT_EQ(last_error(client, later), "HTTP 503");
  EXPECT_EQ(client.job(ok)->state, JobState::completed);
  expect_alive_then_stop(*w);
}

TEST(Hostile, ATricklingServerTimesOutAtTheKindsTimeoutAndACancelStopsItWithinASecond) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer server;
  auto w = start_docket_worker(*db, dir,
                               worker_toml("w", "[kinds.slow]\nurl = \"" + server.url("/trickle") +
                                                    "\"\ntimeout = \"2s\"\nmax_retries = 0\n"
                                                    "[kinds.held]\nurl = \"" +
                                                    server.url("/trickle") + "\"\ntimeout = \"60s\"\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto t0 = std::chrono::steady_clock::now();
  const auto slow = client.enqueue({.kind = "slow"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, slow); }, 20s));
  const double took = seconds_since(t0);
  std::printf("trickled url job: failed after %.2f s (timeout 2 s)\n", took);
  EXPECT_EQ(client.job(slow)->state, JobState::failed);
  EXPECT_EQ(last_error(client, slow), "timed out after 2s");
  EXPECT_LT(took, 4.0);

  const auto held = client.enqueue({.kind = "held"}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(held)->state == JobState::running; }, 10s));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // bytes are trickling in
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(client.cancel(held), CancelResult::cancel_requested);
  ASSERT_TRUE(wait_until([&] { return finished(client, held); }, 10s));
  const double stop_s = seconds_since(t1);
  std::printf("trickled url job: cancelled %.2f s after the request\n", stop_s);
  EXPECT_EQ(client.job(held)->state, JobState::cancelled);
  EXPECT_LT(stop_s, 1.0);
  expect_alive_then_stop(*w);
}

TEST(Hostile, AHugeResponseIsRefusedAtTheCapWithBoundedMemory) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer server;
  auto w = start_docket_worker(*db, dir,
                               worker_toml("w", "[kinds.huge]\nurl = \"" + server.url("/huge") +
                                                    "\"\nmax_retries = 3\n"
                                                    "[kinds.small]\nurl = \"" +
                                                    server.url("/huge") + "\"\nmax_response = \"1MiB\"\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto huge = client.enqueue({.kind = "huge"}).id;
  const auto small = client.enqueue({.kind = "small"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, huge) && finished(client, small); }, 30s)) << w->log_text();
  EXPECT_EQ(client.job(huge)->state, JobState::failed);
  EXPECT_EQ(client.job(huge)->attempt, 1);
  EXPECT_EQ(last_error(client, huge),
            "POST " + server.url("/huge") + ": the response is larger than 16777216 bytes (max_response)");
  EXPECT_EQ(last_error(client, small),
            "POST " + server.url("/huge") + ": the response is larger than 1048576 bytes (max_response)");
  const long rss = peak_rss_kib(w->pid());
  std::printf("worker peak RSS after a 300 MB response: %ld KiB (bound 131072 KiB)\n", rss);
  EXPECT_GT(rss, 0);
  EXPECT_LT(rss, 128 * 1024);
  EXPECT_LT(server.huge_sent(), 64u << 20) << "the worker stopped reading at the cap";
  expect_alive_then_stop(*w);
}

TEST(Hostile, ACommandSeesACleanEnvironmentWithItsKindsEnvAndPassedNames) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const std::string toml =
      worker_toml("w", "[kinds.env]\ncommand = [\"/bin/sh\", \"-c\", \"env | sort > " + (dir / "env.txt").string() +
                           "\"]\nenv = { GREETING = \"hi\" }\nenv_pass = [\"AWS_PROFILE\"]\n");
  docket::test::write_file(dir / "w.toml", toml);
  auto w =
      std::make_unique<Child>(std::vector<std::string>{DOCKET_BIN, "--config", (dir / "w.toml").string(), "worker"},
                              std::map<std::string, std::string>{{"DATABASE_URL", db->url()},
                                                                 {"DOCKET_API_TOKENS", "secret-token"},
                                                                 {"AWS_PROFILE", "dev"},
                                                                 {"AWS_SECRET_ACCESS_KEY", "s3cr3t"},
                                                                 {"TZ", "UTC"}},
                              dir / "w.log");
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto id = client.enqueue({.kind = "env"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 20s));
  ASSERT_EQ(client.job(id)->state, JobState::completed);
  std::map<std::string, std::string> env;
  for (const auto& line : docket::test::read_lines(dir / "env.txt")) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_FALSE(env.contains("DATABASE_URL"));
  EXPECT_FALSE(env.contains("DOCKET_API_TOKENS"));
  EXPECT_FALSE(env.contains("AWS_SECRET_ACCESS_KEY"));
  EXPECT_EQ(env["AWS_PROFILE"], "dev");
  EXPECT_EQ(env["GREETING"], "hi");
  EXPECT_EQ(env["TZ"], "UTC");
  EXPECT_EQ(env["DOCKET_JOB_ID"], std::to_string(id));
  EXPECT_EQ(env["DOCKET_JOB_KIND"], "env");
  EXPECT_FALSE(env["PATH"].empty());
  expect_alive_then_stop(*w);
}

TEST(Hostile, CrawlHeadersGoOnlyToTheConfiguredOrigin) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer home, foreign;
  home.set_next(foreign.url("/cursor?cursor=2"));
  const std::string auth = "headers = { Authorization = \"Bearer s3cr3t\" }";
  const std::string kinds =
      "[kinds.strict]\ncrawl = { url = \"" + home.url("/cursor?cursor={cursor}") + "\", next = \"/next\", " + auth +
      " }\nmax_retries = 0\n"
      "[kinds.allowed]\ncrawl = { url = \"" +
      home.url("/cursor?cursor={cursor}") + "\", next = \"/next\", " + auth +
      ", allow_hosts = [\"127.0.0.1:" + std::to_string(foreign.port()) + "\"] }\nmax_retries = 0\n";
  auto w = start_docket_worker(*db, dir, worker_toml("w", kinds));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto strict = client.enqueue({.kind = "strict"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, strict); }, 20s)) << w->log_text();
  EXPECT_EQ(client.job(strict)->state, JobState::failed);
  EXPECT_NE(last_error(client, strict)
                .find("the next link " + foreign.url("/cursor?cursor=2") + " leaves http://127.0.0.1:" +
                      std::to_string(home.port()) + "; list its host in crawl.allow_hosts"),
            std::string::npos)
      << last_error(client, strict);
  EXPECT_TRUE(foreign.seen().empty()) << "the foreign host was never asked";
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items"), 0);

  const auto allowed = client.enqueue({.kind = "allowed"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, allowed); }, 20s)) << w->log_text();
  EXPECT_EQ(client.job(allowed)->state, JobState::completed) << last_error(client, allowed);
  ASSERT_EQ(foreign.seen().size(), 1u);
  EXPECT_EQ(foreign.seen()[0].second, "") << "no credential sent across origins";
  for (const auto& [path, authorization] : home.seen()) EXPECT_EQ(authorization, "Bearer s3cr3t");
  expect_alive_then_stop(*w);
}

TEST(Hostile, ACrawlRedirectAcrossOriginsDropsTheHeaders) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer home, foreign;
  home.set_next(foreign.url("/pages"));
  auto w = start_docket_worker(
      *db, dir,
      worker_toml("w", "[kinds.moved]\ncrawl = { url = \"" + home.url("/redirect?page={page}") +
                           "\", headers = { Authorization = \"Bearer s3cr3t\" } }\nmax_retries = 0\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto id = client.enqueue({.kind = "moved"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 20s)) << w->log_text();
  EXPECT_EQ(client.job(id)->state, JobState::completed) << last_error(client, id);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items WHERE collection = 'moved'"), 1);
  ASSERT_EQ(home.seen().size(), 2u);
  for (const auto& [path, authorization] : home.seen()) EXPECT_EQ(authorization, "Bearer s3cr3t");
  ASSERT_EQ(foreign.seen().size(), 2u);
  for (const auto& [path, authorization] : foreign.seen()) EXPECT_EQ(authorization, "") << path;
  expect_alive_then_stop(*w);
}

TEST(Hostile, ATooDeepCrawlPageIsAPageErrorAndTheWorkerLives) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer server;
  auto w = start_docket_worker(
      *db, dir,
      worker_toml("w", "[kinds.deep]\ncrawl = { url = \"" + server.url("/deep?page={page}") +
                           "\" }\nmax_retries = 1\nbackoff = { strategy = \"fixed\", delay = \"100ms\" }\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto id = client.enqueue({.kind = "deep"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 20s)) << w->log_text();
  EXPECT_EQ(client.job(id)->state, JobState::failed);
  EXPECT_EQ(client.job(id)->attempt, 2);
  EXPECT_NE(last_error(client, id).find("nested deeper than 64 levels"), std::string::npos) << last_error(client, id);
  EXPECT_EQ(db->scalar("SELECT status FROM docket.crawls WHERE job_id = " + std::to_string(id)), "failed");
  expect_alive_then_stop(*w);
}

TEST(Hostile, ACancelStopsAUrlJobStillConnectingWithinASecond) {
  // A listener whose accept queue is full and never drains: the kernel drops further SYNs, so a
  // new connection hangs in connect().
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(
      *db, dir,
      worker_toml("w", "[kinds.hung]\nurl = \"http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
                           "/x\"\ntimeout = \"60s\"\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto id = client.enqueue({.kind = "hung"}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 10s));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // still connecting
  ASSERT_EQ(client.job(id)->state, JobState::running) << last_error(client, id);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(client.cancel(id), CancelResult::cancel_requested);
  ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 15s));
  const double stop_s = seconds_since(t0);
  std::printf("connecting url job: cancelled %.2f s after the request\n", stop_s);
  EXPECT_EQ(client.job(id)->state, JobState::cancelled);
  EXPECT_LT(stop_s, 1.0);
  expect_alive_then_stop(*w);
  for (const int fd : fillers) ::close(fd);
  ::close(listener);
}

TEST(Hostile, ACrawlRequestIsBoundedByTheCrawlTimeoutAndTheByteCap) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer server;
  auto w = start_docket_worker(
      *db, dir,
      worker_toml("w", "[kinds.slow]\ncrawl = { url = \"" + server.url("/trickle?page={page}") +
                           "\", timeout = \"1s\" }\nmax_retries = 0\n"
                           "[kinds.big]\ncrawl = { url = \"" +
                           server.url("/huge?page={page}") + "\", max_response = \"1MiB\" }\nmax_retries = 3\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto t0 = std::chrono::steady_clock::now();
  const auto slow = client.enqueue({.kind = "slow"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, slow); }, 20s)) << w->log_text();
  const double took = seconds_since(t0);
  std::printf("trickled crawl page: failed after %.2f s (crawl.timeout 1 s)\n", took);
  EXPECT_LT(took, 3.0);
  EXPECT_EQ(client.job(slow)->state, JobState::failed);
  EXPECT_EQ(last_error(client, slow), "GET " + server.url("/trickle?page=1") + ": no complete answer within 1s");
  const auto big = client.enqueue({.kind = "big"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, big); }, 20s)) << w->log_text();
  EXPECT_EQ(client.job(big)->state, JobState::failed);
  EXPECT_EQ(client.job(big)->attempt, 1) << "a page over the cap is not fetched again";
  EXPECT_EQ(last_error(client, big),
            "GET " + server.url("/huge?page=1") + ": the response is larger than 1048576 bytes (max_response)");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls WHERE status = 'failed'"), 2);
  expect_alive_then_stop(*w);
}

TEST(Hostile, AUrlKindSendsItsHeadersToItsUrlOnlyAndFollowsNoRedirect) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  HostileServer home, foreign;
  home.set_next(foreign.url("/pages"));
  auto w = start_docket_worker(
      *db, dir,
      worker_toml("w", "[kinds.moved]\nurl = \"" + home.url("/redirect") +
                           "\"\nheaders = { Authorization = \"Bearer s3cr3t\" }\nmax_retries = 3\n"));
  ASSERT_TRUE(wait_registered(*db, "w"));
  Client client(db->url());
  const auto id = client.enqueue({.kind = "moved"}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 20s)) << w->log_text();
  EXPECT_EQ(client.job(id)->state, JobState::failed);
  EXPECT_EQ(client.job(id)->attempt, 1);
  EXPECT_EQ(last_error(client, id), "HTTP 307");
  ASSERT_EQ(home.seen().size(), 1u);
  EXPECT_EQ(home.seen()[0].second, "Bearer s3cr3t");
  EXPECT_TRUE(foreign.seen().empty());
  expect_alive_then_stop(*w);
}
