// Crawl jobs against a real paginated HTTP server with fault injection, run by real worker
// processes: exact activation, atomicity, resume, failure, politeness, bad pages, memory.
#include <thread>

#include "e2e.hpp"
#include "page_server.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::PageServer;
using Json = nlohmann::json;

namespace {

std::vector<Json> items(int from, int to, const std::string& tag = "v1") {
  std::vector<Json> out;
  for (int i = from; i <= to; ++i)
    out.push_back(Json{{"id", i}, {"name", "project " + std::to_string(i)}, {"tag", tag}});
  return out;
}

std::string crawl_toml(const std::string& kind, const std::string& crawl, const std::string& extra = "") {
  return "[worker]\nlease = \"2s\"\nrescue_interval = \"250ms\"\nconcurrency = 4\n"
         "[kinds." +
         kind + "]\ncrawl = " + crawl + "\n" + extra;
}

/// The live set of a collection: key -> item.
std::map<std::string, Json> live(TestDatabase& db, const std::string& collection) {
  std::map<std::string, Json> out;
  for (const auto& row :
       db.query("SELECT key, item::text FROM docket.live_items WHERE collection = '" + collection + "'")) {
    out[row[0].c_str()] = Json::parse(row[1].c_str());
  }
  return out;
}

std::map<std::string, Json> by_key(const std::vector<Json>& items) {
  std::map<std::string, Json> out;
  for (const auto& i : items) out[std::to_string(i.at("id").get<int>())] = i;
  return out;
}

bool crawl_finished(Client& client, std::int64_t job) {
  const auto j = client.job(job);
  return j && (j->state == JobState::completed || j->state == JobState::failed);
}

/// Waits until the worker registered `n` crawl kinds (enqueues then dedup and get crawl rows).
bool crawl_kinds_registered(TestDatabase& db, int n) {
  return wait_until(
      [&] { return db.count("SELECT count(*) FROM docket.kinds WHERE crawl_collection IS NOT NULL") == n; }, 20s);
}

std::string crawl_status(TestDatabase& db, std::int64_t job) {
  return db.scalar("SELECT status FROM docket.crawls WHERE job_id = " + std::to_string(job));
}

}  // namespace

TEST(Crawl, FivePagesLandExactlyAndARecrawlLeavesExactlyTheNewSet) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 23), 5);  // pages 1-5, then an empty page 6
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") +
                                 "\", items = \"/items\", key = \"/id\", collection = \"projects\" }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto job = client.enqueue({.kind = "projects"}).id;
  EXPECT_EQ(crawl_status(*db, job), "waiting");  // the crawl row exists from the enqueue on
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, job); }, 30s)) << w->log_text();
  ASSERT_EQ(client.job(job)->state, JobState::completed) << client.job(job)->errors.dump();
  EXPECT_EQ(live(*db, "projects"), by_key(items(1, 23)));
  const auto crawl = client.crawls({.collection = "projects"}).at(0);
  EXPECT_EQ(crawl.status, "done");
  EXPECT_EQ(crawl.pages, 5);
  EXPECT_EQ(crawl.items, 23);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawl_cache"), 0);
  EXPECT_EQ(client.job(job)->result.at("items"), 23);
  for (int page = 1; page <= 6; ++page) EXPECT_EQ(source.count(page), 1) << "page " << page;

  // The source changes: 1-5 removed, 6-10 changed, 24-30 added.
  auto next = items(6, 10, "v2");
  for (auto& i : items(11, 30)) next.push_back(i);
  source.set_items(next, 5);
  const auto again = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, again); }, 30s)) << w->log_text();
  ASSERT_EQ(client.job(again)->state, JobState::completed);
  EXPECT_EQ(live(*db, "projects"), by_key(next));
  EXPECT_EQ(db->count("SELECT count(DISTINCT crawl_id) FROM docket.live_items"), 1);

  // The CLI shows them.
  const auto out = docket::test::run({DOCKET_BIN, "crawls"}, {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(out.status, 0) << out.err;
  EXPECT_NE(out.out.find("projects"), std::string::npos) << out.out;
  const auto one =
      docket::test::run({DOCKET_BIN, "crawl", std::to_string(crawl.id), "--json"}, {{"DATABASE_URL", db->url()}});
  EXPECT_EQ(Json::parse(one.out).at("status"), "done") << one.out << one.err;
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, ASecondRequestWhileOneRunsReturnsTheRunningOne) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 10), 5);
  source.block(2);
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"projects\" }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto first = client.enqueue({.kind = "projects"});
  ASSERT_TRUE(wait_until([&] { return source.count(2) == 0 && crawl_status(*db, first.id) == "crawling"; }, 20s));
  const auto second = client.enqueue({.kind = "projects"});
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.id, first.id);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls"), 1);
  source.release();
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, first.id); }, 30s));
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, ReadersSeeTheOldCompleteSetOrTheNewOneNeverAMix) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 4000, "old"), 500);
  auto w = start_docket_worker(
      *db, dir, crawl_toml("big", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"big\" }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto first = client.enqueue({.kind = "big"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, first); }, 60s)) << w->log_text();
  const std::string snapshot_sql =
      "SELECT count(*) || ':' || coalesce(sum(hashtext(key || item::text)::bigint), 0) FROM docket.live_items "
      "WHERE collection = 'big'";
  const std::string old_set = db->scalar(snapshot_sql);

  std::vector<Json> changed = items(1000, 4500, "new");  // 1-999 gone, 1000-4000 changed, 4001-4500 new
  source.set_items(changed, 500);
  std::atomic<bool> stop{false};
  std::set<std::string> seen;
  std::thread reader([&] {
    pqxx::connection c(db->url());
    while (!stop) {
      pqxx::nontransaction tx(c);
      seen.insert(tx.exec(snapshot_sql)[0][0].c_str());
    }
  });
  const auto second = client.enqueue({.kind = "big"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, second); }, 60s)) << w->log_text();
  std::this_thread::sleep_for(100ms);
  stop = true;
  reader.join();
  const std::string new_set = db->scalar(snapshot_sql);
  EXPECT_NE(old_set, new_set);
  EXPECT_TRUE(seen.contains(old_set));
  EXPECT_TRUE(seen.contains(new_set));
  for (const auto& s : seen) EXPECT_TRUE(s == old_set || s == new_set) << "a reader saw a mix: " << s;
  EXPECT_EQ(live(*db, "big"), by_key(changed));
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, A503OnPage3CostsOneMoreRequestForPage3NotARestart) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 25), 5);
  source.fault(3, {.status = 503});
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"projects\" }",
                 "backoff = { strategy = \"fixed\", delay = \"200ms\" }\n"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto job = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, job); }, 30s)) << w->log_text();
  ASSERT_EQ(client.job(job)->state, JobState::completed);
  EXPECT_EQ(source.count(1), 1);
  EXPECT_EQ(source.count(2), 1);
  EXPECT_EQ(source.count(3), 2);
  EXPECT_EQ(source.count(4), 1);
  EXPECT_EQ(source.count(5), 1);
  EXPECT_EQ(client.job(job)->attempt, 2);
  EXPECT_NE(client.job(job)->errors.at(0).at("error").get<std::string>().find("HTTP 503"), std::string::npos);
  EXPECT_EQ(live(*db, "projects"), by_key(items(1, 25)));
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, AWorkerKilledAfterPage3ResumesAtPage4OnAnother) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 25), 5);
  source.block(4);  // page 4's request waits: the checkpoint after page 3 is committed by then
  const std::string toml =
      crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"projects\" }");
  auto a = start_docket_worker(*db, dir, toml, "a");
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto job = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until(
      [&] {
        return db->count("SELECT pages FROM docket.crawls WHERE job_id = " + std::to_string(job)) == 3 &&
               source.requests().size() >= 3;
      },
      30s))
      << a->log_text();
  std::this_thread::sleep_for(200ms);  // page 4 is now being requested and held
  a->signal(SIGKILL);
  ASSERT_TRUE(a->wait(5s));
  source.release();
  auto b = start_docket_worker(*db, dir, toml, "b");
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, job); }, 30s)) << b->log_text();
  ASSERT_EQ(client.job(job)->state, JobState::completed) << client.job(job)->errors.dump();
  EXPECT_EQ(client.job(job)->attempt, 2);
  for (int page : {1, 2, 3}) EXPECT_EQ(source.count(page), 1) << "page " << page;
  for (int page = 1; page <= 6; ++page) EXPECT_LE(source.count(page), 2) << "page " << page;
  EXPECT_GE(source.count(4), 1);
  EXPECT_NE(b->log_text().find("resume_at_page=4"), std::string::npos) << b->log_text();
  EXPECT_EQ(live(*db, "projects"), by_key(items(1, 25)));
  b->signal(SIGTERM);
  EXPECT_EQ(b->wait(20s), 0);
}

TEST(Crawl, APermanentlyFailingSourceFailsTheCrawlAndLeavesTheLiveTableAlone) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 8), 4);
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"projects\" }",
                 "max_retries = 2\nbackoff = { strategy = \"fixed\", delay = \"100ms\" }\n"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto good = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, good); }, 30s));
  const auto before = live(*db, "projects");
  ASSERT_EQ(before.size(), 8u);

  source.set_items(items(1, 12, "v2"), 4);
  source.fault(2, {.status = 500}, 100);  // page 1 works, page 2 never does
  const auto bad = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, bad); }, 30s)) << w->log_text();
  EXPECT_EQ(client.job(bad)->state, JobState::failed);
  EXPECT_EQ(client.job(bad)->attempt, 3);
  const auto crawl = client.crawls({.status = "failed"}).at(0);
  EXPECT_EQ(crawl.job_id, bad);
  ASSERT_TRUE(crawl.last_error);
  EXPECT_NE(crawl.last_error->find("HTTP 500"), std::string::npos) << *crawl.last_error;
  EXPECT_EQ(live(*db, "projects"), before);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawl_cache"), 0);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, RetryAfterAndTheDelayHoldBackEveryRequestToTheHost) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 30), 5);
  source.fault(3, {.status = 429, .retry_after_s = 2});
  auto w = start_docket_worker(*db, dir,
                               crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") +
                                                          "\", collection = \"projects\", delay = \"300ms\" }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto job = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, job); }, 60s)) << w->log_text();
  ASSERT_EQ(client.job(job)->state, JobState::completed);
  EXPECT_EQ(client.job(job)->attempt, 1);  // a short Retry-After is waited out, not charged
  const auto reqs = source.requests();
  ASSERT_EQ(reqs.size(), 8u);  // pages 1-7 and page 3 twice
  double min_gap_ms = 1e9, after_429_ms = 0;
  for (std::size_t i = 1; i < reqs.size(); ++i) {
    const double gap = static_cast<double>(reqs[i].start_ns - reqs[i - 1].end_ns) / 1e6;
    min_gap_ms = std::min(min_gap_ms, gap);
    if (reqs[i - 1].status == 429) after_429_ms = gap;
  }
  std::cout << "crawl: smallest gap between requests " << min_gap_ms << " ms (delay 300 ms); after the 429 "
            << after_429_ms << " ms (Retry-After 2 s)\n";
  EXPECT_GE(min_gap_ms, 300);
  EXPECT_GE(after_429_ms, 2000);
  EXPECT_EQ(live(*db, "projects").size(), 30u);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, TwoCrawlsOfOneHostNeverHaveRequestsInFlightTogether) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 40), 4);
  source.set_latency(40ms);
  const std::string toml =
      crawl_toml("alpha", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"alpha\" }") +
      "[kinds.beta]\ncrawl = { url = \"" + source.url("/cursor?cursor={cursor}") +
      "\", next = \"/next\", collection = \"beta\" }\n";
  auto w1 = start_docket_worker(*db, dir, toml, "w1");
  auto w2 = start_docket_worker(*db, dir, toml, "w2");
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 2));
  const auto a = client.enqueue({.kind = "alpha"}).id;
  const auto b = client.enqueue({.kind = "beta"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, a) && crawl_finished(client, b); }, 60s));
  EXPECT_EQ(client.job(a)->state, JobState::completed);
  EXPECT_EQ(client.job(b)->state, JobState::completed) << client.job(b)->errors.dump();
  EXPECT_EQ(source.max_in_flight(), 1);
  EXPECT_EQ(live(*db, "alpha").size(), 40u);
  EXPECT_EQ(live(*db, "beta").size(), 40u);
  for (auto* w : {w1.get(), w2.get()}) w->signal(SIGTERM);
  EXPECT_EQ(w1->wait(20s), 0);
  EXPECT_EQ(w2->wait(20s), 0);
}

TEST(Crawl, ActivateSqlMovesTheCacheIntoTheUsersOwnTableInOneTransaction) {
  auto db = PgCluster::shared().fresh_database();
  db->query("CREATE TABLE public.projects (id int PRIMARY KEY, doc jsonb NOT NULL)");
  db->query("INSERT INTO public.projects VALUES (999, '{\"stale\": true}')");
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 12), 5);
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("own", "{ url = \"" + source.url("/items?page={page}") +
                            "\", collection = \"own\", activate_sql = [\"DELETE FROM public.projects\", "
                            "\"INSERT INTO public.projects (id, doc) SELECT key::int, item FROM docket.crawl_cache "
                            "WHERE crawl_id = $1\"] }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto job = client.enqueue({.kind = "own"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, job); }, 30s)) << w->log_text();
  ASSERT_EQ(client.job(job)->state, JobState::completed) << client.job(job)->errors.dump();
  EXPECT_EQ(db->count("SELECT count(*) FROM public.projects"), 12);
  EXPECT_EQ(db->count("SELECT count(*) FROM public.projects WHERE id = 999"), 0);
  EXPECT_EQ(db->scalar("SELECT doc->>'name' FROM public.projects WHERE id = 7"), "project 7");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items"), 0);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawl_cache"), 0);
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, LinkHeaderPaginationFollowsRelNext) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 17), 5);
  auto w = start_docket_worker(*db, dir,
                               crawl_toml("linked", "{ url = \"" + source.url("/link?page=1") +
                                                        "\", next = \"link\", collection = \"linked\" }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto job = client.enqueue({.kind = "linked"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, job); }, 30s));
  EXPECT_EQ(client.job(job)->state, JobState::completed);
  EXPECT_EQ(live(*db, "linked"), by_key(items(1, 17)));
  EXPECT_EQ(source.requests().size(), 4u);  // 4 pages, the last without a next link
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, BadPagesFailWithAClearErrorNotACrash) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 10), 5);
  const std::string kinds =
      crawl_toml("malformed", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"malformed\" }",
                 "max_retries = 0\n") +
      "[kinds.html]\ncrawl = { url = \"" + source.url("/items?page={page}") +
      "\", collection = \"html\" }\nmax_retries = 0\n" + "[kinds.noitems]\ncrawl = { url = \"" +
      source.url("/cursor?cursor={cursor}") +
      "\", next = \"/next\", items = \"/results\", collection = \"noitems\" }\nmax_retries = 0\n" +
      "[kinds.nokey]\ncrawl = { url = \"" + source.url("/items?page={page}") +
      "\", key = \"/uuid\", collection = \"nokey\" }\nmax_retries = 0\n";
  auto w = start_docket_worker(*db, dir, kinds);
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 4));
  source.fault(0, {.content_type = "application/json", .body = "{\"items\": [1, 2"});
  const auto malformed = client.enqueue({.kind = "malformed"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, malformed); }, 20s));
  source.fault(0, {.content_type = "text/html", .body = "<html>maintenance</html>"});
  const auto html = client.enqueue({.kind = "html"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, html); }, 20s));
  const auto noitems = client.enqueue({.kind = "noitems"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, noitems); }, 20s));
  const auto nokey = client.enqueue({.kind = "nokey"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, nokey); }, 20s));

  auto error_of = [&](std::int64_t job) {
    const auto j = client.job(job);
    EXPECT_EQ(j->state, JobState::failed);
    return j->errors.empty() ? std::string() : j->errors.back().at("error").get<std::string>();
  };
  EXPECT_NE(error_of(malformed).find("is not valid JSON"), std::string::npos) << error_of(malformed);
  EXPECT_NE(error_of(html).find("expected a JSON response, got Content-Type text/html"), std::string::npos)
      << error_of(html);
  EXPECT_NE(error_of(noitems).find("has no items at /results"), std::string::npos) << error_of(noitems);
  EXPECT_NE(error_of(nokey).find("has no key at /uuid"), std::string::npos) << error_of(nokey);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawls WHERE status = 'failed' AND last_error IS NOT NULL"), 4);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items"), 0);
  EXPECT_TRUE(w->running());
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, ALargeCrawlStreamsWithoutGrowingMemory) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 12000), 40);  // 300 pages
  auto w = start_docket_worker(
      *db, dir, crawl_toml("large", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"large\" }"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  auto rss_kb = [&] {
    const std::string status = docket::test::read_file("/proc/" + std::to_string(w->pid()) + "/status");
    const auto pos = status.find("VmRSS:");
    return pos == std::string::npos ? 0L : std::stol(status.substr(pos + 6));
  };
  const auto job = client.enqueue({.kind = "large"}).id;
  ASSERT_TRUE(wait_until(
      [&] { return db->count("SELECT pages FROM docket.crawls WHERE job_id = " + std::to_string(job)) >= 50; }, 60s));
  const long early = rss_kb();
  long peak = early;
  ASSERT_TRUE(wait_until(
      [&] {
        peak = std::max(peak, rss_kb());
        return crawl_finished(client, job);
      },
      120s, 50ms));
  EXPECT_EQ(client.job(job)->state, JobState::completed);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.live_items WHERE collection = 'large'"), 12000);
  std::cout << "crawl: worker RSS " << early << " kB at page 50, peak " << peak << " kB by page 300\n";
  EXPECT_LT(peak - early, 8 * 1024) << "memory grew with the number of pages";
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, A200WithoutItemsIsAPageErrorNotTheLastPageAndTheLiveItemsStay) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 30), 10);
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("projects", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"projects\" }",
                 "max_retries = 1\nbackoff = { strategy = \"fixed\", delay = \"100ms\" }\n"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  const auto first = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, first); }, 20s));
  ASSERT_EQ(live(*db, "projects").size(), 30u);

  // A maintenance answer: 200, JSON, no items array (twice: the attempt and its one retry).
  source.fault(1, {.status = 200, .content_type = "application/json", .body = R"({"status": "maintenance"})"}, 2);
  const auto second = client.enqueue({.kind = "projects"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, second); }, 20s));
  const auto job = client.job(second);
  EXPECT_EQ(job->state, JobState::failed);
  EXPECT_EQ(job->attempt, 2);
  EXPECT_EQ(job->errors.back().at("error").get<std::string>(),
            "page 1 (" + source.url("/items?page=1") + "): the response has no items at /items");
  EXPECT_EQ(crawl_status(*db, second), "failed");
  EXPECT_EQ(live(*db, "projects"), by_key(items(1, 30)));
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawl_cache"), 0);
  EXPECT_TRUE(w->running());
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, TheShrinkGuardRefusesToWipeMostOfTheLiveSetUnlessTheKindOptsOut) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 30), 10);
  const std::string url = source.url("/items?page={page}");
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("guarded", "{ url = \"" + url + "\", collection = \"shared\" }", "max_retries = 0\n") +
          "[kinds.trusting]\ncrawl = { url = \"" + url + "\", collection = \"shared\", max_shrink = 1.0 }\n");
  Client client(db->url());
  ASSERT_TRUE(wait_until(
      [&] { return db->count("SELECT count(*) FROM docket.kinds WHERE crawl_collection IS NOT NULL") == 2; }, 20s));
  const auto first = client.enqueue({.kind = "guarded"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, first); }, 20s));
  ASSERT_EQ(live(*db, "shared").size(), 30u);

  source.set_items(items(1, 10), 10);  // the source now answers a third of the set: 20 of 30 would go
  const auto refused = client.enqueue({.kind = "guarded"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, refused); }, 20s));
  EXPECT_EQ(client.job(refused)->state, JobState::failed);
  const std::string reason =
      "refused to activate: it would remove 20 of 30 live items (more than crawl.max_shrink = 0.5); the live items "
      "are unchanged";
  EXPECT_EQ(client.job(refused)->errors.back().at("error").get<std::string>(), reason);
  EXPECT_EQ(
      db->scalar("SELECT status || ': ' || last_error FROM docket.crawls WHERE job_id = " + std::to_string(refused)),
      "failed: " + reason);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.crawl_cache"), 0);
  EXPECT_EQ(live(*db, "shared"), by_key(items(1, 30)));

  const auto accepted = client.enqueue({.kind = "trusting"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, accepted); }, 20s));
  EXPECT_EQ(client.job(accepted)->state, JobState::completed);
  EXPECT_EQ(live(*db, "shared"), by_key(items(1, 10)));
  EXPECT_TRUE(w->running());
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}

TEST(Crawl, NulEscapesInItemsAndCursorsAreStoredCleaned) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  PageServer source;
  source.set_items(items(1, 1), 10);
  auto w = start_docket_worker(
      *db, dir,
      crawl_toml("nul", "{ url = \"" + source.url("/items?page={page}") + "\", collection = \"nul\" }",
                 "max_retries = 0\n"));
  Client client(db->url());
  ASSERT_TRUE(crawl_kinds_registered(*db, 1));
  source.fault(1, {.status = 200,
                   .content_type = "application/json",
                   .body = R"({"items": [{"id": "k\u0000", "name": "a\u0000b"}]})"});
  const auto id = client.enqueue({.kind = "nul"}).id;
  ASSERT_TRUE(wait_until([&] { return crawl_finished(client, id); }, 20s));
  EXPECT_EQ(client.job(id)->state, JobState::completed);
  EXPECT_EQ(live(*db, "nul"), (std::map<std::string, Json>{{"k\xEF\xBF\xBD", Json{{"id", "k\xEF\xBF\xBD"},
                                                                                  {"name",
                                                                                   "a\xEF\xBF\xBD"
                                                                                   "b"}}}}));
  EXPECT_TRUE(w->running());
  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(20s), 0);
}
