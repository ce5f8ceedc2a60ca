// Hostile configs: every case is refused with an error that names the key (and the fix), never
// accepted with a nonsense value, never a crash. Table-driven: add a row per defect class found.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "docket/config.hpp"
#include "docket/errors.hpp"

using namespace docket;

namespace {

struct Case {
  const char* toml;
  const char* fragment;  ///< must appear in the error
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

const Case kHostileToml[] = {
    // Durations that cannot mean what was meant.
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = \"0s\"\n", "kinds.a.timeout must be greater than 0"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = 0\n", "kinds.a.timeout must be greater than 0"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = -5\n", "kinds.a.timeout: \"-5s\" is negative"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = \"-1s\"\n", "kinds.a.timeout: \"-1s\" is negative"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = 9223372036854775807\n", "kinds.a.timeout: duration out of range"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = \"1e400s\"\n", "kinds.a.timeout: unknown unit \"e400s\""},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = \"nans\"\n", "kinds.a.timeout: \"nans\" is not a duration"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = \"99999999999999999999d\"\n", "kinds.a.timeout: duration out of range"},
    {"[kinds.a]\nbuiltin=\"noop\"\ntimeout = \"36501d\"\n", "kinds.a.timeout: duration out of range (at most 36500d)"},
    {"[kinds.c]\ncrawl = { url = \"http://x/\", timeout = \"0s\" }\n", "kinds.c.crawl.timeout must be greater than 0"},
    {"[worker]\nlease = \"0s\"\n", "worker.lease must be at least 500ms"},
    {"[worker]\nshutdown_timeout = -1\n", "worker.shutdown_timeout: \"-1s\" is negative"},
    {"[worker]\npoll_interval = \"0ms\"\n", "worker.poll_interval must be at least 10ms"},
    {"[worker]\npromote_interval = \"0s\"\n", "worker.promote_interval must be at least 10ms"},
    {"[worker]\nprune_interval = 0\n", "worker.prune_interval must be at least 1s"},
    {"[worker]\nheartbeat_interval = \"1ms\"\n", "worker.heartbeat_interval must be at least 10ms"},
    {"[worker]\nrescue_interval = \"1ms\"\n", "worker.rescue_interval must be at least 10ms"},
    // Integers that would wrap into a valid int.
    {"[worker]\nconcurrency = 4294967297\n", "worker.concurrency must be between -2147483648 and 2147483647"},
    {"[worker]\nclaim_batch = -4294967295\n", "worker.claim_batch must be between"},
    {"[api]\nthreads = 4294967360\n", "api.threads must be between"},
    // Sizes: negative or past any meaning.
    {"[api]\nmax_body = -1\n", "api.max_body: \"-1\" is not a size"},
    {"[api]\nmax_body = \"99999999999GiB\"\n", "api.max_body: size \"99999999999GiB\" is out of range"},
    {"[api]\nmax_body = 9223372036854775807\n", "api.max_body: size \"9223372036854775807\" is out of range"},
    // Types and structure.
    {"[worker]\nconcurrency = \"8\"\n", "worker.concurrency must be an integer"},
    {"[worker]\nqueues = [1, 2]\n", "worker.queues must be an array of strings"},
    {"worker = 3\n", "[worker] must be a table"},
    {"[worker]\nconcurency = 4\n", "did you mean \"concurrency\""},
    {"[kinds.a]\ncommand = []\n", "kinds.a.command must name a program"},
    // Schedules ([schedules.NAME]): each field named; the database checks the cron fields in detail.
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\nkind=\"k\"\n", "schedules.s.cron is required"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\n", "schedules.s.kind is required"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"nope\"\n",
     "schedules.s.kind \"nope\" is not a kind of this file: add [kinds.nope]"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=5\nkind=\"k\"\n", "schedules.s.cron must be a string"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"* * *\"\nkind=\"k\"\n", "schedules.s.cron must be 5 fields"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"\"\nkind=\"k\"\n", "schedules.s.cron must be 5 fields"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\ncorn=1\n", "did you mean \"cron\""},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\ntz=\"Mars\"\n",
     "schedules.s.tz must be an IANA time zone"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\ntz=\"foo+3\"\n",
     "schedules.s.tz must be an IANA time zone"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nspread=\"soon\"\n",
     "schedules.s.spread: \"soon\" is not a duration"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nspread=\"400d\"\n",
     "schedules.s.spread must be at most 366d"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\non_overlap=\"queue\"\n",
     "schedules.s.on_overlap must be one of skip, allow, replace"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\non_missed=\"some\"\n",
     "schedules.s.on_missed must be one of skip, latest, all"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nenabled=\"yes\"\n",
     "schedules.s.enabled must be"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\npriority=4294967297\n",
     "schedules.s.priority must be between"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\npriority=1001\n",
     "schedules.s.priority must be between 0"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nmax_retries=-1\n",
     "schedules.s.max_retries must be between 0"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nargs=[1]\n",
     "schedules.s.args must be a table"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nargs={a=\"x\\u0000y\"}\n",
     "schedules.s.args.a must not contain NUL"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nargs={a=nan}\n",
     "schedules.s.args.a must be a finite number"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.\"\"]\ncron=\"@hourly\"\nkind=\"k\"\n",
     "a schedule name must be 1 to 200 printable characters"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.\"a\\tb\"]\ncron=\"@hourly\"\nkind=\"k\"\n",
     "a schedule name must be 1 to 200 printable characters"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules.s]\ncron=\"@hourly\"\nkind=\"k\"\nargs={a={a={a={a={a={a={a={a={a={a={a={"
     "a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a="
     "{a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a=1}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}"
     "}}}}}}}}}}}}}}}}}}}}}\n",
     "nested deeper than 64"},
    {"schedules = 3\n", "schedules must be tables: [schedules.NAME]"},
    {"[kinds.k]\nbuiltin=\"noop\"\n[schedules]\ns = 3\n", "[schedules.s] must be a table"},
    {"[worker\n", "invalid TOML"},
    {"a = "
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[\n",
     "invalid TOML"},
    {"\xff\xfe = 1\n", "invalid TOML"},
    // toml++ 3.3 reached __builtin_unreachable on these (fuzz_config): refused before it.
    {"[worker]\nname\xc3\x8f = 1\n", "docket.toml:2: invalid TOML: a non-ASCII character outside a string"},
    {"[worker]\nname = 1 \xc3\x8f\n", "docket.toml:2: invalid TOML: a non-ASCII character"},
    {"[worker]\nlease = 5*x 'a\xc3\x8f\xef\xbb\xbe'\n", "docket.toml:2"},
};

}  // namespace

TEST(HostileConfig, EveryCaseIsRefusedNamingTheKey) {
  for (const auto& c : kHostileToml) {
    const auto msg = error_of([&] { Config::parse(c.toml, "docket.toml").validate(); });
    EXPECT_NE(msg.find(c.fragment), std::string::npos) << "config:\n" << c.toml << "\nerror: " << msg;
  }
}

TEST(HostileConfig, SchedulesParseIntoSpecsWithSourceConfig) {
  const Config c = Config::parse(
      "[kinds.scrape]\nbuiltin = \"noop\"\n"
      "[schedules.\"project/42\"]\ncron = \"0 */4 * * *\"\nkind = \"scrape\"\n"
      "args = { project_id = 42, tags = [\"a\", 1.5, true], nested = { deep = { x = 1 } } }\n"
      "tz = \"Europe/Lisbon\"\nqueue = \"scrapes\"\nspread = \"4h\"\non_overlap = \"replace\"\n"
      "on_missed = \"latest\"\nenabled = false\npriority = 7\nmax_retries = 3\n",
      "docket.toml");
  c.validate();
  EXPECT_TRUE(c.schedules_declared);
  ASSERT_EQ(c.schedules.size(), 1u);
  const ScheduleSpec& s = c.schedules.at("project/42");
  EXPECT_EQ(s.name, "project/42");
  EXPECT_EQ(s.source, "config");
  EXPECT_EQ(s.cron, "0 */4 * * *");
  EXPECT_EQ(s.kind, "scrape");
  EXPECT_EQ(s.args, Json::parse(R"({"project_id":42,"tags":["a",1.5,true],"nested":{"deep":{"x":1}}})"));
  EXPECT_EQ(s.tz, "Europe/Lisbon");
  EXPECT_EQ(s.queue, "scrapes");
  EXPECT_EQ(s.spread, Millis(4 * 3600 * 1000));
  EXPECT_EQ(s.on_overlap, "replace");
  EXPECT_EQ(s.on_missed, "latest");
  EXPECT_FALSE(s.enabled);
  EXPECT_EQ(s.priority, 7);
  EXPECT_EQ(s.max_retries, 3);
  // An empty [schedules] table is a declaration (migrate prunes); none at all is not.
  EXPECT_TRUE(Config::parse("[schedules]\n").schedules_declared);
  EXPECT_FALSE(Config::parse("[worker]\nconcurrency = 2\n").schedules_declared);
}

TEST(HostileConfig, NonAsciiInStringsAndCommentsIsFine) {
  const auto c = Config::parse(
      "# caf\xc3\xa9 \"\n[worker]\nname = \"\xc3\x8f\\\"#\" # \xc3\x8f\n[kinds.\"\xc3\xa9t\xc3\xa9\"]\n"
      "builtin = '''\n\xc3\x8f'''\n",
      "docket.toml");
  EXPECT_EQ(c.worker.name, "\xc3\x8f\"#");
  EXPECT_EQ(c.kinds.count("\xc3\xa9t\xc3\xa9"), 1u);
}

TEST(HostileConfig, MisspeltEnvironmentVariableIsAnErrorWithTheRightName) {
  Config c;
  EXPECT_EQ(error_of([&] { c.apply_env({"DOCKET_WORKER_CONCURENCY=4"}); }),
            "environment variable DOCKET_WORKER_CONCURENCY is not a Docket setting; did you mean "
            "DOCKET_WORKER_CONCURRENCY?");
  EXPECT_NE(error_of([&] { c.apply_env({"DOCKET_LOG_LEVLE=debug"}); }).find("did you mean DOCKET_LOG_LEVEL?"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_env({"DOCKET_NOTHING_LIKE_IT=1"}); }).find("known: DOCKET_DATABASE_URL"),
            std::string::npos);
  EXPECT_EQ(c.worker.concurrency, 8);  // nothing applied
  EXPECT_EQ(c.log.level, "info");
  EXPECT_NE(error_of([&] { c.apply_env({"DOCKET_WORKER_CONCURRENCY=99999999999"}); }).find("between"),
            std::string::npos);
}

TEST(HostileConfig, VariablesDocketSetsOrReadsElsewhereAreAllowed) {
  Config c;
  c.apply_env({"DOCKET_JOB_ID=4", "DOCKET_JOB_KIND=a", "DOCKET_ATTEMPT=1", "DOCKET_QUEUE=q", "DOCKET_CONTROL_FD=3",
               "DOCKET_API_TOKENS=t", "DOCKET_TEST_PG_DIR=/tmp/x", "DOCKET_BIN=/x",
               "DOCKET_DATABASE_URL=postgresql:///d", "DOCKET_WORKER_CONCURRENCY=3", "HOME=/root"});
  EXPECT_EQ(c.worker.concurrency, 3);
  EXPECT_EQ(c.database_url, "postgresql:///d");
}

TEST(HostileConfig, ConfigPathThatIsNoFileIsRefused) {
  const auto dir = std::filesystem::temp_directory_path() / ("docket-cfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_NE(error_of([&] { Config::load_file(dir); }).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of([&] { Config::load_file(dir / "missing.toml"); }).find("cannot read config file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { Config::load_file("/dev/zero"); }).find("is not a regular file"), std::string::npos);
  {
    std::ofstream big(dir / "big.toml");
    big << "# " << std::string(2 << 20, 'x') << "\n";
  }
  EXPECT_NE(error_of([&] { Config::load_file(dir / "big.toml"); }).find("larger than 1 MiB"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(HostileConfig, CommandProgramMustExistAndBeExecutable) {
  const auto dir = std::filesystem::temp_directory_path() / ("docket-prog-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "plain");
    f << "#!/bin/sh\n";
  }
  auto check = [](const std::string& program) {
    return error_of(
        [&] { Config::parse("[kinds.imp]\ncommand = [\"" + program + "\"]\n", "docket.toml").check_programs(); });
  };
  EXPECT_EQ(check("/nonexistent/import-one"),
            "kinds.imp.command: program \"/nonexistent/import-one\" does not exist or is not executable");
  EXPECT_EQ(check((dir / "plain").string()),
            "kinds.imp.command: program \"" + (dir / "plain").string() + "\" does not exist or is not executable");
  EXPECT_EQ(check(dir.string()), "kinds.imp.command: program \"" + dir.string() + "\" is not a regular file");
  EXPECT_EQ(check("no-such-program-docket"),
            "kinds.imp.command: program \"no-such-program-docket\" is not an executable on PATH");
  EXPECT_EQ(check("sh"), "(accepted)");  // a bare name is looked up on PATH
  EXPECT_EQ(check("/bin/sh"), "(accepted)");
  std::filesystem::remove_all(dir);
}
