#include <gtest/gtest.h>

#include <climits>

#include "docket/config.hpp"
#include "docket/errors.hpp"

using namespace docket;

// The config of DESIGN.md, exactly as written there: scripts and tests rely on it.
constexpr const char* kDesignExample = R"toml(
[worker]
queues = ["default", "imports"]   # queues this worker claims from
concurrency = 8                   # jobs this process runs at once
shutdown_timeout = "30s"          # SIGTERM: how long running jobs may finish

[kinds.import]
command = ["/usr/local/bin/import-one"]
max_retries = 5
backoff = { strategy = "exponential", base = "2s", max = "10m", jitter = 0.2 }
timeout = "10m"
max_running = 5

[kinds.notify]
url = "http://127.0.0.1:9000/hooks/notify"
backoff = { strategy = "fixed", delay = "5s" }

[kinds.projects]
crawl = { url = "http://127.0.0.1:9000/projects?page={page}", items = "/items",
          key = "/id", collection = "projects", delay = "200ms" }
)toml";

TEST(Config, DesignExampleParsesAsWritten) {
  const Config c = Config::parse(kDesignExample, "docket.toml");
  c.validate();
  EXPECT_EQ(c.worker.queues, (std::vector<std::string>{"default", "imports"}));
  EXPECT_EQ(c.worker.concurrency, 8);
  EXPECT_EQ(c.worker.shutdown_timeout, Millis(30000));
  ASSERT_EQ(c.kinds.size(), 3u);
  const auto& import = c.kinds.at("import");
  ASSERT_TRUE(std::holds_alternative<CommandExecutor>(import.executor));
  EXPECT_EQ(std::get<CommandExecutor>(import.executor).argv[0], "/usr/local/bin/import-one");
  EXPECT_EQ(import.max_retries, 5);
  EXPECT_EQ(import.max_running, 5);
  EXPECT_EQ(import.timeout, Millis(600000));
  EXPECT_EQ(import.backoff.strategy, Backoff::Strategy::exponential);
  EXPECT_EQ(import.backoff.base, Millis(2000));
  EXPECT_EQ(import.backoff.max, Millis(600000));
  EXPECT_DOUBLE_EQ(import.backoff.jitter, 0.2);
  const auto& notify = c.kinds.at("notify");
  ASSERT_TRUE(std::holds_alternative<HttpExecutor>(notify.executor));
  EXPECT_EQ(notify.backoff.strategy, Backoff::Strategy::fixed);
  EXPECT_EQ(notify.backoff.delay, Millis(5000));
  const auto& crawl = std::get<CrawlExecutor>(c.kinds.at("projects").executor);
  EXPECT_EQ(crawl.url, "http://127.0.0.1:9000/projects?page={page}");
  EXPECT_EQ(crawl.items, "/items");
  EXPECT_EQ(crawl.key, "/id");
  EXPECT_EQ(crawl.collection, "projects");
  EXPECT_EQ(crawl.delay, Millis(200));
}

std::string config_error(const std::string& toml) {
  try {
    Config::parse(toml, "docket.toml").validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, UnknownKeyNamesItAndSuggestsTheRightOne) {
  const auto msg = config_error("[worker]\nconcurency = 4\n");
  EXPECT_NE(msg.find("docket.toml:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"concurency\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean \"concurrency\""), std::string::npos) << msg;
}

TEST(Config, UnknownKindKeyAndBackoffKeyAreErrors) {
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nmax_retry = 3\n").find("did you mean \"max_retries\""),
            std::string::npos);
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nbackoff = { strategy = \"exponental\" }\n")
                .find("did you mean \"exponential\""),
            std::string::npos);
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nbackoff = { bsae = \"1s\" }\n").find("did you mean \"base\""),
            std::string::npos);
  EXPECT_NE(config_error("[wrker]\n").find("did you mean \"worker\""), std::string::npos);
}

TEST(Config, WrongTypesAndValuesSayHowToFixThem) {
  EXPECT_NE(config_error("[worker]\nconcurrency = \"8\"\n").find("must be an integer"), std::string::npos);
  EXPECT_NE(config_error("[worker]\nshutdown_timeout = \"30 parsecs\"\n").find("unknown unit"), std::string::npos);
  EXPECT_NE(config_error("[worker]\nconcurrency = 0\n").find("between 1 and 10000"), std::string::npos);
  EXPECT_NE(config_error("[worker]\nstuck_after = \"50ms\"\n").find("worker.stuck_after must be at least 100ms"),
            std::string::npos);
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nurl=\"http://x\"\n").find("exactly one of"), std::string::npos);
  EXPECT_NE(config_error("[kinds.a]\nurl=\"ftp://x\"\n").find("http://"), std::string::npos);
  EXPECT_NE(config_error("[worker\n").find("invalid TOML"), std::string::npos);
  EXPECT_NE(config_error("[log]\nlevel=\"inof\"\n").find("did you mean \"info\""), std::string::npos);
}

TEST(Config, JobProgramAndOutgoingRequestSettingsParseAndNameTheirField) {
  const Config c = Config::parse(
      "[kinds.c]\ncommand = [\"x\"]\nenv_pass = [\"AWS_PROFILE\"]\n"
      "[kinds.u]\nurl = \"http://h/x\"\nmax_response = \"1MiB\"\n"
      "[kinds.r]\ncrawl = { url = \"http://h/?page={page}\", max_response = \"2MiB\", allow_hosts = [\"h2\"], "
      "max_shrink = 1.0 }\n",
      "t");
  EXPECT_EQ(std::get<CommandExecutor>(c.kinds.at("c").executor).env_pass, std::vector<std::string>{"AWS_PROFILE"});
  EXPECT_EQ(std::get<HttpExecutor>(c.kinds.at("u").executor).max_response, 1u << 20);
  const auto& crawl = std::get<CrawlExecutor>(c.kinds.at("r").executor);
  EXPECT_EQ(crawl.max_response, 2u << 20);
  EXPECT_EQ(crawl.allow_hosts, std::vector<std::string>{"h2"});
  EXPECT_EQ(crawl.max_shrink, 1.0);
  EXPECT_EQ(std::get<HttpExecutor>(Config::parse("[kinds.u]\nurl = \"http://h/\"\n", "t").kinds.at("u").executor)
                .max_response,
            16u << 20);
  EXPECT_NE(config_error("[kinds.u]\nurl = \"http://h/\"\nenv_pass = [\"X\"]\n")
                .find("kinds.u.env_pass only applies to a command kind"),
            std::string::npos);
  EXPECT_NE(config_error("[kinds.c]\ncommand = [\"x\"]\nmax_response = \"1MiB\"\n").find("kinds.c.max_response"),
            std::string::npos);
  EXPECT_NE(config_error("[kinds.r]\ncrawl = { url = \"http://h/?page={page}\", max_shrink = 1.5 }\n")
                .find("kinds.r.crawl.max_shrink must be between 0 and 1"),
            std::string::npos);
}

TEST(Config, EnvironmentOverridesFileAndFlagsOverrideBoth) {
  Config c = Config::parse("[worker]\nconcurrency = 4\nqueues=[\"a\"]\n", "t");
  c.apply_env({"DOCKET_WORKER_CONCURRENCY=12", "DOCKET_WORKER_QUEUES=x, y", "DATABASE_URL=postgresql:///x",
               "DOCKET_API_TOKENS=t1,t2", "DOCKET_WORKER_SHUTDOWN_TIMEOUT=5s", "UNRELATED=1"});
  EXPECT_EQ(c.worker.concurrency, 12);
  EXPECT_EQ(c.worker.queues, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(c.database_url, "postgresql:///x");
  EXPECT_EQ(c.api.tokens, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(c.worker.shutdown_timeout, Millis(5000));
  EXPECT_EQ(c.worker.stuck_after, Millis(15000));  // the default
  c.apply_env({"DOCKET_WORKER_STUCK_AFTER=2m"});
  EXPECT_EQ(c.worker.stuck_after, Millis(120000));
  EXPECT_THROW(c.apply_env({"DOCKET_WORKER_CONCURRENCY=lots"}), ConfigError);
}

TEST(Durations, ParseAndFormat) {
  EXPECT_EQ(parse_duration("250ms", "x"), Millis(250));
  EXPECT_EQ(parse_duration("1.5s", "x"), Millis(1500));
  EXPECT_EQ(parse_duration("10m", "x"), Millis(600000));
  EXPECT_EQ(parse_duration("2h", "x"), Millis(7200000));
  EXPECT_EQ(parse_duration("7d", "x"), Millis(604800000));
  EXPECT_THROW(parse_duration("", "x"), ConfigError);
  EXPECT_THROW(parse_duration("-5s", "x"), ConfigError);
  EXPECT_THROW(parse_duration("5 fortnights", "x"), ConfigError);
  EXPECT_EQ(format_duration(Millis(600000)), "10m");
  EXPECT_EQ(format_duration(Millis(1500)), "1.5s");
  EXPECT_EQ(format_duration(Millis(250)), "250ms");
}

TEST(Backoff, EveryAttemptGivesAFiniteWaitBetweenNominalAndCap) {
  std::mt19937_64 rng(42);
  for (auto strategy : {Backoff::Strategy::fixed, Backoff::Strategy::linear, Backoff::Strategy::exponential}) {
    Backoff b;
    b.strategy = strategy;
    b.base = Millis(2000);
    b.max = Millis(600000);
    b.delay = Millis(5000);
    b.jitter = 0.2;
    for (long long a : {-5LL, 0LL, 1LL, 2LL, 3LL, 10LL, 31LL, 32LL, 63LL, 64LL, 1000LL, 100000LL,
                        static_cast<long long>(INT_MAX) - 1, static_cast<long long>(INT_MAX)}) {
      const int attempt = static_cast<int>(a);
      const auto w = b.wait_after(attempt, rng);
      EXPECT_GE(w.count(), 0) << "attempt " << attempt;
      const double cap = strategy == Backoff::Strategy::fixed ? 5000 * 1.2 : 600000 * 1.2;
      EXPECT_LE(static_cast<double>(w.count()), cap + 1) << "attempt " << attempt;
    }
  }
}

TEST(Backoff, JitterOnlyAddsSoAWaitIsNeverShorterThanConfigured) {
  std::mt19937_64 rng(7);
  Backoff b;
  b.strategy = Backoff::Strategy::exponential;
  b.base = Millis(1000);
  b.max = Millis(60000);
  b.jitter = 0.5;
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const long long nominal = std::min<long long>(60000, 1000LL << (attempt - 1));
    for (int i = 0; i < 200; ++i) {
      const auto w = b.wait_after(attempt, rng).count();
      EXPECT_GE(w, nominal);
      EXPECT_LE(w, nominal * 3 / 2 + 1);
    }
  }
}

TEST(Backoff, JitterSpreadsSimultaneousFailures) {
  std::mt19937_64 rng(1);
  Backoff b;
  b.strategy = Backoff::Strategy::fixed;
  b.delay = Millis(10000);
  b.jitter = 0.2;
  long long lo = LLONG_MAX, hi = 0;
  for (int i = 0; i < 10000; ++i) {
    const long long w = b.wait_after(1, rng).count();
    lo = std::min(lo, w);
    hi = std::max(hi, w);
  }
  // 10k jobs failing together come back spread over (almost) the whole jitter window.
  EXPECT_GE(hi - lo, 10000 * 0.2 * 0.9);
}

TEST(Suggest, OnlyCloseWords) {
  EXPECT_EQ(suggest("concurency", {"concurrency", "queues"}), "concurrency");
  EXPECT_EQ(suggest("xyz", {"concurrency", "queues"}), "");
}

TEST(Config, RateAndBurstParseAndBadOnesNameTheirField) {
  const auto cfg = Config::parse("[kinds.a]\ncommand=[\"x\"]\nrate = \"100/1m\"\nburst = 5\n", "docket.toml");
  EXPECT_EQ(cfg.kinds.at("a").rate, "100/1m");
  EXPECT_EQ(cfg.kinds.at("a").burst, 5);
  EXPECT_FALSE(Config::parse("[kinds.a]\ncommand=[\"x\"]\n").kinds.at("a").rate);
  for (const std::string ok : {"20/s", "5/500ms", "1/1d", "3/1.5h", " 7 / m "})
    EXPECT_NO_THROW(check_rate(ok, "r")) << ok;
  for (const std::string bad : {"", "10", "10/", "/1s", "0/1s", "-1/1s", "10/1w", "10/0s", "10/2d", "1000001/1s",
                                "ten/1s", "10/1min", "1e3/1s", "10/1s/1s"}) {
    const auto msg = config_error("[kinds.a]\ncommand=[\"x\"]\nrate = \"" + bad + "\"\n");
    EXPECT_NE(msg.find("kinds.a.rate"), std::string::npos) << bad << ": " << msg;
  }
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nrate = 5\n").find("kinds.a.rate"), std::string::npos);
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nrate = \"5/s\"\nburst = 0\n").find("kinds.a.burst"),
            std::string::npos);
  EXPECT_NE(config_error("[kinds.a]\ncommand=[\"x\"]\nburst = 3\n").find("needs kinds.a.rate"), std::string::npos);
}

TEST(Config, QueuesTakeAListOrATableOfPerQueueConcurrency) {
  const auto list = Config::parse("[worker]\nqueues = [\"a\", \"b\"]\n");
  EXPECT_EQ(list.worker.queues, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(list.worker.queue_concurrency.empty());
  const auto table = Config::parse("[worker]\nqueues = { default = 10, imports = 2 }\n");
  EXPECT_EQ(table.worker.queues, (std::vector<std::string>{"default", "imports"}));
  EXPECT_EQ(table.worker.queue_concurrency, (std::map<std::string, int>{{"default", 10}, {"imports", 2}}));
  EXPECT_NE(
      config_error("[worker]\nqueues = { imports = 0 }\n").find("worker.queues.imports must be between 1 and 10000"),
      std::string::npos);
  EXPECT_NE(config_error("[worker]\nqueues = { imports = \"2\" }\n").find("worker.queues.imports must be an integer"),
            std::string::npos);
  EXPECT_NE(config_error("[worker]\nqueues = 3\n").find("a table of queue = concurrency"), std::string::npos);
  Config env;
  env.apply_env({"DOCKET_WORKER_QUEUES=default=10, imports=2"});
  EXPECT_EQ(env.worker.queue_concurrency, (std::map<std::string, int>{{"default", 10}, {"imports", 2}}));
  env.apply_env({"DOCKET_WORKER_QUEUES=a,b"});
  EXPECT_TRUE(env.worker.queue_concurrency.empty());
  EXPECT_THROW(env.apply_env({"DOCKET_WORKER_QUEUES=a=x"}), ConfigError);
}

TEST(Config, PoolerAndListenUrlFromTomlAndEnvAndABadPoolerNamesTheField) {
  auto c = Config::parse("pooler = \"transaction\"\nlisten_url = \"postgresql://db:5432/app\"\n");
  EXPECT_EQ(c.pooler, Pooler::transaction);
  EXPECT_EQ(c.worker.listen_url, "postgresql://db:5432/app");
  Config d;
  EXPECT_EQ(d.pooler, Pooler::none);
  d.apply_env({"DOCKET_POOLER=transaction", "DOCKET_LISTEN_URL=postgresql:///direct"});
  EXPECT_EQ(d.pooler, Pooler::transaction);
  EXPECT_EQ(d.worker.listen_url, "postgresql:///direct");
  d.apply_env({"DOCKET_POOLER=none"});
  EXPECT_EQ(d.pooler, Pooler::none);
  try {
    (void)Config::parse("pooler = \"statement\"\n");
    FAIL() << "a statement pooler was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pooler must be \"none\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("got \"statement\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(d.apply_env({"DOCKET_POOLER=session"}), ConfigError);
  EXPECT_EQ(d.pooler, Pooler::none);  // a refused value changes nothing
  EXPECT_THROW((void)Config::parse("listen_url = 5\n"), ConfigError);
}

TEST(Config, AKindsQueueAndRetentionParseAndItsQueueMustBeClaimed) {
  auto c = Config::parse(R"(
[worker]
queues = ["default", "imports"]
retain_failed = "3d"
[kinds.import]
command = ["/bin/true"]
queue = "imports"
retain_completed = "30s"
)");
  c.validate();
  const auto& k = c.kinds.at("import");
  EXPECT_EQ(k.queue, "imports");
  EXPECT_EQ(k.retain_completed, Millis(30000));
  EXPECT_EQ(k.retain_failed, std::nullopt);  // the worker's value applies when it seeds the kind
  EXPECT_EQ(c.worker.retain_failed, Millis(3LL * 24 * 3600 * 1000));
  EXPECT_EQ(c.worker.retain_completed, std::nullopt);  // unset: the fleet default in the database
  // A queue this worker does not claim would leave the kind's jobs waiting forever.
  auto orphan = Config::parse("[kinds.import]\ncommand = [\"/bin/true\"]\nqueue = \"imports\"\n");
  try {
    orphan.validate();
    ADD_FAILURE() << "a kind's queue outside worker.queues was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("kinds.import.queue is \"imports\" but this worker does not claim it"),
              std::string::npos)
        << e.what();
  }
  auto blank = Config::parse("[worker]\nqueues = [\" \"]\n[kinds.import]\ncommand = [\"/bin/true\"]\nqueue = \" \"\n");
  EXPECT_THROW(blank.validate(), ConfigError);
  EXPECT_THROW(Config::parse("[kinds.import]\ncommand = [\"/bin/true\"]\nretain_failed = \"soon\"\n"), ConfigError);
}

TEST(Config, KeyedLimitsParseAndBadOnesNameTheField) {
  const auto c = Config::parse(
      "[kinds.scrape]\ncommand = [\"x\"]\npartition = \"args.source.host\"\nmax_running_per_key = 2\n"
      "rate_per_key = \"60/1m\"\nburst_per_key = 5\n",
      "docket.toml");
  c.validate();
  const auto& k = c.kinds.at("scrape").keyed;
  EXPECT_EQ(k.partition, "args.source.host");
  EXPECT_EQ(k.max_running_per_key, 2);
  EXPECT_EQ(k.rate_per_key, "60/1m");
  EXPECT_EQ(k.burst_per_key, 5);
  const std::string kind = "[kinds.a]\ncommand = [\"x\"]\n";
  for (const std::string bad : {"tenant", "args.", "args.a b", "args.1.2.3.4.5.6.7.8.9", "$.tenant"}) {
    const auto msg = config_error(kind + "partition = \"" + bad + "\"\n");
    EXPECT_NE(msg.find("kinds.a.partition"), std::string::npos) << bad << ": " << msg;
    EXPECT_NE(msg.find("args.tenant"), std::string::npos) << msg;  // says what a good one looks like
  }
  EXPECT_NE(
      config_error(kind + "partition = \"args.t\"\nmax_running_per_key = -1\n").find("kinds.a.max_running_per_key"),
      std::string::npos);
  EXPECT_NE(config_error(kind + "partition = \"args.t\"\nrate_per_key = \"fast\"\n").find("kinds.a.rate_per_key"),
            std::string::npos);
  EXPECT_NE(config_error(kind + "max_running_per_key = 2\n").find("need kinds.a.partition"), std::string::npos);
  EXPECT_NE(config_error(kind + "partition = \"args.t\"\nburst_per_key = 2\n").find("needs kinds.a.rate_per_key"),
            std::string::npos);
}

TEST(Config, AKindsUniqueResultTtlAndMaxResultBytesParseAndHostileValuesNameTheirField) {
  auto c = Config::parse(R"(
[kinds.report]
command = ["/bin/true"]
unique = { by = ["args.report", "args.params"], period = "10m", states = ["available", "scheduled", "running", "retryable", "completed"] }
result_ttl = "1h"
max_result_bytes = "64KiB"
[kinds.whole]
command = ["/bin/true"]
unique = { key = "args", for = "30s" }
)");
  const auto& k = c.kinds.at("report");
  ASSERT_TRUE(k.unique);
  EXPECT_EQ(k.unique->by, (std::vector<std::string>{"args.report", "args.params"}));
  EXPECT_EQ(k.unique->period, Millis(600000));
  EXPECT_EQ(k.unique->states->size(), 5u);
  EXPECT_EQ(k.result_ttl, Millis(3600000));
  EXPECT_EQ(k.max_result_bytes, 64u * 1024);
  EXPECT_EQ(c.kinds.at("whole").unique->by, (std::vector<std::string>{"args"}));
  EXPECT_EQ(c.kinds.at("whole").unique->period, Millis(30000));
  EXPECT_FALSE(c.kinds.at("whole").unique->states);
  EXPECT_EQ(c.kinds.at("whole").max_result_bytes, kMaxResultBytesCap);  // the default is the cap

  const std::pair<std::string, std::string> cases[] = {
      {"unique = { period = \"10m\" }", "kinds.k.unique.by is required"},
      {"unique = \"args\"", "kinds.k.unique must be a table"},
      {"unique = { by = \"tenant\" }", "kinds.k.unique.by"},
      {"unique = { by = [] }", "kinds.k.unique.by must be \"args\" or 1 to 16 paths"},
      {"unique = { by = \"args\", period = \"0s\" }", "kinds.k.unique.period must be more than 0"},
      {"unique = { by = \"args\", period = \"400d\" }", "kinds.k.unique.period must be more than 0 and at most 365d"},
      {"unique = { by = \"args\", states = [\"completed\"] }",
       "kinds.k.unique.states must include every unfinished state"},
      {"unique = { by = \"args\", states = [\"available\", \"scheduled\", \"running\", \"retryable\", \"done\"] }",
       "kinds.k.unique.states has an unknown state \"done\""},
      {"unique = { by = \"args\", perod = \"1m\" }", "perod"},
      {"unique = { by = \"args\", key = \"args\" }", "has both by and key"},
      {"result_ttl = \"0s\"", "kinds.k.result_ttl must be more than 0"},
      {"result_ttl = \"soon\"", "kinds.k.result_ttl"},
      {"max_result_bytes = 0", "kinds.k.max_result_bytes must be between 1 byte and 1MiB"},
      {"max_result_bytes = \"2MiB\"", "kinds.k.max_result_bytes must be between 1 byte and 1MiB"},
  };
  for (const auto& [line, message] : cases) {
    const auto error = config_error("[kinds.k]\ncommand = [\"/bin/true\"]\n" + line + "\n");
    EXPECT_NE(error.find(message), std::string::npos) << line << ": " << error;
  }
}

TEST(Config, CallbackKindsNeedAnHttpCallbackBaseUrlAndOnlyUrlKindsTakeCallback) {
  const std::string kind = "[kinds.remote]\nurl = \"http://127.0.0.1:9000/run\"\ncallback = true\n";
  EXPECT_NE(config_error(kind).find("kinds.remote.callback = true needs worker.callback_base_url"), std::string::npos)
      << config_error(kind);
  EXPECT_NE(config_error(kind).find("it is not set"), std::string::npos);
  for (const std::string bad : {"ftp://docket", "docket:8080", "http://", "http:///jobs", "http://a b",
                                "http://docket?x=1", "http://docket#top"}) {
    const std::string e = config_error("[worker]\ncallback_base_url = \"" + bad + "\"\n" + kind);
    EXPECT_NE(e.find("worker.callback_base_url"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_NE(config_error("[kinds.a]\ncommand = [\"x\"]\ncallback = true\n")
                .find("kinds.a.callback only applies to a url kind"),
            std::string::npos);
  EXPECT_NE(config_error("[worker]\ncallback_base_url = \"http://d\"\n" +
                         std::string("[kinds.remote]\nurl = \"http://x\"\ncallback = \"yes\"\n"))
                .find("kinds.remote.callback"),
            std::string::npos);
  const Config c =
      Config::parse("[worker]\ncallback_base_url = \"https://docket.internal:8080/\"\n" + kind, "docket.toml");
  EXPECT_EQ(c.worker.callback_base_url, "https://docket.internal:8080/");
  EXPECT_TRUE(std::get<HttpExecutor>(c.kinds.at("remote").executor).callback);
  const Config plain = Config::parse("[kinds.r]\nurl = \"http://127.0.0.1:9000/run\"\n", "docket.toml");
  EXPECT_FALSE(std::get<HttpExecutor>(plain.kinds.at("r").executor).callback);
}

TEST(Config, KindSettingsCarryAKindsStoredSettingsWithTheWorkersRetentionWhereItSetsNone) {
  auto c = Config::parse(R"(
[worker]
queues = ["default", "imports"]
retain_completed = "1h"
retain_failed = "3d"
[kinds.import]
command = ["/bin/true"]
queue = "imports"
max_running = 4
max_retries = 2
timeout = "90s"
retain_completed = "30s"
rate = "10/1m"
burst = 5
partition = "args.tenant"
max_running_per_key = 1
[kinds.scrape]
crawl = { url = "http://h/{page}", collection = "things" }
)");
  c.validate();
  const auto s = kind_settings("import", c.kinds.at("import"), c.worker);
  EXPECT_EQ(s.kind, "import");
  EXPECT_EQ(s.queue, "imports");
  EXPECT_EQ(s.max_running, 4);
  EXPECT_EQ(s.max_retries, 2);
  EXPECT_EQ(s.timeout, Millis(90000));
  EXPECT_EQ(s.retain_completed, Millis(30000));                // the kind's own
  EXPECT_EQ(s.retain_failed, Millis(3LL * 24 * 3600 * 1000));  // the worker's, as the kind sets none
  EXPECT_EQ(s.rate, "10/1m");
  EXPECT_EQ(s.burst, 5);
  EXPECT_EQ(s.keyed.partition, "args.tenant");
  EXPECT_EQ(s.keyed.max_running_per_key, 1);
  EXPECT_EQ(s.crawl_collection, std::nullopt);
  const auto crawl = kind_settings("scrape", c.kinds.at("scrape"), c.worker);
  EXPECT_EQ(crawl.crawl_collection, "things");
  EXPECT_EQ(crawl.max_running, std::nullopt);
  EXPECT_EQ(crawl.retain_completed, Millis(3600 * 1000));
}
