// A worker process built on libdocket's C++ handler API, with handlers that record what they did
// so end-to-end tests can check overlap, exactly-once and backoff from the outside.
//
//   docket_test_worker --database-url URL --record FILE [--queues a,b] [--concurrency N]
//                      [--lease 3s] [--shutdown-timeout 2s] [--poll 200ms] [--name NAME]
//                      [--limit KIND=N] [--max-retries N] [--backoff 200ms]
//
// Record lines (one write each, O_APPEND): "<event> <job_id> <attempt> <pid> <monotonic_ns>".
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "docket/client.hpp"
#include "docket/config.hpp"
#include "docket/worker.hpp"

namespace {

int g_record_fd = -1;

long long monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void record(const char* event, const docket::Job& job) {
  if (g_record_fd < 0) return;
  char line[256];
  const int n = std::snprintf(line, sizeof line, "%s %lld %d %d %lld\n", event, static_cast<long long>(job.id),
                              job.attempt, static_cast<int>(::getpid()), monotonic_ns());
  [[maybe_unused]] auto w = ::write(g_record_fd, line, static_cast<std::size_t>(n));
}

/// Sleeps `ms`, returning early (false) if the job is asked to stop.
bool sleep_ms(const docket::JobContext& ctx, int ms, bool honour_stop) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (honour_stop && ctx.stop_requested()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace docket;
  std::map<std::string, std::string> opt;
  std::vector<std::pair<std::string, int>> limits;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--limit") {
      const std::string v = argv[i + 1];
      limits.emplace_back(v.substr(0, v.find('=')), std::stoi(v.substr(v.find('=') + 1)));
    } else {
      opt[key] = argv[i + 1];
    }
  }
  auto get = [&](const std::string& k, const std::string& def) { return opt.contains(k) ? opt[k] : def; };
  if (!opt.contains("--database-url")) {
    std::cerr << "usage: docket_test_worker --database-url URL --record FILE ...\n";
    return 2;
  }
  static std::atomic<Worker*> running{nullptr};
  install_stop_signals([] {
    if (Worker* w = running.load()) w->request_stop();
  });
  Config cfg;
  cfg.log.level = get("--log-level", "info");
  WorkerConfig& w = cfg.worker;
  w.queues.clear();
  {
    std::string qs = get("--queues", "default");
    std::size_t start = 0;
    while (start <= qs.size()) {
      const auto end = qs.find(',', start);
      w.queues.push_back(qs.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  w.concurrency = std::stoi(get("--concurrency", "8"));
  w.lease = parse_duration(get("--lease", "3s"), "--lease");
  w.shutdown_timeout = parse_duration(get("--shutdown-timeout", "5s"), "--shutdown-timeout");
  w.poll_interval = parse_duration(get("--poll", "200ms"), "--poll");
  w.promote_interval = parse_duration(get("--promote", "100ms"), "--promote");
  w.name = get("--name", "");
  if (opt.contains("--rescue")) w.rescue_interval = parse_duration(opt["--rescue"], "--rescue");
  cfg.validate();
  // As `docket worker` reads them: the e2e suites rerun through PgBouncer with these set.
  if (const char* pooler = std::getenv("DOCKET_POOLER")) set_pooler(parse_pooler(pooler, "DOCKET_POOLER"));
  if (const char* listen = std::getenv("DOCKET_LISTEN_URL")) w.listen_url = listen;
  if (opt.contains("--record")) {
    g_record_fd = ::open(opt["--record"].c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  }

  Worker worker(get("--database-url", ""), w);
  KindConfig base;
  base.max_retries = opt.contains("--max-retries") ? std::optional<int>(std::stoi(opt["--max-retries"])) : std::nullopt;
  base.backoff.strategy = Backoff::Strategy::fixed;
  base.backoff.delay = parse_duration(get("--backoff", "200ms"), "--backoff");
  base.backoff.jitter = 0;
  base.timeout = parse_duration(get("--timeout", "60s"), "--timeout");
  auto options_for = [&](const std::string& kind) {
    KindConfig k = base;
    for (const auto& [name, n] : limits) {
      if (name == kind) k.max_running = n;
    }
    return k;
  };

  // Runs args.ms (default 300) and records when it started and ended.
  worker.handle(
      "test.record",
      [](JobContext& ctx) {
        record("start", ctx.job());
        sleep_ms(ctx, ctx.args().value("ms", 300), false);
        record("end", ctx.job());
        return Outcome::complete();
      },
      options_for("test.record"));
  // Records one line per run: exactly-once checks count them per id.
  worker.handle(
      "test.count",
      [](JobContext& ctx) {
        record("run", ctx.job());
        return Outcome::complete(Json{{"ok", true}});
      },
      options_for("test.count"));
  // Fails the first args.fail_times attempts, then completes.
  worker.handle(
      "test.flaky",
      [](JobContext& ctx) {
        record("run", ctx.job());
        if (ctx.job().attempt <= ctx.args().value("fail_times", 2)) {
          throw std::runtime_error("flaky failure on attempt " + std::to_string(ctx.job().attempt));
        }
        return Outcome::complete(Json{{"attempt", ctx.job().attempt}});
      },
      options_for("test.flaky"));
  // Always fails.
  worker.handle(
      "test.fail",
      [](JobContext& ctx) {
        record("run", ctx.job());
        return Outcome::retry("always fails (attempt " + std::to_string(ctx.job().attempt) + ")");
      },
      options_for("test.fail"));
  // Sleeps args.ms; with args.ignore_stop it does not return early when asked to stop.
  worker.handle(
      "test.sleep",
      [](JobContext& ctx) {
        record("start", ctx.job());
        const bool finished = sleep_ms(ctx, ctx.args().value("ms", 1000), !ctx.args().value("ignore_stop", false));
        record(finished ? "end" : "stopped", ctx.job());
        return finished ? Outcome::complete() : Outcome::retry("stopped before finishing");
      },
      options_for("test.sleep"));
  // Reports progress, then completes.
  worker.handle(
      "test.progress",
      [](JobContext& ctx) {
        ctx.progress(Json{{"step", 1}, {"of", 2}});
        sleep_ms(ctx, ctx.args().value("ms", 300), true);
        ctx.progress(Json{{"step", 2}, {"of", 2}});
        return Outcome::complete();
      },
      options_for("test.progress"));
  // Snoozes once, then completes.
  worker.handle(
      "test.snooze",
      [](JobContext& ctx) {
        record("run", ctx.job());
        if (ctx.args().value("snoozed", false) || ctx.job().attempt > 1) return Outcome::complete();
        static std::atomic<int> seen{0};
        if (seen.fetch_add(1) == 0) return Outcome::snooze(std::chrono::milliseconds(ctx.args().value("ms", 300)));
        return Outcome::complete();
      },
      options_for("test.snooze"));
  // Slow on the first attempt (args.ms), instant afterwards: a crash mid-run shows as attempt 2.
  worker.handle(
      "test.once_slow",
      [](JobContext& ctx) {
        record("start", ctx.job());
        if (ctx.job().attempt == 1) sleep_ms(ctx, ctx.args().value("ms", 5000), false);
        record("end", ctx.job());
        return Outcome::complete(Json{{"attempt", ctx.job().attempt}, {"pid", static_cast<int>(::getpid())}});
      },
      options_for("test.once_slow"));
  worker.handle(
      "test.permanent",
      [](JobContext& ctx) {
        record("run", ctx.job());
        return Outcome::fail("permanent failure");
      },
      options_for("test.permanent"));

  // A poison job: after args.ms (default 100) it kills the whole worker process, as a handler
  // with a wild pointer would (args.how: "segv" or "abort").
  worker.handle(
      "test.crash",
      [](JobContext& ctx) -> Outcome {
        record("run", ctx.job());
        sleep_ms(ctx, ctx.args().value("ms", 100), false);
        if (ctx.args().value("how", "segv") == "abort") std::abort();
        std::raise(SIGSEGV);
        return Outcome::complete();
      },
      options_for("test.crash"));

  running = &worker;
  worker.run();
  return 0;
}
