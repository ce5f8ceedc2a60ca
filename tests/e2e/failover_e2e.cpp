// PostgreSQL failover: a primary with a synchronous streaming replica, workers and the API on a
// multi-host URL with target_session_attrs=read-write. The primary is stopped hard mid-run and the
// replica promoted: everyone reconnects by themselves, no acknowledged enqueue is lost, every job
// completes, and a job runs again only if it was running when the primary died.
#include <httplib.h>

#include <atomic>
#include <thread>

#include "docket/embedded.hpp"
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {

/// Runs a PostgreSQL program as the OS user the clusters run as (initdb and friends refuse root).
test::RunResult as_postgres(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
  return run(argv);
}

std::string pg_program(const std::string& name) {
  return (embedded::find_pg_bin() / name).string();
}

/// A standby of `primary` in `dir`, made by pg_basebackup -R, started and streaming.
std::unique_ptr<embedded::Cluster> start_standby(PgCluster& primary, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0777);
  auto standby = std::make_unique<embedded::Cluster>(test::test_cluster_options(dir));
  const auto backup = as_postgres({pg_program("pg_basebackup"), "-D", standby->data_dir().string(), "-d",
                                   primary.url("postgres"), "-R", "-X", "stream", "-N", "-c", "fast"});
  if (backup.status != 0)
    throw std::runtime_error("pg_basebackup failed (" + std::to_string(backup.status) + "): " + backup.err);
  // The copied configuration names the primary's socket directory: the standby gets its own.
  std::ofstream(standby->data_dir() / "postgresql.conf", std::ios::app)
      << "\nunix_socket_directories = '" << standby->socket_dir().string() << "'\n";
  standby->start();
  return standby;
}

/// `postgresql:///db?host=A,B&...`: libpq tries the hosts in order and keeps the writable one.
std::string multi_host_url(const std::string& database, const std::vector<std::filesystem::path>& sockets) {
  std::string hosts;
  for (const auto& s : sockets) hosts += (hosts.empty() ? "" : ",") + s.string();
  return "postgresql:///" + database + "?host=" + hosts + "&user=postgres&target_session_attrs=read-write";
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST(Failover, APromotedSyncReplicaTakesOverLosingNoAcknowledgedEnqueueAndRunningNothingTwiceButInFlightJobs) {
  TempDir dir;
  PgCluster primary(dir / "primary", true);
  {
    pqxx::connection admin(primary.url("postgres"));
    pqxx::nontransaction(admin).exec("CREATE DATABASE app TEMPLATE docket_template");
  }
  auto standby = start_standby(primary, dir / "standby");
  pqxx::connection primary_admin(primary.url("postgres"));
  ASSERT_TRUE(wait_until(
      [&] {
        return pqxx::nontransaction(primary_admin)
                   .exec("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")
                   .size() == 1;
      },
      30s));
  // Synchronous from here: a commit returns once the standby has flushed it.
  pqxx::nontransaction(primary_admin).exec("ALTER SYSTEM SET synchronous_standby_names = '*'");
  pqxx::nontransaction(primary_admin).exec("ALTER SYSTEM SET synchronous_commit = 'on'");
  pqxx::nontransaction(primary_admin).exec("SELECT pg_reload_conf()");
  ASSERT_TRUE(wait_until(
      [&] {
        return pqxx::nontransaction(primary_admin)
                   .exec("SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'")
                   .size() == 1;
      },
      30s));
  const std::string url = multi_host_url("app", {primary.cluster().socket_dir(), standby->socket_dir()});
  const std::string standby_url = standby->url("app");

  // Ops queries may go to the replica: read-only, and they say so by working.
  const auto stats = run({DOCKET_BIN, "stats", "--database-url", standby_url});
  EXPECT_EQ(stats.status, 0) << stats.out << stats.err;
  const auto jobs = run({DOCKET_BIN, "jobs", "--database-url", standby_url});
  EXPECT_EQ(jobs.status, 0) << jobs.out << jobs.err;

  std::vector<std::unique_ptr<Child>> workers;
  for (const std::string name : {"w1", "w2"}) {
    workers.push_back(
        std::make_unique<Child>(std::vector<std::string>{DOCKET_TEST_WORKER_BIN, "--database-url", url, "--record",
                                                         (dir / "records.txt").string(), "--name", name,
                                                         "--concurrency", "4", "--lease", "3s", "--rescue", "500ms"},
                                std::map<std::string, std::string>{}, dir / (name + ".log")));
  }
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"}, {{"DATABASE_URL", url}}, dir / "api.log");
  const int port = api_port_from_log(api, "url");
  ASSERT_GT(port, 0) << api.log_text();

  // A producer over HTTP for the whole run, keeping every id the API acknowledged with 201.
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::set<int> refusals;  // the statuses of the refused ones (0: no answer)
  std::vector<long long> acknowledged;
  std::thread producer([&] {
    httplib::Client http("127.0.0.1", port);
    http.set_read_timeout(10, 0);
    while (!stop) {
      const auto r = http.Post("/jobs", R"({"kind":"test.record","args":{"ms":20}})", "application/json");
      if (r && r->status == 201) {
        acknowledged.push_back(Json::parse(r->body).at("id").get<long long>());
      } else {
        ++refused;
        refusals.insert(r ? r->status : 0);
        std::this_thread::sleep_for(50ms);
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  pqxx::connection app(primary.url("app"));
  ASSERT_TRUE(wait_until(
      [&] {
        return pqxx::nontransaction(app)
                   .exec("SELECT count(*) FROM docket.jobs WHERE state = 'completed'")[0][0]
                   .as<long long>() >= 200;
      },
      60s))
      << workers[0]->log_text();
  const long long running_at_kill =
      pqxx::nontransaction(app).exec("SELECT count(*) FROM docket.jobs WHERE state = 'running'")[0][0].as<long long>();

  // Stop the primary hard, leave the standby read-only for 2 s, then promote it.
  const double killed_at = now_s();
  const auto stopped =
      as_postgres({pg_program("pg_ctl"), "-D", primary.cluster().data_dir().string(), "-m", "immediate", "-w", "stop"});
  ASSERT_EQ(stopped.status, 0) << stopped.err;
  const double stopped_at = now_s();  // the primary is gone: nothing can commit there any more
  std::this_thread::sleep_for(2s);
  for (auto& w : workers) ASSERT_TRUE(w->running()) << "a worker died in the read-only window: " << w->log_text();
  pqxx::connection standby_admin(standby->url("postgres"));
  pqxx::nontransaction(standby_admin).exec("SELECT pg_promote(true, 30)");
  const double promoted_at = now_s();
  pqxx::connection promoted(standby_url);
  double first_completed_at = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto row = pqxx::nontransaction(promoted).exec(
            "SELECT extract(epoch FROM min(finished_at))::float8 FROM docket.jobs WHERE state = 'completed' "
            "AND finished_at > to_timestamp(" +
            std::to_string(stopped_at) + ")");
        if (row[0][0].is_null()) return false;
        first_completed_at = row[0][0].as<double>();
        return true;
      },
      60s))
      << workers[0]->log_text();
  std::this_thread::sleep_for(3s);  // enqueues keep arriving through the API on the new primary
  stop = true;
  producer.join();

  // Every acknowledged enqueue is there and completes; nothing is left behind.
  ASSERT_GT(acknowledged.size(), 200u);
  // Without a primary the API said so: 503, never a crash or a hang (no answer).
  EXPECT_EQ(refusals, (std::set<int>{503})) << refused;
  ASSERT_TRUE(wait_until(
      [&] {
        return pqxx::nontransaction(promoted)
                   .exec("SELECT count(*) FROM docket.jobs WHERE state <> 'completed'")[0][0]
                   .as<long long>() == 0;
      },
      60s))
      << pqxx::nontransaction(promoted)
             .exec("SELECT count(*) FROM docket.jobs WHERE state <> 'completed'")[0][0]
             .c_str();
  std::string ids;
  for (const auto id : acknowledged) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  EXPECT_EQ(
      pqxx::nontransaction(promoted)
          .exec("SELECT count(*) FROM unnest('{" + ids +
                "}'::bigint[]) a(id) "
                "WHERE NOT EXISTS (SELECT 1 FROM docket.jobs j WHERE j.id = a.id AND j.state = 'completed')")[0][0]
          .as<long long>(),
      0);
  // At least once: a job ran twice only if it was in flight when the primary died (a finish that
  // never reached the standby, then a rescue), so no more than the fleet's 8 slots.
  std::map<std::int64_t, int> runs;
  for (const auto& r : read_records(dir / "records.txt")) {
    if (r.event == "end") ++runs[r.id];
  }
  int twice = 0;
  for (const auto id : acknowledged) {
    EXPECT_GE(runs[id], 1) << "job " << id << " never ran";
    if (runs[id] > 1) ++twice;
  }
  EXPECT_LE(twice, 8);
  for (auto& w : workers) EXPECT_TRUE(w->running()) << w->log_text();
  const std::string logs = workers[0]->log_text() + workers[1]->log_text();
  EXPECT_NE(logs.find("db.unavailable"), std::string::npos);
  EXPECT_NE(logs.find("db.reconnected"), std::string::npos);
  // In the read-only window the error says why (libpq skipped the standby), and the workers backed
  // off instead of exiting.
  EXPECT_NE(logs.find("read-only"), std::string::npos) << logs;
  // The API answers on the new primary: ready, and an enqueue is acknowledged.
  httplib::Client http("127.0.0.1", port);
  const auto ready = http.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  std::cout << "failover: " << acknowledged.size() << " enqueues acknowledged, " << refused
            << " refused while there was no primary; " << running_at_kill << " jobs running at the kill, " << twice
            << " ran twice; the hard stop took " << (stopped_at - killed_at) << " s, the promotion came 2 s later, "
            << "and the first job completed on the new primary " << (first_completed_at - promoted_at)
            << " s after it (" << (first_completed_at - killed_at) << " s after the kill began)\n";
  for (auto& w : workers) w->signal(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0);
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(20s), 0);
  standby->stop();
}
