// Callback url kinds (README: Callbacks) with real processes: a `docket worker` sends the job to an
// endpoint (an httplib server in the test) that answers 202 Accepted; the test, as the external
// system, reports progress and the outcome to a `docket api` with the job's callback token.
#include <httplib.h>
#include <signal.h>

#include <mutex>
#include <thread>

#include "docket/json.hpp"
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

/// What one request to the endpoint carried.
struct Call {
  std::int64_t job = 0;
  std::string token;
  std::string callback_url;
  std::string authorization;
};

/// An endpoint that answers every job 202 Accepted and remembers the callback headers.
class Endpoint {
 public:
  Endpoint() {
    server_.Post("/run", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      calls_.push_back({std::stoll(req.get_header_value("Docket-Job-Id")),
                        req.get_header_value("Docket-Callback-Token"), req.get_header_value("Docket-Callback-Url"),
                        req.get_header_value("Authorization")});
      res.status = 202;
      res.set_content(R"({"accepted": true})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Endpoint() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/run"; }
  /// The calls for `job`, in order.
  std::vector<Call> calls(std::int64_t job) {
    std::lock_guard lock(mutex_);
    std::vector<Call> out;
    for (const auto& c : calls_)
      if (c.job == job) out.push_back(c);
    return out;
  }
  /// Waits until `job` was sent `n` times; its last call.
  std::optional<Call> wait_call(std::int64_t job, std::size_t n = 1, std::chrono::milliseconds timeout = 20s) {
    std::optional<Call> last;
    wait_until(
        [&] {
          const auto c = calls(job);
          if (c.size() >= n) last = c.back();
          return last.has_value();
        },
        timeout);
    return last;
  }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Call> calls_;
};

/// `docket api` (loopback, no API tokens: the callback routes must not need one anyway).
std::unique_ptr<Child> start_api(TestDatabase& db, const TempDir& dir, int& port) {
  auto api = std::make_unique<Child>(std::vector<std::string>{DOCKET_BIN, "api", "--listen", "127.0.0.1:0"},
                                     std::map<std::string, std::string>{{"DATABASE_URL", db.url()}}, dir / "api.log");
  port = api_port_from_log(*api, "url");
  return api;
}

std::string worker_toml(int api_port, const std::string& kinds, int concurrency = 4, const std::string& name = "w") {
  return "[worker]\nname = \"" + name + "\"\nconcurrency = " + std::to_string(concurrency) +
         "\nlease = \"2s\"\ncallback_base_url = \"http://127.0.0.1:" + std::to_string(api_port) + "/\"\n" + kinds;
}

std::string kind_toml(const std::string& name, const std::string& url, const std::string& extra) {
  return "[kinds." + name + "]\nurl = \"" + url +
         "\"\ncallback = true\nheaders = { Authorization = \"Bearer endpoint-secret\" }\n" + extra;
}

/// POST `body` to the API's `path` with a callback token (none when empty): status and body.
std::pair<int, std::string> post(int port, const std::string& path, const std::string& token, const std::string& body) {
  httplib::Client http("127.0.0.1", port);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Docket-Callback-Token", token);
  auto r = http.Post(path, headers, body, "application/json");
  if (!r) return {-1, ""};
  return {r->status, r->body};
}

/// The row's columns a refused call must not change, as one text.
std::string row_of(TestDatabase& db, std::int64_t id) {
  return db.scalar(
      "SELECT concat_ws('|', state, attempt, result, progress, errors, run_at, finished_at, callback_deadline, "
      "encode(callback_hash, 'hex')) FROM docket.jobs WHERE id = " +
      std::to_string(id));
}

bool api_answers(int port) {
  httplib::Client http("127.0.0.1", port);
  auto r = http.Get("/health");
  return r && r->status == 200;
}

bool waiting(TestDatabase& db, std::int64_t id) {
  return db.count("SELECT count(*) FROM docket.jobs WHERE id = " + std::to_string(id) +
                  " AND state = 'running' AND callback_deadline IS NOT NULL") == 1;
}

/// A fresh database, an endpoint and a `docket api` for each test.
class Callback : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    api = start_api(*db, dir, port);
    ASSERT_GT(port, 0) << api->log_text();
  }
  /// A `docket worker` with these kinds, registered.
  std::unique_ptr<Child> worker(const std::string& kinds, int concurrency = 4, const std::string& name = "w") {
    auto w = start_docket_worker(*db, dir, worker_toml(port, kinds, concurrency, name), name);
    EXPECT_TRUE(wait_registered(*db, name)) << w->log_text();
    return w;
  }

  std::unique_ptr<TestDatabase> db;
  TempDir dir;
  Endpoint endpoint;
  int port = -1;
  std::unique_ptr<Child> api;
};

}  // namespace

TEST_F(Callback, EndpointAnswers202ThenReportsProgressAndTheResultWhileTheWorkerSlotIsFree) {
  // One slot: the second job runs only because the first one's wait does not hold it.
  auto w = worker(kind_toml("remote", endpoint.url(), "timeout = \"5m\"\n"), 1);
  Client client(db->url());
  const auto a = client.enqueue({.kind = "remote", .args = {{"n", 1}}}).id;
  const auto b = client.enqueue({.kind = "remote", .args = {{"n", 2}}}).id;
  const auto call_a = endpoint.wait_call(a);
  const auto call_b = endpoint.wait_call(b);
  ASSERT_TRUE(call_a && call_b) << w->log_text();
  ASSERT_TRUE(wait_until([&] { return waiting(*db, a) && waiting(*db, b); }, 10s)) << w->log_text();

  // The headers: the job, where to call back, a 32-byte token (hex); only its hash is stored.
  EXPECT_EQ(call_a->callback_url, "http://127.0.0.1:" + std::to_string(port) + "/jobs/" + std::to_string(a));
  EXPECT_EQ(call_a->token.size(), 64u);
  EXPECT_NE(call_a->token, call_b->token);
  EXPECT_EQ(call_a->authorization, "Bearer endpoint-secret");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE encode(callback_hash, 'hex') = encode(sha256('" +
                      call_a->token + "'), 'hex') AND id = " + std::to_string(a)),
            1);
  EXPECT_EQ(
      db->count(
          "SELECT count(*) FROM docket.jobs WHERE position('" + call_a->token +
          "' IN docket.job_json(jobs)::text) > 0 OR position('callback_hash' IN docket.job_json(jobs)::text) > 0"),
      0);
  // Waiting is not a dead worker's job, and the deadline is the job's timeout.
  const double deadline_s = std::stod(db->scalar(
      "SELECT extract(epoch FROM callback_deadline - now()) FROM docket.jobs WHERE id = " + std::to_string(a)));
  EXPECT_NEAR(deadline_s, 300, 15);

  // Progress, then the outcome: the job completes with the result.
  const std::string base = "/jobs/" + std::to_string(a);
  auto r = post(port, base + "/progress", call_a->token, R"({"progress": {"page": 40, "of": 200}})");
  EXPECT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(client.job(a)->progress, (Json{{"page", 40}, {"of", 200}}));
  EXPECT_EQ(client.job(a)->state, JobState::running);
  r = post(port, base + "/outcome", call_a->token, R"({"result": {"rows": 7}, "progress": {"page": 200, "of": 200}})");
  EXPECT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(parse_json(r.second, "answer").at("state"), "completed");
  EXPECT_EQ(client.job(a)->state, JobState::completed);
  EXPECT_EQ(client.job(a)->result, (Json{{"rows", 7}}));
  EXPECT_EQ(client.job(a)->progress, (Json{{"page", 200}, {"of", 200}}));

  // Refused, each writing nothing: the finished job's token again (410), b's call with a's token
  // and a made-up token (403), no token (401), hostile bodies (400/422).
  const std::string done_a = row_of(*db, a), before_b = row_of(*db, b);
  EXPECT_EQ(post(port, base + "/outcome", call_a->token, R"({"discard": "again"})").first, 410);
  EXPECT_EQ(post(port, base + "/progress", call_a->token, R"({"progress": 1})").first, 410);
  const std::string bb = "/jobs/" + std::to_string(b);
  EXPECT_EQ(post(port, bb + "/outcome", call_a->token, R"({"result": 1})").first, 403);
  EXPECT_EQ(post(port, bb + "/outcome", std::string(64, 'a'), R"({"result": 1})").first, 403);
  EXPECT_EQ(post(port, bb + "/outcome", "", R"({"result": 1})").first, 401);
  EXPECT_EQ(post(port, "/jobs/999999/outcome", call_b->token, R"({"result": 1})").first, 404);
  r = post(port, bb + "/outcome", call_b->token, R"({"snooze": "soon"})");
  EXPECT_EQ(r.first, 422);
  EXPECT_NE(r.second.find("outcome.snooze"), std::string::npos) << r.second;
  r = post(port, bb + "/outcome", call_b->token, R"({"complete": true})");
  EXPECT_EQ(r.first, 422);
  EXPECT_NE(r.second.find("unknown key \\\"complete\\\""), std::string::npos) << r.second;
  EXPECT_EQ(post(port, bb + "/outcome", call_b->token, R"({"progress": 3})").first, 422);
  EXPECT_EQ(post(port, bb + "/outcome", call_b->token, R"({"retry": "x", "discard": "y"})").first, 422);
  EXPECT_EQ(post(port, bb + "/outcome", call_b->token, "[1]").first, 400);
  EXPECT_EQ(post(port, bb + "/outcome", call_b->token, std::string(70, '[') + std::string(70, ']')).first, 400);
  EXPECT_EQ(post(port, bb + "/progress", call_b->token, R"({"progress": 1, "result": 2})").first, 400);
  EXPECT_EQ(row_of(*db, a), done_a);
  EXPECT_EQ(row_of(*db, b), before_b);
  EXPECT_TRUE(api_answers(port));

  // b asks for a retry in an hour: retryable, its run is over, and its token then gets 409.
  r = post(port, bb + "/outcome", call_b->token, R"({"retry": "upstream busy", "in": "1h"})");
  EXPECT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(client.job(b)->state, JobState::retryable);
  EXPECT_NEAR(std::stod(db->scalar("SELECT extract(epoch FROM run_at - now()) FROM docket.jobs WHERE id = " +
                                   std::to_string(b))),
              3600, 60);
  const std::string retried_b = row_of(*db, b);
  EXPECT_EQ(post(port, bb + "/outcome", call_b->token, R"({"result": 1})").first, 409);
  EXPECT_EQ(row_of(*db, b), retried_b);
  // The token never reaches a log.
  EXPECT_EQ(w->log_text().find(call_a->token), std::string::npos);
  EXPECT_EQ(api->log_text().find(call_a->token), std::string::npos);
  EXPECT_EQ(api->log_text().find(call_b->token), std::string::npos);
  EXPECT_TRUE(w->running());
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
  api->signal(SIGTERM);
  EXPECT_EQ(api->wait(10s), 0);
}

TEST_F(Callback, NoCallbackBeforeTheDeadlineIsATimedOutAttemptAndTheLateCallbackIsRefused) {
  // retrying: a second attempt after a 1 s backoff, then failed; waiting: the backoff is an hour.
  const std::string kinds =
      kind_toml("retrying", endpoint.url(),
                "timeout = \"2s\"\nmax_retries = 1\nbackoff = { strategy = \"fixed\", delay = \"1s\", jitter = 0 }\n") +
      kind_toml("waiting", endpoint.url(),
                "timeout = \"2s\"\nmax_retries = 3\nbackoff = { strategy = \"fixed\", delay = \"1h\", jitter = 0 }\n");
  auto w = worker(kinds);
  Client client(db->url());
  const auto r1 = client.enqueue({.kind = "retrying"}).id;
  const auto h1 = client.enqueue({.kind = "waiting"}).id;
  const auto first = endpoint.wait_call(r1, 1);
  ASSERT_TRUE(first) << w->log_text();
  // No callback: attempt 1 times out at its deadline, attempt 2 is sent a new token, then fails.
  const auto second = endpoint.wait_call(r1, 2, 30s);
  ASSERT_TRUE(second) << w->log_text();
  EXPECT_NE(first->token, second->token);
  ASSERT_TRUE(wait_until([&] { return client.job(r1)->state == JobState::failed; }, 30s)) << w->log_text();
  const auto job = client.job(r1);
  EXPECT_EQ(job->attempt, 2);
  ASSERT_EQ(job->errors.size(), 2u);
  EXPECT_NE(job->errors[0].at("error").get<std::string>().find("no callback before the deadline"), std::string::npos);
  // The late callbacks: attempt 2's token finds the job finished (410); attempt 1's was replaced (403).
  const std::string failed = row_of(*db, r1);
  const std::string path = "/jobs/" + std::to_string(r1) + "/outcome";
  EXPECT_EQ(post(port, path, second->token, R"({"result": "late"})").first, 410);
  EXPECT_EQ(post(port, path, first->token, R"({"result": "late"})").first, 403);
  EXPECT_EQ(row_of(*db, r1), failed);

  // The hour-long backoff: after its deadline the job is retryable, and its token gets 409.
  const auto h = endpoint.wait_call(h1);
  ASSERT_TRUE(h);
  ASSERT_TRUE(wait_until([&] { return client.job(h1)->state == JobState::retryable; }, 20s)) << w->log_text();
  EXPECT_NEAR(std::stod(db->scalar("SELECT extract(epoch FROM run_at - now()) FROM docket.jobs WHERE id = " +
                                   std::to_string(h1))),
              3600, 60);
  const std::string retryable = row_of(*db, h1);
  EXPECT_EQ(post(port, "/jobs/" + std::to_string(h1) + "/outcome", h->token, R"({"result": "late"})").first, 409);
  EXPECT_EQ(post(port, "/jobs/" + std::to_string(h1) + "/progress", h->token, R"({"progress": 1})").first, 409);
  EXPECT_EQ(row_of(*db, h1), retryable);
  EXPECT_TRUE(api_answers(port));
  EXPECT_TRUE(w->running());
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST_F(Callback, AWaitingJobOutlivesItsSigkilledWorkerAndCompletesByItsCallback) {
  const std::string kinds = kind_toml("remote", endpoint.url(), "timeout = \"5m\"\n");
  auto w = worker(kinds);
  Client client(db->url());
  const auto id = client.enqueue({.kind = "remote"}).id;
  const auto call = endpoint.wait_call(id);
  ASSERT_TRUE(call);
  ASSERT_TRUE(wait_until([&] { return waiting(*db, id); }, 10s)) << w->log_text();
  w->signal(SIGKILL);
  w->wait(10s);
  // A second worker declares the first dead (lease 2 s) and rescues its jobs: not this one.
  auto w2 = worker(kinds, 4, "v");
  ASSERT_TRUE(wait_until(
      [&] { return db->count("SELECT count(*) FROM docket.workers WHERE name = 'w' AND dead_at IS NOT NULL") == 1; },
      20s));
  std::this_thread::sleep_for(2s);  // a few rescue rounds of w2 (every 0.5 s)
  EXPECT_TRUE(waiting(*db, id));
  EXPECT_EQ(client.job(id)->attempt, 1);
  // Nor is it stuck for an operator: no worker process is meant to hold it.
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.stuck_jobs WHERE id = " + std::to_string(id)), 0);
  EXPECT_EQ(client.stats().at("stuck").size(), 0u) << client.stats().at("stuck");
  EXPECT_EQ(endpoint.calls(id).size(), 1u);
  const auto r = post(port, "/jobs/" + std::to_string(id) + "/outcome", call->token, R"({"result": {"ok": true}})");
  EXPECT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(client.job(id)->state, JobState::completed);
  EXPECT_EQ(client.job(id)->result, (Json{{"ok", true}}));
  EXPECT_EQ(endpoint.calls(id).size(), 1u);
  w2->signal(SIGTERM);
  EXPECT_EQ(w2->wait(20s), 0);
}

TEST_F(Callback, AWorkerWithACallbackKindAndNoCallbackBaseUrlRefusesToStart) {
  docket::test::write_file(dir / "bad.toml", "[kinds.remote]\nurl = \"http://127.0.0.1:9/run\"\ncallback = true\n");
  const auto r =
      docket::test::run({DOCKET_BIN, "--config", (dir / "bad.toml").string(), "worker"}, {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("worker.callback_base_url"), std::string::npos) << r.err;
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.workers"), 0);
}

TEST_F(Callback, CancellingAWaitingJobCancelsItAtTheNextRescueRoundAndSpendsItsToken) {
  auto w = worker(kind_toml("remote", endpoint.url(), "timeout = \"5m\"\n"));
  Client client(db->url());
  const auto id = client.enqueue({.kind = "remote"}).id;
  const auto call = endpoint.wait_call(id);
  ASSERT_TRUE(call);
  ASSERT_TRUE(wait_until([&] { return waiting(*db, id); }, 10s)) << w->log_text();
  // No worker process runs it, so the request is carried out by the maintainer (every 0.5 s here).
  EXPECT_EQ(client.cancel(id), CancelResult::cancel_requested);
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::cancelled; }, 10s)) << w->log_text();
  EXPECT_EQ(client.job(id)->attempt, 1);
  const std::string cancelled = row_of(*db, id);
  EXPECT_EQ(post(port, "/jobs/" + std::to_string(id) + "/outcome", call->token, R"({"result": 1})").first, 410);
  EXPECT_EQ(row_of(*db, id), cancelled);
  EXPECT_EQ(endpoint.calls(id).size(), 1u);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}
