#pragma once
// The producer's claim-size decision, a pure function of what it knows (no clock, no database),
// so its rules are unit-tested (tests/unit/claim_size_test.cpp) apart from the threads that act
// on it in producer.cpp.
namespace docket {

/// What the producer knows when it may claim.
struct ClaimState {
  int concurrency = 1;         ///< jobs this process runs at once
  int claim_batch = 1;         ///< most jobs claimed in one round trip
  int running = 0;             ///< jobs running now (claimed, outcome not yet handed over)
  bool last_full = false;      ///< the last claim came back full: a backlog is draining
  bool window_passed = false;  ///< the producer has waited its claim window for a batch of slots
};

/// What to do now: claim `jobs` (0: nothing), or wait for more slots (`defer`) because a claim
/// of only a few jobs would cost a round trip each.
struct ClaimDecision {
  int jobs = 0;
  bool defer = false;
  bool operator==(const ClaimDecision&) const = default;  ///< for tests
};

/// Free slots worth a claim round trip while a backlog drains and jobs still run: half a batch.
inline int batch_threshold(int concurrency, int claim_batch) {
  const int batch = claim_batch < concurrency ? claim_batch : concurrency;
  return batch / 2 > 1 ? batch / 2 : 1;
}

/// Jobs one claim may take: the free slots, at most a batch, never negative.
inline int claimable(int concurrency, int claim_batch, int running) {
  const int free = concurrency - running;
  const int n = free < claim_batch ? free : claim_batch;
  return n > 0 ? n : 0;
}

/// Claim in batches: while a backlog drains (the last claim came back full) and jobs still run,
/// wait (up to the claim window) for half a batch of slots instead of claiming one job per
/// finished job. An idle worker, or one whose last claim was short (the queue ran dry or a quota
/// capped it), claims at once: waiting would only add latency.
inline ClaimDecision decide_claim(const ClaimState& s) {
  const int n = claimable(s.concurrency, s.claim_batch, s.running);
  if (n == 0) return {};
  const bool ready = s.running == 0 || !s.last_full ||
                     s.concurrency - s.running >= batch_threshold(s.concurrency, s.claim_batch) || s.window_passed;
  if (!ready) return {0, true};
  return {n, false};
}

}  // namespace docket
