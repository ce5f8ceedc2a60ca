// The enqueue path's trust boundary against a real PostgreSQL and a real HTTP server: a corpus of
// hostile SQL calls and HTTP bodies (exact answer, nothing written, still answering), the
// enqueue_many races (NULL ids, deadlocks), rows holding values enqueue refuses (infinite run_at,
// deep JSON), one poisoned request among many, and a unique key held by an open transaction.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "docket/handler.hpp"
#include "docket/worker.hpp"
#include "pg.hpp"
#include "server.hpp"

using namespace docket;
using namespace std::chrono_literals;
using docket::test::PgCluster;

namespace {

/// An API server on a free port over a fresh database, with the given timeouts.
class HostileApi {
 public:
  explicit HostileApi(ApiConfig config = {}) : db_(PgCluster::shared().fresh_database()) {
    server_ = std::make_unique<api::Server>(db_->url(), config, std::make_shared<Metrics>());
    server_->bind("127.0.0.1:0");
    thread_ = std::thread([this] { server_->run(); });
    for (int i = 0; i < 200 && !http().Get("/openapi.json"); ++i) std::this_thread::sleep_for(10ms);
  }
  ~HostileApi() {
    server_->stop();
    thread_.join();
  }
  httplib::Client http() const {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(30, 0);
    return c;
  }
  test::TestDatabase& db() { return *db_; }

 private:
  std::unique_ptr<test::TestDatabase> db_;
  std::unique_ptr<api::Server> server_;
  std::thread thread_;
};

std::string nested_args(int depth) {
  // {"a": [[...]]}: the args object is level 1, so `depth` levels in all.
  return R"({"a":)" + std::string(static_cast<std::size_t>(depth - 1), '[') +
         std::string(static_cast<std::size_t>(depth - 1), ']') + "}";
}

/// Everything a refused call must leave untouched.
std::string written(test::TestDatabase& db) {
  return db.scalar(
      "SELECT (SELECT count(*) FROM docket.jobs) || '/' || (SELECT count(*) FROM docket.queues) || '/' ||"
      " (SELECT count(*) FROM docket.kinds) || '/' || (SELECT count(*) FROM docket.crawls)");
}

Json body_of(const httplib::Result& r) {
  return Json::parse(r->body);
}

}  // namespace

TEST(Hostile, SqlCallsGetTheExactErrorNamingTheFieldAndWriteNothing) {
  auto db = PgCluster::shared().fresh_database();
  struct Case {
    std::string sql;
    std::string sqlstate;
    std::string message;
  };
  const std::string deep65 = nested_args(65);
  const std::vector<Case> cases = {
      {"SELECT docket.enqueue('k', run_at => 'infinity')", "22023",
       "run_at must be between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z, got infinity"},
      {"SELECT docket.enqueue('k', run_at => '-infinity')", "22023", "run_at must be between"},
      {"SELECT docket.enqueue('k', run_at => '9999-12-31T00:00:00Z')", "22023", "run_at must be between"},
      {"SELECT docket.enqueue('k', run_at => '1600-01-01T00:00:00Z')", "22023", "run_at must be between"},
      {"SELECT docket.enqueue('k', '" + deep65 + "')", "22023", "args nests arrays and objects deeper than 64 levels"},
      {"SELECT docket.enqueue(E'k\\x01')", "22023", "kind must be a non-empty string of at most 200 printable"},
      {"SELECT docket.enqueue('k', queue => repeat('q', 201))", "22023", "queue must be a non-empty string"},
      {"SELECT docket.enqueue('k', '{}', unique_key => '')", "22023", "unique_key must be 1 to 1000 characters"},
      {"SELECT docket.pause(E'q\\n')", "22023", "queue must be a non-empty string of at most 200 printable"},
      {"SELECT docket.pause(repeat('q', 100000))", "22023", "queue must be a non-empty string of at most 200"},
      {"SELECT docket.resume(E'q\\t')", "22023", "queue must be a non-empty string of at most 200 printable"},
      {"SELECT docket.set_limit(E'k\\x7f', 1)", "22023", "kind must be a non-empty string of at most 200 printable"},
      {"SELECT docket.set_limit(repeat('k', 100000), 1)", "22023", "kind must be a non-empty string"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":"a","prio":1}]'))", "22023",
       R"(jobs[1]: unknown field "prio"; fields are kind, args, queue, priority, run_at, max_retries, unique_key, timeout)"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":7}]'))", "22023",
       "jobs[1].kind must be a string, got number"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":["a"]}]'))", "22023",
       "jobs[1].kind must be a string, got array"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":"a"},{"kind":"a"},{"kind":"a","priority":"x"}]'))", "22023",
       "jobs[3].priority must be an integer, got string"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","priority":1.5}]'))", "22023",
       "jobs[0].priority must be an integer within 32 bits, got 1.5"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","max_retries":1e300}]'))", "22023",
       "jobs[0].max_retries must be an integer"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","max_retries":-1}]'))", "22023",
       "jobs[0].max_retries must be >= 0, got -1"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","run_at":"infinity"}]'))", "22023",
       "jobs[0].run_at must be between"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","run_at":"2026-02-30T00:00:00Z"}]'))", "22023",
       R"(jobs[0].run_at must be an RFC 3339 timestamp like 2026-11-21T10:00:00Z, got "2026-02-30T00:00:00Z")"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","run_at":"2026-01-01T00:00:00+99:99"}]'))", "22023",
       "jobs[0].run_at must be an RFC 3339 timestamp"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","run_at":12}]'))", "22023",
       "jobs[0].run_at must be an RFC 3339 timestamp string, got number"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","unique_key":5}]'))", "22023",
       "jobs[0].unique_key must be a string"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","queue":""}]'))", "22023",
       "jobs[0].queue must be a non-empty string"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","args":[1]}]'))", "22023",
       "jobs[0].args must be a JSON object, got array"},
      {"SELECT docket.enqueue_many('[{\"kind\":\"a\"},{\"kind\":\"a\",\"args\":" + deep65 + "}]')", "22023",
       "jobs[1].args nests arrays and objects deeper than 64 levels"},
      // Well-shaped jobs that break a rule: the batch check (docket.job_fields_ok) must catch them too.
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":"a","priority":5000}]'))", "22023",
       "jobs[1].priority must be between 0 (runs first) and 1000, got 5000"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":"   "}]'))", "22023",
       "jobs[1].kind must be a non-empty string"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a\u0001"}]'))", "22023", "jobs[0].kind must be a non-empty string"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","unique_key":""}]'))", "22023",
       "jobs[0].unique_key must be 1 to 1000"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","run_at":"1969-12-31T23:59:59Z"}]'))", "22023",
       "jobs[0].run_at must be between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","max_retries":-2}]'))", "22023",
       "jobs[0].max_retries must be >= 0, got -2"},
      {R"(SELECT docket.enqueue_many('[{"queue":"q"}]'))", "22023", "jobs[0].kind is required"},
      {R"(SELECT docket.enqueue_many('[3]'))", "22023", "jobs[0] must be a JSON object, got number"},
      {R"(SELECT docket.enqueue_many('{"kind":"a"}'))", "22023", "jobs must be a JSON array of job objects"},
      // A job's own timeout (0009): more than 0, at most 365 days, a duration or seconds.
      {"SELECT docket.enqueue('k', timeout => '0 seconds')", "22023",
       "timeout must be more than 0 and at most 365 days, got 00:00:00"},
      {"SELECT docket.enqueue('k', timeout => '-1 second')", "22023", "timeout must be more than 0"},
      {"SELECT docket.enqueue('k', timeout => '366 days')", "22023",
       "timeout must be more than 0 and at most 365 days, got 366 days"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","timeout":"soon"}]'))", "22023",
       R"(jobs[0].timeout must be a duration like "30s" or a number of seconds, got soon)"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","timeout":true}]'))", "22023",
       R"(jobs[0].timeout must be a duration like "30s" or a number of seconds, got boolean)"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a"},{"kind":"a","timeout":0}]'))", "22023",
       "jobs[1].timeout must be more than 0 and at most 365 days, got 00:00:00"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","timeout":1e300}]'))", "22023",
       "jobs[0].timeout must be more than 0 and at most 365 days"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","timeout":"1e300 seconds"}]'))", "22023",
       R"(jobs[0].timeout must be a duration like "30s" or a number of seconds, got 1e300 seconds)"},
      {R"(SELECT docket.enqueue_many('[{"kind":"a","timeout":"400 days"}]'))", "22023",
       "jobs[0].timeout must be more than 0 and at most 365 days, got 400 days"},
  };
  pqxx::connection c(db->url());
  for (const auto& k : cases) {
    std::string state, message;
    try {
      pqxx::nontransaction tx(c);
      tx.exec(k.sql);
    } catch (const pqxx::sql_error& e) {
      state = e.sqlstate();
      message = e.what();
    }
    EXPECT_EQ(state, k.sqlstate) << k.sql << "\n" << message;
    EXPECT_EQ(message.rfind("ERROR:  " + k.message, 0), 0u) << k.sql << "\n" << message;
    EXPECT_EQ(written(*db), "0/0/0/0") << k.sql;
  }
  // Still answering, and the edges are accepted.
  pqxx::nontransaction tx(c);
  tx.exec("SELECT docket.enqueue('k', '" + nested_args(64) + "', run_at => '2199-12-31T23:59:59Z')");
  tx.exec("SELECT docket.enqueue('k', run_at => '1970-01-01T00:00:00Z')");
  tx.exec("SELECT docket.enqueue('k', timeout => '365 days')");
  tx.exec(R"(SELECT docket.enqueue_many('[{"kind":"a","timeout":"1ms"},{"kind":"a","timeout":90.5}]'))");
  EXPECT_EQ(written(*db), "5/0/0/0");
  EXPECT_EQ(db->scalar("SELECT string_agg(coalesce(timeout::text, '-'), ',' ORDER BY id) FROM docket.jobs"),
            "-,-,365 days,00:00:00.001,00:01:30.5");
}

TEST(Hostile, HttpBodiesGetTheExactAnswerAndWriteNothing) {
  HostileApi api;
  struct Case {
    std::string body;
    httplib::Headers headers;
    int status;
    std::string message;
  };
  std::string very_deep;
  for (int i = 0; i < 70000; ++i) very_deep += R"({"a":)";
  const std::vector<Case> cases = {
      {R"({"kind":"k","args":)" + nested_args(65) + "}",
       {},
       400,
       "the request body is not valid JSON: nested deeper than 65 levels (args may nest at most 64 levels"},
      {R"({"kind":"k","args":)" + very_deep, {}, 400, "the request body is not valid JSON: nested deeper than 65"},
      {R"({"kind":"k","args":{"n":1e400}})", {}, 400, "the request body is not valid JSON: at args.n: number overflow"},
      {R"({"kind":"k","args":{"big":123456789012345678901234567890}})",
       {},
       400,
       "the request body is not valid JSON: at args.big: integer 123456789012345678901234567890 does not fit in 64 "
       "bits"},
      {R"({"kind":"k","priority":99999999999999999999})",
       {},
       400,
       "the request body is not valid JSON: at priority: integer 99999999999999999999 does not fit in 64 bits"},
      {R"({"kind":"k","run_at":"9999-12-31T23:59:59Z"})",
       {},
       400,
       "run_at must be an RFC 3339 timestamp with a zone, like 2026-11-21T10:00:00Z, between 1970-01-01T00:00:00Z and "
       "2199-12-31T23:59:59Z; got \"9999-12-31T23:59:59Z\""},
      {R"({"kind":"k","run_at":"1600-01-01T00:00:00Z"})", {}, 400, "run_at must be an RFC 3339 timestamp"},
      {R"({"kind":"k","run_at":"2026-02-30T00:00:00Z"})", {}, 400, "run_at must be an RFC 3339 timestamp"},
      {R"({"kind":"k","run_at":"2026-03-01T00:00:00+99:99"})", {}, 400, "run_at must be an RFC 3339 timestamp"},
      {R"({"kind":"k","run_at":"infinity"})", {}, 400, "run_at must be an RFC 3339 timestamp"},
      {R"({"kind":"k"})", {{"Idempotency-Key", "\xC3\x28\xFF"}}, 400, "the Idempotency-Key header must be valid UTF-8"},
      {R"({"kind":"k"})",
       {{"Idempotency-Key", std::string(1001, 'i')}},
       422,
       "unique_key must be 1 to 1000 characters"},
      {R"({"kind":"k\u0001"})", {}, 422, "kind must be a non-empty string of at most 200 printable characters"},
      {R"({"kind":"k","queue":")" + std::string(201, 'q') + R"("})",
       {},
       422,
       "queue must be a non-empty string of at most 200 printable characters"},
      {R"({"kind":"k","timeout":"soon"})", {}, 400, R"(timeout: "soon" is not a duration)"},
      {R"({"kind":"k","timeout":true})", {}, 400, "timeout must be a string, got boolean"},
      {R"({"kind":"k","timeout":"0s"})", {}, 422, "timeout must be more than 0 and at most 365 days, got 0ms"},
      {R"({"kind":"k","timeout":-5})", {}, 422, "timeout must be more than 0 and at most 365 days"},
      {R"({"kind":"k","timeout":1e300})", {}, 422, "timeout must be more than 0 and at most 365 days"},
      {R"({"kind":"k","timeout":"400d"})", {}, 422, "timeout must be more than 0 and at most 365 days"},
  };
  auto http = api.http();
  for (const auto& k : cases) {
    auto r = http.Post("/jobs", k.headers, k.body, "application/json");
    ASSERT_TRUE(r) << k.body.substr(0, 80);
    EXPECT_EQ(r->status, k.status) << k.body.substr(0, 80) << "\n" << r->body.substr(0, 300);
    const std::string message = body_of(r).at("error").at("message");
    EXPECT_EQ(message.rfind(k.message, 0), 0u) << k.body.substr(0, 80) << "\n" << message.substr(0, 300);
    EXPECT_EQ(written(api.db()), "0/0/0/0") << k.body.substr(0, 80);
  }
  // pause and limits: the names enqueue refuses are refused the same way.
  auto r = http.Post("/queues/q%01/pause", "", "application/json");
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(body_of(r).at("error").at("message"),
            "queue must be a non-empty string of at most 200 printable characters");
  r = http.Put("/limits/k%09x", R"({"max_running": 1})", "application/json");
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(body_of(r).at("error").at("message"),
            "kind must be a non-empty string of at most 200 printable characters");
  // A name too long for enqueue gets enqueue's answer, not "no route".
  r = http.Post("/queues/" + std::string(300, 'q') + "/pause", "", "application/json");
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(body_of(r).at("error").at("message"),
            "queue must be a non-empty string of at most 200 printable characters");
  r = http.Put("/limits/" + std::string(300, 'k'), R"({"max_running": 1})", "application/json");
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(written(api.db()), "0/0/0/0");
  // Still answering.
  EXPECT_EQ(http.Get("/health")->status, 200);
  EXPECT_EQ(http.Post("/jobs", R"({"kind":"k","args":)" + nested_args(64) + "}", "application/json")->status, 201);
  EXPECT_EQ(http.Post("/jobs", R"({"kind":"k","timeout":"90s"})", "application/json")->status, 201);
  EXPECT_EQ(http.Post("/jobs", R"({"kind":"k","timeout":2.5})", "application/json")->status, 201);
  EXPECT_EQ(api.db().scalar("SELECT string_agg(coalesce(timeout::text, '-'), ',' ORDER BY id) FROM docket.jobs"),
            "-,00:01:30,00:00:02.5");
}

TEST(Hostile, EnqueueManyNeverAnswersNullWhileKeyedJobsComplete) {
  // Batched keyed enqueues race completions of the jobs holding those keys: a job that finishes
  // between the insert's conflict and the id look-up used to leave id NULL.
  auto db = PgCluster::shared().fresh_database();
  std::atomic<bool> stop{false};
  std::atomic<long long> calls{0}, nulls{0}, wrong{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      pqxx::connection c(db->url());
      std::mt19937 rng(static_cast<unsigned>(t));
      while (!stop) {
        Json batch = Json::array();
        std::vector<std::string> keys;
        for (int i = 0; i < 8; ++i) {
          keys.push_back("key-" + std::to_string(rng() % 6));
          batch.push_back({{"kind", "race"}, {"unique_key", keys.back()}});
        }
        try {
          pqxx::nontransaction tx(c);
          const auto rows = tx.exec_params("SELECT id FROM docket.enqueue_many($1::jsonb)", batch.dump());
          ++calls;
          if (rows.size() != keys.size()) ++wrong;
          for (std::size_t i = 0; i < rows.size(); ++i) {
            const auto& id = rows[static_cast<int>(i)][0];
            if (id.is_null()) {
              ++nulls;
              continue;
            }
            // The answer at position i is the job of input i: its key (read after the call:
            // the calling statement's snapshot predates the rows the function inserted).
            const auto key = tx.exec_params("SELECT unique_key FROM docket.jobs WHERE id = $1", id.c_str());
            if (key.empty() || key[0][0].c_str() != keys[i]) ++wrong;
          }
        } catch (const std::exception& e) {
          ++errors;
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      pqxx::connection c(db->url());
      while (!stop) {
        pqxx::nontransaction tx(c);
        tx.exec("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE state = 'available'");
      }
    });
  }
  std::this_thread::sleep_for(4s);
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(calls.load(), 50);
  EXPECT_EQ(nulls.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  // At most one live job per key, whatever the interleaving.
  EXPECT_EQ(db->count("SELECT count(*) FROM (SELECT unique_key FROM docket.jobs WHERE state = 'available'"
                      " GROUP BY unique_key HAVING count(*) > 1) d"),
            0);
}

TEST(Hostile, BatchesHoldingTheSameKeysInOppositeOrdersDoNotDeadlock) {
  auto db = PgCluster::shared().fresh_database();
  constexpr int kRounds = 40;
  std::barrier sync(2);
  std::atomic<int> failures{0};
  std::vector<std::vector<long long>> ids(2, std::vector<long long>(kRounds * 10));
  auto session = [&](int who) {
    pqxx::connection c(db->url());
    for (int round = 0; round < kRounds; ++round) {
      Json batch = Json::array();
      for (int i = 0; i < 10; ++i) {
        const int k = who == 0 ? i : 9 - i;
        batch.push_back({{"kind", "dl"}, {"unique_key", "r" + std::to_string(round) + "-k" + std::to_string(k)}});
      }
      sync.arrive_and_wait();
      try {
        pqxx::work tx(c);
        const auto rows = tx.exec_params("SELECT id FROM docket.enqueue_many($1::jsonb)", batch.dump());
        std::this_thread::sleep_for(2ms);  // hold the keys a moment, as an application transaction would
        tx.commit();
        for (int i = 0; i < 10; ++i) {
          const int k = who == 0 ? i : 9 - i;
          ids[static_cast<std::size_t>(who)][static_cast<std::size_t>(round * 10 + k)] = rows[i][0].as<long long>();
        }
      } catch (const std::exception& e) {
        ++failures;
        ADD_FAILURE() << "round " << round << ": " << e.what();
      }
    }
  };
  std::thread a(session, 0), b(session, 1);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  // Both sessions got the same job for each key, in their own input order.
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), kRounds * 10);
}

TEST(Hostile, RowsWithInfiniteRunAtDoNotStallMaintenanceOrOps) {
  // Written around enqueue's checks by a direct INSERT/UPDATE: promote, claim, the ops views and
  // the API must keep working.
  HostileApi api;
  auto& db = api.db();
  db.query(
      "INSERT INTO docket.jobs (kind, run_at, state) VALUES"
      " ('inf', 'infinity', 'scheduled'), ('inf', '-infinity', 'scheduled'), ('inf', 'infinity', 'available'),"
      " ('inf', '-infinity', 'retryable')");
  db.query("INSERT INTO docket.jobs (kind) VALUES ('due')");
  const auto promoted = db.query("SELECT promoted, next_due_in FROM docket.promote()");
  EXPECT_EQ(promoted[0][0].as<int>(), 2);                  // both -infinity rows were due
  EXPECT_DOUBLE_EQ(promoted[0][1].as<double>(), 86400.0);  // infinity: clamped to a day
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.queue_summary"), 1);
  // The age of the oldest available job whose run_at is a real time (0005's view): the infinite
  // rows neither break it nor hide the real backlog behind them.
  EXPECT_EQ(db.scalar("SELECT oldest_available_age_s BETWEEN 0 AND 60 FROM docket.queue_summary"), "t");
  const auto worker = db.scalar("INSERT INTO docket.workers (name) VALUES ('w') RETURNING id");
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.claim('" + worker + "', '{default}', '{inf,due}', 10)"), 4);
  db.query("UPDATE docket.jobs SET state = 'available', worker = NULL WHERE state = 'running'");
  const auto claimed = db.query("SELECT count(*), count(queue_latency_s) FROM docket.finish_and_claim('" + worker +
                                "', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{default}', '{inf,due}', 10)");
  EXPECT_EQ(claimed[0][0].as<int>(), 4);
  EXPECT_EQ(claimed[0][1].as<int>(), 3);  // latency of an infinite run_at: NULL, not an error
  auto http = api.http();
  auto r = http.Get("/queues");
  ASSERT_EQ(r->status, 200) << r->body;
  r = http.Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("docket_database_up 1"), std::string::npos) << r->body;
  r = http.Get("/jobs?kind=inf");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r).at("jobs").size(), 4u);
}

TEST(Hostile, RowsNestedDeeperThanTheLimitAreShownWithANote) {
  HostileApi api;
  auto& db = api.db();
  // SQL users can write deeper jsonb than enqueue accepts; the API must show the job, not crash.
  const auto id = db.scalar("INSERT INTO docket.jobs (kind, args, result) VALUES ('deep', '" + nested_args(5000) +
                            "', '" + nested_args(100) + "') RETURNING id");
  auto http = api.http();
  auto r = http.Get("/jobs/" + id);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
  const auto job = body_of(r);
  EXPECT_EQ(job.at("args"), Json({{"docket_error", "nested deeper than 64 levels; read it with SQL"}}));
  EXPECT_EQ(job.at("result"), Json({{"docket_error", "nested deeper than 64 levels; read it with SQL"}}));
  r = http.Get("/jobs");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r).at("jobs").size(), 1u);
  Client client(db.url());
  EXPECT_EQ(client.job(std::stoll(id))->kind, "deep");
  // A row at the limit is shown as it is.
  const auto ok =
      db.scalar("INSERT INTO docket.jobs (kind, args) VALUES ('deep', '" + nested_args(64) + "') RETURNING id");
  EXPECT_EQ(body_of(http.Get("/jobs/" + ok)).at("args"), Json::parse(nested_args(64)));
}

TEST(Hostile, OnePoisonedRequestFailsAloneAmongManyConcurrentOnes) {
  HostileApi api;
  auto& db = api.db();
  // A crawl of collection "c" is running: a second crawl job of it (with its own key) conflicts
  // in the database, after every check the API can make before merging.
  db.query("INSERT INTO docket.kinds (kind, crawl_collection) VALUES ('crawl.c', 'c')");
  db.query("SELECT docket.enqueue('crawl.c')");
  const auto before = db.count("SELECT count(*) FROM docket.jobs");
  constexpr int kThreads = 16, kEach = 25;
  std::atomic<int> innocent_ok{0}, innocent_bad{0}, poisoned_right{0}, poisoned_wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto http = api.http();
      for (int i = 0; i < kEach; ++i) {
        const int n = t * kEach + i;
        if (n % 10 == 3) {  // the crawl conflict: 409 for this request only
          auto r = http.Post("/jobs", R"({"kind":"crawl.c","unique_key":"other-)" + std::to_string(n) + R"("})",
                             "application/json");
          (r && r->status == 409 ? poisoned_right : poisoned_wrong)++;
        } else if (n % 10 == 7) {  // invalid UTF-8 in the Idempotency-Key: 400 for this request only
          auto r = http.Post("/jobs", {{"Idempotency-Key", "\xFF\xFE"}}, R"({"kind":"k"})", "application/json");
          (r && r->status == 400 ? poisoned_right : poisoned_wrong)++;
        } else {
          const std::string body = n % 2 ? R"({"kind":"k","unique_key":"u-)" + std::to_string(n) + R"("})"
                                         : R"({"kind":"k","args":{"n":)" + std::to_string(n) + "}}";
          auto r = http.Post("/jobs", body, "application/json");
          if (r && r->status == 201 && body_of(r).at("kind") == "k") {
            ++innocent_ok;
          } else {
            ++innocent_bad;
            ADD_FAILURE() << (r ? r->body : std::string("no answer"));
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(innocent_bad.load(), 0);
  EXPECT_EQ(poisoned_wrong.load(), 0);
  EXPECT_EQ(poisoned_right.load(), kThreads * kEach / 5);
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.jobs") - before, innocent_ok.load());
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.jobs WHERE kind = 'crawl.c'"), 1);
}

TEST(Hostile, AKeyHeldByAnOpenTransactionDelaysOnlyItsOwnRequests) {
  ApiConfig config;
  config.lock_timeout = 1000ms;
  config.statement_timeout = 3000ms;
  HostileApi api(config);
  auto& db = api.db();
  // An application transaction enqueues key "held" and stays open for 10 s.
  pqxx::connection app(db.url());
  pqxx::work tx(app);
  tx.exec("SELECT docket.enqueue('k', unique_key => 'held')");
  std::atomic<bool> done{false};
  std::thread retrying([&] {  // a client retrying the held key over HTTP
    auto http = api.http();
    while (!done) {
      const auto started = std::chrono::steady_clock::now();
      auto r = http.Post("/jobs", R"({"kind":"k","unique_key":"held"})", "application/json");
      const auto took = std::chrono::steady_clock::now() - started;
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 503) << r->body;
      EXPECT_EQ(body_of(r).at("error").at("code"), "timeout");
      EXPECT_LT(took, 2500ms);  // its lock timeout (1 s), plus at most one retry on its own
    }
  });
  std::this_thread::sleep_for(300ms);
  auto http = api.http();
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 20; ++i) {
    const auto started = std::chrono::steady_clock::now();
    auto r = http.Post("/jobs", R"({"kind":"k","args":{"i":)" + std::to_string(i) + "}}", "application/json");
    slowest = std::max(slowest, std::chrono::steady_clock::now() - started);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201) << r->body;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LT(slowest, 500ms);  // unrelated requests never wait for the held key
  // A keyed request for another key answers within the lock timeout at worst.
  const auto started = std::chrono::steady_clock::now();
  auto r = http.Post("/jobs", R"({"kind":"k","unique_key":"free"})", "application/json");
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms);
  std::this_thread::sleep_for(7s);  // the transaction holds its key for about 10 s in all
  done = true;
  retrying.join();
  tx.commit();
  EXPECT_EQ(db.count("SELECT count(*) FROM docket.jobs WHERE unique_key = 'held'"), 1);
  // A lock on the whole table (once the application transaction is gone): reads answer 503 within the lock timeout
  // instead of waiting.
  pqxx::connection locker(db.url());
  {
    pqxx::work lock_tx(locker);
    lock_tx.exec("LOCK TABLE docket.jobs IN ACCESS EXCLUSIVE MODE");
    const auto t0 = std::chrono::steady_clock::now();
    auto listed = http.Get("/jobs");
    EXPECT_EQ(listed->status, 503) << listed->body;
    EXPECT_EQ(body_of(listed).at("error").at("code"), "timeout");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  }
  EXPECT_EQ(http.Get("/health")->status, 200);
}

TEST(Hostile, AWorkerFailsAJobWhoseArgsRowIsTooDeepAndCarriesOn) {
  // Args written by SQL around enqueue's checks: the worker must fail that job, naming why, and
  // keep running the others (it used to parse, copy and dump them recursively).
  auto db = PgCluster::shared().fresh_database();
  const auto deep =
      db->scalar("INSERT INTO docket.jobs (kind, args) VALUES ('k', '" + nested_args(5000) + "') RETURNING id");
  const auto fine = db->scalar("SELECT docket.enqueue('k', '{\"n\": 1}')");
  std::atomic<int> handled{0};
  WorkerConfig config;
  config.poll_interval = Millis(50);
  Worker worker(db->url(), config);
  worker.handle("k", [&](JobContext& ctx) {
    ++handled;
    return Outcome::complete(ctx.job().args);
  });
  std::thread running([&] { worker.run(); });
  const bool finished = test::wait_until(
      [&] { return db->count("SELECT count(*) FROM docket.jobs WHERE finished_at IS NOT NULL") == 2; }, 20s);
  const auto later = db->scalar("SELECT docket.enqueue('k', '{\"n\": 2}')");
  const bool still_running = test::wait_until(
      [&] { return db->scalar("SELECT state FROM docket.jobs WHERE id = " + later) == "completed"; }, 20s);
  worker.request_stop();
  running.join();
  ASSERT_TRUE(finished);
  EXPECT_TRUE(still_running);
  EXPECT_EQ(db->scalar("SELECT state FROM docket.jobs WHERE id = " + deep), "failed");
  EXPECT_EQ(db->scalar("SELECT errors -> -1 ->> 'error' FROM docket.jobs WHERE id = " + deep),
            "args: nested deeper than 64 levels");
  EXPECT_EQ(db->scalar("SELECT result::text FROM docket.jobs WHERE id = " + fine), "{\"n\": 1}");
  EXPECT_EQ(handled.load(), 2);
}

TEST(Hostile, MergedKeyedPostsRacingCompletionsEachGetTheirOwnJob) {
  // Over HTTP the submitter merges concurrent POSTs into one enqueue_many: while the keys' jobs
  // keep completing, every client must still get the job of its own key (never another
  // client's, never id 0, never a 201 for someone else's job).
  HostileApi api;
  auto& db = api.db();
  std::atomic<bool> stop{false};
  std::thread completer([&] {
    pqxx::connection c(db.url());
    while (!stop) {
      pqxx::nontransaction tx(c);
      tx.exec("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE state = 'available'");
    }
  });
  std::atomic<int> right{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 12; ++t) {
    clients.emplace_back([&, t] {
      auto http = api.http();
      for (int i = 0; i < 40; ++i) {
        const std::string key = "key-" + std::to_string((t + i) % 5);
        const std::string kind = "kind-" + std::to_string(t % 3);
        auto r = http.Post("/jobs", {{"Idempotency-Key", key}}, R"({"kind":")" + kind + R"("})", "application/json");
        if (!r || (r->status != 200 && r->status != 201)) {
          ++wrong;
          ADD_FAILURE() << (r ? r->body : std::string("no answer"));
          continue;
        }
        const auto job = body_of(r);
        const bool mine = job.at("id").get<long long>() > 0 && job.at("unique_key") == key;
        // A 201 is a job this request created: its kind is this request's.
        const bool created_right = r->status != 201 || job.at("kind") == kind;
        if (mine && created_right) {
          ++right;
        } else {
          ++wrong;
          ADD_FAILURE() << key << " " << kind << " got " << r->status << " " << r->body;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  stop = true;
  completer.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(right.load(), 12 * 40);
}

namespace {
/// A C++ handler's gate that ignores the run's stop token: a run waits until it is released.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return released; });
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    cv.notify_all();
  }
};

/// A worker whose runs of "deaf" time out after 200 ms and are stuck 300 ms later.
WorkerConfig stuck_worker_config() {
  WorkerConfig config;
  config.poll_interval = Millis(50);
  config.promote_interval = Millis(50);
  config.stuck_after = Millis(300);
  return config;
}
KindConfig deaf_kind(int max_retries) {
  KindConfig kind;
  kind.timeout = Millis(200);
  kind.max_retries = max_retries;
  kind.backoff.strategy = Backoff::Strategy::fixed;
  kind.backoff.delay = Millis(100);
  kind.backoff.jitter = 0;
  return kind;
}
constexpr const char* kStuckError = "timed out after 200ms (its handler had not returned 300ms after it was stopped)";
}  // namespace

// A C++ handler that ignores its stop token past its timeout (River #1258: jobs left `running` for
// days that way, the worker's heartbeat keeping them from rescue). After worker.stuck_after its
// job is retried without it, the other jobs keep running, its late return changes nothing, and the
// next attempt runs normally.
TEST(Hostile, AHandlerThatIgnoresItsTimeoutIsStuckAndItsJobRetriesWithoutWaitingForIt) {
  auto db = PgCluster::shared().fresh_database();
  const auto deaf = db->scalar("SELECT docket.enqueue('deaf', '{}')");
  Gate gate;
  std::atomic<int> attempts{0};
  Worker worker(db->url(), stuck_worker_config());
  worker.handle(
      "deaf",
      [&](JobContext&) {
        if (++attempts == 1) gate.wait();  // ignores ctx.stop_requested()
        return Outcome::complete();
      },
      deaf_kind(3));
  worker.handle("k", [](JobContext&) { return Outcome::complete(); });
  std::thread running([&] { worker.run(); });
  // Stopped at 200 ms, stuck 300 ms later: its retry is written while the handler still runs.
  const bool retried = test::wait_until(
      [&] { return db->count("SELECT jsonb_array_length(errors) FROM docket.jobs WHERE id = " + deaf) > 0; }, 10s);
  // (The first attempt's handler still hangs: it is released below.)
  const std::string error = db->scalar("SELECT errors -> 0 ->> 'error' FROM docket.jobs WHERE id = " + deaf);
  // The worker still runs other jobs.
  const auto other = db->scalar("SELECT docket.enqueue('k', '{}')");
  const bool others_run = test::wait_until(
      [&] { return db->scalar("SELECT state::text FROM docket.jobs WHERE id = " + other) == "completed"; }, 10s);
  // The second attempt ran on another thread while the first still hangs; then the first returns.
  const bool second_done = test::wait_until(
      [&] { return db->scalar("SELECT state::text FROM docket.jobs WHERE id = " + deaf) == "completed"; }, 10s);
  gate.release();
  std::this_thread::sleep_for(300ms);
  worker.request_stop();
  running.join();
  ASSERT_TRUE(retried);
  EXPECT_EQ(error, kStuckError);
  EXPECT_TRUE(others_run);
  EXPECT_TRUE(second_done);
  EXPECT_EQ(attempts.load(), 2);
  EXPECT_EQ(db->scalar("SELECT attempt || '/' || state FROM docket.jobs WHERE id = " + deaf), "2/completed");
  EXPECT_EQ(db->count("SELECT jsonb_array_length(errors) FROM docket.jobs WHERE id = " + deaf), 1);
}

// A stuck run whose outcome is written already does not hold the worker's shutdown for its
// shutdown_timeout: the worker stops as soon as the runs it can still wait for are done.
TEST(Hostile, AStuckRunDoesNotHoldTheShutdownForItsWholeTimeout) {
  auto db = PgCluster::shared().fresh_database();
  const auto deaf = db->scalar("SELECT docket.enqueue('deaf', '{}')");
  Gate gate;
  WorkerConfig config = stuck_worker_config();
  config.shutdown_timeout = Millis(20000);
  auto worker = std::make_unique<Worker>(db->url(), config);
  worker->handle(
      "deaf",
      [&](JobContext&) {
        gate.wait();
        return Outcome::complete();
      },
      deaf_kind(0));
  std::thread running([&] { worker->run(); });
  const bool failed = test::wait_until(
      [&] { return db->scalar("SELECT state::text FROM docket.jobs WHERE id = " + deaf) == "failed"; }, 10s);
  const auto t0 = std::chrono::steady_clock::now();
  worker->request_stop();
  running.join();
  const auto stopped_in = std::chrono::steady_clock::now() - t0;
  gate.release();
  std::this_thread::sleep_for(200ms);  // the abandoned thread returns before the worker goes
  worker.reset();
  ASSERT_TRUE(failed);  // max_retries 0: the timeout written without the handler fails it
  EXPECT_LT(stopped_in, 5s);
  EXPECT_EQ(db->scalar("SELECT errors -> 0 ->> 'error' FROM docket.jobs WHERE id = " + deaf), kStuckError);
}
