// Uniqueness over a period on every surface, kind-level derived keys and result TTLs (issue 13,
// migration 0018), against a real PostgreSQL and the API in-process.
#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "docket/worker.hpp"
#include "pg.hpp"
#include "server.hpp"

using namespace docket;
using docket::test::PgCluster;
using namespace std::chrono_literals;

namespace {

/// The API over a fresh database, served on a thread.
class Api {
 public:
  Api() : db_(PgCluster::shared().fresh_database()) {
    server_ = std::make_unique<api::Server>(db_->url(), ApiConfig{}, std::make_shared<Metrics>());
    server_->bind("127.0.0.1:0");
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Api() {
    server_->stop();
    thread_.join();
  }
  test::TestDatabase& db() { return *db_; }
  /// POST /jobs with `body`: status and parsed answer.
  std::pair<int, Json> post(const std::string& body) {
    httplib::Client c("127.0.0.1", server_->port());
    auto r = c.Post("/jobs", body, "application/json");
    if (!r) return {-1, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  std::pair<int, Json> get(const std::string& path) {
    httplib::Client c("127.0.0.1", server_->port());
    auto r = c.Get(path);
    if (!r) return {-1, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  long long jobs() { return db_->count("SELECT count(*) FROM docket.jobs"); }

 private:
  std::unique_ptr<test::TestDatabase> db_;
  std::unique_ptr<api::Server> server_;
  std::thread thread_;
};

const char* kWithCompleted = R"(["available", "scheduled", "running", "retryable", "completed"])";

void complete_all(test::TestDatabase& db) {
  db.query(
      "UPDATE docket.jobs SET state = 'completed', finished_at = now(), result = '{\"total\": 1}'"
      " WHERE state = 'available'");
}

}  // namespace

TEST(UniqueOptions, PostJobsTakesUniqueForAndStatesAndRefusesHostileValuesNamingTheField) {
  Api api;
  const std::string body =
      std::string(R"({"kind": "report", "unique_key": "r1", "unique_for": "10m", "unique_states": )") + kWithCompleted +
      R"(, "result_ttl": "1h"})";
  auto [status, first] = api.post(body);
  ASSERT_EQ(status, 201) << first.dump();
  complete_all(api.db());
  // Completed within the period: the same job (200, not created).
  auto [again, second] = api.post(body);
  EXPECT_EQ(again, 200) << second.dump();
  EXPECT_EQ(second.at("id"), first.at("id"));
  EXPECT_EQ(api.db().scalar("SELECT extract(epoch FROM result_ttl)::int FROM docket.jobs"), "3600");

  const std::pair<std::string, std::string> cases[] = {
      {R"({"kind": "report", "unique_key": "k", "unique_for": "-1m"})", "unique_for: \"-1m\" is negative"},
      {R"({"kind": "report", "unique_key": "k", "unique_for": -60})", "unique_for must be more than 0"},
      {R"({"kind": "report", "unique_key": "k", "unique_for": 0})", "unique_for must be more than 0"},
      {R"({"kind": "report", "unique_key": "k", "unique_for": "400d"})",
       "unique_for must be more than 0 and at most 365 days"},
      {R"({"kind": "report", "unique_key": "k", "unique_for": "soon"})", "unique_for"},
      {R"({"kind": "report", "unique_key": "k", "unique_states": ["completed"]})",
       "unique_states must include every unfinished state"},
      {R"({"kind": "report", "unique_key": "k", "unique_states": ["available", "scheduled", "running", "retryable", "done"]})",
       "unique_states has an unknown state \"done\""},
      {R"({"kind": "report", "unique_key": "k", "unique_states": "completed"})", "unique_states must be an array"},
      {R"({"kind": "report", "unique_key": "k", "unique_states": [1, 2]})", "unique_states must be an array"},
      {R"({"kind": "report", "unique_key": "k", "unique_states": []})", "unique_states must list 1 to 7 job states"},
      {R"({"kind": "report", "unique_key": "k", "unique_states": ["a","b","c","d","e","f","g","h"]})",
       "unique_states must be an array of 1 to 7"},
      {R"({"kind": "report", "unique_key": "k", "unique_states": ["available", "scheduled", "running", "retryable", "\u00ff\u0000"]})",
       "unique_states has an unknown state"},
      {R"({"kind": "report", "unique_for": "10m"})", "unique_for and unique_states need a unique_key"},
      {R"({"kind": "report", "result_ttl": "0s"})", "result_ttl must be more than 0"},
      {R"({"kind": "report", "result_ttl": -5})", "result_ttl must be more than 0"},
      {R"({"kind": "report", "result_ttl": "366d"})", "result_ttl must be more than 0 and at most 365 days"},
  };
  for (const auto& [bad, message] : cases) {
    auto [code, answer] = api.post(bad);
    EXPECT_TRUE(code == 422 || code == 400) << bad << ": " << code;
    EXPECT_NE(answer["error"].value("message", "").find(message), std::string::npos) << bad << ": " << answer.dump();
  }
  EXPECT_EQ(api.jobs(), 1);
  // Still answering.
  EXPECT_EQ(api.post(R"({"kind": "report"})").first, 201);
}

TEST(UniqueOptions, ClientAndBulkTakeThemAndABadJobInABatchWritesNothing) {
  auto db = PgCluster::shared().fresh_database();
  Client client(db->url());
  const std::vector<std::string> with_completed = {"available", "scheduled", "running", "retryable", "completed"};
  EnqueueRequest r{.kind = "report", .unique_key = "m:2026-10"};
  r.unique_for = std::chrono::minutes(10);
  r.unique_states = with_completed;
  const auto first = client.enqueue(r);
  EXPECT_TRUE(first.created);
  complete_all(*db);
  const auto second = client.enqueue(r);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.id, first.id);
  // The batch: two of the same key and one other; the completed job is found by both.
  EnqueueRequest other{.kind = "report", .unique_key = "m:2026-11"};
  other.result_ttl = std::chrono::hours(1);
  const auto batch = client.enqueue_many({r, other, r});
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].id, first.id);
  EXPECT_EQ(batch[2].id, first.id);
  EXPECT_TRUE(batch[1].created);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 2);
  // A hostile job anywhere in a batch: InvalidInput naming jobs[i].field, nothing written.
  EnqueueRequest bad = r;
  bad.unique_states = std::vector<std::string>{"completed"};
  EXPECT_THROW(
      {
        try {
          client.enqueue_many({other, bad});
        } catch (const InvalidInput& e) {
          EXPECT_NE(std::string(e.what()).find("jobs[1].unique_states must include every unfinished state"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      InvalidInput);
  EXPECT_THROW(client.enqueue_many({EnqueueRequest{.kind = "x"},
                                    [] {
                                      EnqueueRequest b{.kind = "report"};
                                      b.unique_for = std::chrono::minutes(1);
                                      return b;
                                    }()}),
               InvalidInput);
  // SQL bulk enqueue: the same fields and errors.
  try {
    db->query(
        R"(SELECT * FROM docket.enqueue_many('[{"kind": "a"}, {"kind": "report", "unique_key": "z", "unique_for": "-1s"}]'))");
    ADD_FAILURE() << "a negative unique_for was accepted";
  } catch (const pqxx::data_exception& e) {
    EXPECT_NE(std::string(e.what()).find("jobs[1].unique_for must be more than 0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 2);
}

TEST(KindUnique, JobsWithoutAKeyGetOneDerivedFromTheChosenArgsOnEverySurface) {
  Api api;
  auto& db = api.db();
  db.query(
      "SELECT docket.seed_kind_results('report', true, ARRAY['args.report', 'args.params'], '10 minutes',"
      " ARRAY['available', 'scheduled', 'running', 'retryable', 'completed'], NULL)");
  const auto a =
      db.scalar(R"(SELECT docket.enqueue('report', '{"report": "sales", "params": {"m": 10}, "by": "ann"}'))");
  // Other args than the chosen ones do not matter; key order inside a value does not either.
  const auto b =
      db.scalar(R"(SELECT docket.enqueue('report', '{"by": "bob", "params": {"m": 10}, "report": "sales"}'))");
  EXPECT_EQ(a, b);
  EXPECT_EQ(db.scalar("SELECT unique_key FROM docket.jobs WHERE id = " + a),
            db.scalar(R"(SELECT 'docket:report:' || md5('["sales", {"m": 10}]'::jsonb::text))"));
  // Other params: another job.
  const auto c = db.scalar(R"(SELECT docket.enqueue('report', '{"report": "sales", "params": {"m": 11}}'))");
  EXPECT_NE(c, a);
  // HTTP, the client, bulk and the CLI's path (Client::enqueue) all land on the same job.
  auto [status, answer] = api.post(R"({"kind": "report", "args": {"report": "sales", "params": {"m": 10}}})");
  EXPECT_EQ(status, 200) << answer.dump();
  EXPECT_EQ(answer.at("id").get<std::int64_t>(), std::stoll(a));
  Client client(db.url());
  const auto bulk = client.enqueue_many({{.kind = "report", .args = {{"report", "sales"}, {"params", {{"m", 10}}}}},
                                         {.kind = "report", .args = {{"report", "sales"}, {"params", {{"m", 11}}}}}});
  EXPECT_EQ(bulk[0].id, std::stoll(a));
  EXPECT_EQ(bulk[1].id, std::stoll(c));
  // Completed within the period still dedups (the kind's states include completed).
  complete_all(db);
  EXPECT_EQ(client.enqueue({.kind = "report", .args = {{"report", "sales"}, {"params", {{"m", 10}}}}}).id,
            std::stoll(a));
  // A schedule's slot is an enqueue too: it dedups the same way (no second job, the slot is skipped).
  db.query(R"(SELECT docket.schedule('daily', '@daily', 'report', '{"report": "sales", "params": {"m": 10}}'))");
  EXPECT_EQ(db.scalar("SELECT coalesce(docket.run_schedule_now('daily')::text, 'none')"), "none");
  EXPECT_EQ(api.jobs(), 2);
  // An explicit unique_key wins: the kind's derivation and period do not apply.
  const auto own =
      db.scalar(R"(SELECT docket.enqueue('report', '{"report": "sales", "params": {"m": 10}}', unique_key => 'mine'))");
  EXPECT_NE(own, a);
  EXPECT_EQ(db.scalar("SELECT unique_key FROM docket.jobs WHERE id = " + own), "mine");
  // An explicit unique_for wins over the kind's period: 1 second, and the job is older than that.
  db.query("UPDATE docket.jobs SET inserted_at = now() - interval '5 seconds' WHERE id = " + a);
  const auto fresh = db.scalar(
      R"(SELECT docket.enqueue('report', '{"report": "sales", "params": {"m": 10}}', unique_for => '1 second'))");
  EXPECT_NE(fresh, a);
  // by = args: all of the args.
  db.query("SELECT docket.seed_kind_results('whole', true, ARRAY['args'], NULL, NULL, NULL)");
  const auto w1 = db.scalar(R"(SELECT docket.enqueue('whole', '{"x": 1, "y": 2}'))");
  EXPECT_EQ(db.scalar(R"(SELECT docket.enqueue('whole', '{"y": 2, "x": 1}'))"), w1);
  EXPECT_NE(db.scalar(R"(SELECT docket.enqueue('whole', '{"x": 1}'))"), w1);
  // Hostile kind settings are refused naming the field, and change nothing.
  const std::pair<std::string, std::string> bad[] = {
      {"ARRAY['tenant'], NULL, NULL", "unique.by entries must be args or a path into args"},
      {"ARRAY['args.a;drop'], NULL, NULL", "unique.by entries must be args"},
      {"ARRAY[]::text[], NULL, NULL", "unique.by must be \"args\" or 1 to 16 paths"},
      {"ARRAY['args'], '-1 minute', NULL", "unique.period must be more than 0"},
      {"ARRAY['args'], NULL, ARRAY['completed']", "unique.states must include every unfinished state"},
      {"NULL, '1 minute', NULL", "unique.period and unique.states need unique.by"},
  };
  for (const auto& [args, message] : bad) {
    try {
      db.query("SELECT docket.seed_kind_results('report', true, " + args + ", NULL)");
      ADD_FAILURE() << args << " was accepted";
    } catch (const pqxx::data_exception& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << args << ": " << e.what();
    }
  }
  EXPECT_EQ(db.scalar("SELECT unique_by::text FROM docket.kinds WHERE kind = 'report'"), "{args.report,args.params}");
}

TEST(ResultTtl, AnExpiredResultReadsAsNullWithWhenAndNoLongerDedups) {
  Api api;
  auto& db = api.db();
  db.query(
      "SELECT docket.seed_kind_results('report', true, ARRAY['args'], '1 day',"
      " ARRAY['available', 'scheduled', 'running', 'retryable', 'completed'], '1 hour')");
  const auto id = db.scalar(R"(SELECT docket.enqueue('report', '{"m": 10}'))");
  complete_all(db);
  auto [status, job] = api.get("/jobs/" + id);
  EXPECT_EQ(job.at("result"), (Json{{"total", 1}}));
  EXPECT_TRUE(job.at("result_expired_at").is_null());
  // Within the TTL: the same job.
  EXPECT_EQ(db.scalar(R"(SELECT docket.enqueue('report', '{"m": 10}'))"), id);
  // Past the kind's TTL (before any prune): every reader sees no result and when it expired.
  db.query("UPDATE docket.jobs SET finished_at = now() - interval '61 minutes' WHERE id = " + id);
  std::tie(status, job) = api.get("/jobs/" + id);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(job.at("result").is_null()) << job.dump();
  EXPECT_FALSE(job.at("result_expired_at").is_null()) << job.dump();
  auto [list_status, list] = api.get("/jobs?unique_key=" + db.scalar("SELECT unique_key FROM docket.jobs"));
  EXPECT_EQ(list_status, 200);
  EXPECT_TRUE(list.at("jobs").at(0).at("result").is_null()) << list.dump();
  Client client(db.url());
  const auto by_key = client.job_by_key(db.scalar("SELECT unique_key FROM docket.jobs"));
  ASSERT_TRUE(by_key);
  EXPECT_TRUE(by_key->result.is_null());
  EXPECT_TRUE(by_key->result_expired_at);
  // The prune clears the stored result by the same rule (and keeps the job).
  EXPECT_EQ(db.scalar("SELECT result IS NOT NULL FROM docket.jobs WHERE id = " + id), "t");
  db.query("SELECT docket.prune()");
  EXPECT_EQ(db.scalar("SELECT result IS NULL AND result_expired_at IS NOT NULL FROM docket.jobs WHERE id = " + id),
            "t");
  // An expired result no longer dedups: the request runs again.
  const auto again = db.scalar(R"(SELECT docket.enqueue('report', '{"m": 10}'))");
  EXPECT_NE(again, id);
  // A job's own result_ttl wins over its kind's, and the prune clears it too.
  const auto own = db.scalar("SELECT docket.enqueue('plain', result_ttl => '10 seconds')");
  db.query(
      "UPDATE docket.jobs SET state = 'completed', finished_at = now() - interval '11 seconds', result = '[1]'"
      " WHERE id = " +
      own);
  db.query("SELECT docket.prune()");
  EXPECT_EQ(db.scalar("SELECT result IS NULL AND result_expired_at IS NOT NULL FROM docket.jobs WHERE id = " + own),
            "t");
  // Jobs of kinds without a TTL keep their result.
  const auto keep = db.scalar("SELECT docket.enqueue('plain')");
  db.query(
      "UPDATE docket.jobs SET state = 'completed', finished_at = now() - interval '20 hours', result = '[2]'"
      " WHERE id = " +
      keep);
  db.query("SELECT docket.prune()");
  EXPECT_EQ(db.scalar("SELECT result::text FROM docket.jobs WHERE id = " + keep), "[2]");
}

TEST(MaxResultBytes, ACppHandlersLargerResultCompletesWithTheDroppedMarkerAsEveryExecutors) {
  auto db = PgCluster::shared().fresh_database();
  const auto big = db->scalar("SELECT docket.enqueue('k', '{\"n\": 300}')");
  const auto fits = db->scalar("SELECT docket.enqueue('k', '{\"n\": 10}')");
  WorkerConfig config;
  config.poll_interval = Millis(50);
  Worker worker(db->url(), config);
  KindConfig options;
  options.max_result_bytes = 100;
  worker.handle(
      "k",
      [](JobContext& ctx) {
        return Outcome::complete(Json{{"s", std::string(ctx.job().args.at("n").get<int>(), 'x')}});
      },
      options);
  std::thread running([&] { worker.run(); });
  const bool finished = test::wait_until(
      [&] { return db->count("SELECT count(*) FROM docket.jobs WHERE state = 'completed'") == 2; }, 20s);
  worker.request_stop();
  running.join();
  ASSERT_TRUE(finished);
  // {"s":"x...x"}: 8 bytes around the 300.
  EXPECT_EQ(db->scalar("SELECT result ->> 'docket_result_dropped' FROM docket.jobs WHERE id = " + big),
            "the result is 308 bytes, larger than the kind's max_result_bytes (100)");
  EXPECT_EQ(db->scalar("SELECT result ->> 'bytes' FROM docket.jobs WHERE id = " + big), "308");
  EXPECT_EQ(db->scalar("SELECT length(result ->> 's') FROM docket.jobs WHERE id = " + fits), "10");
}
