// The command executor through `docket worker --config`: stdin JSON, environment, exit codes,
// stderr as the error, timeouts, and processes that never outlive the worker.
#include <signal.h>

#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {
bool alive(pid_t pid) {
  return ::kill(pid, 0) == 0;
}
}  // namespace

TEST(Command, RunsWithJobJsonOnStdinAndEnvAndExitCodesDecide) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const std::string d = dir.path().string();
  // The worker refuses a missing program at start; one removed while it runs fails its jobs.
  docket::test::write_file(dir / "vanishing", "#!/bin/sh\nexit 0\n");
  std::filesystem::permissions(dir / "vanishing", std::filesystem::perms::owner_all);
  auto w = start_docket_worker(
      *db, dir,
      R"(
[worker]
queues = ["default"]
concurrency = 4
lease = "5s"
[kinds.ok]
command = ["/bin/sh", "-c", "cat > )" +
          d +
          R"(/stdin-$DOCKET_JOB_ID.json; printf '{\"id\": %s, \"kind\": \"%s\", \"attempt\": %s, \"greeting\": \"%s\"}' $DOCKET_JOB_ID $DOCKET_JOB_KIND $DOCKET_ATTEMPT \"$GREETING\""]
env = { GREETING = "hi there" }
[kinds.again]
command = ["/bin/sh", "-c", "echo 'not yet' >&2; exit 75"]
max_retries = 1
backoff = { strategy = "fixed", delay = "100ms" }
[kinds.broken]
command = ["/bin/sh", "-c", "echo 'line one' >&2; echo 'the real reason' >&2; exit 3"]
max_retries = 0
[kinds.plain]
command = ["/bin/echo", "not json"]
[kinds.huge]
command = ["/bin/sh", "-c", "head -c 1100000 /dev/zero | tr '\\0' x"]
[kinds.missing]
command = [")" +
          d + R"(/vanishing"]
max_retries = 0
[kinds.slow]
command = ["/bin/sleep", "30"]
timeout = "1s"
max_retries = 0
)");
  ASSERT_TRUE(
      wait_until([&] { return db->count("SELECT count(*) FROM docket.workers WHERE dead_at IS NULL") > 0; }, 20s))
      << w->log_text();
  std::filesystem::remove(dir / "vanishing");
  Client client(db->url());
  const auto ok = client.enqueue({.kind = "ok", .args = Json{{"x", 1}}}).id;
  const auto again = client.enqueue({.kind = "again"}).id;
  const auto broken = client.enqueue({.kind = "broken"}).id;
  const auto plain = client.enqueue({.kind = "plain"}).id;
  const auto huge = client.enqueue({.kind = "huge"}).id;
  const auto missing = client.enqueue({.kind = "missing"}).id;
  const auto slow = client.enqueue({.kind = "slow"}).id;
  auto finished = [&](std::int64_t id) {
    const auto s = client.job(id)->state;
    return s == JobState::completed || s == JobState::failed;
  };
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto id : {ok, again, broken, plain, huge, missing, slow}) {
          if (!finished(id)) return false;
        }
        return true;
      },
      30s))
      << w->log_text();

  const auto j = client.job(ok);
  EXPECT_EQ(j->state, JobState::completed);
  EXPECT_EQ(j->result.at("id"), ok);
  EXPECT_EQ(j->result.at("kind"), "ok");
  EXPECT_EQ(j->result.at("attempt"), 1);
  EXPECT_EQ(j->result.at("greeting"), "hi there");
  const auto input = Json::parse(docket::test::read_file(dir / ("stdin-" + std::to_string(ok) + ".json")));
  EXPECT_EQ(input.at("id"), ok);
  EXPECT_EQ(input.at("kind"), "ok");
  EXPECT_EQ(input.at("args").at("x"), 1);
  EXPECT_EQ(input.at("attempt"), 1);

  const auto a = client.job(again);
  EXPECT_EQ(a->state, JobState::failed);
  ASSERT_EQ(a->errors.size(), 2u);
  EXPECT_EQ(a->errors[0].at("error"), "exit 75 (retry requested): not yet");

  const auto b = client.job(broken);
  EXPECT_EQ(b->state, JobState::failed);
  ASSERT_EQ(b->errors.size(), 1u);
  EXPECT_EQ(b->errors[0].at("error"), "exit 3: line one\nthe real reason");

  EXPECT_EQ(client.job(plain)->state, JobState::completed);
  // Output that is not a result leaves a trace on the job and in the log, not a silent null.
  EXPECT_EQ(client.job(plain)->result,
            (Json{{"docket_result_dropped", "the command's stdout is not JSON"}, {"output", "not json\n"}}));
  const auto h = client.job(huge);
  EXPECT_EQ(h->state, JobState::completed);
  EXPECT_EQ(h->result.at("docket_result_dropped"), "the command's stdout is larger than its 1 MiB cap");
  const std::string shown = h->result.at("output");
  EXPECT_LE(shown.size(), 4096U);
  EXPECT_EQ(shown.substr(0, 100), std::string(100, 'x'));
  const std::string log = w->log_text();
  EXPECT_NE(log.find("job.result_dropped job_id=" + std::to_string(plain)), std::string::npos) << log;
  EXPECT_NE(log.find("job.result_dropped job_id=" + std::to_string(huge)), std::string::npos) << log;
  // Every job event names the job, its kind, queue, attempt and the worker that ran it.
  const std::regex failed_line("job\\.failed job_id=" + std::to_string(broken) +
                               " kind=broken queue=default attempt=1 worker=[0-9a-f-]{36} ");
  EXPECT_TRUE(std::regex_search(log, failed_line)) << log;
  EXPECT_NE(client.job(missing)->errors[0].at("error").get<std::string>().find("not found"), std::string::npos);
  const auto s = client.job(slow);
  EXPECT_EQ(s->state, JobState::failed);
  EXPECT_EQ(s->errors[0].at("error"), "timed out after 1s");
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Command, NeitherTheCommandNorItsChildrenOutliveASigkilledWorker) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const std::string d = dir.path().string();
  // The command starts a background grandchild; both write their pids and then sleep.
  auto w = start_docket_worker(*db, dir,
                               R"(
[worker]
lease = "5s"
[kinds.tree]
command = ["/bin/sh", "-c", "sleep 300 & echo $! > )" +
                                   d + R"(/child.pid; echo $$ > )" + d + R"(/cmd.pid; wait"]
)");
  Client client(db->url());
  client.enqueue({.kind = "tree"});
  ASSERT_TRUE(wait_until(
      [&] {
        return std::filesystem::exists(dir / "child.pid") && std::filesystem::exists(dir / "cmd.pid") &&
               !docket::test::read_file(dir / "child.pid").empty() && !docket::test::read_file(dir / "cmd.pid").empty();
      },
      20s))
      << w->log_text();
  const pid_t cmd = std::stoi(docket::test::read_file(dir / "cmd.pid"));
  const pid_t child = std::stoi(docket::test::read_file(dir / "child.pid"));
  ASSERT_TRUE(alive(cmd));
  ASSERT_TRUE(alive(child));
  w->signal(SIGKILL);
  ASSERT_TRUE(w->wait(5s));
  EXPECT_TRUE(wait_until([&] { return !alive(cmd) && !alive(child); }, 3s))
      << "command alive: " << alive(cmd) << ", grandchild alive: " << alive(child);
}

TEST(Command, SigtermHandsBackACommandThatOutlivesTheShutdownTimeout) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(*db, dir, R"(
[worker]
shutdown_timeout = "1s"
[kinds.long]
command = ["/bin/sleep", "60"]
)");
  Client client(db->url());
  const auto id = client.enqueue({.kind = "long"}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(id)->state == JobState::running; }, 20s)) << w->log_text();
  w->signal(SIGTERM);
  const auto status = w->wait(15s);
  ASSERT_TRUE(status) << w->log_text();
  EXPECT_EQ(*status, 0);
  const auto job = client.job(id);
  EXPECT_EQ(job->state, JobState::available);
  EXPECT_EQ(job->attempt, 0);
  // The sleep was stopped, not left behind.
  EXPECT_EQ(docket::test::run({"/usr/bin/pgrep", "-f", "^/bin/sleep 60$"}).status, 1);
}
