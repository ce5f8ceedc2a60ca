// The producer's pure pieces (worker/src/queue/producer.hpp): what a notification asks, how one
// claim spreads over capped queues, and when an empty rate bucket is looked at again.
#include "queue/producer.hpp"

#include <gtest/gtest.h>

#include "db/array.hpp"

namespace docket {
namespace {

using namespace std::chrono_literals;

const std::set<std::string> kQueues = {"default", "imports"};

Notice notice(const std::string& channel, const std::string& payload, bool on_claim_session = true) {
  return read_notice({channel, payload}, kQueues, on_claim_session);
}

TEST(ProducerNotice, AnEnqueueIntoOurQueuesOrEveryQueueIsWorthAClaim) {
  EXPECT_EQ(notice("docket_jobs", "default"), (Notice{.want = true}));
  EXPECT_EQ(notice("docket_jobs", "*"), (Notice{.want = true}));
  EXPECT_EQ(notice("docket_jobs", "elsewhere"), Notice{});
  EXPECT_EQ(notice("docket_jobs", ""), Notice{});
}

TEST(ProducerNotice, ACancelNamesTheJobAndAnUnreadablePayloadIsIgnored) {
  EXPECT_EQ(notice("docket_cancel", "42"), (Notice{.cancel = 42}));
  EXPECT_EQ(notice("docket_cancel", "not a number"), Notice{});
  EXPECT_EQ(notice("docket_cancel", ""), Notice{});
  EXPECT_EQ(notice("docket_cancel", "99999999999999999999999999"), Notice{});  // out of range: no throw
}

TEST(ProducerNotice, ControlNoticesLookForWorkOnTheOpenPath) {
  EXPECT_EQ(notice("docket_control", "limits"), (Notice{.want = true, .open_path = true}));
}

TEST(ProducerNotice, OnlyTheClaimSessionsReconnectPutsItsClaimsInDoubt) {
  EXPECT_EQ(notice("docket_reconnect", "", true), (Notice{.want = true, .open_path = true, .doubt = true}));
  // A listener of its own (around a transaction pooler) reconnecting says nothing about claims.
  EXPECT_EQ(notice("docket_reconnect", "", false), (Notice{.want = true, .open_path = true}));
}

TEST(ProducerRateWake, AtTheNextTokenAtMostThePollIntervalPlusHalfAMillisecond) {
  EXPECT_EQ(rate_wake_delay(0.2, 1000ms), std::chrono::duration_cast<std::chrono::steady_clock::duration>(200500us));
  EXPECT_EQ(rate_wake_delay(30, 1000ms), std::chrono::duration_cast<std::chrono::steady_clock::duration>(1000500us));
  EXPECT_EQ(rate_wake_delay(-1, 1000ms), std::chrono::duration_cast<std::chrono::steady_clock::duration>(500us));
}

TEST(ProducerClaim, QueueLiteralsKeepTheConfigsOrder) {
  const auto q = claim_queues({"a", "capped", "b"}, {{"capped", 2}});
  EXPECT_EQ(q.all, db::text_array(std::vector<std::string>{"a", "capped", "b"}));
  EXPECT_EQ(q.open, db::text_array(std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(q.capped.size(), 1U);
  EXPECT_EQ(q.capped[0].name, "capped");
  EXPECT_EQ(q.capped[0].literal, db::text_array(std::vector<std::string>{"capped"}));
  EXPECT_EQ(claim_queues({"only"}, {{"only", 1}}).open, "");
}

/// A claim statement that records what it was asked and returns `give[literal]` jobs at most.
struct FakeClaims {
  std::map<std::string, int> give;
  std::vector<std::pair<std::string, int>> asked;
  ClaimFn fn() {
    return [this](const std::string& literal, int limit) {
      asked.emplace_back(literal, limit);
      std::vector<db::ClaimedJob> out(static_cast<std::size_t>(std::min(limit, give[literal])));
      return out;
    };
  }
};

TEST(ProducerClaim, WithoutCapsOneStatementTakesEveryQueue) {
  const auto q = claim_queues({"a", "b"}, {});
  Slots slots(10, 10, {});
  FakeClaims db{{{q.all, 100}}, {}};
  EXPECT_EQ(claim_across(q, slots, 7, db.fn()).size(), 7U);
  EXPECT_EQ(db.asked, (std::vector<std::pair<std::string, int>>{{q.all, 7}}));
}

TEST(ProducerClaim, CappedQueuesGetAtMostTheirFreeSlotsAndWhatIsLeftOfTheClaim) {
  const std::map<std::string, int> caps = {{"c1", 3}, {"c2", 2}};
  const auto q = claim_queues({"open", "c1", "c2"}, caps);
  Slots slots(10, 10, split_queues({"open", "c1", "c2"}, caps).capped);
  slots.take("c1");  // c1: 2 free
  FakeClaims db{{{q.open, 4}, {q.capped[0].literal, 100}, {q.capped[1].literal, 100}}, {}};
  const auto jobs = claim_across(q, slots, 7, db.fn());
  // The open queues first (4 of 7), then c1 for min(3 left, 2 free), then c2 for the 1 left.
  EXPECT_EQ(db.asked, (std::vector<std::pair<std::string, int>>{
                          {q.open, 7}, {q.capped[0].literal, 2}, {q.capped[1].literal, 1}}));
  EXPECT_EQ(jobs.size(), 7U);
}

TEST(ProducerClaim, AFullCappedQueueIsNotAskedAndNoOpenQueuesMeansNoOpenStatement) {
  const std::map<std::string, int> caps = {{"c1", 1}, {"c2", 5}};
  const auto q = claim_queues({"c1", "c2"}, caps);
  Slots slots(10, 10, split_queues({"c1", "c2"}, caps).capped);
  slots.take("c1");  // full
  FakeClaims db{{{q.capped[1].literal, 2}}, {}};
  EXPECT_EQ(claim_across(q, slots, 10, db.fn()).size(), 2U);
  EXPECT_EQ(db.asked, (std::vector<std::pair<std::string, int>>{{q.capped[1].literal, 5}}));
}

}  // namespace
}  // namespace docket
