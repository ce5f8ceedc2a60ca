// docket migrate | worker | dev
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "bench.hpp"
#include "cli/commands.hpp"
#include "core/log.hpp"
#include "docket/client.hpp"
#include "docket/embedded.hpp"
#include "docket/errors.hpp"
#include "docket/worker.hpp"
#include "maintenance/maintainer.hpp"
#include "metrics_server.hpp"
#include "server.hpp"

namespace docket::cli {

namespace fs = std::filesystem;

namespace {

/// Kinds `docket dev` runs without --config, and `docket worker --demo` adds.
void add_demo_kinds(Config& config) {
  auto kind = [&](const std::string& name, const std::string& builtin) -> KindConfig& {
    KindConfig& k = config.kinds[name];
    k.kind = name;
    k.executor = BuiltinExecutor{builtin};
    return k;
  };
  kind("demo.echo", "echo");
  kind("demo.sleep", "sleep");
  KindConfig& fail = kind("demo.fail", "fail");
  fail.max_retries = 3;
  fail.backoff.strategy = Backoff::Strategy::exponential;
  fail.backoff.base = Millis(1000);
  fail.backoff.max = Millis(10000);
}

/// Routes the first SIGTERM/SIGINT to what is running (worker, API), even a signal that arrives
/// before they exist.
class StopRelay {
 public:
  StopRelay() {
    install_stop_signals([this] {
      std::lock_guard lock(mutex_);
      early_ = true;
      for (auto& stop : stops_) stop();
    });
  }
  void attach(std::function<void()> stop) {
    std::lock_guard lock(mutex_);
    if (early_) stop();
    stops_.push_back(std::move(stop));
  }

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> stops_;
  bool early_ = false;
};

/// Serves the API on a thread; stop() ends it.
class ApiThread {
 public:
  ApiThread(const std::string& url, const ApiConfig& config, std::shared_ptr<Metrics> metrics, bool fall_back)
      : server_(url, config, std::move(metrics)) {
    try {
      server_.bind(config.listen);
    } catch (const ConfigError& e) {
      if (!fall_back) throw;
      // docket dev on a busy port: take any free one rather than fail the first run.
      log::warn("api.port_busy", {{"listen", config.listen}, {"error", e.what()}});
      server_.bind(api::parse_listen(config.listen).first + ":0");
    }
    host_ = api::parse_listen(config.listen).first;
    thread_ = std::thread([this] { server_.run(); });
  }
  ~ApiThread() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  void stop() { server_.stop(); }
  std::string base_url() const { return "http://" + host_ + ":" + std::to_string(server_.port()); }

 private:
  api::Server server_;
  std::string host_;
  std::thread thread_;
};

/// Settings PostgreSQL refuses (an unparsable URL, a wrong password, an unknown database) stop
/// the API at start with exit code 2; a server that is down or restarting is only reported: the
/// API starts and answers /ready with 503 until the database is back.
void refuse_broken_database_settings(const std::string& url) {
  try {
    Client(url, ClientOptions{1, "docket-api", false}).ping();
  } catch (const Unavailable& e) {
    log::warn("db.unavailable", {{"component", "api"}, {"error", e.what()}});
  }
}

void apply_worker_flags(Config& config, const std::vector<std::string>& queues, int concurrency) {
  if (!queues.empty()) {
    config.worker.queues = queues;
    // Per-queue concurrency from the config still applies to the queues the flag names.
    std::erase_if(config.worker.queue_concurrency, [&](const auto& entry) {
      return std::find(queues.begin(), queues.end(), entry.first) == queues.end();
    });
  }
  if (concurrency > 0) config.worker.concurrency = concurrency;
  config.validate();
  config.check_programs();  // only where jobs run: other commands may load a worker's config elsewhere
}

/// docket migrate: creates or upgrades the schema and deploys the config's schedules.
void add_migrate_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd =
      app.add_subcommand("migrate", "Create or upgrade the docket schema (idempotent, safe to run concurrently)");
  cmd->callback([&] {
    action = [&] {
      const Config config = load_config(global);
      std::string url = database_url(config);
      if (config.pooler == Pooler::transaction && !config.worker.listen_url.empty()) {
        // The migration lock needs a session of its own: the listen URL goes around the pooler.
        set_pooler(Pooler::none);
        url = config.worker.listen_url;
      }
      const int applied = migrate(url);
      std::cout << (applied == 0 ? "schema is up to date" : "applied " + std::to_string(applied) + " migration(s)")
                << " (version " << known_schema_version() << ")\n";
      if (config.schedules_declared) {
        // The deploy step: the file's [schedules] in one statement; config schedules it no longer
        // declares are deleted (a worker's start applies them too, but never deletes).
        std::vector<ScheduleSpec> specs;
        for (const auto& [name, spec] : config.schedules) specs.push_back(spec);
        const ScheduleDeploy d =
            Client(database_url(config), ClientOptions{1, "docket-migrate", true}).deploy_schedules(specs, true);
        log_deploy(d);
        std::cout << "schedules: " << d.applied.size() << " applied, " << d.deleted.size() << " deleted";
        if (!d.runtime.empty())
          std::cout << ", " << d.runtime.size() << " left alone (run-time schedules of that name)";
        std::cout << '\n';
      }
      return kOk;
    };
  });
}

/// docket worker: runs jobs of the configured kinds until a stop signal.
void add_worker_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("worker", "Run jobs of the configured kinds until SIGTERM/SIGINT");
  auto queues = std::make_shared<std::vector<std::string>>();
  auto concurrency = std::make_shared<int>(0);
  auto demo = std::make_shared<bool>(false);
  cmd->add_option("--queues", *queues, "Queues to claim from (default: worker.queues, else default)")->delimiter(',');
  cmd->add_option("--concurrency,-c", *concurrency, "Jobs this process runs at once (default: worker.concurrency, 8)");
  cmd->add_flag("--demo", *demo, "Also run the demo kinds demo.echo, demo.sleep, demo.fail");
  cmd->callback([&, queues, concurrency, demo] {
    action = [&, queues, concurrency, demo] {
      // Signals first: every thread started later inherits the blocked mask.
      static StopRelay relay;
      Config config = load_config(global);
      if (*demo) add_demo_kinds(config);
      apply_worker_flags(config, *queues, *concurrency);
      Worker worker(database_url(config), config.worker);
      worker.add_kinds(config);
      std::unique_ptr<api::MetricsServer> metrics_server;
      if (!config.worker.metrics_listen.empty()) {
        auto metrics = std::make_shared<Metrics>();
        worker.set_metrics(metrics);
        metrics_server =
            std::make_unique<api::MetricsServer>(config.worker.metrics_listen, metrics, database_url(config));
        log::info("worker.metrics", {{"url", "http://" + api::parse_listen(config.worker.metrics_listen).first + ":" +
                                                 std::to_string(metrics_server->port()) + "/metrics"}});
      }
      relay.attach([&worker] { worker.request_stop(); });
      worker.run();
      return kOk;
    };
  });
}

/// docket bench SCENARIO: runs one benchmark and prints its JSON line.
void add_bench_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("bench",
                                 "Benchmark with no-op jobs on DATABASE_URL: drain, enqueue, enqueue_sql, growth, "
                                 "latency, steady, quota, quota_mix, keyed, rate, bloat, schedules, soak "
                                 "(JSON line)");
  auto options = std::make_shared<bench::Options>();
  cmd->add_option("scenario", options->scenario,
                  "drain, enqueue, enqueue_sql, growth, latency, steady, quota, quota_mix, keyed, rate, bloat, "
                  "schedules or soak")
      ->required()
      ->check(CLI::IsMember(bench::scenarios()));
  cmd->add_option("--jobs,-n", options->jobs,
                  "Jobs (default: 50000; latency 200; quota 5000); soak: jobs per second (default 500)");
  cmd->add_option("--workers,-w", options->workers, "Worker processes (default 1)");
  cmd->add_option(
      "--concurrency,-c", options->concurrency,
      "Jobs each worker runs at once (default 500; quota 64); enqueue_sql: client connections (default 4 and 64)");
  cmd->add_option("--batch", options->batch, "Most jobs claimed in one round trip (default: worker.claim_batch)");
  cmd->add_option("--seconds", options->seconds,
                  "steady, soak, schedules, rate, enqueue_sql, growth: how long to run (default 10; rate 60)");
  cmd->add_option("--rounds", options->rounds,
                  "enqueue_sql: interleaved rounds of enqueue, enqueue without triggers and a bare INSERT (default 3)")
      ->check(CLI::Range(1, 100));
  cmd->add_flag("--large", options->large, "growth: also drain 1M queued jobs and enqueue over 10M finished rows");
  cmd->add_option("--csv", options->csv, "soak: the per-sample figures (default soak.csv)");
  cmd->add_option("--metric", options->metric, "Name for the JSON line's \"metric\" (default: the scenario)");
  cmd->add_option("--run", options->run, "Repetition number for the JSON line (default 1)");
  cmd->callback([&, options] {
    action = [&, options] {
      const Config config = load_config(global);
      options->url = database_url(config);
      options->docket = fs::read_symlink("/proc/self/exe").string();
      std::cout << bench::run(*options).dump() << '\n';
      return kOk;
    };
  });
}

/// docket api: serves the HTTP API until a stop signal.
void add_api_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("api", "Serve the HTTP API (see GET /openapi.json) until SIGTERM/SIGINT");
  auto listen = std::make_shared<std::string>();
  cmd->add_option("--listen", *listen, "host:port (default: api.listen, 127.0.0.1:8080)");
  cmd->callback([&, listen] {
    action = [&, listen] {
      static StopRelay relay;
      Config config = load_config(global);
      if (!listen->empty()) config.api.listen = *listen;
      config.api.listen_url = config.worker.listen_url;
      refuse_broken_database_settings(database_url(config));
      api::Server server(database_url(config), config.api, std::make_shared<Metrics>());
      server.bind(config.api.listen);
      relay.attach([&server] { server.stop(); });
      log::info("api.listening",
                {{"url", "http://" + api::parse_listen(config.api.listen).first + ":" + std::to_string(server.port())},
                 {"auth", config.api.tokens.empty() ? "none (loopback only)" : "bearer token"}});
      if (!server.run()) throw Error("the API server stopped unexpectedly");
      log::info("api.stopped", {});
      return kOk;
    };
  });
}

/// docket dev: embedded PostgreSQL, migrations, the API and a worker in one process.
void add_dev_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand(
      "dev", "Zero-config: embedded PostgreSQL in ./.docket (unless DATABASE_URL), migrate, run the API and a worker");
  auto queues = std::make_shared<std::vector<std::string>>();
  auto concurrency = std::make_shared<int>(0);
  cmd->add_option("--queues", *queues, "Queues to claim from")->delimiter(',');
  cmd->add_option("--concurrency,-c", *concurrency, "Jobs run at once");
  cmd->callback([&, queues, concurrency] {
    action = [&, queues, concurrency] {
      static StopRelay relay;
      Config config = load_config(global);
      if (global.config_path.empty()) {
        add_demo_kinds(config);
        log::set_log_jobs(true);  // a first run shows every job go by
      }
      apply_worker_flags(config, *queues, *concurrency);
      std::unique_ptr<embedded::Cluster> cluster;
      std::string url = config.database_url;
      bool started_cluster = false;
      if (url.empty()) {
        cluster = std::make_unique<embedded::Cluster>(embedded::dev_cluster_options());
        if (!cluster->running()) {
          log::info("dev.postgres_starting", {{"dir", cluster->data_dir().string()}});
          cluster->start();
          started_cluster = true;
        }
        url = cluster->url();
      }
      const int applied = migrate(url);
      log::info("dev.migrated", {{"applied", applied}, {"version", known_schema_version()}});
      Client client(url, ClientOptions{1, "docket-dev", true});
      if (global.config_path.empty() && client.jobs(JobFilter{.limit = 1}).empty()) {
        // A first run shows jobs flowing right away: one completes, one sleeps, one retries.
        client.enqueue({.kind = "demo.echo", .args = Json{{"hello", "docket"}}});
        client.enqueue({.kind = "demo.sleep", .args = Json{{"ms", 1500}}});
        client.enqueue({.kind = "demo.fail", .args = Json::object(), .max_retries = 2});
      }
      auto metrics = std::make_shared<Metrics>();
      ApiThread api(url, config.api, metrics, true);
      const std::string psql = cluster ? "psql \"" + url + "\"" : "psql \"$DATABASE_URL\"";
      const std::string auth = config.api.tokens.empty() ? "" : "-H 'Authorization: Bearer TOKEN' ";
      std::cerr << "\n"
                << "  Docket dev is running (Ctrl-C drains and stops).\n"
                << "    database   " << psql << "\n"
                << "    enqueue    docket enqueue demo.echo '{\"hi\":1}'          (another terminal, this directory)\n"
                << "               " << psql << " -c \"SELECT docket.enqueue('demo.sleep', '{\\\"ms\\\": 2000}')\"\n"
                << "    watch      docket jobs      docket job ID      docket stats\n"
                << "    dashboard  " << api.base_url() << "/\n"
                << "    http       curl -s " << auth << api.base_url()
                << "/jobs -d '{\"kind\":\"demo.echo\",\"args\":{\"hi\":2}}'\n"
                << "               curl -s " << auth << api.base_url() << "/jobs?limit=5\n"
                << "    quota      docket limit demo.sleep 2\n\n";
      Worker worker(url, config.worker);
      worker.add_kinds(config);
      worker.set_metrics(metrics);
      relay.attach([&worker] { worker.request_stop(); });
      worker.run();
      api.stop();
      if (cluster && started_cluster) {
        log::info("dev.postgres_stopping", {});
        cluster->stop();
      }
      return kOk;
    };
  });
}

}  // namespace

void add_run_commands(CLI::App& app, GlobalOptions& global, Action& action) {
  add_migrate_command(app, global, action);
  add_worker_command(app, global, action);
  add_bench_command(app, global, action);
  add_api_command(app, global, action);
  add_dev_command(app, global, action);
}

}  // namespace docket::cli
