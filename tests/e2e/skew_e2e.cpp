// Workers whose clocks are 10 minutes off (libfaketime): leases, scheduled jobs and schedules go
// by the database clock, so a skewed worker neither rescues a live worker's job early nor runs a
// job early or late, and a schedule keeps one job per slot.
#include <unistd.h>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

/// libfaketime (Debian package faketime), preloaded into the worker itself: the `faketime`
/// wrapper would stand between the test and the worker's signals.
constexpr const char* kLibFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The preload's settings, as the children of this test get them. Inherited libfaketime settings
/// are dropped first: FAKETIME_SHARED, FAKETIME_TIMESTAMP_FILE and the like from a surrounding
/// environment would override FAKETIME.
std::map<std::string, std::string> skew_env(const std::string& offset) {
  std::vector<std::string> inherited;
  for (char** e = environ; e && *e; ++e) {
    const std::string name = std::string(*e).substr(0, std::string(*e).find('='));
    if (name.starts_with("FAKETIME") || name.starts_with("DONT_FAKE") || name.starts_with("NO_FAKE")) {
      inherited.push_back(name);
    }
  }
  for (const auto& name : inherited) ::unsetenv(name.c_str());
  return {{"LD_PRELOAD", kLibFaketime}, {"FAKETIME", offset}, {"DONT_FAKE_MONOTONIC", "1"}};
}

/// Minutes that `date` under the preload is off this process's clock: 0 where the preload is not
/// honoured (a secure-execution or sandboxed environment ignores LD_PRELOAD paths).
double probed_offset_minutes(const TempDir& dir, const std::string& offset) {
  Child date({"/bin/date", "+%s"}, skew_env(offset), dir / "probe.log");
  if (date.wait(10s) != 0) return 0;
  const std::string out = date.log_text();
  return (std::atof(out.c_str()) - static_cast<double>(std::time(nullptr))) / 60.0;
}

/// A test worker whose wall clock is `offset` ("+10m", "-10m") off; its monotonic clock is real.
std::unique_ptr<Child> skewed_worker(const TestDatabase& db, const TempDir& dir, const std::string& name,
                                     const std::string& offset) {
  return std::make_unique<Child>(
      std::vector<std::string>{DOCKET_TEST_WORKER_BIN, "--database-url", db.url(), "--record",
                               (dir / "records.txt").string(), "--name", name, "--lease", "3s", "--rescue", "250ms",
                               "--promote", "100ms", "--concurrency", "4"},
      skew_env(offset), dir / (name + ".log"));
}

/// Minutes between this process's clock and the first timestamp a worker logged.
double logged_clock_offset_minutes(const Child& worker) {
  const std::string log = worker.log_text();
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d))"))) return 0;
  std::tm tm{};
  ::strptime(m[1].str().c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<double>(::timegm(&tm) - std::time(nullptr)) / 60.0;
}

}  // namespace

TEST(ClockSkew, WorkersTenMinutesOffNeitherStealNorRunEarlyOrLateAndKeepSchedules) {
  ASSERT_EQ(::access(kLibFaketime, R_OK), 0) << "install faketime: scripts/deps.sh test";
  {
    TempDir probe;
    const double minutes = probed_offset_minutes(probe, "+10m");
    if (std::abs(minutes) < 1) {
      GTEST_SKIP() << "libfaketime's preload has no effect here (`date` under it is " << minutes
                   << " min off, not 10): LD_PRELOAD is ignored in this environment";
    }
  }
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Client client(db->url());
  // An honest worker holds a job longer than the lease (8 s vs 3 s), heartbeating all along.
  auto honest = start_test_worker(*db, dir, "honest", {"--lease", "3s", "--concurrency", "1"});
  ASSERT_TRUE(wait_registered(*db, "honest"));
  const auto long_job = client.enqueue({.kind = "test.once_slow", .args = Json{{"ms", 8000}}}).id;
  ASSERT_TRUE(wait_until([&] { return client.job(long_job)->state == JobState::running; }, 10s));
  auto ahead = skewed_worker(*db, dir, "ahead", "+10m");
  auto behind = skewed_worker(*db, dir, "behind", "-10m");
  ASSERT_TRUE(wait_registered(*db, "ahead")) << ahead->log_text();
  ASSERT_TRUE(wait_registered(*db, "behind")) << behind->log_text();
  // The skew is real: their own clocks say so in their logs (written just after registering).
  for (const auto* w : {ahead.get(), behind.get()}) {
    ASSERT_TRUE(wait_until([&] { return w->log_text().find("worker.started") != std::string::npos; }, 10s));
  }
  EXPECT_NEAR(logged_clock_offset_minutes(*ahead), 10, 0.5) << ahead->log_text();
  EXPECT_NEAR(logged_clock_offset_minutes(*behind), -10, 0.5) << behind->log_text();

  // Rescue sweeps run every 250 ms on both skewed workers; none takes the live worker's job.
  ASSERT_TRUE(wait_until([&] { return client.job(long_job)->state == JobState::completed; }, 20s));
  const auto done = client.job(long_job);
  EXPECT_EQ(done->attempt, 1);
  EXPECT_EQ(done->result.at("pid"), honest->pid());
  honest->signal(SIGTERM);
  ASSERT_EQ(honest->wait(20s), 0);

  // Jobs due 2..6 s from now by the database clock, run by the skewed workers only.
  db->query(
      "SELECT docket.enqueue('test.count', '{}', run_at => now() + make_interval(secs => 2 + g * 0.5)) "
      "FROM generate_series(0, 8) g");
  // A schedule every second, ticked by the skewed workers only.
  db->query("SELECT docket.schedule('skewed', '@every 1s', 'test.count')");
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT count(*) FROM docket.jobs WHERE schedule IS NULL AND state = 'completed'") == 10;
      },
      20s))
      << ahead->log_text();
  std::this_thread::sleep_for(3s);
  db->query("SELECT docket.pause_schedule('skewed')");

  const auto row = db->query(
      "SELECT min(extract(epoch FROM started_at - run_at)), max(extract(epoch FROM started_at - run_at)) "
      "FROM docket.jobs WHERE schedule IS NULL AND id <> " +
      std::to_string(long_job))[0];
  const double earliest = row[0].as<double>(), latest = row[1].as<double>();
  std::cout << "skew: scheduled jobs started " << earliest << " .. " << latest
            << " s after their run_at (database clock) on workers 10 min ahead and behind\n";
  EXPECT_GE(earliest, 0.0);
  EXPECT_LT(latest, 1.5);

  const auto [slots, span, twice] = schedule_slots(*db, "skewed");
  const double late = std::stod(db->scalar(
      "SELECT max(extract(epoch FROM inserted_at - scheduled_for)) FROM docket.jobs WHERE schedule = 'skewed'"));
  const double early = std::stod(db->scalar(
      "SELECT min(extract(epoch FROM inserted_at - scheduled_for)) FROM docket.jobs WHERE schedule = 'skewed'"));
  std::cout << "skew: schedule made " << slots << " jobs over " << span << " slots, enqueued " << early << " .. "
            << late << " s after their slot\n";
  EXPECT_GE(slots, 3);
  EXPECT_EQ(slots, span);
  EXPECT_EQ(twice, 0);
  EXPECT_GE(early, 0.0);
  EXPECT_LT(late, 1.5);
  for (auto* w : {ahead.get(), behind.get()}) w->signal(SIGTERM);
  EXPECT_EQ(ahead->wait(20s), 0);
  EXPECT_EQ(behind->wait(20s), 0);
}
