// The job lifecycle has one spelling: the C++ JobState names are docket.job_state's labels, in order.
#include <gtest/gtest.h>

#include "docket/job.hpp"
#include "pg.hpp"

using namespace docket;
using docket::test::PgCluster;

TEST(Lifecycle, CppStatesAreTheSqlEnum) {
  auto db = PgCluster::shared().fresh_database();
  std::vector<std::string> sql;
  for (const auto& row : db->query("SELECT unnest(enum_range(NULL::docket.job_state))::text"))
    sql.emplace_back(row[0].c_str());
  EXPECT_EQ(job_state_names(), sql);
  for (const auto& name : sql) {
    const auto state = parse_job_state(name);
    ASSERT_TRUE(state.has_value()) << name;
    EXPECT_EQ(to_string(*state), name);
  }
  EXPECT_FALSE(parse_job_state("complete").has_value());
}

TEST(Lifecycle, FinishedStatesAreTheOnesTheDatabaseStampsFinishedAt) {
  // Every SQL path that finishes a job sets finished_at; the others leave or clear it. The C++ side
  // decides "finished" with is_finished(): both must agree on the same three states.
  auto db = PgCluster::shared().fresh_database();
  for (const auto& name : job_state_names()) {
    const bool finished = is_finished(*parse_job_state(name));
    EXPECT_EQ(finished, name == "completed" || name == "failed" || name == "cancelled") << name;
  }
  db->query("SELECT docket.enqueue('a', run_at => now() + interval '1 day')");
  db->query("SELECT docket.enqueue('a')");
  const auto cancelled = db->scalar("SELECT docket.enqueue('a', '{\"c\": 1}')");
  db->query("SELECT docket.cancel(" + cancelled + ")");
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE (finished_at IS NOT NULL) <> "
                      "(state IN ('completed', 'failed', 'cancelled'))"),
            0);
  db->query("SELECT docket.retry(" + cancelled + ")");
  EXPECT_EQ(db->scalar("SELECT state || '/' || (finished_at IS NULL) FROM docket.jobs WHERE id = " + cancelled),
            "available/true");
}

TEST(Lifecycle, ACheckConstraintRefusesAFinishedAtThatDisagreesWithTheState) {
  auto db = PgCluster::shared().fresh_database();
  const auto id = db->scalar("SELECT docket.enqueue('a')");
  for (const std::string& sql :
       std::vector<std::string>{"UPDATE docket.jobs SET finished_at = now() WHERE id = " + id,
                                "UPDATE docket.jobs SET state = 'completed' WHERE id = " + id,
                                "UPDATE docket.jobs SET state = 'running', finished_at = now() WHERE id = " + id,
                                "INSERT INTO docket.jobs (kind, state) VALUES ('a', 'failed')"}) {
    try {
      db->query(sql);
      ADD_FAILURE() << "accepted: " << sql;
    } catch (const pqxx::check_violation& e) {
      EXPECT_NE(std::string(e.what()).find("jobs_finished_at_check"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(db->scalar("SELECT state || '/' || (finished_at IS NULL) FROM docket.jobs WHERE id = " + id),
            "available/true");
  db->query("UPDATE docket.jobs SET state = 'completed', finished_at = now() WHERE id = " + id);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs WHERE finished_at IS NOT NULL"), 1);
}
