// Workers on separate "hosts": each in a network namespace of its own, reaching a PostgreSQL on
// this host over a veth pair (TCP, as across machines). Cutting one host's link while it runs
// jobs: the others rescue them after the lease, its late outcomes are fenced (job.stale), no job
// completes twice and none is lost. A slow lossy link (tc netem) loses and duplicates nothing.
// Needs root and `ip netns` (iproute2); skips with the reason otherwise.
#include <unistd.h>

#include <fstream>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kTc = "/usr/sbin/tc";
constexpr int kHosts = 3;

/// Runs a command; its failure fails the test with its output.
bool sh(const std::vector<std::string>& argv) {
  auto r = test::run(argv);
  if (r.status != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    ADD_FAILURE() << cmd << "exited " << r.status << ": " << r.err << r.out;
  }
  return r.status == 0;
}

/// Why this machine cannot run the test ("" when it can).
std::string cannot_partition() {
  if (::geteuid() != 0) return "needs root (ip netns, veth pairs)";
  if (::access(kIp, X_OK) != 0) return "needs iproute2 (" + std::string(kIp) + ")";
  const std::string probe = "dkprobe" + std::to_string(::getpid() % 100000);
  if (test::run({kIp, "netns", "add", probe}).status != 0) return "ip netns add fails here (no network namespaces)";
  test::run({kIp, "netns", "del", probe});
  return "";
}

/// kHosts network namespaces, each joined to this host by a veth pair on its own /24, and a
/// private PostgreSQL listening on the host ends. Everything is removed at destruction, also when
/// the test failed half-way.
class Hosts {
 public:
  Hosts() : tag_(std::to_string(::getpid() % 10000)), octet_(std::to_string(100 + ::getpid() % 100)) {
    for (int i = 1; i <= kHosts; ++i) {
      const std::string ns = netns(i), host = host_link(i), peer = peer_link(i);
      if (!sh({kIp, "netns", "add", ns})) return;
      namespaces_.push_back(ns);
      if (!sh({kIp, "link", "add", host, "type", "veth", "peer", "name", peer})) return;
      links_.push_back(host);
      ok_ = sh({kIp, "link", "set", peer, "netns", ns}) &&
            sh({kIp, "addr", "add", server_ip(i) + "/24", "dev", host}) && sh({kIp, "link", "set", host, "up"}) &&
            sh({kIp, "netns", "exec", ns, kIp, "addr", "add", subnet(i) + ".2/24", "dev", peer}) &&
            sh({kIp, "netns", "exec", ns, kIp, "link", "set", peer, "up"}) &&
            sh({kIp, "netns", "exec", ns, kIp, "link", "set", "lo", "up"});
      if (!ok_) return;
    }
    // PostgreSQL runs as the postgres OS user: the directory must be reachable for it.
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
    auto options = test::test_cluster_options(dir_.path());
    std::string listen;
    for (int i = 1; i <= kHosts; ++i) listen += (i > 1 ? "," : "") + server_ip(i);
    options.settings["listen_addresses"] = "'" + listen + "'";
    options.settings["port"] = std::to_string(port_);
    cluster_ = std::make_unique<embedded::Cluster>(options);
    cluster_->ensure_initialized();
    {
      std::ofstream hba(cluster_->data_dir() / "pg_hba.conf", std::ios::app);
      hba << "host all all 10." << octet_ << ".0.0/16 trust\n";
    }
    cluster_->start();
    docket::migrate(local_url());
  }

  ~Hosts() {
    workers.clear();
    if (cluster_) {
      try {
        cluster_->stop();
      } catch (...) {
      }
    }
    for (const auto& l : links_) test::run({kIp, "link", "del", l});
    for (const auto& ns : namespaces_) test::run({kIp, "netns", "del", ns});
  }

  bool ok() const { return ok_; }
  std::string netns(int i) const { return "dk" + tag_ + "h" + std::to_string(i); }
  std::string host_link(int i) const { return "dkv" + tag_ + "h" + std::to_string(i); }
  /// The namespace's end of host i's link.
  std::string peer_link(int i) const { return "dkn" + tag_ + "h" + std::to_string(i); }
  std::string subnet(int i) const { return "10." + octet_ + "." + std::to_string(i); }
  std::string server_ip(int i) const { return subnet(i) + ".1"; }
  /// From this host, over the unix socket (unaffected by the links).
  std::string local_url() const {
    return "postgresql:///postgres?host=" + cluster_->socket_dir().string() + "&port=" + std::to_string(port_) +
           "&user=postgres";
  }
  /// From host i, over its veth link.
  std::string host_url(int i) const {
    return "postgresql://postgres@" + server_ip(i) + ":" + std::to_string(port_) + "/postgres";
  }
  const TempDir& dir() const { return dir_; }

  /// A test worker inside host i's namespace; its records go to the shared records.txt.
  Child& start_worker(int i, std::vector<std::string> extra) {
    std::vector<std::string> argv = {kIp,
                                     "netns",
                                     "exec",
                                     netns(i),
                                     DOCKET_TEST_WORKER_BIN,
                                     "--database-url",
                                     host_url(i),
                                     "--record",
                                     (dir_ / "records.txt").string(),
                                     "--name",
                                     "host" + std::to_string(i)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers.push_back(std::make_unique<Child>(argv, std::map<std::string, std::string>{},
                                              dir_ / ("host" + std::to_string(i) + ".log")));
    return *workers.back();
  }
  std::vector<std::unique_ptr<Child>> workers;

 private:
  TempDir dir_;
  std::string tag_;
  std::string octet_;
  int port_ = 20000 + ::getpid() % 20000;
  bool ok_ = false;
  std::vector<std::string> namespaces_;
  std::vector<std::string> links_;
  std::unique_ptr<embedded::Cluster> cluster_;
};

const std::vector<std::string> kWorkerFlags = {"--lease",       "3s", "--rescue", "250ms",
                                               "--concurrency", "4",  "--poll",   "200ms"};

long long count(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  return tx.exec(sql)[0][0].as<long long>();
}

long long count_state_of(pqxx::connection& c, const std::string& state) {
  return count(c, "SELECT count(*) FROM docket.jobs WHERE state = '" + state + "'");
}

}  // namespace

TEST(Partition, ACutHostsJobsAreRescuedItsLateOutcomesFencedNoneLostNoneTwice) {
  if (const auto why = cannot_partition(); !why.empty()) GTEST_SKIP() << "skipped: " << why;
  Hosts hosts;
  ASSERT_TRUE(hosts.ok());
  Client client(hosts.local_url());
  pqxx::connection sql(hosts.local_url());
  for (int i = 1; i <= kHosts; ++i) hosts.start_worker(i, kWorkerFlags);
  ASSERT_TRUE(
      wait_until([&] { return count(sql, "SELECT count(*) FROM docket.workers WHERE dead_at IS NULL") == 3; }, 30s))
      << hosts.workers[0]->log_text();
  const int cut_pid = hosts.workers[0]->pid();  // `ip netns exec` execs the worker: same pid

  // 24 jobs of 2 s on their first attempt (instant when rescued): every host gets some.
  std::vector<std::int64_t> ids;
  for (const auto& r : client.enqueue_many(
           std::vector<EnqueueRequest>(24, EnqueueRequest{.kind = "test.once_slow", .args = Json{{"ms", 2000}}}))) {
    ids.push_back(r.id);
  }
  const std::string held_sql =
      "SELECT count(*) FROM docket.jobs j JOIN docket.workers w ON w.id = j.worker "
      "WHERE j.state = 'running' AND w.name = 'host1'";
  ASSERT_TRUE(wait_until([&] { return count(sql, held_sql) > 0; }, 20s)) << hosts.workers[0]->log_text();
  std::vector<std::int64_t> held;
  {
    pqxx::nontransaction tx(sql);
    for (const auto& row : tx.exec("SELECT j.id FROM docket.jobs j JOIN docket.workers w ON w.id = j.worker "
                                   "WHERE j.state = 'running' AND w.name = 'host1'"))
      held.push_back(row[0].as<std::int64_t>());
  }
  ASSERT_TRUE(sh({kIp, "link", "set", hosts.host_link(1), "down"}));
  const auto cut_at = std::chrono::steady_clock::now();

  // The other hosts finish everything, host1's jobs after its lease (3 s) runs out.
  ASSERT_TRUE(wait_until([&] { return count_state_of(sql, "completed") == 24; }, 40s)) << hosts.workers[1]->log_text();
  const double all_done_s = seconds_since(cut_at);
  // Host1 finished its attempts meanwhile (2 s each): their outcomes wait for the link.
  ASSERT_TRUE(wait_until(
      [&] {
        int ended = 0;
        for (const auto& r : read_records(hosts.dir() / "records.txt"))
          ended += r.event == "end" && r.pid == cut_pid && r.attempt == 1;
        return ended >= static_cast<int>(held.size());
      },
      10s));
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(sh({kIp, "link", "set", hosts.host_link(1), "up"}));
  const auto healed_at = std::chrono::steady_clock::now();

  // Back on the network, host1 learns it lost its lease, and its late outcomes are refused.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto log = hosts.workers[0]->log_text();
        for (auto id : held) {
          if (log.find("job.stale job_id=" + std::to_string(id)) == std::string::npos &&
              log.find("\"job_id\":" + std::to_string(id) + ",") == std::string::npos)
            return false;
        }
        return true;
      },
      60s))
      << hosts.workers[0]->log_text();
  const double fenced_s = seconds_since(healed_at);
  // Its heartbeat, which may go out after those writes, learns the lease is gone.
  EXPECT_TRUE(
      wait_until([&] { return hosts.workers[0]->log_text().find("worker.lease_lost") != std::string::npos; }, 30s))
      << hosts.workers[0]->log_text();

  // Nothing lost, nothing applied twice: every job completed once, host1's by another host.
  std::map<std::int64_t, std::vector<Record>> runs;
  for (const auto& r : read_records(hosts.dir() / "records.txt")) runs[r.id].push_back(r);
  for (auto id : ids) {
    const auto job = client.job(id);
    ASSERT_TRUE(job);
    EXPECT_EQ(job->state, JobState::completed) << id;
    std::map<int, int> starts_per_attempt;
    for (const auto& r : runs[id]) starts_per_attempt[r.attempt] += r.event == "start";
    for (const auto& [attempt, n] : starts_per_attempt) EXPECT_EQ(n, 1) << "job " << id << " attempt " << attempt;
    const bool was_held = std::find(held.begin(), held.end(), id) != held.end();
    if (was_held) {
      EXPECT_EQ(job->attempt, 2) << id;
      EXPECT_NE(job->result.at("pid").get<int>(), cut_pid) << id;
    } else {
      EXPECT_EQ(job->attempt, 1) << id;
    }
  }
  std::cout << "partition: host1 held " << held.size() << " jobs when cut; all 24 done " << all_done_s
            << " s after the cut (lease 3 s); its late outcomes fenced " << fenced_s << " s after the link came back\n";

  // Host1 registered again and takes work like the others.
  const auto more = client.enqueue_many(
      std::vector<EnqueueRequest>(30, EnqueueRequest{.kind = "test.once_slow", .args = Json{{"ms", 300}}}));
  ASSERT_TRUE(wait_until([&] { return count_state_of(sql, "completed") == 54; }, 30s));
  int on_host1 = 0;
  for (const auto& r : more) on_host1 += client.job(r.id)->result.at("pid").get<int>() == cut_pid;
  EXPECT_GT(on_host1, 0);
  for (auto& w : hosts.workers) w->signal(SIGTERM);
  for (auto& w : hosts.workers) EXPECT_EQ(w->wait(20s), 0) << w->log_text();
}

TEST(Partition, ASlowLossyLinkLosesAndDuplicatesNothing) {
  if (const auto why = cannot_partition(); !why.empty()) GTEST_SKIP() << "skipped: " << why;
  if (::access(kTc, X_OK) != 0) GTEST_SKIP() << "skipped: needs tc (iproute2)";
  Hosts hosts;
  ASSERT_TRUE(hosts.ok());
  // 200 ms each way and 5% loss each way on host1's link; the others are clean.
  const auto netem =
      test::run({kTc, "qdisc", "add", "dev", hosts.host_link(1), "root", "netem", "delay", "100ms", "loss", "5%"});
  if (netem.status != 0 && netem.err.find("unknown") != std::string::npos) {
    GTEST_SKIP() << "skipped: this kernel has no netem qdisc (module sch_netem): " << netem.err;
  }
  ASSERT_EQ(netem.status, 0) << netem.err;
  ASSERT_TRUE(sh({kIp, "netns", "exec", hosts.netns(1), kTc, "qdisc", "add", "dev", hosts.peer_link(1), "root", "netem",
                  "delay", "100ms", "loss", "5%"}));
  Client client(hosts.local_url());
  pqxx::connection sql(hosts.local_url());
  for (int i = 1; i <= kHosts; ++i) hosts.start_worker(i, {"--lease", "10s", "--concurrency", "4", "--poll", "200ms"});
  ASSERT_TRUE(
      wait_until([&] { return count(sql, "SELECT count(*) FROM docket.workers WHERE dead_at IS NULL") == 3; }, 30s))
      << hosts.workers[0]->log_text();
  const auto start = std::chrono::steady_clock::now();
  const auto ids = client.enqueue_many(
      std::vector<EnqueueRequest>(600, EnqueueRequest{.kind = "test.once_slow", .args = Json{{"ms", 20}}}));
  ASSERT_TRUE(wait_until([&] { return count_state_of(sql, "completed") == 600; }, 50s))
      << count_state_of(sql, "completed") << " completed\n"
      << hosts.workers[0]->log_text();
  const double took = seconds_since(start);
  std::map<int, int> per_pid;
  std::map<std::int64_t, int> starts;
  for (const auto& r : read_records(hosts.dir() / "records.txt")) {
    if (r.event != "start") continue;
    ++starts[r.id];
    ++per_pid[r.pid];
  }
  EXPECT_EQ(starts.size(), 600u);
  int twice = 0;
  for (const auto& [id, n] : starts) twice += n != 1;
  EXPECT_EQ(twice, 0);
  EXPECT_EQ(count(sql, "SELECT count(*) FROM docket.jobs WHERE state <> 'completed' OR attempt <> 1"), 0);
  const int slow = per_pid[hosts.workers[0]->pid()];
  std::cout << "netem: 600 jobs in " << took << " s; the host behind 200 ms RTT and 5% loss ran " << slow
            << ", the clean ones " << per_pid[hosts.workers[1]->pid()] << " and " << per_pid[hosts.workers[2]->pid()]
            << "\n";
  EXPECT_LT(slow, per_pid[hosts.workers[1]->pid()]);
  for (auto& w : hosts.workers) w->signal(SIGTERM);
  for (auto& w : hosts.workers) EXPECT_EQ(w->wait(30s), 0) << w->log_text();
}
