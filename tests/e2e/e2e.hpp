#pragma once
// Helpers for end-to-end tests: worker processes on a fresh database, and their record files.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "docket/client.hpp"
#include "pg.hpp"
#include "process.hpp"

namespace docket::e2e {

using namespace std::chrono_literals;
using docket::test::Child;
using docket::test::PgCluster;
using docket::test::TempDir;
using docket::test::TestDatabase;
using docket::test::wait_until;

/// One line of a test worker's record file.
struct Record {
  std::string event;
  std::int64_t id = 0;
  int attempt = 0;
  int pid = 0;
  long long ns = 0;
};

inline std::vector<Record> read_records(const std::filesystem::path& file) {
  std::vector<Record> out;
  for (const auto& line : docket::test::read_lines(file)) {
    std::istringstream in(line);
    Record r;
    in >> r.event >> r.id >> r.attempt >> r.pid >> r.ns;
    out.push_back(r);
  }
  return out;
}

/// The most intervals [start, end] open at once, from "start"/"end" records.
inline int max_overlap(const std::vector<Record>& records) {
  std::vector<std::pair<long long, int>> events;
  for (const auto& r : records) {
    if (r.event == "start") events.emplace_back(r.ns, +1);
    if (r.event == "end") events.emplace_back(r.ns, -1);
  }
  // At equal timestamps count ends first: touching intervals do not overlap.
  std::sort(events.begin(), events.end());
  int open = 0, most = 0;
  for (const auto& [t, d] : events) {
    open += d;
    most = std::max(most, open);
  }
  return most;
}

/// A test worker process (tests/support/test_worker.cpp) on `db`.
inline std::unique_ptr<Child> start_test_worker(const TestDatabase& db, const TempDir& dir, const std::string& name,
                                                std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {DOCKET_TEST_WORKER_BIN,         "--database-url", db.url(), "--record",
                                   (dir / "records.txt").string(), "--name",         name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<Child>(argv, std::map<std::string, std::string>{}, dir / (name + ".log"));
}

/// `docket worker --config <dir>/<name>.toml` on `db`, logging to <dir>/<name>.log.
inline std::unique_ptr<Child> start_docket_worker(const TestDatabase& db, const TempDir& dir, const std::string& toml,
                                                  const std::string& name = "worker") {
  docket::test::write_file(dir / (name + ".toml"), toml);
  return std::make_unique<Child>(
      std::vector<std::string>{DOCKET_BIN, "--config", (dir / (name + ".toml")).string(), "worker"},
      std::map<std::string, std::string>{{"DATABASE_URL", db.url()}}, dir / (name + ".log"));
}

/// Waits until a live worker row with this name exists (the process registered).
inline bool wait_registered(TestDatabase& db, const std::string& name, std::chrono::milliseconds timeout = 20s) {
  return wait_until(
      [&] {
        return db.count("SELECT count(*) FROM docket.workers WHERE dead_at IS NULL AND name = '" + name + "'") > 0;
      },
      timeout);
}

/// The port a process logged in `key`=http://127.0.0.1:PORT..., once it appears (-1 after 20 s).
inline int api_port_from_log(const Child& child, const std::string& key = "url") {
  int port = -1;
  wait_until(
      [&] {
        std::smatch m;
        const std::string log = child.log_text();
        if (std::regex_search(log, m, std::regex(key + "=?\"?http://127\\.0\\.0\\.1:(\\d+)"))) port = std::stoi(m[1]);
        return port > 0;
      },
      std::chrono::seconds(20));
  return port;
}

inline long long count_state(TestDatabase& db, const std::string& state) {
  return db.count("SELECT count(*) FROM docket.jobs WHERE state = '" + state + "'");
}

/// The jobs a schedule made: how many, the whole-second slots from its first to its last, and how
/// many slots got more than one job.
struct Slots {
  long long jobs = 0;
  long long span = 0;
  long long twice = 0;
};
inline Slots schedule_slots(TestDatabase& db, const std::string& schedule) {
  const std::string where = " FROM docket.jobs WHERE schedule = " + db.conn().quote(schedule);
  return {db.count("SELECT count(*)" + where),
          db.count("SELECT extract(epoch FROM max(scheduled_for) - min(scheduled_for))::bigint + 1" + where),
          db.count("SELECT count(*) FROM (SELECT scheduled_for" + where + " GROUP BY 1 HAVING count(*) > 1) d")};
}

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// A process's resident memory in KiB (-1 when it is gone).
inline long long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

}  // namespace docket::e2e
