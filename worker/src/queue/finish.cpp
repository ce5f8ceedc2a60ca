#include "queue/finish.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/text.hpp"
#include "docket/json.hpp"
#include "executors/executors.hpp"

namespace docket {

std::string clip_error(const std::string& error) {
  if (error.empty()) return "(no message)";
  return clean_text(error, kMaxErrorBytes, Keep::tail);
}

double delay_seconds(Millis wait) {
  return static_cast<double>(std::clamp<long long>(wait.count(), 0, kMaxRetryDelay.count())) / 1000.0;
}

db::FinishItem finish_item_of(std::int64_t id, int attempt, int max_retries, const Outcome& outcome,
                              const std::function<std::optional<Millis>()>& backoff, const ResultLimit& limit) {
  db::FinishItem item;
  item.id = id;
  item.attempt = attempt;
  item.max_retries = max_retries;
  switch (outcome.kind()) {
    case Outcome::Kind::complete: {
      item.outcome = db::FinishOutcome::complete;
      if (!outcome.result().is_null()) {
        std::string text = clean_json_text(outcome.result().dump(-1, ' ', false, Json::error_handler_t::replace));
        const std::size_t max = std::min(limit.max_bytes, kMaxResultBytesCap);
        if (text.size() > max) {
          const std::string reason = "the result is " + std::to_string(text.size()) +
                                     " bytes, larger than the kind's max_result_bytes (" + std::to_string(max) + ")";
          if (limit.dropped) limit.dropped(text.size(), max);
          text = Json{{"docket_result_dropped", reason}, {"bytes", text.size()}}.dump();
        }
        item.result = std::move(text);
      }
      break;
    }
    case Outcome::Kind::retry: {
      item.outcome = db::FinishOutcome::retry;
      const std::optional<Millis> wait = outcome.delay() ? outcome.delay() : backoff();
      item.delay_s = wait ? delay_seconds(*wait) : -1;
      item.error = clip_error(outcome.error());
      break;
    }
    case Outcome::Kind::snooze:
      item.outcome = db::FinishOutcome::snooze;
      item.delay_s = delay_seconds(outcome.delay().value_or(Millis(0)));
      break;
    case Outcome::Kind::fail:
      item.outcome = db::FinishOutcome::fail;
      item.error = clip_error(outcome.error());
      break;
    case Outcome::Kind::cancel:
      item.outcome = db::FinishOutcome::cancel;
      item.error = clip_error(outcome.error());
      break;
    case Outcome::Kind::callback:
      throw std::logic_error("a job waiting for its callback has no finishing write");
  }
  return item;
}

PendingFinish hand_back_of(const std::string& worker, std::int64_t id, int attempt, int max_retries,
                           const std::string& kind, const std::string& queue) {
  db::FinishItem item;
  item.id = id;
  item.attempt = attempt;
  item.max_retries = max_retries;
  item.outcome = db::FinishOutcome::release;
  return {worker, item, kind, queue, 0};
}

}  // namespace docket
