// docket.crawl_collection_for and the enqueue functions: a crawl kind's collection named after an
// arg dedups per entity, and an arg that does not fit refuses the enqueue naming it, writing nothing.
#include <gtest/gtest.h>

#include <algorithm>

#include <pqxx/pqxx>

#include "db/crawl_store.hpp"
#include "db/session.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "maintenance/sweep.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

class CrawlTemplates : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    db->query("INSERT INTO docket.kinds (kind, crawl_collection) VALUES ('scrape', 'project_{args.project_id}')");
  }
  /// The SQLSTATE and message of `sql`, or "ok".
  std::pair<std::string, std::string> refusal(const std::string& sql) {
    try {
      db->query(sql);
    } catch (const pqxx::sql_error& e) {
      return {e.sqlstate(), e.what()};
    }
    return {"ok", ""};
  }
  std::string collection_for(const std::string& args) {
    return db->scalar("SELECT docket.crawl_collection_for('project_{args.project_id}', '" + args + "')");
  }
  long long written() {
    return db->count("SELECT (SELECT count(*) FROM docket.jobs) + (SELECT count(*) FROM docket.crawls)");
  }
  std::unique_ptr<docket::test::TestDatabase> db;
};

}  // namespace

TEST_F(CrawlTemplates, TheCollectionTakesStringsAndNumbersFromTheArgs) {
  EXPECT_EQ(collection_for(R"({"project_id": 7})"), "project_7");
  EXPECT_EQ(collection_for(R"({"project_id": "7"})"), "project_7") << "the same collection as the number";
  EXPECT_EQ(collection_for(R"({"project_id": "a/b c"})"), "project_a/b c") << "a name, not a URL: kept as it is";
  EXPECT_EQ(collection_for(R"({"project_id": 1.5, "other": {"x": 1}})"), "project_1.5");
  EXPECT_EQ(db->scalar("SELECT docket.crawl_collection_for('{args.a.b}-{args.c}', '{\"a\":{\"b\":\"x\"},\"c\":2}')"),
            "x-2");
  EXPECT_EQ(db->scalar("SELECT docket.crawl_collection_for('projects', '{}')"), "projects") << "no placeholder";
  EXPECT_EQ(db->scalar("SELECT docket.crawl_collection_for('p_{args.}', '{}')"), "p_{args.}")
      << "not a placeholder: literal (a worker's config refuses it)";
  EXPECT_EQ(db->scalar("SELECT coalesce(docket.crawl_collection_for(NULL, '{}'), 'null')"), "null");
}

TEST_F(CrawlTemplates, AnArgThatDoesNotFitIsRefusedNamingIt) {
  const struct {
    const char* args;
    const char* error;
  } cases[] = {
      {R"({})", "args.project_id is missing from the job's args"},
      {R"({"project": 7})", "args.project_id is missing"},
      {R"({"project_id": null})",
       "args.project_id must be a string or a number (it names the crawl collection), got null"},
      {R"({"project_id": {"id": 7}})",
       "args.project_id must be a string or a number (it names the crawl collection), got object"},
      {R"({"project_id": [7]})",
       "args.project_id must be a string or a number (it names the crawl collection), got array"},
      {R"({"project_id": true})", "got boolean"},
      {R"({"project_id": ""})", "args.project_id must be 1 to 200 bytes without control characters"},
      {R"({"project_id": "7\r\nX: y"})", "args.project_id must be 1 to 200 bytes without control characters"},
      {R"({"project_id": "\t"})", "args.project_id must be 1 to 200 bytes without control characters"},
      {"[7]", "args.project_id is missing"},
  };
  for (const auto& c : cases) {
    const auto [state, message] = refusal(std::string("SELECT docket.enqueue('scrape', '") + c.args + "')");
    EXPECT_EQ(state, "22023") << c.args << ": " << message;
    EXPECT_NE(message.find(c.error), std::string::npos) << c.args << ": " << message;
  }
  // 200 bytes from the arg plus the template's 8 make the name too long: the whole name is checked.
  const auto [state, message] =
      refusal("SELECT docket.enqueue('scrape', '{\"project_id\": \"" + std::string(200, 'x') + "\"}')");
  EXPECT_EQ(state, "22023");
  EXPECT_NE(message.find("the crawl collection made from args.project_id must be a non-empty string of at most 200"),
            std::string::npos)
      << message;
  const auto [long_state, long_message] =
      refusal("SELECT docket.enqueue('scrape', '{\"project_id\": \"" + std::string(201, 'x') + "\"}')");
  EXPECT_NE(long_message.find("args.project_id must be 1 to 200 bytes"), std::string::npos) << long_message;
  EXPECT_EQ(written(), 0) << "nothing written by a refused enqueue";

  // Through the client (the API's 422 and the CLI's exit 2 come from this InvalidInput).
  Client client(db->url());
  try {
    client.enqueue({.kind = "scrape", .args = Json{{"project_id", Json::array()}}});
    ADD_FAILURE() << "accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("args.project_id must be a string or a number"), std::string::npos)
        << e.what();
  }
  try {
    client.enqueue_many(
        {{.kind = "scrape", .args = Json{{"project_id", 1}}}, {.kind = "scrape", .args = Json::object()}});
    ADD_FAILURE() << "accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("jobs[1].args.project_id is missing"), std::string::npos) << e.what();
  }
  try {
    client.enqueue_many({{.kind = "scrape", .args = Json{{"project_id", 1}}, .unique_key = "mine"},
                         {.kind = "scrape", .args = Json{{"project_id", true}}, .unique_key = "k2"}});
    ADD_FAILURE() << "accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("jobs[1].args.project_id must be a string or a number"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(written(), 0) << "nothing written by a refused batch, even after its jobs were inserted";
  EXPECT_EQ(db->scalar("SELECT 1"), "1");
}

TEST_F(CrawlTemplates, CrawlsDedupPerEntityAndDifferentEntitiesRunSideBySide) {
  Client client(db->url());
  const auto seven = client.enqueue({.kind = "scrape", .args = Json{{"project_id", 7}}});
  const auto seven_again = client.enqueue({.kind = "scrape", .args = Json{{"project_id", "7"}, {"note", "now"}}});
  const auto eight = client.enqueue({.kind = "scrape", .args = Json{{"project_id", 8}}});
  EXPECT_TRUE(seven.created);
  EXPECT_FALSE(seven_again.created);
  EXPECT_EQ(seven_again.id, seven.id);
  EXPECT_TRUE(eight.created);
  EXPECT_NE(eight.id, seven.id);
  EXPECT_EQ(db->scalar("SELECT string_agg(unique_key, ',' ORDER BY id) FROM docket.jobs"),
            "crawl:project_7,crawl:project_8");
  EXPECT_EQ(db->scalar("SELECT string_agg(collection || '=' || job_id, ',' ORDER BY id) FROM docket.crawls"),
            "project_7=" + std::to_string(seven.id) + ",project_8=" + std::to_string(eight.id));

  // The bulk path: the same per-entity keys, in one batch and against the jobs already there.
  const auto many = client.enqueue_many({{.kind = "scrape", .args = Json{{"project_id", 9}}},
                                         {.kind = "scrape", .args = Json{{"project_id", 9}}},
                                         {.kind = "scrape", .args = Json{{"project_id", 8}}}});
  ASSERT_EQ(many.size(), 3u);
  EXPECT_TRUE(many[0].created);
  EXPECT_FALSE(many[1].created);
  EXPECT_EQ(many[1].id, many[0].id);
  EXPECT_FALSE(many[2].created);
  EXPECT_EQ(many[2].id, eight.id);
  EXPECT_EQ(db->scalar("SELECT collection FROM docket.crawls WHERE job_id = " + std::to_string(many[0].id)),
            "project_9");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls"), 3);

  // A job enqueued before its kind crawled gets its collection from its args when it starts
  // (schema/queries/crawl_start.sql, as the worker runs it); one enqueued as a crawl keeps its own.
  const std::string worker = "00000000-0000-0000-0000-000000000011";
  db->query(
      "INSERT INTO docket.jobs (kind, args, state, worker, attempt) VALUES ('scrape', '{\"project_id\": 11}', "
      "'running', '" +
      worker + "', 1), ('scrape', '{\"project_id\": [1]}', 'running', '" + worker + "', 1)");
  const auto late = db->count(
      "SELECT min(id) FROM docket.jobs WHERE args ? 'project_id' AND jsonb_typeof(args -> 'project_id') = 'number' AND "
      "unique_key IS NULL");
  db::Session session(db->url(), "test");
  const auto started =
      db::CrawlStore(session).start({late, worker, 1}, "scrape", "late_{args.project_id}", "http://h/1");
  ASSERT_TRUE(started);
  EXPECT_EQ(started->collection, "late_11");
  EXPECT_EQ(db->scalar("SELECT collection FROM docket.crawls WHERE job_id = " + std::to_string(late)), "late_11");
  db->query("UPDATE docket.jobs SET state = 'running', worker = '" + worker +
            "', attempt = 1 WHERE id = " + std::to_string(eight.id));
  const auto kept =
      db::CrawlStore(session).start({eight.id, worker, 1}, "scrape", "late_{args.project_id}", "http://h/1");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->collection, "project_8") << "the collection evaluated at enqueue, whatever the config says now";
  EXPECT_THROW(db::CrawlStore(session).start({late + 1, worker, 1}, "scrape", "late_{args.project_id}", "http://h/1"),
               InvalidInput);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls WHERE job_id = " + std::to_string(late + 1)), 0);
}

TEST_F(CrawlTemplates, ASchedulePerProjectIsCheckedWhenWrittenAndNeverStopsTheTick) {
  // One schedule per project: each slot crawls its own project's collection.
  db->query(
      "SELECT docket.schedule('scrape-' || id, '@every 1h', 'scrape', jsonb_build_object('project_id', id)) "
      "FROM generate_series(7, 8) id");
  const auto [state, message] =
      refusal("SELECT docket.schedule('scrape-x', '@every 1h', 'scrape', '{\"project\": 9}')");
  EXPECT_EQ(state, "22023");
  EXPECT_NE(message.find("args.project_id is missing from the job's args"), std::string::npos) << message;
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules"), 2) << "nothing written by the refused schedule";
  const auto [cfg_state, cfg_message] =
      refusal("SELECT docket.schedule_from_config('scrape-y', '@every 1h', 'scrape', '{\"project_id\": {\"id\": 9}}')");
  EXPECT_EQ(cfg_state, "22023");
  EXPECT_NE(cfg_message.find("schedules.scrape-y: args.project_id must be a string or a number"), std::string::npos)
      << cfg_message;

  int seconds_ago = 10;
  const auto tick = [&] {
    const std::string at = "date_trunc('second', now()) - interval '" + std::to_string(seconds_ago--) + " s'";
    db->query("UPDATE docket.schedules SET next_slot = " + at + ", next_run_at = " + at);
    db->query("SELECT * FROM docket.schedule_tick()");
  };
  tick();
  EXPECT_EQ(db->scalar("SELECT string_agg(j.schedule || '>' || c.collection, ',' ORDER BY j.schedule) "
                       "FROM docket.jobs j JOIN docket.crawls c ON c.job_id = j.id"),
            "scrape-7>project_7,scrape-8>project_8");

  // The kind's template changes under the schedules (a deploy): scrape-7's args no longer fit.
  // Its slot is skipped and counted; scrape-8's (and every other schedule's) still run.
  db->query("UPDATE docket.kinds SET crawl_collection = 'p_{args.project_id}_{args.region}' WHERE kind = 'scrape'");
  db->query("UPDATE docket.schedules SET args = args || '{\"region\": \"eu\"}' WHERE name = 'scrape-8'");
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now()");
  db->query("UPDATE docket.crawls SET status = 'done'");
  tick();
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE schedule = 'scrape-7'"), 1);
  EXPECT_EQ(db->count("SELECT skipped FROM docket.schedules WHERE name = 'scrape-7'"), 1);
  EXPECT_EQ(db->scalar("SELECT c.collection FROM docket.jobs j JOIN docket.crawls c ON c.job_id = j.id "
                       "WHERE j.schedule = 'scrape-8' ORDER BY j.id DESC LIMIT 1"),
            "p_8_eu");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.schedules WHERE next_run_at <= now()"), 0) << "both advanced";
  // "Scrape now" of the schedule that does not fit says why instead of skipping in silence.
  const auto [now_state, now_message] = refusal("SELECT docket.run_schedule_now('scrape-7')");
  EXPECT_EQ(now_state, "22023");
  EXPECT_NE(now_message.find("args.region is missing"), std::string::npos) << now_message;
}

// The crawl executor registers its sweep with the maintainer (maintenance/sweep.hpp): every
// worker's maintainer runs it; it fails a crawl whose job ended without finishing it, once.
TEST(CrawlSweep, TheCrawlExecutorsRegisteredSweepFailsACrawlWhoseJobEnded) {
  const auto& sweeps = registered_sweeps();
  const auto it =
      std::find_if(sweeps.begin(), sweeps.end(), [](const Sweep& s) { return s.event == "crawl.abandoned"; });
  ASSERT_NE(it, sweeps.end()) << "the crawl executor's sweep is not registered";
  auto db = PgCluster::shared().fresh_database();
  const std::string worker = "00000000-0000-0000-0000-000000000011";
  db->query("INSERT INTO docket.jobs (kind, state, worker, attempt) VALUES ('scrape', 'running', '" + worker + "', 1)");
  const auto job = db->count("SELECT max(id) FROM docket.jobs");
  db::Session session(db->url(), "test");
  ASSERT_TRUE(db::CrawlStore(session).start({job, worker, 1}, "scrape", "things", "http://h/1"));
  EXPECT_EQ(it->run(session), 0) << "its job still runs it";
  db->query("UPDATE docket.jobs SET state = 'cancelled', finished_at = now() WHERE id = " + std::to_string(job));
  EXPECT_EQ(it->run(session), 1);
  EXPECT_EQ(db->scalar("SELECT status FROM docket.crawls WHERE job_id = " + std::to_string(job)), "failed");
  EXPECT_EQ(it->run(session), 0);
}
