// Outcomes for jobs in any language (README: Outcomes): the control channel on fd 3 of command
// kinds, written by programs in shell, Python and JavaScript (node, from the test dependencies),
// exit codes, url kinds' statuses and body keys, and hostile control lines, all through real
// `docket worker` processes.
#include <httplib.h>
#include <signal.h>

#include <thread>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

/// The same program in three languages: by args.mode it reports progress and a result, discards,
/// snoozes or retries, through the control channel named in DOCKET_CONTROL_FD.
constexpr const char* kShell = R"SH(#!/bin/sh
job=$(cat)
mode=$(echo "$job" | sed -n 's/.*"mode":"\([a-z]*\)".*/\1/p')
case "$mode" in
  result) echo '{"progress": {"page": 1, "of": 2}}' >&3
          echo '{"progress": {"page": 2, "of": 2}}' >&3
          echo "{\"result\": {\"lang\": \"sh\", \"id\": $DOCKET_JOB_ID}}" >&3
          echo "not json"; exit 0 ;;
  discard) echo '{"discard": "cannot parse"}' >&3; exit 1 ;;
  snooze) echo '{"snooze": "1h"}' >&3; exit 0 ;;
  retry) echo '{"retry": "busy", "in": "2h"}' >&3; exit 0 ;;
esac
exit 9
)SH";

constexpr const char* kPython = R"PY(#!/usr/bin/env python3
import json, os, sys
job = json.load(sys.stdin)
control = os.fdopen(int(os.environ["DOCKET_CONTROL_FD"]), "w", buffering=1)
def send(message): control.write(json.dumps(message) + "\n")
mode = job["args"]["mode"]
if mode == "result":
    send({"progress": {"page": 1, "of": 2}})
    send({"progress": {"page": 2, "of": 2}})
    send({"result": {"lang": "python", "id": job["id"]}})
    print("not json")
elif mode == "discard":
    send({"discard": "cannot parse"}); sys.exit(1)
elif mode == "snooze":
    send({"snooze": "1h"})
elif mode == "retry":
    send({"retry": "busy", "in": "2h"})
else:
    sys.exit(9)
)PY";

constexpr const char* kNode = R"JS(#!/usr/bin/env node
const fs = require("fs");
const job = JSON.parse(fs.readFileSync(0, "utf8"));
const fd = Number(process.env.DOCKET_CONTROL_FD);
const send = (message) => fs.writeSync(fd, JSON.stringify(message) + "\n");
switch (job.args.mode) {
  case "result":
    send({progress: {page: 1, of: 2}});
    send({progress: {page: 2, of: 2}});
    send({result: {lang: "node", id: job.id}});
    console.log("not json");
    break;
  case "discard": send({discard: "cannot parse"}); process.exit(1);
  case "snooze": send({snooze: "1h"}); break;
  case "retry": send({retry: "busy", in: "2h"}); break;
  default: process.exit(9);
}
)JS";

std::filesystem::path write_program(const TempDir& dir, const std::string& name, const std::string& text) {
  const auto path = dir / name;
  docket::test::write_file(path, text);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

/// `text` as a TOML basic string.
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string worker_toml(const std::string& kinds) {
  return "[worker]\nname = \"w\"\nconcurrency = 8\nlease = \"5s\"\n" + kinds;
}

bool settled(Client& client, std::int64_t id) {
  const auto s = client.job(id)->state;
  return s != JobState::available && s != JobState::running;
}

std::string last_error(Client& client, std::int64_t id) {
  const auto j = client.job(id);
  return j->errors.empty() ? std::string() : j->errors.back().at("error").get<std::string>();
}

/// Seconds from now until the job's run_at.
double wait_s(TestDatabase& db, std::int64_t id) {
  return std::stod(
      db.scalar("SELECT extract(epoch FROM run_at - now()) FROM docket.jobs WHERE id = " + std::to_string(id)));
}

void expect_alive_then_stop(Child& w) {
  EXPECT_TRUE(w.running());
  w.signal(SIGTERM);
  EXPECT_EQ(w.wait(20s), 0);
}

}  // namespace

TEST(Outcomes, ShellPythonAndNodeProgramsReportProgressResultDiscardSnoozeAndRetryOnFd3) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  std::string kinds;
  for (const auto& [lang, text] :
       std::vector<std::pair<std::string, std::string>>{{"sh", kShell}, {"python", kPython}, {"node", kNode}}) {
    kinds += "[kinds." + lang + "]\ncommand = [\"" + write_program(dir, lang, text).string() +
             "\"]\nmax_retries = 5\nbackoff = { strategy = \"fixed\", delay = \"1s\" }\n";
  }
  auto w = start_docket_worker(*db, dir, worker_toml(kinds));
  ASSERT_TRUE(wait_registered(*db, "w")) << w->log_text();
  Client client(db->url());
  std::map<std::pair<std::string, std::string>, std::int64_t> ids;
  for (const std::string lang : {"sh", "python", "node"}) {
    for (const std::string mode : {"result", "discard", "snooze", "retry"}) {
      ids[{lang, mode}] = client.enqueue({.kind = lang, .args = Json{{"mode", mode}}}).id;
    }
  }
  ASSERT_TRUE(wait_until(
      [&] { return std::all_of(ids.begin(), ids.end(), [&](const auto& kv) { return settled(client, kv.second); }); },
      30s))
      << w->log_text();
  for (const std::string lang : {"sh", "python", "node"}) {
    SCOPED_TRACE(lang);
    const auto done = client.job(ids[{lang, "result"}]);
    EXPECT_EQ(done->state, JobState::completed);
    // The control result wins over stdout ("not json"); the last progress is kept.
    EXPECT_EQ(done->result, (Json{{"lang", lang}, {"id", done->id}}));
    EXPECT_EQ(done->progress, (Json{{"page", 2}, {"of", 2}}));

    // Discarded: failed after one attempt although 5 retries were allowed.
    const auto discarded = client.job(ids[{lang, "discard"}]);
    EXPECT_EQ(discarded->state, JobState::failed);
    EXPECT_EQ(discarded->attempt, 1);
    EXPECT_EQ(last_error(client, discarded->id), "discarded: cannot parse");
    EXPECT_TRUE(discarded->result.is_null());

    // Snoozed an hour without using an attempt.
    const auto snoozed = client.job(ids[{lang, "snooze"}]);
    EXPECT_EQ(snoozed->state, JobState::scheduled);
    EXPECT_EQ(snoozed->attempt, 0);
    EXPECT_NEAR(wait_s(*db, snoozed->id), 3600, 60);
    EXPECT_TRUE(snoozed->errors.empty());

    // Retry in 2 h (not the kind's 1 s backoff), counting the attempt, with the reason.
    const auto retried = client.job(ids[{lang, "retry"}]);
    EXPECT_EQ(retried->state, JobState::retryable);
    EXPECT_EQ(retried->attempt, 1);
    EXPECT_NEAR(wait_s(*db, retried->id), 7200, 60);
    EXPECT_EQ(last_error(client, retried->id), "retry requested: busy");
  }
  expect_alive_then_stop(*w);
}

TEST(Outcomes, ExitCodesDecideWithoutAControlLineAndTheLastControlLineDecidesWhateverTheExitCode) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(*db, dir, worker_toml(R"([kinds.discard]
command = ["/bin/sh", "-c", "echo 'bad input' >&2; exit 76"]
max_retries = 5
[kinds.snooze]
command = ["/bin/sh", "-c", "exit 77"]
[kinds.retry]
command = ["/bin/sh", "-c", "exit 75"]
backoff = { strategy = "fixed", delay = "1h" }
[kinds.crashes_after_snooze]
command = ["/bin/sh", "-c", "echo '{\"snooze\": \"5m\"}' >&3; exit 3"]
[kinds.discard_then_snooze]
command = ["/bin/sh", "-c", "echo '{\"discard\": \"no\"}' >&3; echo '{\"snooze\": \"2m\"}' >&3; exit 0"]
)"));
  ASSERT_TRUE(wait_registered(*db, "w")) << w->log_text();
  Client client(db->url());
  const auto discard = client.enqueue({.kind = "discard"}).id;
  const auto snooze = client.enqueue({.kind = "snooze"}).id;
  const auto retry = client.enqueue({.kind = "retry"}).id;
  const auto crashes = client.enqueue({.kind = "crashes_after_snooze"}).id;
  const auto last = client.enqueue({.kind = "discard_then_snooze"}).id;
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto id : {discard, snooze, retry, crashes, last}) {
          if (!settled(client, id)) return false;
        }
        return true;
      },
      30s))
      << w->log_text();
  EXPECT_EQ(client.job(discard)->state, JobState::failed);
  EXPECT_EQ(client.job(discard)->attempt, 1);
  EXPECT_EQ(last_error(client, discard), "exit 76 (discard requested): bad input");
  EXPECT_EQ(client.job(snooze)->state, JobState::scheduled);
  EXPECT_EQ(client.job(snooze)->attempt, 0);
  EXPECT_NEAR(wait_s(*db, snooze), 60, 10);
  EXPECT_EQ(client.job(retry)->state, JobState::retryable);
  EXPECT_EQ(last_error(client, retry), "exit 75 (retry requested)");
  EXPECT_EQ(client.job(crashes)->state, JobState::scheduled);
  EXPECT_NEAR(wait_s(*db, crashes), 300, 10);
  EXPECT_EQ(client.job(last)->state, JobState::scheduled);
  EXPECT_NEAR(wait_s(*db, last), 120, 10);
  expect_alive_then_stop(*w);
}

TEST(Outcomes, HostileControlLinesFailTheJobOnceNamingTheLineAndTheWorkerLives) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  const std::map<std::string, std::string> programs = {
      {"notjson", R"(echo '{"progress": 1}' >&3; echo oops >&3)"},
      {"unknown", R"(echo '{"snoze": "1m"}' >&3)"},
      {"toolong", R"(head -c 2000000 /dev/zero | tr '\000' a >&3)"},
      {"toomany", R"(yes '{}' | head -n 100001 >&3)"},
      {"toodeep", R"(printf '{"progress": ' >&3; head -c 100 /dev/zero | tr '\000' '[' >&3; )"
                  R"(head -c 100 /dev/zero | tr '\000' ']' >&3; echo '}' >&3)"},
      {"badduration", R"(echo '{"snooze": "soon"}' >&3)"},
      {"capped", R"(echo '{"retry": "later", "in": "100d"}' >&3)"},
      {"fine", R"(echo '{"progress": "half"}' >&3; echo >&3; echo '{"result": 42}' >&3)"},
  };
  std::string kinds;
  for (const auto& [name, script] : programs) {
    kinds += "[kinds." + name + "]\ncommand = [\"/bin/sh\", \"-c\", " + toml_string(script) + "]\nmax_retries = 5\n";
  }
  auto w = start_docket_worker(*db, dir, worker_toml(kinds));
  ASSERT_TRUE(wait_registered(*db, "w")) << w->log_text();
  Client client(db->url());
  std::map<std::string, std::int64_t> ids;
  for (const auto& [name, script] : programs) ids[name] = client.enqueue({.kind = name}).id;
  ASSERT_TRUE(wait_until(
      [&] { return std::all_of(ids.begin(), ids.end(), [&](const auto& kv) { return settled(client, kv.second); }); },
      30s))
      << w->log_text();
  const std::map<std::string, std::string> errors = {
      {"notjson", "control line 2"},
      {"unknown", "control line 1: unknown key \"snoze\"; use progress, result, retry (with in), snooze or discard"},
      {"toolong", "control line 1: longer than 1048576 bytes"},
      {"toomany", "control channel: more than 100000 lines"},
      {"toodeep", "control line 1"},
      {"badduration", "control line 1.snooze: \"soon\" is not a duration"},
  };
  for (const auto& [name, prefix] : errors) {
    SCOPED_TRACE(name);
    const auto j = client.job(ids[name]);
    EXPECT_EQ(j->state, JobState::failed);
    EXPECT_EQ(j->attempt, 1);  // for good: the same program breaks the protocol the same way
    EXPECT_EQ(last_error(client, j->id).rfind(prefix, 0), 0u) << last_error(client, j->id);
    EXPECT_TRUE(j->result.is_null());
  }
  // Progress given before the broken line was stored; nothing after it.
  EXPECT_EQ(client.job(ids["notjson"])->progress, Json(1));
  EXPECT_TRUE(client.job(ids["unknown"])->progress.is_null());
  EXPECT_NE(last_error(client, ids["toodeep"]).find("deeper than 64"), std::string::npos)
      << last_error(client, ids["toodeep"]);
  EXPECT_EQ(client.job(ids["capped"])->state, JobState::retryable);
  EXPECT_GT(wait_s(*db, ids["capped"]), 24 * 3600 - 60);
  EXPECT_LE(wait_s(*db, ids["capped"]), 24 * 3600);
  const auto fine = client.job(ids["fine"]);
  EXPECT_EQ(fine->state, JobState::completed);
  EXPECT_EQ(fine->result, Json(42));
  EXPECT_EQ(fine->progress, Json("half"));
  // Still claiming and running work afterwards.
  const auto after = client.enqueue({.kind = "fine"}).id;
  EXPECT_TRUE(wait_until([&] { return client.job(after)->state == JobState::completed; }, 10s));
  expect_alive_then_stop(*w);
}

TEST(Outcomes, UrlKindsMapStatusesRetryAfterAndControlBodies) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  httplib::Server server;
  auto answer = [&](const std::string& path, int status, std::string body, httplib::Headers headers = {}) {
    server.Post(path, [=](const httplib::Request&, httplib::Response& res) {
      res.status = status;
      for (const auto& [k, v] : headers) res.set_header(k, v);
      res.set_content(body, "application/json");
    });
  };
  answer("/invalid", 422, R"({"error": "no such report"})");
  answer("/snooze", 200, R"({"snooze": "30m"})");
  answer("/result", 200, R"({"result": {"rows": 3}, "progress": {"done": true}})");
  answer("/busy", 503, R"({"retry": "busy", "in": "10m"})");
  answer("/plain", 200, R"({"result": 2, "took_ms": 5})");
  answer("/limited", 429, "", {{"Retry-After", "120"}});
  answer("/discard", 200, R"({"discard": "report retired"})");
  answer("/broken", 200, R"({"snooze": "soon"})");
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  std::string kinds;
  for (const std::string name : {"invalid", "snooze", "result", "busy", "plain", "limited", "discard", "broken"}) {
    kinds += "[kinds." + name + "]\nurl = \"" + base + "/" + name + "\"\nmax_retries = 5\n";
  }
  auto w = start_docket_worker(*db, dir, worker_toml(kinds));
  ASSERT_TRUE(wait_registered(*db, "w")) << w->log_text();
  Client client(db->url());
  std::map<std::string, std::int64_t> ids;
  for (const std::string name : {"invalid", "snooze", "result", "busy", "plain", "limited", "discard", "broken"}) {
    ids[name] = client.enqueue({.kind = name}).id;
  }
  const bool all_settled = wait_until(
      [&] { return std::all_of(ids.begin(), ids.end(), [&](const auto& kv) { return settled(client, kv.second); }); },
      30s);
  server.stop();
  serving.join();
  ASSERT_TRUE(all_settled) << w->log_text();

  EXPECT_EQ(client.job(ids["invalid"])->state, JobState::failed);
  EXPECT_EQ(client.job(ids["invalid"])->attempt, 1);
  EXPECT_EQ(last_error(client, ids["invalid"]), R"(discarded: HTTP 422: {"error": "no such report"})");
  EXPECT_EQ(client.job(ids["snooze"])->state, JobState::scheduled);
  EXPECT_EQ(client.job(ids["snooze"])->attempt, 0);
  EXPECT_NEAR(wait_s(*db, ids["snooze"]), 1800, 60);
  EXPECT_EQ(client.job(ids["result"])->state, JobState::completed);
  EXPECT_EQ(client.job(ids["result"])->result, (Json{{"rows", 3}}));
  EXPECT_EQ(client.job(ids["result"])->progress, (Json{{"done", true}}));
  EXPECT_EQ(client.job(ids["busy"])->state, JobState::retryable);
  EXPECT_NEAR(wait_s(*db, ids["busy"]), 600, 60);
  EXPECT_EQ(last_error(client, ids["busy"]), "retry requested: busy");
  // Not every key a control key: the body is a plain result, as before.
  EXPECT_EQ(client.job(ids["plain"])->result, (Json{{"result", 2}, {"took_ms", 5}}));
  EXPECT_EQ(client.job(ids["limited"])->state, JobState::retryable);
  EXPECT_NEAR(wait_s(*db, ids["limited"]), 120, 10);
  EXPECT_EQ(client.job(ids["discard"])->state, JobState::failed);
  EXPECT_EQ(last_error(client, ids["discard"]), "discarded: report retired");
  EXPECT_EQ(client.job(ids["broken"])->state, JobState::failed);
  EXPECT_EQ(client.job(ids["broken"])->attempt, 1);
  EXPECT_EQ(last_error(client, ids["broken"]).rfind("the response of " + base + "/broken.snooze: ", 0), 0u)
      << last_error(client, ids["broken"]);
  expect_alive_then_stop(*w);
}

TEST(Outcomes, AJobsOwnTimeoutOverridesItsKindsFromSqlHttpClientAndCli) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  auto w = start_docket_worker(*db, dir, worker_toml(R"([kinds.slow]
command = ["/bin/sleep", "30"]
timeout = "30s"
max_retries = 0
[kinds.quick]
command = ["/bin/sleep", "2"]
timeout = "1s"
max_retries = 0
)"));
  ASSERT_TRUE(wait_registered(*db, "w")) << w->log_text();
  Client client(db->url());
  const auto started = std::chrono::steady_clock::now();
  const auto by_client = client.enqueue({.kind = "slow", .timeout = 1s}).id;
  const auto by_sql = std::stoll(db->scalar("SELECT docket.enqueue('slow', timeout => '1500 milliseconds')"));
  const auto by_batch = client.enqueue_many({{.kind = "slow", .timeout = 1s}, {.kind = "quick", .timeout = 10s}});
  const auto env = std::map<std::string, std::string>{{"DATABASE_URL", db->url()}};
  const auto cli = docket::test::run({DOCKET_BIN, "enqueue", "slow", "--timeout", "1s"}, env);
  ASSERT_EQ(cli.status, 0) << cli.err;
  const auto by_cli = std::stoll(cli.out);
  // The kind's 1 s would kill `sleep 2`; the job's 10 s lets it finish.
  const auto longer = by_batch[1].id;
  const std::vector<std::int64_t> timed_out = {by_client, by_sql, by_batch[0].id, by_cli};
  ASSERT_TRUE(wait_until(
      [&] {
        return settled(client, longer) &&
               std::all_of(timed_out.begin(), timed_out.end(), [&](auto id) { return settled(client, id); });
      },
      20s))
      << w->log_text();
  // Well before the kind's 30 s.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 15.0);
  for (const auto id : timed_out) {
    EXPECT_EQ(client.job(id)->state, JobState::failed) << id;
    EXPECT_EQ(last_error(client, id), id == by_sql ? "timed out after 1.5s" : "timed out after 1s") << id;
  }
  EXPECT_EQ(client.job(longer)->state, JobState::completed) << last_error(client, longer);

  // A timeout the CLI refuses: exit 2 naming the option, nothing written.
  const auto jobs_before = db->count("SELECT count(*) FROM docket.jobs");
  for (const std::string bad : {"soon", "0s", "400d"}) {
    const auto r = docket::test::run({DOCKET_BIN, "enqueue", "slow", "--timeout", bad}, env);
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_NE(r.err.find("timeout"), std::string::npos) << r.err;
  }
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), jobs_before);
  expect_alive_then_stop(*w);
}
