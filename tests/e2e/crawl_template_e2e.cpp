// One crawl kind for every project: {args.project_id} in the URL and the collection, run by a
// real worker against a local HTTP source. Hostile args never leave the configured host, never
// carry its credentials elsewhere, and write nothing live.
#include <httplib.h>

#include <mutex>
#include <set>
#include <thread>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using Json = nlohmann::json;

namespace {

/// A local HTTP server recording each request's raw target, Host and Authorization.
class Source {
 public:
  struct Seen {
    std::string target, host, authorization;
  };
  Source() {
    // Projects 7 and 8 have 3 items each on page 1; page 2 is empty. Any other path is a 404.
    server_.Get(R"(/p/(\d+)/items)", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string project = req.matches[1];
      if (project != "7" && project != "8") {
        res.status = 404;  // recorded by the error handler
        return;
      }
      record(req);
      Json items = Json::array();
      if (req.get_param_value("page") == "1") {
        for (int i = 1; i <= 3; ++i) {
          items.push_back(Json{{"id", i}, {"name", "project " + project + " item " + std::to_string(i)}});
        }
      }
      res.set_content(Json{{"items", items}}.dump(), "application/json");
    });
    server_.set_error_handler([this](const httplib::Request& req, httplib::Response&) { record(req); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~Source() {
    server_.stop();
    thread_.join();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void record(const httplib::Request& req) {
    std::lock_guard lock(mutex_);
    seen_.push_back({req.target, req.get_header_value("Host"), req.get_header_value("Authorization")});
  }
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
};

bool finished(Client& client, std::int64_t job) {
  const auto j = client.job(job);
  return j && (j->state == JobState::completed || j->state == JobState::failed);
}

}  // namespace

TEST(CrawlTemplates, OneKindCrawlsTwoProjectsIntoTwoCollectionsAndHostileArgsGoNowhere) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Source source, elsewhere;
  auto worker = start_docket_worker(
      *db, dir,
      "[worker]\nconcurrency = 4\n[kinds.scrape]\nmax_retries = 0\ncrawl = { url = \"" + source.base() +
          "/p/{args.project_id}/items?page={page}\", collection = \"project_{args.project_id}\", "
          "headers = { Authorization = \"Bearer s3cret\" } }\n");
  Client client(db->url());
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT count(*) FROM docket.kinds WHERE kind = 'scrape' AND crawl_collection IS NOT NULL") ==
               1;
      },
      20s))
      << worker->log_text();
  EXPECT_EQ(db->scalar("SELECT crawl_collection FROM docket.kinds WHERE kind = 'scrape'"), "project_{args.project_id}");

  // Two projects side by side; a second request for project 7 is the same crawl.
  const auto seven = client.enqueue({.kind = "scrape", .args = Json{{"project_id", 7}}});
  const auto seven_again = client.enqueue({.kind = "scrape", .args = Json{{"project_id", "7"}}});
  const auto eight = client.enqueue({.kind = "scrape", .args = Json{{"project_id", 8}}});
  EXPECT_EQ(seven_again.id, seven.id);
  EXPECT_FALSE(seven_again.created);
  EXPECT_NE(eight.id, seven.id);
  ASSERT_TRUE(wait_until([&] { return finished(client, seven.id) && finished(client, eight.id); }, 30s))
      << worker->log_text();
  ASSERT_EQ(client.job(seven.id)->state, JobState::completed) << client.job(seven.id)->errors.dump();
  ASSERT_EQ(client.job(eight.id)->state, JobState::completed) << client.job(eight.id)->errors.dump();
  EXPECT_EQ(client.job(seven.id)->result.at("collection"), "project_7");
  EXPECT_EQ(
      db->scalar("SELECT string_agg(collection || ':' || key || '=' || (item->>'name'), ',' ORDER BY collection, key) "
                 "FROM docket.live_items"),
      "project_7:1=project 7 item 1,project_7:2=project 7 item 2,project_7:3=project 7 item 3,"
      "project_8:1=project 8 item 1,project_8:2=project 8 item 2,project_8:3=project 8 item 3");
  for (const auto& s : source.seen()) {
    EXPECT_EQ(s.host, "127.0.0.1:" + std::to_string(source.port())) << s.target;
    EXPECT_EQ(s.authorization, "Bearer s3cret") << s.target;
  }
  EXPECT_EQ(source.seen().size(), 4u) << "two pages per project";

  // Hostile values that fit a collection name: percent-encoded into the path, so they reach the
  // configured host only (which 404s them) and the crawl fails with nothing live.
  const std::string other = "127.0.0.1:" + std::to_string(elsewhere.port());
  const std::map<std::string, std::string> hostile = {
      {"@" + other + "/p/7", "/p/%40127.0.0.1%3A" + std::to_string(elsewhere.port()) + "%2Fp%2F7/items?page=1"},
      {"//" + other, "/p/%2F%2F127.0.0.1%3A" + std::to_string(elsewhere.port()) + "/items?page=1"},
      {"7/../../8", "/p/7%2F..%2F..%2F8/items?page=1"},
      {"7?page=1#", "/p/7%3Fpage%3D1%23/items?page=1"},
      {"caf\xc3\xa9 7", "/p/caf%C3%A9%207/items?page=1"},
  };
  const auto before = source.seen().size();
  std::vector<std::int64_t> jobs;
  for (const auto& [value, target] : hostile) {
    jobs.push_back(client.enqueue({.kind = "scrape", .args = Json{{"project_id", value}}}).id);
  }
  // A dot segment is refused by the worker before any request.
  const auto dots = client.enqueue({.kind = "scrape", .args = Json{{"project_id", ".."}}}).id;
  jobs.push_back(dots);
  ASSERT_TRUE(wait_until(
      [&] { return std::all_of(jobs.begin(), jobs.end(), [&](auto id) { return finished(client, id); }); }, 30s))
      << worker->log_text();
  for (const auto id : jobs) EXPECT_EQ(client.job(id)->state, JobState::failed) << id;
  EXPECT_NE(client.job(dots)->errors.dump().find(
                "args.project_id would make the path segment \\\"..\\\" in crawl.url; a value may not move the "
                "request up the path (no request was sent)"),
            std::string::npos)
      << client.job(dots)->errors.dump();
  const auto seen = source.seen();
  std::set<std::string> targets;
  for (std::size_t i = before; i < seen.size(); ++i) {
    targets.insert(seen[i].target);
    EXPECT_EQ(seen[i].host, "127.0.0.1:" + std::to_string(source.port()));
  }
  std::set<std::string> want;
  for (const auto& [value, target] : hostile) want.insert(target);
  EXPECT_EQ(targets, want) << "exactly one request per hostile value, encoded, and none for \"..\"";
  EXPECT_TRUE(elsewhere.seen().empty()) << "no request, and so no credential, went to another host";
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items WHERE collection NOT IN ('project_7', 'project_8')"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items"), 6);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls WHERE status = 'failed'"),
            static_cast<long long>(jobs.size()))
      << "each refused crawl is failed, none stranded waiting";
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawl_cache"), 0);

  // Values that cannot name a collection are refused at enqueue, by every surface, writing nothing.
  const auto jobs_before = db->count("SELECT count(*) FROM docket.jobs");
  const auto cli = docket::test::run({DOCKET_BIN, "enqueue", "scrape", R"({"project_id": "7\r\nX-Evil: 1"})"},
                                     {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(cli.status, 2) << cli.out << cli.err;
  EXPECT_NE(cli.err.find("args.project_id must be 1 to 200 bytes without control characters"), std::string::npos)
      << cli.err;
  const auto missing =
      docket::test::run({DOCKET_BIN, "enqueue", "scrape", R"({"project": 7})"}, {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("args.project_id is missing from the job's args"), std::string::npos) << missing.err;
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"}, {{"DATABASE_URL", db->url()}}, dir / "api.log");
  const int port = api_port_from_log(api, "url");
  ASSERT_GT(port, 0) << api.log_text();
  httplib::Client http("127.0.0.1", port);
  const auto r = http.Post("/jobs", R"({"kind":"scrape","args":{"project_id":{"id":7}}})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_NE(r->body.find("args.project_id must be a string or a number"), std::string::npos) << r->body;
  const auto ok = http.Post("/jobs", R"({"kind":"scrape","args":{"project_id":7}})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201) << "the API still answers: " << ok->body;
  ASSERT_TRUE(wait_until([&] { return db->count("SELECT count(*) FROM docket.jobs") == jobs_before + 1; }, 10s));
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), jobs_before + 1) << "only the good request wrote a job";

  // The worker is alive and crawling.
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT count(*) FROM docket.crawls WHERE collection = 'project_7' AND status = 'done'") == 2;
      },
      30s))
      << worker->log_text();
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(10s), 0);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->log_text();
}

TEST(CrawlTemplates, AUrlArgThatIsNotAStringOrNumberFailsTheJobOnceBeforeAnyRequest) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Source source;
  // Only the URL names the arg: the enqueue cannot check it, the worker does.
  auto worker = start_docket_worker(*db, dir,
                                    "[worker]\nconcurrency = 2\n[kinds.all]\nmax_retries = 3\ncrawl = { url = \"" +
                                        source.base() +
                                        "/p/{args.project_id}/items?page={page}\", collection = "
                                        "\"everything\" }\n");
  Client client(db->url());
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT count(*) FROM docket.kinds WHERE kind = 'all' AND crawl_collection = 'everything'") ==
               1;
      },
      20s))
      << worker->log_text();
  const std::vector<std::pair<Json, std::string>> cases = {
      {Json{{"project_id", nullptr}}, "args.project_id must be a string or a number, got null"},
      {Json{{"project_id", {{"id", 7}}}}, "args.project_id must be a string or a number, got object"},
      {Json{{"project_id", {7}}}, "args.project_id must be a string or a number, got array"},
      {Json{{"project_id", false}}, "args.project_id must be a string or a number, got boolean"},
      {Json{{"project", 7}}, "args.project_id is missing from the job's args"},
      {Json{{"project_id", std::string(201, '7')}}, "args.project_id is longer than 200 bytes"},
  };
  for (const auto& [args, error] : cases) {
    const auto id = client.enqueue({.kind = "all", .args = args}).id;  // one at a time: the collection dedups
    ASSERT_TRUE(wait_until([&] { return finished(client, id); }, 20s)) << worker->log_text();
    const auto job = client.job(id);
    EXPECT_EQ(job->state, JobState::failed) << args.dump();
    EXPECT_EQ(job->attempt, 1) << "permanent: no retry of a job whose args cannot fit";
    const std::string errors = job->errors.dump();
    EXPECT_NE(errors.find("crawl.url: " + error), std::string::npos) << errors;
    EXPECT_NE(errors.find("(no request was sent)"), std::string::npos) << errors;
    EXPECT_EQ(db->scalar("SELECT status FROM docket.crawls WHERE job_id = " + std::to_string(id)), "failed");
  }
  EXPECT_TRUE(source.seen().empty()) << "no request for any of them";
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items"), 0);
  // The worker still crawls.
  const auto good = client.enqueue({.kind = "all", .args = Json{{"project_id", 8}}}).id;
  ASSERT_TRUE(wait_until([&] { return finished(client, good); }, 20s)) << worker->log_text();
  EXPECT_EQ(client.job(good)->state, JobState::completed) << client.job(good)->errors.dump();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items WHERE collection = 'everything'"), 3);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->log_text();
}
