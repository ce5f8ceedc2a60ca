// Local concurrency per queue (issue 14): `queues = { default = 10, imports = 2 }` in a worker's
// config, or DOCKET_WORKER_QUEUES="default=10,imports=2" in its environment, with real `docket
// worker` processes running `command` jobs that record their own start and end. Each worker
// never runs more than 2 imports at once, reaches those 2, and runs default jobs beside them.
#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

/// The job program: records "start|end <job id> <attempt> <pid> <ns>" in <dir>/<worker>-<kind>.txt.
std::string job_script(const TempDir& dir) {
  const auto path = dir / "job.sh";
  docket::test::write_file(path,
                           "#!/bin/sh\n"
                           "out=\"" +
                               dir.path().string() +
                               "/$1-$2.txt\"\n"
                               "echo \"start $DOCKET_JOB_ID $DOCKET_ATTEMPT $$ $(date +%s%N)\" >> \"$out\"\n"
                               "sleep 0.3\n"
                               "echo \"end $DOCKET_JOB_ID $DOCKET_ATTEMPT $$ $(date +%s%N)\" >> \"$out\"\n");
  return path.string();
}

/// A worker config running both kinds through the script, tagged with the worker's name.
std::string worker_toml(const std::string& script, const std::string& name, const std::string& queues_line) {
  std::string toml = "[worker]\n" + queues_line + "concurrency = 12\nshutdown_timeout = \"5s\"\n";
  for (const char* kind : {"import", "work"}) {
    toml += std::string("[kinds.") + kind + "]\ncommand = [\"/bin/sh\", \"" + script + "\", \"" + name + "\", \"" +
            kind + "\"]\nmax_retries = 0\n";
  }
  return toml;
}

/// The most `a` intervals open at once, and the most `b` intervals open while `a` had `a_at` open.
std::pair<int, int> overlap_beside(const std::vector<Record>& a, const std::vector<Record>& b, int a_at) {
  std::vector<std::tuple<long long, int, int>> events;  // time, +1/-1 (ends first), which
  for (const auto& r : a) events.emplace_back(r.ns, r.event == "start" ? 1 : -1, 0);
  for (const auto& r : b) events.emplace_back(r.ns, r.event == "start" ? 1 : -1, 1);
  std::sort(events.begin(), events.end());
  int open_a = 0, open_b = 0, most_a = 0, beside = 0;
  for (const auto& [t, d, which] : events) {
    (which == 0 ? open_a : open_b) += d;
    most_a = std::max(most_a, open_a);
    if (open_a == a_at) beside = std::max(beside, open_b);
  }
  return {most_a, beside};
}

}  // namespace

TEST(QueueConcurrency, EachWorkerRunsAtMostTwoImportsWhileDefaultJobsUseTheRestTomlAndEnvForms) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const std::string script = job_script(dir);
  Client client(db->url());
  // 40 imports and 120 default jobs of 0.3 s each, enqueued before any worker starts.
  std::vector<EnqueueRequest> jobs(40, EnqueueRequest{.kind = "import", .queue = "imports"});
  jobs.insert(jobs.end(), 120, EnqueueRequest{.kind = "work", .queue = "default"});
  client.enqueue_many(jobs);

  // w1: the TOML table form. w2: a plain queue list in TOML, the table from the environment.
  docket::test::write_file(dir / "w1.toml", worker_toml(script, "w1", "queues = { default = 10, imports = 2 }\n"));
  docket::test::write_file(dir / "w2.toml", worker_toml(script, "w2", "queues = [\"default\", \"imports\"]\n"));
  std::vector<std::unique_ptr<Child>> workers;
  workers.push_back(
      std::make_unique<Child>(std::vector<std::string>{DOCKET_BIN, "--config", (dir / "w1.toml").string(), "worker"},
                              std::map<std::string, std::string>{{"DATABASE_URL", db->url()}}, dir / "w1.log"));
  workers.push_back(std::make_unique<Child>(
      std::vector<std::string>{DOCKET_BIN, "--config", (dir / "w2.toml").string(), "worker"},
      std::map<std::string, std::string>{{"DATABASE_URL", db->url()}, {"DOCKET_WORKER_QUEUES", "default=10,imports=2"}},
      dir / "w2.log"));
  ASSERT_TRUE(wait_until([&] { return count_state(*db, "completed") == 160; }, 60s))
      << "completed " << count_state(*db, "completed") << "\n"
      << workers[0]->log_text() << workers[1]->log_text();
  EXPECT_EQ(count_state(*db, "failed"), 0);

  int imports_seen = 0, work_seen = 0;
  for (const char* w : {"w1", "w2"}) {
    SCOPED_TRACE(w);
    const auto imports = read_records(dir / (std::string(w) + "-import.txt"));
    const auto work = read_records(dir / (std::string(w) + "-work.txt"));
    imports_seen += static_cast<int>(imports.size() / 2);
    work_seen += static_cast<int>(work.size() / 2);
    const auto [most_imports, work_beside_two] = overlap_beside(imports, work, 2);
    std::printf("%s: %zu imports, at most %d at once; %zu default jobs, up to %d running beside 2 imports\n", w,
                imports.size() / 2, most_imports, work.size() / 2, work_beside_two);
    EXPECT_EQ(most_imports, 2);        // never more than the queue's 2, and the 2 are used
    EXPECT_GE(work_beside_two, 5);     // default jobs run in the rest of the slots meanwhile
    EXPECT_LE(max_overlap(work), 10);  // and never past their own 10
  }
  // Every job ran exactly once, across both workers.
  EXPECT_EQ(imports_seen, 40);
  EXPECT_EQ(work_seen, 120);
  for (auto& w : workers) {
    EXPECT_TRUE(w->running());
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait(15s), 0) << w->log_text();
  }
}
