// Docket through PgBouncer in transaction mode (pooler = "transaction"): workers, SQL, bulk and
// HTTP enqueues share a small server pool; LISTEN goes around it through listen_url. The engine
// suite's own tests rerun through PgBouncer too (CMakeLists.txt, PgBouncer/...).
#include <httplib.h>

#include <atomic>
#include <thread>

#include "e2e.hpp"
#include "pgbouncer.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::PgBouncer;

namespace {

/// set_pooler for this test only: the next test in this process connects directly again.
struct TransactionPooling {
  TransactionPooling() { set_pooler(Pooler::transaction); }
  ~TransactionPooling() { set_pooler(Pooler::none); }
};

/// A test worker on `url` through the pooler, listening on `listen_url` ("" = polling only).
std::unique_ptr<Child> pooled_worker(const std::string& url, const std::string& listen_url, const TempDir& dir,
                                     const std::string& name, std::vector<std::string> extra) {
  std::vector<std::string> argv = {DOCKET_TEST_WORKER_BIN,         "--database-url", url, "--record",
                                   (dir / "records.txt").string(), "--name",         name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::map<std::string, std::string> env = {{"DOCKET_POOLER", "transaction"}};
  if (!listen_url.empty()) env["DOCKET_LISTEN_URL"] = listen_url;
  return std::make_unique<Child>(argv, env, dir / (name + ".log"));
}

/// The most server connections PgBouncer held to `database` while it ran, sampled every 5 ms.
class ServerConnectionSampler {
 public:
  ServerConnectionSampler(const std::string& direct_url, const std::string& database)
      : thread_([this, direct_url, database] {
          pqxx::connection c(direct_url);
          while (!stop_) {
            pqxx::nontransaction tx(c);
            const auto n = tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2",
                                          PgBouncer::kServerRole, database)[0][0]
                               .as<int>();
            most_ = std::max(most_.load(), n);
            samples_.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }) {}
  ~ServerConnectionSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int most() const { return most_; }
  int samples() const { return samples_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> most_{0};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

}  // namespace

TEST(PgBouncer, TenWorkersOfConcurrencyTwentyStayWithinThePoolAndRunEveryJobOnce) {
  ASSERT_TRUE(test::pgbouncer_available()) << "install pgbouncer: scripts/deps.sh test";
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  constexpr int kPool = 8;
  PgBouncer bouncer(db->name(), "transaction", kPool);
  TransactionPooling pooling;
  ServerConnectionSampler sampler(db->direct_url(), db->name());

  // Workers poll only every 30 s: every job below is found through a NOTIFY on listen_url.
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 10; ++i) {
    workers.push_back(pooled_worker(bouncer.url(), db->direct_url(), dir, "p" + std::to_string(i),
                                    {"--concurrency", "20", "--poll", "30s", "--log-level", "warn"}));
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(wait_registered(*db, "p" + std::to_string(i))) << workers[i]->log_text();
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"},
            {{"DATABASE_URL", bouncer.url()}, {"DOCKET_POOLER", "transaction"}}, dir / "api.log");
  const int port = api_port_from_log(api, "url");
  ASSERT_GT(port, 0) << api.log_text();

  const auto start = std::chrono::steady_clock::now();
  // SQL through the pooler: single statements, and one transaction of several enqueues.
  {
    pqxx::connection sql(bouncer.url());
    for (int i = 0; i < 300; ++i) {
      pqxx::nontransaction tx(sql);
      tx.exec_params("SELECT docket.enqueue('test.sleep', jsonb_build_object('ms', $1::int))", i % 50);
    }
    pqxx::work tx(sql);
    for (int i = 0; i < 100; ++i) tx.exec("SELECT docket.enqueue('test.count')");
    tx.commit();
  }
  // docket::Client through the pooler: the COPY bulk path and single enqueues.
  Client client(bouncer.url());
  client.enqueue_many(std::vector<EnqueueRequest>(1000, EnqueueRequest{.kind = "test.count"}));
  for (int i = 0; i < 100; ++i) client.enqueue({.kind = "test.count"});
  // HTTP through the pooler.
  httplib::Client http("127.0.0.1", port);
  int created = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = http.Post("/jobs", R"({"kind":"test.count"})", "application/json");
    if (r && r->status == 201) ++created;
  }
  EXPECT_EQ(created, 200);
  constexpr long long kJobs = 300 + 100 + 1000 + 100 + 200;
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == kJobs; }, 60s))
      << count_state(*db, "completed") << " completed\n"
      << workers[0]->log_text() << bouncer.log_text();
  const double took = seconds_since(start);
  sampler.stop();

  std::map<std::int64_t, int> runs;
  for (const auto& r : read_records(dir / "records.txt")) {
    if (r.event != "end") ++runs[r.id];  // test.sleep records start and end; test.count one line
  }
  EXPECT_EQ(static_cast<long long>(runs.size()), kJobs);
  int twice = 0;
  for (const auto& [id, n] : runs) twice += n != 1;
  EXPECT_EQ(twice, 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE state <> 'completed' OR attempt <> 1"), 0);
  if (twice != 0) {
    // Why a job ran again: every worker's warnings (lease lost, rescues, lost claims, reconnects).
    for (const auto& w : workers) std::cout << w->log_text();
    std::cout << bouncer.log_text();
  }
  std::cout << "pgbouncer: " << kJobs << " jobs (SQL, COPY, Client, HTTP) through a transaction pool of " << kPool
            << " on 10 workers x concurrency 20 in " << took << " s (" << static_cast<double>(kJobs) / took
            << " jobs/s incl. enqueue); most server connections " << sampler.most() << " in " << sampler.samples()
            << " samples\n";
  EXPECT_GT(sampler.most(), 0);
  EXPECT_LE(sampler.most(), kPool);

  // A job enqueued now, long before any worker polls again, runs at once: the NOTIFY arrives.
  const auto woken_at = std::chrono::steady_clock::now();
  const auto late = client.enqueue({.kind = "test.count"}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(late)->state == JobState::completed; }, 10s));
  const double latency = seconds_since(woken_at);
  std::cout << "pgbouncer: a job enqueued through the pool completed " << latency * 1000
            << " ms later (poll interval 30 s)\n";
  EXPECT_LT(latency, 5.0);
  for (const auto& w : workers) EXPECT_EQ(w->log_text().find("does not exist"), std::string::npos) << w->log_text();

  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(10s), 0) << api.log_text();
}

TEST(PgBouncer, MigrateRefusesTheTransactionPoolAndUsesListenUrl) {
  ASSERT_TRUE(test::pgbouncer_available()) << "install pgbouncer: scripts/deps.sh test";
  auto db = PgCluster::shared().fresh_database();
  PgBouncer bouncer(db->name(), "transaction", 2);
  auto refused =
      test::run({DOCKET_BIN, "migrate"}, {{"DATABASE_URL", bouncer.url()}, {"DOCKET_POOLER", "transaction"}});
  EXPECT_EQ(refused.status, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("docket migrate needs a session of its own"), std::string::npos) << refused.err;
  // Nothing was left behind on a server session: no advisory lock anywhere.
  EXPECT_EQ(db->count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
  auto ok = test::run(
      {DOCKET_BIN, "migrate"},
      {{"DATABASE_URL", bouncer.url()}, {"DOCKET_POOLER", "transaction"}, {"DOCKET_LISTEN_URL", db->direct_url()}});
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("schema is up to date"), std::string::npos) << ok.out;
}

TEST(PgBouncer, AWorkerNotToldAboutTheTransactionPoolFailsWithAClearError) {
  ASSERT_TRUE(test::pgbouncer_available()) << "install pgbouncer: scripts/deps.sh test";
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PgBouncer bouncer(db->name(), "transaction", 4);
  // Without DOCKET_POOLER a named prepared statement meets another server session sooner or
  // later; the error says what to set instead of "prepared statement ... does not exist".
  Client direct(db->direct_url());
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(std::make_unique<Child>(
        std::vector<std::string>{DOCKET_TEST_WORKER_BIN, "--database-url", bouncer.url(), "--name",
                                 "unaware" + std::to_string(i), "--concurrency", "4", "--poll", "20ms"},
        std::map<std::string, std::string>{}, dir / ("unaware" + std::to_string(i) + ".log")));
  }
  direct.enqueue_many(std::vector<EnqueueRequest>(200, EnqueueRequest{.kind = "test.count"}));
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& w : workers) {
          if (w->log_text().find("pooler = \\\"transaction\\\"") != std::string::npos ||
              w->log_text().find("pooler = \"transaction\"") != std::string::npos)
            return true;
        }
        return false;
      },
      30s))
      << workers[0]->log_text();
}
