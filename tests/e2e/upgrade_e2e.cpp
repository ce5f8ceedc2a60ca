// Upgrading a database that was in use under the first released schema: jobs in every state and a
// crawl half done under 0001, then `docket migrate` to the newest version, then a real worker
// runs what was left, resumes the crawl where it stopped, and leaves finished jobs alone.
#include "db/sql.hpp"
#include "e2e.hpp"
#include "page_server.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::PageServer;
using Json = nlohmann::json;

namespace {

/// A worker that died an hour ago under 0001 (its lease long past), holding what it claimed.
constexpr const char* kDeadWorker = "00000000-0000-0000-0000-00000000dead";

/// Applies 0001 only, the way `docket migrate` of the first release did.
void migrate_to_first_release(TestDatabase& db) {
  const auto& first = db::migrations().at(0);
  ASSERT_EQ(first.version, 1);
  db.query(
      "CREATE SCHEMA IF NOT EXISTS docket; CREATE TABLE docket.schema_migrations ("
      " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
  db.query(first.sql);
  db.query("INSERT INTO docket.schema_migrations (version, name) VALUES (1, '" + first.name + "')");
}

/// Claims the next job of `kind` for the dead worker through 0001's claim(); its id.
std::string claim(TestDatabase& db, const std::string& kind) {
  return db.scalar("SELECT id FROM docket.claim('" + std::string(kDeadWorker) + "', ARRAY['default'], ARRAY['" + kind +
                   "'], 1)");
}

/// Finishes a claimed job with an outcome through 0001's finish_and_claim (no new claim).
void finish(TestDatabase& db, const std::string& id, const std::string& outcome) {
  db.query("SELECT * FROM docket.finish_and_claim('" + std::string(kDeadWorker) + "', ARRAY[" + id +
           "]::bigint[], ARRAY[1], ARRAY['" + outcome + "'], ARRAY[0.2]::float8[], ARRAY[NULL]::jsonb[], ARRAY['" +
           outcome + " under 0001'], ARRAY[NULL]::int[], ARRAY['default'], ARRAY[]::text[], 0)");
}

std::string state_of(TestDatabase& db, const std::string& id) {
  return db.scalar("SELECT state FROM docket.jobs WHERE id = " + id);
}

}  // namespace

TEST(Upgrade, ADatabaseInUseUnderTheFirstReleaseMigratesAndRunsWhatWasLeft) {
  auto db = PgCluster::shared().empty_database();
  TempDir dir;
  PageServer source;
  std::vector<Json> items;
  for (int i = 1; i <= 10; ++i) items.push_back(Json{{"id", i}, {"name", "project " + std::to_string(i)}});
  source.set_items(items, 5);  // pages 1 and 2, then an empty page 3

  migrate_to_first_release(*db);
  db->query("INSERT INTO docket.workers (id, name, lease, started_at, heartbeat_at) VALUES ('" +
            std::string(kDeadWorker) + "', 'old', '1 second', now() - interval '2 hours', now() - interval '1 hour')");
  db->query("INSERT INTO docket.kinds (kind, crawl_collection) VALUES ('up.crawl', 'projects')");

  // One job in each state 0001 knows, made through 0001's own functions.
  const auto available = db->scalar("SELECT docket.enqueue('up.echo', '{\"n\": 1}')");
  const auto scheduled =
      db->scalar("SELECT docket.enqueue('up.echo', '{\"n\": 2}', run_at => now() + interval '2 seconds')");
  const auto keyed = db->scalar("SELECT docket.enqueue('up.echo', '{\"n\": 3}', unique_key => 'nightly')");
  for (const char* outcome : {"complete", "fail", "retry"}) {
    db->scalar("SELECT docket.enqueue('up.done', '{\"outcome\": \"" + std::string(outcome) + "\"}')");
    finish(*db, claim(*db, "up.done"), outcome);
  }
  const auto cancelled =
      db->scalar("SELECT docket.enqueue('up.echo', '{\"n\": 4}', run_at => now() + interval '1 day')");
  db->query("SELECT docket.cancel(" + cancelled + ")");
  const auto running = db->scalar("SELECT docket.enqueue('up.run', '{}')");
  ASSERT_EQ(claim(*db, "up.run"), running);

  // A crawl that stored page 1 and stopped with its checkpoint at page 2 when its worker died.
  const auto crawl_job = db->scalar("SELECT docket.enqueue('up.crawl')");
  ASSERT_EQ(claim(*db, "up.crawl"), crawl_job);
  const auto crawl_id = db->scalar("SELECT crawl_id FROM docket.crawl_start(" + crawl_job + ", '" + kDeadWorker +
                                   "', 1, 'up.crawl', 'projects', '" + source.url("/items?page=1") + "')");
  ASSERT_FALSE(crawl_id.empty());
  Json page1 = Json::array();
  for (int i = 1; i <= 5; ++i) page1.push_back(Json{{"key", std::to_string(i)}, {"item", items[i - 1]}});
  db->query("SELECT * FROM docket.crawl_page(" + crawl_id + ", " + crawl_job + ", '" + kDeadWorker + "', 1, '" +
            page1.dump() + "', '" + source.url("/items?page=2") + "', NULL)");

  const auto before = db->query("SELECT id, state, attempt FROM docket.jobs ORDER BY id");
  EXPECT_EQ(db->count("SELECT count(DISTINCT state) FROM docket.jobs"), 7) << "every 0001 state present";
  std::map<std::string, std::string> finished_before;
  for (const auto& row : db->query("SELECT id, state || '/' || attempt || '/' || coalesce(finished_at::text, '') "
                                   "FROM docket.jobs WHERE state IN ('completed', 'failed', 'cancelled')"))
    finished_before[row[0].c_str()] = row[1].c_str();
  ASSERT_EQ(finished_before.size(), 3u);

  // The upgrade: every later migration applies to the populated database.
  EXPECT_EQ(migrate(db->url()), known_schema_version() - 1);
  EXPECT_EQ(db->count("SELECT max(version) FROM docket.schema_migrations"), known_schema_version());
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), static_cast<long long>(before.size())) << "no job lost";

  auto worker = start_docket_worker(*db, dir,
                                    "[worker]\nlease = \"2s\"\nrescue_interval = \"250ms\"\nconcurrency = 4\n"
                                    "[kinds.\"up.echo\"]\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null\"]\n"
                                    "[kinds.\"up.done\"]\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null\"]\n"
                                    "[kinds.\"up.run\"]\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null\"]\n"
                                    "[kinds.\"up.crawl\"]\ncrawl = { url = \"" +
                                        source.url("/items?page={page}") +
                                        "\", items = \"/items\", key = \"/id\", collection = \"projects\" }\n");

  // What was waiting or running runs: the available, scheduled, keyed and retryable jobs, the job
  // the dead worker held (rescued, a second attempt), and the crawl, resumed at page 2.
  const std::string left = "SELECT count(*) FROM docket.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')";
  ASSERT_TRUE(wait_until([&] { return db->count(left) == 0; }, 40s)) << worker->log_text();
  for (const auto& id : {available, scheduled, keyed, running, crawl_job})
    EXPECT_EQ(state_of(*db, id), "completed") << "job " << id << "\n" << worker->log_text();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE kind = 'up.done' AND state = 'completed'"), 2)
      << "the retryable job completed on its second attempt";
  EXPECT_EQ(db->scalar("SELECT attempt FROM docket.jobs WHERE id = " + running), "2");
  EXPECT_EQ(source.count(1), 0) << "the crawl resumed from its checkpoint, not from page 1";
  EXPECT_EQ(source.count(2), 1);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items WHERE collection = 'projects'"), 10);
  EXPECT_EQ(db->scalar("SELECT status FROM docket.crawls WHERE id = " + crawl_id), "done");

  // Finished jobs were not touched by the upgrade or the worker.
  for (const auto& [id, was] : finished_before)
    EXPECT_EQ(db->scalar("SELECT state || '/' || attempt || '/' || coalesce(finished_at::text, '') FROM docket.jobs "
                         "WHERE id = " +
                         id),
              was)
        << "job " << id;

  // New jobs under the new schema run too, and the keyed one's key is free again.
  Client client(db->url());
  const auto fresh = client.enqueue({.kind = "up.echo", .unique_key = "nightly"});
  EXPECT_TRUE(fresh.created);
  ASSERT_TRUE(wait_until([&] { return client.job(fresh.id)->state == JobState::completed; }, 20s))
      << worker->log_text();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0);
}
