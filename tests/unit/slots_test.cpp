// The worker's slots (worker/src/queue/slots.hpp): what runs, what a claim may take, and when a
// finished run wakes the producer.
#include "queue/slots.hpp"

#include <gtest/gtest.h>

namespace docket {
namespace {

TEST(Slots, QueuesSplitIntoOpenAndCappedInTheirOrderIgnoringCapsOfOtherQueues) {
  const auto split = split_queues({"a", "b", "c", "d"}, {{"b", 2}, {"d", 1}, {"elsewhere", 5}});
  EXPECT_EQ(split.open, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(split.capped, (std::vector<QueueCap>{{"b", 2}, {"d", 1}}));
  const auto none = split_queues({"a"}, {});
  EXPECT_EQ(none.open, (std::vector<std::string>{"a"}));
  EXPECT_TRUE(none.capped.empty());
}

TEST(Slots, TakingAndReleasingCountsRunningClaimableAndTaken) {
  Slots slots(8, 5, {});
  EXPECT_EQ(slots.claimable(), 5);
  for (int i = 0; i < 6; ++i) slots.take("default");
  EXPECT_EQ(slots.running(), 6);
  EXPECT_EQ(slots.claimable(), 2);
  EXPECT_EQ(slots.taken(), 6U);
  (void)slots.release("default");
  EXPECT_EQ(slots.running(), 5);
  EXPECT_EQ(slots.taken(), 6U);  // a count of jobs handed over, not of jobs running
}

TEST(Slots, AFinishedRunWakesTheProducerOnlyAtAClaimsWorthOrWhenTheLastEnds) {
  // 500 slots, batch 500: half a batch (250 free) is a claim's worth.
  Slots slots(500, 500, {});
  for (int i = 0; i < 500; ++i) slots.take("q");
  int wakes = 0;
  for (int i = 0; i < 500; ++i) {
    const auto freed = slots.release("q");
    EXPECT_FALSE(freed.look);
    if (!freed.wake) continue;
    ++wakes;
    EXPECT_TRUE(freed.running == 250 || freed.running == 0) << freed.running;
  }
  EXPECT_EQ(wakes, 2);  // not one per job
  EXPECT_EQ(slots.running(), 0);
}

TEST(Slots, ASmallWorkerWakesAtEachFreeSlotWhenHalfABatchIsOne) {
  Slots slots(2, 500, {});  // batch 2: threshold 1
  slots.take("q");
  slots.take("q");
  EXPECT_EQ(slots.release("q"), (SlotFreed{1, true, false}));
  EXPECT_EQ(slots.release("q"), (SlotFreed{0, true, false}));
}

TEST(Slots, ACappedQueueHasItsOwnFreeSlotsAndAFullOneAsksTheProducerToLook) {
  Slots slots(10, 10, {{"imports", 2}});
  EXPECT_EQ(slots.free_in("imports"), 2);
  EXPECT_EQ(slots.free_in("default"), 0);  // no cap: claimed with the open queues
  slots.take("imports");
  slots.take("default");
  EXPECT_EQ(slots.free_in("imports"), 1);
  slots.take("imports");
  EXPECT_EQ(slots.free_in("imports"), 0);
  EXPECT_EQ(slots.running(), 3);
  // The capped queue was full: its freed slot is worth a look even if the last claim was short.
  EXPECT_EQ(slots.release("imports"), (SlotFreed{2, true, true}));
  // Not full any more: the ordinary rule (10 slots, threshold 5: 8 free is no wake).
  EXPECT_EQ(slots.release("imports"), (SlotFreed{1, false, false}));
  EXPECT_EQ(slots.release("default"), (SlotFreed{0, true, false}));
  EXPECT_EQ(slots.free_in("imports"), 2);
}

}  // namespace
}  // namespace docket
