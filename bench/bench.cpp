// docket bench: measures Docket with no-op jobs on the database of DATABASE_URL. Worker
// processes are real `docket worker`s; rates use the database clock (first start to last finish),
// as the peers harness does, so process start-up is not counted.
#include "bench.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "bench/queries.hpp"
#include "db/session.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"

extern char** environ;

namespace docket::bench {

namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

long long monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::string text(int v) {
  return std::to_string(v);
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Transactions per second that pgbench (`-M prepared`, the reference) reaches running the
/// one-statement transaction `sql` on `clients` connections for `seconds`. `no_triggers`: the
/// sessions run with session_replication_role = replica, so docket.jobs' triggers (the NOTIFY)
/// do not fire: the floor the same statement has without them (needs a superuser).
double pgbench_tps(const std::string& url, const std::string& sql, int clients, double seconds, bool no_triggers) {
  const fs::path dir = fs::temp_directory_path() / ("docket-bench-pgbench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "script.sql") << sql << "\n";
  const fs::path out = dir / "out.txt";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (no_triggers) ::setenv("PGOPTIONS", "-c session_replication_role=replica", 1);
    const std::string c = text(clients), j = text(std::min(clients, 4)),
                      t = text(std::max(1, static_cast<int>(std::lround(seconds))));
    const std::string script = (dir / "script.sql").string();
    ::execlp("pgbench", "pgbench", "-n", "-M", "prepared", "-c", c.c_str(), "-j", j.c_str(), "-T", t.c_str(), "-f",
             script.c_str(), url.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream in(out);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::error_code ec;
  fs::remove_all(dir, ec);
  const auto pos = log.find("tps = ");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || pos == std::string::npos) {
    throw Error("bench: pgbench failed (is it installed, and is the user a superuser?): " + log.substr(0, 2000));
  }
  return std::stod(log.substr(pos + 6));
}

/// Median of `v` (empty: 0).
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// `docket worker` processes with a generated config, stopped (SIGTERM) when destroyed.
class Workers {
 public:
  Workers(const Options& o, const std::string& kinds_toml, int concurrency) {
    dir_ = fs::temp_directory_path() / ("docket-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "docket.toml") << "[worker]\nqueues = [\"bench\"]\nconcurrency = " << concurrency << "\n"
                                        << (o.batch > 0 ? "claim_batch = " + text(o.batch) + "\n" : "")
                                        << "[log]\nlevel = \"info\"\n"
                                        << kinds_toml;
    for (int i = 0; i < o.workers; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        const int log = ::open((dir_ / ("worker" + text(i) + ".log")).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(log, 2);
        ::setenv("DATABASE_URL", o.url.c_str(), 1);
        const std::string config = (dir_ / "docket.toml").string();
        ::execl(o.docket.c_str(), o.docket.c_str(), "--config", config.c_str(), "worker", nullptr);
        ::_exit(127);
      }
      pids_.push_back(pid);
    }
  }
  ~Workers() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  const std::vector<pid_t>& pids() const { return pids_; }

  /// Stops the workers (SIGTERM, drained) and sums the counters of their worker.stopped lines:
  /// claimed, claim_round_trips, finish_round_trips.
  std::map<std::string, long long> stop() {
    for (pid_t p : pids_) ::kill(p, SIGTERM);
    for (pid_t p : pids_) ::waitpid(p, nullptr, 0);
    pids_.clear();
    std::map<std::string, long long> sums;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream in(entry.path());
      std::string line;
      while (std::getline(in, line)) {
        if (line.find("worker.stopped") == std::string::npos) continue;
        for (const char* key : {"claimed", "claim_round_trips", "finish_round_trips"}) {
          const auto pos = line.find(std::string(" ") + key + "=");
          if (pos != std::string::npos) sums[key] += std::stoll(line.substr(pos + std::strlen(key) + 2));
        }
      }
    }
    return sums;
  }

 private:
  fs::path dir_;
  std::vector<pid_t> pids_;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)), client_(o_.url), db_(o_.url, "docket-bench") {}

  Json run();

 private:
  double scalar(const db::Query& query, const std::vector<std::optional<std::string>>& params = {}) {
    const auto rows = db_.query(query, params);
    return rows.empty() || !rows[0][0] ? 0 : std::stod(*rows[0][0]);
  }
  void reset() {
    db_.query(q::bench_reset);
    db_.query(q::bench_reset_kinds);
  }
  /// Fresh statistics, no dead rows, clean buffers: what each timed phase starts from.
  void settle() {
    db_.utility(q::bench_vacuum);
    try {
      db_.utility(q::bench_checkpoint);
    } catch (const Error&) {
      // not a superuser: the run is a little noisier
    }
  }
  /// Waits until no job of `kind` is waiting or running. Rates come from the jobs' own
  /// timestamps, so polling can be rare and cheap and still not blur them.
  void wait_done(const std::string& kind, std::chrono::seconds timeout = 600s) {
    const auto deadline = SteadyClock::now() + timeout;
    while (scalar(q::bench_pending, {kind}) > 0) {
      if (SteadyClock::now() > deadline) throw Error("bench: jobs did not finish in time; see the worker logs");
      std::this_thread::sleep_for(250ms);
    }
  }
  /// Jobs of `kind` per second from the first start to the last finish (database clock).
  double process_rate(const std::string& kind) {
    const auto rows = db_.query(q::bench_window, {kind});
    const double n = std::stod(rows.at(0).at(0).value_or("0"));
    const double secs = std::stod(rows.at(0).at(1).value_or("0"));
    return secs > 0 ? n / secs : 0;
  }
  double drain_rate(int n);
  Json soak();
  Json enqueue_sql();
  Json growth();
  Json result(double enqueue_per_s, double process_per_s) const {
    return Json{{"system", "docket"},
                {"metric", o_.metric},
                {"run", o_.run},
                {"ts", utc_now()},
                {"scenario", o_.scenario},
                {"jobs", o_.jobs},
                {"enqueue_per_s", enqueue_per_s},
                {"process_per_s", process_per_s},
                {"latency_p50_ms", nullptr},
                {"latency_p99_ms", nullptr},
                {"workers", o_.workers},
                {"concurrency", o_.concurrency}};
  }

  Options o_;
  Client client_;
  db::Session db_;
  Json batching_ = Json::object();  ///< average batch sizes of the last drain
};

constexpr const char* kNoop = "[kinds.\"bench.noop\"]\nbuiltin = \"noop\"\n";

double Bench::drain_rate(int n) {
  db_.query(q::bench_fill, {text(n), std::string("bench.noop"), std::string("{}")});
  settle();
  Workers workers(o_, kNoop, o_.concurrency);
  // While it drains: the most connections the workers hold (a fixed budget whatever the
  // concurrency) and their memory (flat: nothing grows with the number of jobs).
  std::atomic<bool> stop{false};
  int max_connections = 0;
  std::vector<long> rss_samples;  // summed over the worker processes, every 200 ms
  std::thread sampler([&] {
    db::Session s(o_.url, "docket-bench-sampler");
    while (!stop) {
      int total = 0;
      for (const auto& row : s.query(q::bench_connections)) {
        const std::string app = row[0].value_or("");
        if (app == "docket-producer" || app == "docket-completer" || app == "docket-maintainer" ||
            app == "docket-crawl") {
          total += std::stoi(row[1].value_or("0"));
        }
      }
      max_connections = std::max(max_connections, total);
      long rss = 0;
      for (pid_t p : workers.pids()) {
        std::ifstream status("/proc/" + std::to_string(p) + "/status");
        std::string line;
        while (std::getline(status, line)) {
          if (line.rfind("VmRSS:", 0) == 0) rss += std::stol(line.substr(6));
        }
      }
      if (rss > 0) rss_samples.push_back(rss);
      std::this_thread::sleep_for(200ms);
    }
  });
  wait_done("bench.noop");
  stop = true;
  sampler.join();
  batching_["connections_per_worker"] = static_cast<double>(max_connections) / o_.workers;
  // Flat memory: what the workers hold a quarter into the drain (pools and buffers warm) against
  // the most they held at any time after.
  if (!rss_samples.empty()) {
    batching_["worker_rss_kb_first"] = rss_samples.front();
    batching_["worker_rss_kb_quarter"] = rss_samples[rss_samples.size() / 4];
    const auto quarter = rss_samples.begin() + static_cast<std::ptrdiff_t>(rss_samples.size() / 4);
    batching_["worker_rss_kb_max_after_quarter"] = *std::max_element(quarter, rss_samples.end());
    batching_["worker_rss_kb_max"] = *std::max_element(rss_samples.begin(), rss_samples.end());
    batching_["worker_rss_kb_last"] = rss_samples.back();
  }
  const auto counts = workers.stop();
  if (counts.contains("claim_round_trips") && counts.at("claim_round_trips") > 0) {
    batching_["claim_batch_avg"] = static_cast<double>(counts.at("claimed")) / counts.at("claim_round_trips");
  }
  if (counts.contains("finish_round_trips") && counts.at("finish_round_trips") > 0) {
    batching_["finish_batch_avg"] = static_cast<double>(counts.at("claimed")) / counts.at("finish_round_trips");
  }
  return process_rate("bench.noop");
}

/// A static paginated source for the soak's crawls: `python3 -m http.server` over pages
/// page1.json .. page20.json of 50 items each and an empty page21.json, stopped when destroyed.
class PageServer {
 public:
  PageServer() {
    dir_ = fs::temp_directory_path() / ("docket-soak-pages-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (int page = 1; page <= 21; ++page) {
      Json items = Json::array();
      for (int i = 0; page <= 20 && i < 50; ++i) items.push_back(Json{{"id", page * 100 + i}, {"page", page}});
      std::ofstream(dir_ / ("page" + text(page) + ".json")) << Json{{"items", items}}.dump();
    }
    port_ = free_port();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      const std::string port = text(port_);
      ::execlp("python3", "python3", "-m", "http.server", port.c_str(), "--bind", "127.0.0.1", "--directory",
               dir_.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~PageServer() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  int port() const { return port_; }

 private:
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }
  fs::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

Json Bench::soak() {
  // The mix a real fleet carries: 80% no-op jobs, 10% that fail every attempt (2 retries 1 s
  // apart, then failed), 10% of 10 ms under a fleet-wide quota of 20, and a 20-page crawl into a
  // live collection every minute. Finished jobs are pruned after 5 minutes: sizes must plateau.
  PageServer pages;
  const std::string kinds =
      std::string(kNoop) + "retain_completed = \"5m\"\nretain_failed = \"5m\"\n" +
      "[kinds.\"bench.soak_flaky\"]\nbuiltin = \"fail\"\nmax_retries = 2\n"
      "backoff = { strategy = \"fixed\", delay = \"1s\" }\nretain_completed = \"5m\"\nretain_failed = \"5m\"\n"
      "[kinds.\"bench.soak_quota\"]\nbuiltin = \"sleep\"\nmax_running = 20\nretain_completed = \"5m\"\n"
      "retain_failed = \"5m\"\n"
      "[kinds.\"bench.soak_crawl\"]\nqueue = \"bench\"\ncrawl = { url = \"http://127.0.0.1:" +
      text(pages.port()) + "/page{page}.json\", collection = \"bench_soak\", max_shrink = 1.0 }\n";
  const double seconds = o_.seconds;
  const double sample_every = std::clamp(seconds / 20, 5.0, 60.0);
  const double hold_from = seconds * 0.3;
  const double hold_for = std::min(600.0, seconds * 0.25);
  const std::string csv_path = o_.csv.empty() ? "soak.csv" : o_.csv;
  std::ofstream csv(csv_path);
  // Each index's size per sample (long form), beside the main CSV: soak.csv -> soak_indexes.csv.
  const std::string index_csv_path =
      (csv_path.size() > 4 && csv_path.ends_with(".csv") ? csv_path.substr(0, csv_path.size() - 4) : csv_path) +
      "_indexes.csv";
  std::ofstream index_csv(index_csv_path);
  index_csv << "minute,index,mb\n";
  csv << "minute,enqueued_per_s,completed_per_s,failed_per_s,wait_p50_ms,wait_p99_ms,table_mb,index_mb,"
         "dead_rows,xmin_age,unfinished,crawls_done,held\n";

  Workers workers(o_, kinds, o_.concurrency);
  std::this_thread::sleep_for(1s);
  std::atomic<bool> stop{false};
  std::atomic<long long> enqueued{0};
  std::atomic<long long> crawls{0};
  std::atomic<bool> held{false};
  const auto start = SteadyClock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(SteadyClock::now() - start).count(); };
  std::thread producer([&] {
    Client c(o_.url);
    // Every 100 ms a tenth of a second's jobs, in one bulk enqueue; late ticks catch up.
    const int per_tick = std::max(10, o_.jobs / 10);
    std::vector<EnqueueRequest> batch;
    for (int i = 0; i < per_tick; ++i) {
      if (i % 10 == 8) {
        batch.push_back({.kind = "bench.soak_flaky", .queue = "bench"});
      } else if (i % 10 == 9) {
        batch.push_back({.kind = "bench.soak_quota", .args = Json{{"ms", 10}}, .queue = "bench"});
      } else {
        batch.push_back({.kind = "bench.noop", .queue = "bench"});
      }
    }
    auto next = SteadyClock::now();
    auto next_crawl = SteadyClock::now();
    while (!stop) {
      c.enqueue_many(batch);
      enqueued += per_tick;
      if (SteadyClock::now() >= next_crawl) {
        c.enqueue({.kind = "bench.soak_crawl", .queue = "bench"});
        ++crawls;
        next_crawl += 60s;
      }
      next += 100ms;
      std::this_thread::sleep_until(next);
    }
  });
  std::thread holder([&] {
    db::Session h(o_.url, "docket-bench-soak-hold");
    while (!stop && elapsed() < hold_from) std::this_thread::sleep_for(200ms);
    if (stop) return;
    h.utility(q::bench_soak_hold);
    held = true;
    while (!stop && elapsed() < hold_from + hold_for) std::this_thread::sleep_for(200ms);
    h.utility(q::bench_soak_release);
    held = false;
  });

  // Samples: every finish counted once (see bench_soak_sample.sql).
  double since = scalar(q::bench_now) - 10;
  long long completed = 0, failed = 0, last_enqueued = 0;
  double p99_max_after_hold = 0, table_mb_at_release = 0, table_mb_last = 0;
  std::map<std::string, double> index_mb_at_release, index_mb_last;  // by index name
  double release_minute = 0;
  long long xmin_age_max = 0;
  auto sample = [&](double window_s) {
    const auto row = db_.query(q::bench_soak_sample, {std::to_string(since)}).at(0);
    auto num = [&](int i) { return row[i] ? std::stod(*row[i]) : 0.0; };
    since = num(0);
    completed += static_cast<long long>(num(1));
    failed += static_cast<long long>(num(2));
    const long long e = enqueued.load();
    table_mb_last = num(5) / 1048576.0;
    xmin_age_max = std::max(xmin_age_max, static_cast<long long>(num(8)));
    if (!held && elapsed() > hold_from + hold_for + 120) p99_max_after_hold = std::max(p99_max_after_hold, num(4));
    csv << elapsed() / 60.0 << ',' << (e - last_enqueued) / window_s << ',' << num(1) / window_s << ','
        << num(2) / window_s << ',' << num(3) << ',' << num(4) << ',' << num(5) / 1048576.0 << ',' << num(6) / 1048576.0
        << ',' << num(7) << ',' << num(8) << ',' << num(9) << ',' << num(10) << ',' << (held ? 1 : 0) << '\n'
        << std::flush;
    last_enqueued = e;
    for (const auto& ix : db_.query(q::bench_soak_indexes, {})) {
      const double mb = ix[1] ? std::stod(*ix[1]) / 1048576.0 : 0.0;
      index_mb_last[ix[0].value_or("")] = mb;
      index_csv << elapsed() / 60.0 << ',' << ix[0].value_or("") << ',' << mb << '\n';
    }
    index_csv << std::flush;
  };
  bool was_held = false;
  while (elapsed() < seconds) {
    const auto t0 = SteadyClock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(sample_every, seconds - elapsed() + 0.01)));
    sample(std::chrono::duration<double>(SteadyClock::now() - t0).count());
    if (was_held && !held) {
      table_mb_at_release = table_mb_last;
      index_mb_at_release = index_mb_last;
      release_minute = elapsed() / 60.0;
    }
    was_held = held;
  }
  stop = true;
  producer.join();
  holder.join();
  // Drain (the failing jobs' retries take 2 s), then count the last finishes.
  const auto deadline = SteadyClock::now() + 120s;
  while (scalar(q::bench_soak_unfinished) > 0 && SteadyClock::now() < deadline) std::this_thread::sleep_for(500ms);
  std::this_thread::sleep_for(11s);
  sample(11);
  workers.stop();
  const auto tail = db_.query(q::bench_soak_tail, {std::to_string(since)}).at(0);
  const long long finished_tail = std::stoll(tail[0].value_or("0"));
  const long long unfinished = std::stoll(tail[1].value_or("0"));

  Json r = result(static_cast<double>(enqueued) / seconds, static_cast<double>(completed + failed) / seconds);
  r["seconds"] = seconds;
  r["enqueued"] = enqueued.load();
  r["completed"] = completed;
  r["failed"] = failed;
  r["finished_after_last_sample"] = finished_tail;
  r["lost"] = enqueued.load() - completed - failed - finished_tail - unfinished;
  r["unfinished"] = unfinished;
  r["crawls_enqueued"] = crawls.load();
  r["held_transaction_s"] = hold_for;
  r["xmin_age_max"] = xmin_age_max;
  r["table_mb_at_release"] = table_mb_at_release;
  r["table_mb_last"] = table_mb_last;
  r["wait_p99_ms_max_after_release"] = p99_max_after_hold;
  // Growth of each index from the end of the held transaction to the end of the run, MB/min: a
  // plateau is ~0.
  Json growth = Json::object();
  const double minutes_after = elapsed() / 60.0 - release_minute;
  for (const auto& [name, mb] : index_mb_last) {
    if (index_mb_at_release.contains(name) && minutes_after > 0) {
      growth[name] = (mb - index_mb_at_release[name]) / minutes_after;
    }
  }
  r["index_growth_mb_per_min_after_release"] = growth;
  r["csv"] = csv_path;
  r["index_csv"] = index_csv_path;
  reset();
  return r;
}

Json Bench::enqueue_sql() {
  // The path "any service via SQL" takes: one docket.enqueue per transaction on N connections,
  // next to, in the same run, (a) the same docket.enqueue with no trigger firing (no NOTIFY:
  // session_replication_role = replica) and (b) the bare single-row INSERT into docket.jobs with
  // no trigger. `ratio` is enqueue / (a): what the NOTIFY trigger costs; `ratio_vs_insert` is
  // enqueue / (b): that plus docket.enqueue's own work (validation, kind and uniqueness checks).
  // Rounds interleave the three and rotate which goes first; every timed run starts from an
  // emptied, vacuumed table. No worker runs: the enqueuers alone.
  const std::string enqueue = "SELECT docket.enqueue('bench.noop', '{}'::jsonb, 'bench');";
  const std::string insert = "INSERT INTO docket.jobs (kind, args, queue) VALUES ('bench.noop', '{}'::jsonb, 'bench');";
  struct Variant {
    const std::string* sql;
    bool no_triggers;
  };
  const std::vector<Variant> variants = {{&enqueue, false}, {&enqueue, true}, {&insert, true}};
  const std::vector<int> clients = o_.concurrency > 0 ? std::vector<int>{o_.concurrency} : std::vector<int>{4, 64};
  const int rounds = std::max(1, o_.rounds);
  Json r = result(0, 0);
  r["seconds"] = o_.seconds;
  r["rounds"] = rounds;
  double worst = 0;
  bool first = true;
  for (const int c : clients) {
    std::vector<std::vector<double>> tps(variants.size());
    std::vector<double> ratios;
    for (int round = 0; round < rounds; ++round) {
      std::vector<double> got(variants.size());
      for (std::size_t i = 0; i < variants.size(); ++i) {
        const std::size_t v = (i + static_cast<std::size_t>(round)) % variants.size();
        reset();
        settle();
        got[v] = pgbench_tps(o_.url, *variants[v].sql, c, o_.seconds, variants[v].no_triggers);
        tps[v].push_back(got[v]);
      }
      ratios.push_back(got[1] > 0 ? got[0] / got[1] : 0);
    }
    const std::string k = "c" + text(c);
    const double enq = median(tps[0]), quiet = median(tps[1]), bare = median(tps[2]);
    const double ratio = quiet > 0 ? enq / quiet : 0;
    r[k + "_enqueue_tps"] = enq;
    r[k + "_enqueue_no_notify_tps"] = quiet;
    r[k + "_insert_no_notify_tps"] = bare;
    r[k + "_ratio"] = ratio;
    r[k + "_ratio_min"] = *std::min_element(ratios.begin(), ratios.end());
    r[k + "_ratio_max"] = *std::max_element(ratios.begin(), ratios.end());
    r[k + "_ratio_vs_insert"] = bare > 0 ? enq / bare : 0;
    worst = first ? ratio : std::min(worst, ratio);
    first = false;
    if (c == clients.front()) r["enqueue_per_s"] = enq;
  }
  r["ratio"] = worst;  // the lower of the client counts' ratios
  reset();
  return r;
}

Json Bench::growth() {
  // Cost growth: the per-job cost of a drain of 10k and 100k queued jobs (--large: also 1M), and
  // of single-row SQL enqueues (docket.enqueue, 4 pgbench connections, --seconds) into a table
  // that already holds 0 and 1M finished rows (--large: also 10M). A flat cost is the goal: the
  // hot indexes are partial, so neither the backlog's nor the history's size should show.
  std::vector<int> queued = {10000, 100000};
  std::vector<int> finished = {0, 1000000};
  if (o_.large) {
    queued.push_back(1000000);
    finished.push_back(10000000);
  }
  const std::string enqueue = "SELECT docket.enqueue('bench.noop', '{}'::jsonb, 'bench');";
  Json rows = Json::array();
  auto add = [&](const std::string& what, int size, double per_s) {
    rows.push_back(Json{{"what", what}, {"size", size}, {"per_s", per_s}, {"us_per_job", per_s > 0 ? 1e6 / per_s : 0}});
  };
  for (const int n : queued) {
    reset();
    add("drain", n, drain_rate(n));
  }
  for (const int n : finished) {
    reset();
    if (n > 0) db_.query(q::bench_bloat, {text(n), text(0)});
    settle();
    add("enqueue_sql_c4", n, pgbench_tps(o_.url, enqueue, 4, o_.seconds, false));
  }
  reset();
  // The table (stderr; the JSON line stays the last line of stdout): cost against the smallest size.
  Json r = result(0, 0);
  std::fprintf(stderr, "%-16s %12s %12s %12s %10s\n", "what", "size", "jobs/s", "us/job", "vs first");
  for (const std::string what : {"drain", "enqueue_sql_c4"}) {
    double first = 0, most = 0;
    for (const auto& row : rows) {
      if (row["what"] != what) continue;
      const double us = row["us_per_job"].get<double>();
      if (first == 0) first = us;
      most = std::max(most, us / first);
      std::fprintf(stderr, "%-16s %12d %12.0f %12.1f %10.2f\n", what.c_str(), row["size"].get<int>(),
                   row["per_s"].get<double>(), us, us / first);
    }
    r[what + "_cost_growth"] = most;  // the largest size's cost (or any size's) over the smallest's
  }
  r["sizes"] = rows;
  return r;
}

Json Bench::run() {
  reset();
  const std::string& s = o_.scenario;
  if (s == "enqueue") {
    // Bulk enqueue in one call (docket.enqueue_many), timed by the caller as the peers harness does.
    std::vector<EnqueueRequest> batch(o_.jobs, EnqueueRequest{.kind = "bench.noop", .queue = "bench"});
    settle();
    const auto t0 = SteadyClock::now();
    client_.enqueue_many(batch);
    const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    reset();
    return result(o_.jobs / secs, 0);
  }
  if (s == "drain") {
    const double rate = drain_rate(o_.jobs);
    reset();
    Json r = result(0, rate);
    r.update(batching_);
    return r;
  }
  if (s == "bloat") {
    // The same drain with 1M finished rows retained and 100k scheduled a day ahead, next to the
    // empty-table drain of this run.
    const double empty = drain_rate(o_.jobs);
    reset();
    db_.query(q::bench_bloat, {text(1000000), text(100000)});
    const double bloated = drain_rate(o_.jobs);
    Json r = result(0, bloated);
    r["empty_table_process_per_s"] = empty;
    r["ratio"] = empty > 0 ? bloated / empty : 0;
    reset();
    settle();
    return r;
  }
  if (s == "latency") {
    // An idle worker; single enqueues every 20 ms; enqueue call start -> handler start. From a
    // settled database, as the other timed phases: leftovers of an earlier scenario (dead rows,
    // autovacuum, a checkpoint) would land in the tail.
    settle();
    Workers workers(o_, "[kinds.\"bench.stamp\"]\nbuiltin = \"stamp\"\n", o_.concurrency);
    const int warmup = 20;  // and 1 s to settle, as the peers harness does
    std::vector<std::pair<std::int64_t, long long>> sent;
    for (int i = 0; i < warmup; ++i) client_.enqueue({.kind = "bench.stamp", .queue = "bench"});
    std::this_thread::sleep_for(1000ms);
    // One enqueue every 20 ms on a fixed schedule (not 20 ms after each call returns).
    auto next = SteadyClock::now();
    for (int i = 0; i < o_.jobs; ++i) {
      const long long t = monotonic_ns();
      sent.emplace_back(client_.enqueue({.kind = "bench.stamp", .queue = "bench"}).id, t);
      next += 20ms;
      std::this_thread::sleep_until(next);
    }
    wait_done("bench.stamp", 60s);
    std::map<std::int64_t, long long> started;
    for (const auto& row : db_.query(q::bench_results, {std::string("bench.stamp")})) {
      started[std::stoll(*row[0])] = Json::parse(*row[1]).at("started_ns").get<long long>();
    }
    std::vector<double> ms;
    for (const auto& [id, t] : sent) ms.push_back(static_cast<double>(started.at(id) - t) / 1e6);
    std::sort(ms.begin(), ms.end());
    // Nearest rank, as the peers harness computes it.
    auto pct = [&](double p) {
      const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(ms.size())));
      return ms[std::clamp<std::size_t>(rank, 1, ms.size()) - 1];
    };
    Json r = result(0, 0);
    r["latency_p50_ms"] = pct(0.50);
    r["latency_p99_ms"] = pct(0.99);
    r["latency_max_ms"] = ms.back();
    reset();
    return r;
  }
  if (s == "steady") {
    // Producers (bulk enqueues of 100, as fast as they can) and workers together on a 100k backlog.
    db_.query(q::bench_fill, {text(100000), std::string("bench.noop"), std::string("{}")});
    settle();
    std::atomic<bool> stop{false};
    std::atomic<long long> enqueued{0};
    Workers workers(o_, kNoop, o_.concurrency);
    std::this_thread::sleep_for(1s);  // workers up and claiming
    const double from = scalar(q::bench_now);
    std::thread producer([&] {
      Client producer_client(o_.url);
      const std::vector<EnqueueRequest> batch(100, EnqueueRequest{.kind = "bench.noop", .queue = "bench"});
      while (!stop) {
        producer_client.enqueue_many(batch);
        enqueued += 100;
      }
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.seconds));
    const double to = scalar(q::bench_now);
    stop = true;
    producer.join();
    const double done =
        scalar(q::bench_window_between, {std::string("bench.noop"), std::to_string(from), std::to_string(to)});
    Json r = result(static_cast<double>(enqueued.load()) / (to - from), done / (to - from));
    r["seconds"] = to - from;
    reset();
    return r;
  }
  if (s == "soak") return soak();
  if (s == "enqueue_sql") return enqueue_sql();
  if (s == "growth") return growth();
  if (s == "quota") {
    // A kind limited to 50 running at once, 20 ms jobs: the ideal is 2,500 jobs/s; a sampler
    // checks that the limit is never exceeded.
    constexpr int kLimit = 50;
    client_.set_limit("bench.sleep", kLimit);
    db_.query(q::bench_fill, {text(o_.jobs), std::string("bench.sleep"), std::string("{\"ms\": 20}")});
    settle();
    std::atomic<bool> stop{false};
    std::atomic<int> max_running{0};
    std::thread sampler([&] {
      db::Session sampler_db(o_.url, "docket-bench-sampler");
      while (!stop) {
        const auto rows = sampler_db.query(q::bench_running, {std::string("bench.sleep")});
        max_running = std::max(max_running.load(), std::stoi(rows.at(0).at(0).value_or("0")));
        std::this_thread::sleep_for(2ms);
      }
    });
    {
      Workers workers(o_, "[kinds.\"bench.sleep\"]\nbuiltin = \"sleep\"\n", o_.concurrency);
      wait_done("bench.sleep");
    }
    stop = true;
    sampler.join();
    const double rate = process_rate("bench.sleep");
    Json r = result(0, rate);
    r["limit"] = kLimit;
    r["ideal_per_s"] = kLimit / 0.020;
    r["ratio"] = rate / (kLimit / 0.020);
    r["max_running_seen"] = max_running.load();
    client_.set_limit("bench.sleep", std::nullopt);
    reset();
    return r;
  }
  if (s == "quota_mix") {
    // Issue 16: the soak's backlog after its held transaction. --jobs 10 ms jobs of a kind under a
    // fleet-wide quota of 20 ahead in the queue of as many no-op jobs, the workers handling both:
    // how fast the no-op jobs drain beside the quota kind, against the same no-op jobs alone in
    // this run (every claim of these workers takes the quota path; the goal is a ratio near 1).
    constexpr int kLimit = 20;
    const double alone = drain_rate(o_.jobs);
    reset();
    client_.set_limit("bench.sleep", kLimit);
    db_.query(q::bench_fill, {text(o_.jobs), std::string("bench.sleep"), std::string("{\"ms\": 10}")});
    db_.query(q::bench_fill, {text(o_.jobs), std::string("bench.noop"), std::string("{}")});
    settle();
    {
      Workers workers(o_, std::string(kNoop) + "[kinds.\"bench.sleep\"]\nbuiltin = \"sleep\"\n", o_.concurrency);
      wait_done("bench.noop");
    }
    const double rate = process_rate("bench.noop");
    Json r = result(0, rate);
    r["limit"] = kLimit;
    r["alone_process_per_s"] = alone;
    r["ratio"] = alone > 0 ? rate / alone : 0;
    client_.set_limit("bench.sleep", std::nullopt);
    reset();
    return r;
  }
  if (s == "keyed") {
    // The drain with keyed limits: max_running_per_key = 1 over 1,000 tenants, next to the
    // unlimited drain of this run (issue 14: at least 0.8x).
    constexpr int kKeys = 1000;
    const double unlimited = drain_rate(o_.jobs);
    reset();
    client_.set_partition("bench.noop", PartitionLimit{.partition = "args.tenant", .max_running_per_key = 1});
    db_.query(q::bench_fill_keyed, {text(o_.jobs), std::string("bench.noop"), text(kKeys)});
    settle();
    {
      Workers workers(o_, kNoop, o_.concurrency);
      wait_done("bench.noop");
    }
    const double rate = process_rate("bench.noop");
    Json r = result(0, rate);
    r["keys"] = kKeys;
    r["max_running_per_key"] = 1;
    r["unlimited_process_per_s"] = unlimited;
    r["ratio"] = unlimited > 0 ? rate / unlimited : 0;
    client_.set_partition("bench.noop", PartitionLimit{});
    reset();
    return r;
  }
  if (s == "rate") {
    // Issue 14: (1) a rate set far above what the fleet achieves costs at most 10% against no
    // limit, drains of this run side by side; (2) a rate of 50/s with 3 worker processes and a
    // backlog holds within 5% over --seconds (60 for this scenario), and no window of one second
    // sees more than the rate plus its burst (50 + 50) start.
    const double unlimited = drain_rate(o_.jobs);
    reset();
    client_.set_rate("bench.noop", std::string("1000000/1s"), std::nullopt);
    const double high_limit = drain_rate(o_.jobs);
    client_.set_rate("bench.noop", std::nullopt, std::nullopt);
    reset();
    constexpr int kRate = 50;
    const double seconds = o_.seconds;
    client_.set_rate("bench.noop", text(kRate) + "/1s", std::nullopt);  // burst: one second's worth, 50
    db_.query(q::bench_fill,
              {text(static_cast<int>(kRate * seconds * 1.5) + 500), std::string("bench.noop"), std::string("{}")});
    settle();
    {
      Options three = o_;
      three.workers = 3;
      Workers workers(three, kNoop, o_.concurrency);
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds + 2));
    }
    const auto rows = db_.query(q::bench_rate_window, {std::string("bench.noop"), std::to_string(seconds), "1"});
    const double started = std::stod(rows.at(0).at(0).value_or("0"));
    const double most_in_window = std::stod(rows.at(0).at(1).value_or("0"));
    client_.set_rate("bench.noop", std::nullopt, std::nullopt);
    Json r = result(0, high_limit);
    r["unlimited_process_per_s"] = unlimited;
    r["high_rate_ratio"] = unlimited > 0 ? high_limit / unlimited : 0;
    r["rate_limit_per_s"] = kRate;
    r["rate_workers"] = 3;
    r["rate_seconds"] = seconds;
    r["rate_observed_per_s"] = started / seconds;
    r["rate_ratio"] = started / seconds / kRate;
    r["rate_most_in_1s_window"] = most_in_window;
    r["rate_limit_plus_burst"] = 2 * kRate;
    reset();
    return r;
  }
  if (s == "schedules") {
    // --jobs schedules every 10 minutes spread over the window: about jobs / 600 come due each
    // second. Ticks run as a worker's maintainer runs them (again at once after a full batch, else when the next is
    // due, at most a second later) for --seconds: database time per tick and enqueue lateness.
    db_.query(q::bench_schedules_reset);
    db_.query(q::bench_schedules_fill, {text(o_.jobs)});
    settle();
    db::Session ticker(o_.url, "docket-bench-ticker");
    std::vector<double> busy_ms, idle_ms, lateness_ms;
    long long enqueued = 0;
    const auto end = SteadyClock::now() + std::chrono::duration<double>(o_.seconds);
    while (SteadyClock::now() < end) {
      const auto t0 = SteadyClock::now();
      const auto tick = ticker.schedule_tick();
      const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
      (tick.enqueued > 0 ? busy_ms : idle_ms).push_back(ms);
      enqueued += tick.enqueued;
      for (const double late : tick.lateness_s) lateness_ms.push_back(late * 1000);
      if (tick.enqueued < 500) {  // as the maintainer waits (kScheduleGather after a tick that enqueued)
        double wait = std::clamp(tick.next_due_in_s.value_or(1.0), 0.0, 1.0) + 0.001;
        if (tick.enqueued > 0) wait = std::max(wait, 0.050);
        std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      }
    }
    const auto pct = [](std::vector<double> v, double p) -> Json {
      if (v.empty()) return nullptr;
      std::sort(v.begin(), v.end());
      const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
      return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
    };
    double busy_total = 0;
    for (const double ms : busy_ms) busy_total += ms;
    Json r = result(0, 0);
    r["schedules"] = o_.jobs;
    r["seconds"] = o_.seconds;
    r["ticks"] = busy_ms.size() + idle_ms.size();
    r["enqueued"] = enqueued;
    r["tick_ms_p50"] = pct(busy_ms, 0.5);
    r["tick_ms_p99"] = pct(busy_ms, 0.99);
    r["tick_ms_per_job"] = enqueued > 0 ? Json(busy_total / static_cast<double>(enqueued)) : Json(nullptr);
    r["idle_tick_ms_p50"] = pct(idle_ms, 0.5);
    r["latency_p50_ms"] = pct(lateness_ms, 0.5);
    r["latency_p99_ms"] = pct(lateness_ms, 0.99);
    db_.query(q::bench_schedules_reset);
    reset();
    return r;
  }
  throw InvalidInput("unknown scenario \"" + s +
                     "\"; use drain, enqueue, enqueue_sql, growth, latency, steady, quota, quota_mix, keyed, rate, "
                     "bloat, schedules or "
                     "soak");
}

}  // namespace

const std::vector<std::string>& scenarios() {
  static const std::vector<std::string> all = {"drain",  "enqueue",   "enqueue_sql", "growth", "latency",
                                               "steady", "quota",     "quota_mix",   "keyed",  "rate",
                                               "bloat",  "schedules", "soak"};
  return all;
}

Json run(const Options& input) {
  Options o = input;
  const bool latency = o.scenario == "latency";
  if (o.jobs <= 0) {
    o.jobs = latency                     ? 200
             : o.scenario == "quota"     ? 5000
             : o.scenario == "schedules" ? 10000
             : o.scenario == "soak"      ? 500  // jobs per second
                                         : 50000;
  }
  if (o.concurrency <= 0 && o.scenario != "enqueue_sql")
    o.concurrency = o.scenario == "quota" ? 64 : latency ? 8 : o.scenario == "soak" ? 50 : 500;
  if (o.seconds <= 0) o.seconds = o.scenario == "rate" ? 60 : 10;
  if (o.workers < 1) throw InvalidInput("--workers must be >= 1");
  if (o.metric.empty()) o.metric = o.scenario;
  if (o.url.empty()) throw ConfigError("docket bench needs DATABASE_URL (or --database-url)");
  migrate(o.url);
  return Bench(o).run();
}

}  // namespace docket::bench
