// The volatile-report case (issue 13) with a real `docket worker` and `docket api`: a kind whose
// jobs dedup on chosen args over a period, results that expire, waiting for the outcome, and a
// result larger than the kind's max_result_bytes.
#include <httplib.h>

#include <atomic>
#include <thread>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {

/// POST /jobs then GET /jobs/{id}?wait=20s: the two answers' bodies.
struct Asked {
  int status = 0;
  Json posted;
  Json waited;
};

Asked ask(int port, const std::string& body) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(30, 0);
  Asked a;
  auto r = http.Post("/jobs", body, "application/json");
  if (!r) return a;
  a.status = r->status;
  a.posted = Json::parse(r->body, nullptr, false);
  if (!a.posted.contains("id")) return a;
  auto w = http.Get("/jobs/" + std::to_string(a.posted.at("id").get<std::int64_t>()) + "?wait=20s");
  if (w) a.waited = Json::parse(w->body, nullptr, false);
  return a;
}

long long runs(const std::filesystem::path& file) {
  return static_cast<long long>(docket::test::read_lines(file).size());
}

}  // namespace

TEST(Reports, FiftyIdenticalRequestsRunOnceAndShareTheResultUntilThePeriodOrTheTtlEnds) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const auto runs_file = dir / "runs.txt";
  auto worker = start_docket_worker(*db, dir,
                                    R"([worker]
name = "w"
concurrency = 4
[kinds.report]
command = ["/bin/sh", "-c", "cat > /dev/null; echo run >> )" +
                                        runs_file.string() + R"(; sleep 0.5; echo '{\"rows\": 42}'"]
unique = { by = ["args.report", "args.params"], period = "5s", states = ["available", "scheduled", "running", "retryable", "completed"] }
result_ttl = "1h"
)");
  ASSERT_TRUE(wait_registered(*db, "w")) << worker->log_text();
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"}, {{"DATABASE_URL", db->url()}}, dir / "api.log");
  const int port = api_port_from_log(api, "url");
  ASSERT_GT(port, 0) << api.log_text();
  const std::string sales = R"({"kind": "report", "args": {"report": "sales", "params": {"month": 10}, "by": "ann"}})";

  // 50 concurrent identical requests: one job, one run, 50 identical answers, each wait gets the result.
  std::vector<Asked> answers(50);
  std::atomic<int> ready{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&, i] {
      ++ready;
      while (ready.load() < 50) std::this_thread::yield();
      answers[i] = ask(port, sales);
    });
  }
  for (auto& t : clients) t.join();
  const auto id = answers[0].posted.value("id", std::int64_t{0});
  ASSERT_GT(id, 0) << answers[0].posted.dump();
  int created = 0;
  for (const auto& a : answers) {
    EXPECT_TRUE(a.status == 201 || a.status == 200) << a.status << " " << a.posted.dump();
    created += a.status == 201;
    EXPECT_EQ(a.posted.at("id"), id);
    EXPECT_EQ(a.waited.at("id"), id);
    EXPECT_EQ(a.waited.at("state"), "completed") << a.waited.dump();
    EXPECT_EQ(a.waited.at("result"), (Json{{"rows", 42}}));
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(runs(runs_file), 1);
  const std::string key = answers[0].posted.at("unique_key");
  EXPECT_EQ(key.rfind("docket:report:", 0), 0u) << key;

  // After completion, within the period: the same job and its result, no run.
  auto later = ask(port, sales);
  EXPECT_EQ(later.status, 200);
  EXPECT_EQ(later.posted.at("id"), id);
  EXPECT_EQ(later.posted.at("result"), (Json{{"rows", 42}}));
  EXPECT_EQ(runs(runs_file), 1);

  // Found by key on every surface, with the result.
  httplib::Client http("127.0.0.1", port);
  auto listed = http.Get("/jobs?unique_key=" + key);
  ASSERT_TRUE(listed);
  EXPECT_EQ(Json::parse(listed->body).at("jobs").at(0).at("result"), (Json{{"rows", 42}})) << listed->body;
  const std::map<std::string, std::string> env = {{"DATABASE_URL", db->url()}, {"DOCKET_LOG_LEVEL", "warn"}};
  auto shown = run({DOCKET_BIN, "job", "--key", key, "--json"}, env);
  EXPECT_EQ(shown.status, 0) << shown.err;
  EXPECT_EQ(Json::parse(shown.out).at("id"), id);
  EXPECT_EQ(Json::parse(shown.out).at("result"), (Json{{"rows", 42}}));
  auto none = run({DOCKET_BIN, "job", "--key", "no such key"}, env);
  EXPECT_EQ(none.status, 3) << none.out << none.err;
  EXPECT_NE(none.err.find("no job with unique key \"no such key\""), std::string::npos) << none.err;

  // The CLI takes the same options and refuses hostile ones with exit 2 naming the flag, writing nothing.
  const auto before = db->count("SELECT count(*) FROM docket.jobs");
  const std::pair<std::vector<std::string>, std::string> bad[] = {
      {{"--unique-key", "k", "--unique-for=-5m"}, "--unique-for"},
      {{"--unique-key", "k", "--unique-for", "0s"}, "unique_for must be more than 0"},
      {{"--unique-key", "k", "--unique-for", "400d"}, "unique_for must be more than 0 and at most 365 days"},
      {{"--unique-key", "k", "--unique-states", "completed"}, "--unique-states must include every unfinished state"},
      {{"--unique-key", "k", "--unique-states", "available,scheduled,running,retryable,done"},
       "--unique-states has an unknown state \"done\""},
      {{"--result-ttl", "0s"}, "result_ttl must be more than 0"},
      {{"--unique-for", "10m"}, "unique_for and unique_states need a unique_key"},
  };
  for (const auto& [flags, message] : bad) {
    std::vector<std::string> argv = {DOCKET_BIN, "enqueue", "plain"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto r = run(argv, env);
    EXPECT_EQ(r.status, 2) << flags[flags.size() - 1] << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), before);
  auto cli = run({DOCKET_BIN, "enqueue", "report", R"({"report": "sales", "params": {"month": 10}})", "--json"}, env);
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_EQ(Json::parse(cli.out).at("id"), id);
  EXPECT_EQ(Json::parse(cli.out).at("created"), false);
  cli = run({DOCKET_BIN, "enqueue", "plain", "--unique-key", "p1", "--unique-for", "10m", "--unique-states",
             "available,scheduled,running,retryable,completed", "--result-ttl", "1h"},
            env);
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_EQ(db->scalar("SELECT extract(epoch FROM result_ttl)::int FROM docket.jobs WHERE unique_key = 'p1'"), "3600");
  db->query("DELETE FROM docket.jobs WHERE unique_key = 'p1'");

  // After the period: a new run.
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT count(*) FROM docket.jobs WHERE inserted_at < now() - interval '5 seconds'") == 1;
      },
      10s));
  auto after_period = ask(port, sales);
  EXPECT_EQ(after_period.status, 201) << after_period.posted.dump();
  EXPECT_NE(after_period.posted.at("id"), id);
  EXPECT_EQ(after_period.waited.at("result"), (Json{{"rows", 42}}));
  EXPECT_EQ(runs(runs_file), 2);

  // A short result_ttl of its own: after it the job is still there, its result null with
  // result_expired_at, and the next request runs again (an expired result no longer dedups).
  const std::string costs = R"({"kind": "report", "args": {"report": "costs"}, "result_ttl": "1s"})";
  auto first = ask(port, costs);
  ASSERT_EQ(first.waited.at("result"), (Json{{"rows", 42}})) << first.waited.dump();
  const auto costs_id = first.posted.at("id").get<std::int64_t>();
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = http.Get("/jobs/" + std::to_string(costs_id));
        return r && !Json::parse(r->body).at("result_expired_at").is_null();
      },
      10s));
  auto expired = Json::parse(http.Get("/jobs/" + std::to_string(costs_id))->body);
  EXPECT_EQ(expired.at("state"), "completed");
  EXPECT_TRUE(expired.at("result").is_null()) << expired.dump();
  auto rerun = ask(port, costs);
  EXPECT_EQ(rerun.status, 201) << rerun.posted.dump();
  EXPECT_NE(rerun.posted.at("id"), costs_id);
  EXPECT_EQ(rerun.waited.at("result"), (Json{{"rows", 42}}));
  EXPECT_EQ(runs(runs_file), 4);
  // Both processes are still alive and answering.
  EXPECT_TRUE(worker->running());
  EXPECT_EQ(http.Get("/health")->status, 200);
}

TEST(Reports, AResultAboveTheKindsMaxResultBytesCompletesWithTheDroppedMarker) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto worker = start_docket_worker(*db, dir, R"([worker]
name = "w"
[kinds.big]
command = ["/bin/sh", "-c", "cat > /dev/null; printf '{\"rows\": \"%0200d\"}' 0"]
max_result_bytes = 100
[kinds.small]
command = ["/bin/sh", "-c", "cat > /dev/null; echo '{\"rows\": 1}'"]
max_result_bytes = 100
)");
  ASSERT_TRUE(wait_registered(*db, "w")) << worker->log_text();
  Client client(db->url());
  const auto big = client.enqueue({.kind = "big"}).id;
  const auto small = client.enqueue({.kind = "small"}).id;
  const auto b = client.wait(big, 20s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->state, JobState::completed);
  EXPECT_EQ(b->result.at("docket_result_dropped"),
            "the result is 211 bytes, larger than the kind's max_result_bytes (100)")
      << b->result.dump();
  EXPECT_EQ(b->result.at("bytes"), 211);
  const auto s = client.wait(small, 20s);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->result, (Json{{"rows", 1}}));
  EXPECT_TRUE(wait_until(
      [&] { return worker->log_text().find("job.result_dropped job_id=" + std::to_string(big)) != std::string::npos; },
      5s))
      << worker->log_text();
  // A bad limit is refused at load, naming the field.
  docket::test::write_file(dir / "bad.toml", "[kinds.big]\ncommand = [\"/bin/true\"]\nmax_result_bytes = \"2MiB\"\n");
  auto r = run({DOCKET_BIN, "--config", (dir / "bad.toml").string(), "worker"}, {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("kinds.big.max_result_bytes must be between 1 byte and 1MiB"), std::string::npos) << r.err;
}
