// The README is pasteable: every shell command line and SQL block it shows is run, in order,
// against `docket dev` (API and a worker with the demo kinds) on a fresh database, and must
// succeed. The commands come from README.md itself, so the test follows the text.
#include <filesystem>
#include <fstream>
#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

struct Block {
  std::string lang;
  std::string heading;
  std::vector<std::string> lines;
};

std::vector<Block> fenced_blocks(const std::filesystem::path& readme) {
  std::ifstream in(readme);
  std::vector<Block> out;
  std::string line, heading;
  Block* open = nullptr;
  while (std::getline(in, line)) {
    if (open) {
      if (line.rfind("```", 0) == 0) {
        open = nullptr;
      } else {
        open->lines.push_back(line);
      }
      continue;
    }
    if (line.rfind("#", 0) == 0) heading = line;
    if (line.rfind("```", 0) == 0) {
      out.push_back({line.substr(3), heading, {}});
      open = &out.back();
    }
  }
  return out;
}

/// Shell lines of a block, continuation lines joined.
std::vector<std::string> commands(const Block& b) {
  std::vector<std::string> out;
  std::string pending;
  for (const auto& line : b.lines) {
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1);
      continue;
    }
    pending += line;
    out.push_back(pending);
    pending.clear();
  }
  return out;
}

/// Lines the test does not run, and why (the rest must run as written).
std::optional<std::string> skipped(const std::string& cmd) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^\s*(#.*)?$)"), "comment"},
      {std::regex(R"(^\s*make )"), "the make targets are what CI itself runs"},
      {std::regex(R"(^\s*(build/)?docket bench )"), "a benchmark: minutes of load (make bench runs them)"},
      {std::regex(R"(^\s*(build/)?docket (dev|worker|api)\b)"),
       "a long-running server: the test runs docket dev itself"},
      {std::regex(R"(^\s*(cd|wrk|git|openssl|systemctl|sudo|podman|docker|kubectl|psql) )"), "not a Docket command"},
      {std::regex(R"(^\s*(docket|build/docket) .*--watch)"), "redraws until Ctrl-C"},
      {std::regex(R"(^\s*docket crawl [0-9])"),
       "needs a crawl kind and its source (tests/e2e/crawl_e2e.cpp runs them)"},
  };
  for (const auto& [re, why] : rules) {
    if (std::regex_search(cmd, re)) return why;
  }
  return std::nullopt;
}

}  // namespace

TEST(Readme, EveryShellCommandAndSqlBlockRunsAsWritten) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  std::filesystem::create_directories(dir / "bin");
  std::filesystem::create_symlink(DOCKET_BIN, dir / "bin" / "docket");
  Child dev({DOCKET_BIN, "dev"}, {{"DATABASE_URL", db->url()}}, dir / "dev.log");
  const int port = api_port_from_log(dev, "curl -s ");
  ASSERT_GT(port, 0) << dev.log_text();
  // The demo jobs `docket dev` seeds (the tour refers to jobs 1-3) have run or are running.
  ASSERT_TRUE(wait_until([&] { return db->count("SELECT count(*) FROM docket.jobs") >= 3; }, 20s)) << dev.log_text();

  const std::string path = (dir / "bin").string() + ":" + std::string(std::getenv("PATH"));
  const std::map<std::string, std::string> env = {
      {"DATABASE_URL", db->url()}, {"PATH", path}, {"DOCKET_LOG_LEVEL", "warn"}};
  int ran = 0;
  for (const auto& block : fenced_blocks(std::filesystem::path(DOCKET_SOURCE_DIR) / "README.md")) {
    // Grants to the reader's own login roles (tests/integration/roles_pgtest.cpp proves the roles).
    if (block.lang == "sql" && block.heading.find("Roles") != std::string::npos) continue;
    // A crawl kind per entity and its schedules need that kind and its source (and a projects
    // table): tests/e2e/crawl_template_e2e.cpp and crawl_template_pgtest.cpp run the same statements.
    if (block.lang == "sql" && block.heading.find("{args.NAME}") != std::string::npos) continue;
    if (block.lang == "sql") {
      std::string sql;
      for (const auto& l : block.lines) sql += l + "\n";
      const auto r =
          docket::test::run({"/bin/bash", "-c", "psql \"$DATABASE_URL\" -X -q -v ON_ERROR_STOP=1"}, env, sql);
      EXPECT_EQ(r.status, 0) << block.heading << "\n" << sql << "\n" << r.err;
      ++ran;
      continue;
    }
    if (block.lang != "sh") continue;
    // One shell per block, as a reader pastes it: a variable set on one line is used on the next.
    std::string script = "set -euo pipefail\n";
    int lines = 0;
    for (std::string cmd : commands(block)) {
      if (skipped(cmd)) continue;
      // The API of this `docket dev` listens where the banner said (the README's 8080 may be taken).
      cmd = std::regex_replace(cmd, std::regex("localhost:8080"), "127.0.0.1:" + std::to_string(port));
      script += cmd + "\n";
      ++lines;
    }
    if (lines == 0) continue;
    const auto r = docket::test::run({"/bin/bash", "-xc", script}, env);
    EXPECT_EQ(r.status, 0) << block.heading << "\nstdout: " << r.out << "\nstderr (the failing line last): " << r.err;
    ran += lines;
  }
  std::cout << "readme: ran " << ran << " command lines and SQL blocks\n";
  EXPECT_GE(ran, 30);  // the README's blocks were found
  EXPECT_TRUE(dev.running()) << dev.log_text();
  dev.signal(SIGINT);
  EXPECT_EQ(dev.wait(30s), 0) << dev.log_text();
}
