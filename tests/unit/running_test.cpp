// The running set (queue/running.hpp): what stops and what leaves it, without a database.
#include <gtest/gtest.h>

#include "queue/running.hpp"

namespace docket {
namespace {

std::shared_ptr<RunningJob> run_of(std::int64_t id, const std::string& worker) {
  auto rj = std::make_shared<RunningJob>();
  rj->id = id;
  rj->worker = worker;
  rj->deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
  return rj;
}

TEST(Running, AnEarlierRunReturningLateDoesNotRemoveTheRunThatReplacedIt) {
  // Run 1 of job 7 is stopped after a lost lease but its handler is slow to return; the job is
  // rescued and claimed here again (run 2). Run 1 returning must leave run 2 registered: run 2
  // still answers cancel, timeout and the shutdown hand-back.
  Running running;
  const auto first = run_of(7, "old-id");
  running.add(first);
  EXPECT_EQ(running.stop_all(StopReason::lost, "old-id").size(), 1u);
  const auto second = run_of(7, "new-id");
  running.add(second);
  running.remove(first);
  EXPECT_EQ(running.size(), 1u);
  EXPECT_TRUE(running.stop(7, StopReason::cancel));
  EXPECT_EQ(second->reason.load(), StopReason::cancel);
  running.remove(second);
  EXPECT_EQ(running.size(), 0u);
  EXPECT_FALSE(running.stop(7, StopReason::cancel));
}

}  // namespace
}  // namespace docket
