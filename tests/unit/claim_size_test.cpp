// The producer's claim-size decision (worker/src/queue/claim_size.hpp): how many jobs a claim
// takes, and when it waits for a batch of slots instead.
#include "queue/claim_size.hpp"

#include <gtest/gtest.h>

namespace docket {
namespace {

ClaimDecision decide(int concurrency, int batch, int running, bool last_full, bool window_passed = false) {
  return decide_claim({concurrency, batch, running, last_full, window_passed});
}
constexpr bool kDefer = true;

TEST(ClaimSize, AnIdleWorkerClaimsAWholeBatchAtOnceAtMostItsSlots) {
  EXPECT_EQ(decide(500, 500, 0, true), (ClaimDecision{500, !kDefer}));
  EXPECT_EQ(decide(8, 500, 0, false), (ClaimDecision{8, !kDefer}));
  EXPECT_EQ(decide(1000, 500, 0, false), (ClaimDecision{500, !kDefer}));
}

TEST(ClaimSize, NoFreeSlotMeansNoClaimAndNoDeferral) {
  EXPECT_EQ(decide(8, 500, 8, false), (ClaimDecision{0, !kDefer}));
  EXPECT_EQ(decide(8, 500, 8, true), (ClaimDecision{0, !kDefer}));
  // More running than slots (a capped queue's jobs counted late) is still nothing, not negative.
  EXPECT_EQ(decide(8, 500, 9, false), (ClaimDecision{0, !kDefer}));
}

TEST(ClaimSize, WhileABacklogDrainsAFewFreeSlotsWaitForHalfABatch) {
  // 500 slots, batch 500: 249 free is below half a batch, 250 is a claim.
  EXPECT_EQ(decide(500, 500, 251, true), (ClaimDecision{0, kDefer}));
  EXPECT_EQ(decide(500, 500, 250, true), (ClaimDecision{250, !kDefer}));
}

TEST(ClaimSize, TheClaimWindowEndsTheWaitWithWhateverIsFree) {
  EXPECT_EQ(decide(500, 500, 499, true, true), (ClaimDecision{1, !kDefer}));
}

TEST(ClaimSize, AShortLastClaimClaimsAtOnceWhateverIsFree) {
  // The queue ran dry or a quota capped the claim: a new job must not wait for the window.
  EXPECT_EQ(decide(500, 500, 499, false), (ClaimDecision{1, !kDefer}));
}

TEST(ClaimSize, TheBatchThresholdIsHalfTheSmallerOfBatchAndSlotsAndAtLeastOne) {
  EXPECT_EQ(batch_threshold(500, 500), 250);
  EXPECT_EQ(batch_threshold(8, 500), 4);
  EXPECT_EQ(batch_threshold(1000, 100), 50);
  EXPECT_EQ(batch_threshold(1, 500), 1);
  EXPECT_EQ(batch_threshold(3, 1), 1);
  // With one slot the only free slot is always a claim.
  EXPECT_EQ(decide(1, 500, 0, true), (ClaimDecision{1, !kDefer}));
}

}  // namespace
}  // namespace docket
