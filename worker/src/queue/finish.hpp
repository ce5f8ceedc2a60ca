#pragma once
// The one mapping from an outcome to the finishing write: a worker's handlers and a callback
// token's holder (POST /jobs/{id}/outcome) go through it, so their bounds are the same.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "db/session.hpp"
#include "docket/config.hpp"
#include "docket/handler.hpp"

namespace docket {

/// Largest error message stored (its tail is kept).
inline constexpr std::size_t kMaxErrorBytes = 8192;

/// An error message as stored: cleaned, its last kMaxErrorBytes.
std::string clip_error(const std::string& error);
/// A retry or snooze delay in seconds, clamped to [0, kMaxRetryDelay]: run_at stays a valid
/// timestamp whatever a handler or a Retry-After asked for.
double delay_seconds(Millis wait);

/// A result larger than `max_bytes` (at most kMaxResultBytesCap) completes the job with the
/// docket_result_dropped marker instead; `dropped(bytes, limit)` is told, to log it.
struct ResultLimit {
  std::size_t max_bytes = kMaxResultBytesCap;
  std::function<void(std::size_t bytes, std::size_t limit)> dropped;
};

/// The finishing write of `outcome` for job `id` at `attempt`. `backoff` gives the wait of a
/// retry without its own delay; nullopt there leaves delay_s at -1 (the wait stored on the job).
/// One rule for every executor (C++ handlers, command, url, callbacks): see ResultLimit.
/// Throws std::logic_error for Outcome::await_callback (nothing to write).
db::FinishItem finish_item_of(std::int64_t id, int attempt, int max_retries, const Outcome& outcome,
                              const std::function<std::optional<Millis>()>& backoff, const ResultLimit& limit = {});

/// One outcome waiting to be written (by the Completer), with what its log line needs.
struct PendingFinish {
  std::string worker;  ///< the worker id the job was claimed under (fences the write)
  db::FinishItem item;
  std::string kind;
  std::string queue;
  double duration_ms = 0;
};

/// Hands a job back without counting its attempt (the fenced `release` outcome): at shutdown, and
/// for a job of a lost claim.
PendingFinish hand_back_of(const std::string& worker, std::int64_t id, int attempt, int max_retries,
                           const std::string& kind, const std::string& queue);

}  // namespace docket
