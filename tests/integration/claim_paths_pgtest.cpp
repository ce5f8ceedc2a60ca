// The two claim paths (the open claim of job_claim_open.sql and the locked docket.claim) on one
// table: they claim the same rows, and they agree, through docket.kind_limited, on which kinds
// must take the locked path.
#include <gtest/gtest.h>

#include <algorithm>

#include "db/array.hpp"
#include "db/queries.hpp"
#include "db/session.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

namespace {

class ClaimPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    db = PgCluster::shared().fresh_database();
    db::Session session(db->url(), "test");
    worker = session.register_worker({.name = "w", .queues = {"default", "other", "held"}, .kinds = {"a", "b", "c"}});
    // 120 jobs over three queues (one paused) and three kinds, mixed priorities and run_at, some
    // not runnable (scheduled in the future, running, finished), and one kind nobody asks for.
    db->query(
        "INSERT INTO docket.jobs (kind, queue, priority, run_at, state, started_at, finished_at, attempt) "
        "SELECT (ARRAY['a','b','c','d'])[1 + i % 4], (ARRAY['default','other','held'])[1 + i % 3], (i * 7) % 3, "
        "       now() - make_interval(secs => (i * 13) % 50) + CASE WHEN i % 10 = 0 THEN interval '1 hour' ELSE '0' "
        "END, "
        "       (CASE WHEN i % 10 = 0 THEN 'scheduled' WHEN i % 17 = 0 THEN 'running' WHEN i % 19 = 0 THEN 'completed' "
        "             ELSE 'available' END)::docket.job_state, "
        "       CASE WHEN i % 17 = 0 AND i % 10 <> 0 THEN now() END, "
        "       CASE WHEN i % 19 = 0 AND i % 17 <> 0 AND i % 10 <> 0 THEN now() END, "
        "       CASE WHEN i % 17 = 0 AND i % 10 <> 0 THEN 1 ELSE 0 END "
        "  FROM generate_series(1, 120) i");
    db->query("SELECT docket.pause('held')");
  }

  /// The ids a path claims (in its answer's order), in a transaction rolled back after: both
  /// paths see the same table. An empty optional: the open path declined (a limited kind).
  std::optional<std::vector<long long>> claim(bool open, const std::vector<std::string>& kinds, int limit) {
    pqxx::work tx(db->conn());
    const auto queues = db::text_array(std::vector<std::string>{"default", "other", "held"});
    const auto sql = open ? std::string(db::q::job_claim_open.text)
                          : std::string("SELECT id FROM docket.claim($1::uuid, $2::text[], $3::text[], $4::int)");
    const auto res = tx.exec_params(sql, worker, queues, db::text_array(kinds), limit);
    std::vector<long long> ids;
    for (const auto& row : res) {
      if (row["id"].is_null()) return std::nullopt;
      ids.push_back(row["id"].as<long long>());
    }
    tx.abort();
    return ids;
  }
  static std::vector<long long> sorted(std::vector<long long> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  std::unique_ptr<docket::test::TestDatabase> db;
  std::string worker;
};

}  // namespace

TEST_F(ClaimPaths, BothPathsClaimTheSameRowsFromTheSameTable) {
  const std::vector<std::vector<std::string>> kind_sets = {{"a"}, {"a", "b"}, {"a", "b", "c"}, {"c", "d"}, {"x"}};
  for (const auto& kinds : kind_sets) {
    for (const int limit : {1, 2, 5, 17, 200}) {
      const auto open = claim(true, kinds, limit);
      const auto locked = claim(false, kinds, limit);
      ASSERT_TRUE(open) << "no kind is limited, the open path must claim";
      ASSERT_TRUE(locked);
      EXPECT_EQ(sorted(*open), sorted(*locked)) << db::text_array(kinds) << " limit " << limit;
      EXPECT_LE(open->size(), static_cast<std::size_t>(limit));
    }
  }
  // The claims were rolled back: everything available is still there, and the answer was not empty.
  const auto all = claim(true, {"a", "b", "c", "d"}, 1000);
  ASSERT_TRUE(all);
  EXPECT_EQ(static_cast<long long>(all->size()),
            db->count("SELECT count(*) FROM docket.jobs WHERE state = 'available' AND queue <> 'held'"));
  EXPECT_GT(all->size(), 30U);
}

TEST_F(ClaimPaths, AKindIsLimitedByEachLimitAndBothPathsAgreeOnIt) {
  const auto unlimited = sorted(*claim(true, {"a", "b"}, 1000));
  // Each limit (none binding here) makes a limited; the open path then declines and the locked
  // path claims the same rows the open path claimed without it.
  const std::vector<std::pair<std::string, std::string>> limits = {
      {"SELECT docket.set_limit('a', 1000)", "SELECT docket.set_limit('a', NULL)"},
      {"SELECT docket.set_rate('a', '100000/1s', 100000)", "SELECT docket.set_rate('a', NULL)"},
      {"SELECT docket.set_partition('a', 'args.tenant', 1000, NULL, NULL)",
       "SELECT docket.set_partition('a', NULL, NULL, NULL, NULL)"},
  };
  for (const auto& [set, unset] : limits) {
    db->query(set);
    EXPECT_EQ(db->scalar("SELECT docket.kind_limited(k) FROM docket.kinds k WHERE kind = 'a'"), "t") << set;
    EXPECT_EQ(claim(true, {"a", "b"}, 1000), std::nullopt) << set;
    EXPECT_EQ(claim(true, {"b"}, 1000).has_value(), true) << set << ": b is not limited";
    EXPECT_EQ(sorted(*claim(false, {"a", "b"}, 1000)), unlimited) << set;
    db->query(unset);
    EXPECT_EQ(db->scalar("SELECT docket.kind_limited(k) FROM docket.kinds k WHERE kind = 'a'"), "f") << unset;
    EXPECT_EQ(sorted(*claim(true, {"a", "b"}, 1000)), unlimited) << unset;
  }
}
