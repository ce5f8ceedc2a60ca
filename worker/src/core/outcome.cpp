#include "docket/handler.hpp"

namespace docket {

Outcome Outcome::complete(Json result) {
  Outcome o;
  o.kind_ = Kind::complete;
  o.result_ = std::move(result);
  return o;
}

Outcome Outcome::retry(std::string error, std::optional<std::chrono::milliseconds> delay) {
  Outcome o;
  o.kind_ = Kind::retry;
  o.error_ = std::move(error);
  o.delay_ = delay;
  return o;
}

Outcome Outcome::snooze(std::chrono::milliseconds delay) {
  Outcome o;
  o.kind_ = Kind::snooze;
  o.delay_ = delay;
  return o;
}

Outcome Outcome::fail(std::string error) {
  Outcome o;
  o.kind_ = Kind::fail;
  o.error_ = std::move(error);
  return o;
}

Outcome Outcome::cancel(std::string reason) {
  Outcome o;
  o.kind_ = Kind::cancel;
  o.error_ = std::move(reason);
  return o;
}

Outcome Outcome::await_callback() {
  Outcome o;
  o.kind_ = Kind::callback;
  return o;
}

}  // namespace docket
