// The held set and the reconcile's comparison (worker/src/queue/held.hpp): a job whose claim
// answer was lost is handed back, never one this process holds.
#include "queue/held.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace docket {
namespace {

std::vector<db::ClaimedJob> jobs(std::initializer_list<std::int64_t> ids) {
  std::vector<db::ClaimedJob> out;
  for (const auto id : ids) {
    db::ClaimedJob job;
    job.id = id;
    job.kind = "k";
    job.queue = "default";
    out.push_back(job);
  }
  return out;
}

std::vector<std::int64_t> ids_of(const std::vector<db::ClaimedJob>& js) {
  std::vector<std::int64_t> out;
  for (const auto& j : js) out.push_back(j.id);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(HeldJobs, AJobIsHeldFromItsHandOverUntilItSettles) {
  HeldJobs held;
  held.hold(1);
  held.hold(2);
  EXPECT_TRUE(held.holds(1));
  EXPECT_EQ(held.size(), 2U);
  held.settle(1);
  EXPECT_FALSE(held.holds(1));
  EXPECT_TRUE(held.holds(2));
  held.settle(std::vector<std::int64_t>{2, 3});  // settling what is not held is harmless
  EXPECT_EQ(held.size(), 0U);
}

TEST(HeldJobs, ReconcileReturnsOnlyTheRunningJobsThisProcessDoesNotHold) {
  HeldJobs held;
  held.hold(1);
  held.hold(2);
  // The database has 1, 2 (ours) and 3, 4 (claimed by a claim whose answer was lost) running under us.
  const auto lost = held.unheld([] { return jobs({1, 2, 3, 4}); });
  EXPECT_EQ(ids_of(lost), (std::vector<std::int64_t>{3, 4}));
  // Reconciling changes nothing held: 1 and 2 still run here.
  EXPECT_TRUE(held.holds(1));
  EXPECT_TRUE(held.holds(2));
}

TEST(HeldJobs, AJobWhoseOutcomeIsNotYetWrittenIsNeverHandedBack) {
  HeldJobs held;
  held.hold(7);
  // Its run ended and its outcome waits in the completer: still held, so still not "lost".
  EXPECT_TRUE(held.unheld([] { return jobs({7}); }).empty());
  // Once written (applied or refused as stale) it is settled; a row still running under us after
  // that is handed back (fenced: a row the outcome already moved is left alone).
  held.settle(7);
  EXPECT_EQ(ids_of(held.unheld([] { return jobs({7}); })), (std::vector<std::int64_t>{7}));
}

TEST(HeldJobs, AJobClaimedAgainBeforeItsFirstRunSettledStaysHeldForItsSecondRun) {
  // Released or retried at once, the job is claimed back (by the producer, or by the claim in the
  // same finish_and_claim) before the first run's outcome is settled here.
  HeldJobs held;
  held.hold(5);    // first run
  held.hold(5);    // second run
  held.settle(5);  // the first run's outcome is written
  EXPECT_TRUE(held.holds(5));
  EXPECT_TRUE(held.unheld([] { return jobs({5}); }).empty());  // never handed back while it runs here
  held.settle(5);
  EXPECT_FALSE(held.holds(5));
}

TEST(HeldJobs, ALostClaimsJobIsHeldFromItsHandBackUntilThatSettles) {
  HeldJobs held;
  held.doubt();
  EXPECT_EQ(ids_of(held.unheld([] { return jobs({3}); })), (std::vector<std::int64_t>{3}));
  EXPECT_TRUE(held.holds(3));
  // Another reconcile before the hand-back is written does not hand it back twice.
  held.doubt();
  EXPECT_TRUE(held.unheld([] { return jobs({3}); }).empty());
  held.settle(3);  // the hand-back is written
  EXPECT_FALSE(held.holds(3));
}

TEST(HeldJobs, TheDoubtIsClearedBeforeTheReadSoALossDuringTheReadAsksAgain) {
  HeldJobs held;
  EXPECT_FALSE(held.in_doubt());
  held.doubt();
  EXPECT_TRUE(held.in_doubt());
  bool cleared_before_read = false;
  (void)held.unheld([&] {
    cleared_before_read = !held.in_doubt();
    return jobs({});
  });
  EXPECT_TRUE(cleared_before_read);
  EXPECT_FALSE(held.in_doubt());
  // A claim (the completer's) loses its connection while the read is in flight: its jobs may not
  // be in that read, so the next claim reconciles again.
  held.doubt();
  (void)held.unheld([&] {
    held.doubt();
    return jobs({});
  });
  EXPECT_TRUE(held.in_doubt());
}

TEST(HeldJobs, AJobWhoseRunSettlesDuringTheReadIsNotHandedBack) {
  // The database showed job 5 running under us; its outcome was written (and settled) after the
  // read and before the comparison. It was ours, not a lost claim's: handing it back could match
  // its next claim here (a snooze or release keeps the attempt) and hand back a running job.
  HeldJobs held;
  held.hold(5);
  held.doubt();
  const auto lost = held.unheld([&] {
    auto seen = jobs({5, 6});
    held.settle(5);
    return seen;
  });
  EXPECT_EQ(ids_of(lost), (std::vector<std::int64_t>{6}));
  EXPECT_FALSE(held.holds(5));
  // A settle outside a read leaves no trace for the next one.
  held.settle(9);
  held.doubt();
  EXPECT_EQ(ids_of(held.unheld([] { return jobs({9}); })), (std::vector<std::int64_t>{9}));
}

TEST(HeldJobs, AFailedReadKeepsTheDoubtSoTheNextClaimReconcilesAgain) {
  // Whatever stops the read (the connection, or any other error), nothing was compared: the doubt
  // stands, and the next claim reads again rather than leaving a lost claim's jobs stranded.
  HeldJobs held;
  held.hold(1);
  held.doubt();
  EXPECT_THROW((void)held.unheld([]() -> std::vector<db::ClaimedJob> { throw std::runtime_error("gone"); }),
               std::runtime_error);
  EXPECT_TRUE(held.in_doubt());
  EXPECT_TRUE(held.holds(1));
  EXPECT_EQ(ids_of(held.unheld([] { return jobs({1, 2}); })), (std::vector<std::int64_t>{2}));
  EXPECT_FALSE(held.in_doubt());
}

}  // namespace
}  // namespace docket
