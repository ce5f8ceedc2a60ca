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
    {"[worker\n", "invalid TOML"},
    {"a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
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
               "DOCKET_API_TOKENS=t", "DOCKET_TEST_PG_DIR=/tmp/x", "DOCKET_BIN=/x", "DOCKET_DATABASE_URL=postgresql:///d",
               "DOCKET_WORKER_CONCURRENCY=3", "HOME=/root"});
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
    return error_of([&] {
      Config::parse("[kinds.imp]\ncommand = [\"" + program + "\"]\n", "docket.toml").check_programs();
    });
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
