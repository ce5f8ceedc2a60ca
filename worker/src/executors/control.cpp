#include "executors/control.hpp"

#include <algorithm>
#include <cmath>

#include "core/text.hpp"
#include "docket/config.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "executors/executors.hpp"

namespace docket {

namespace {

const std::vector<std::string>& control_keys() {
  static const std::vector<std::string> keys = {"progress", "result", "retry", "in", "snooze", "discard"};
  return keys;
}

/// A delay given as "30s" (any parse_duration spelling) or a number of seconds, capped at
/// kMaxRetryDelay like every other retry or snooze delay. Throws InvalidInput naming `field`.
Millis control_delay(const Json& value, const std::string& field) {
  if (value.is_number()) {
    const double s = value.get<double>();
    if (!std::isfinite(s) || s < 0) throw InvalidInput(field + ": a delay is >= 0 seconds");
    return std::min(kMaxRetryDelay, Millis(static_cast<long long>(std::min(s, 86400.0 * 2) * 1000)));
  }
  if (!value.is_string()) throw InvalidInput(field + ": a delay is a string like \"30s\" or a number of seconds");
  try {
    return std::min(kMaxRetryDelay, parse_duration(value.get<std::string>(), field));
  } catch (const ConfigError& e) {
    throw InvalidInput(e.what());
  }
}

/// A reason: a string (cleaned, at most 2000 bytes) or any JSON, shown as text.
std::string control_reason(const Json& value) {
  const std::string text =
      value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return clean_text(text, 2000);
}

}  // namespace

bool ControlChannel::is_control_object(const Json& body) {
  if (!body.is_object() || body.empty()) return false;
  const auto& keys = control_keys();
  return std::all_of(body.items().begin(), body.items().end(),
                     [&](const auto& kv) { return std::find(keys.begin(), keys.end(), kv.key()) != keys.end(); });
}

void ControlChannel::broken(std::string why) {
  if (error_.empty()) error_ = std::move(why);
}

void ControlChannel::line(std::string_view text, bool too_long) {
  if (!error_.empty()) return;
  const std::string where = "control line " + std::to_string(++lines_);
  if (lines_ > kMaxControlLines)
    return broken("control channel: more than " + std::to_string(kMaxControlLines) + " lines");
  if (too_long) return broken(where + ": longer than " + std::to_string(kMaxControlLine) + " bytes");
  if (text.find_first_not_of(" \t\r") == std::string_view::npos) return;  // blank lines are allowed
  std::string error;
  auto message = try_parse_json(text, where, &error);
  if (!message) return broken(error);
  apply(*message, where);
}

void ControlChannel::apply(const Json& message, const std::string& where) {
  if (!error_.empty()) return;
  try {
    if (!message.is_object()) throw InvalidInput(where + ": a control message is a JSON object");
    for (const auto& [key, value] : message.items()) {
      const auto& keys = control_keys();
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
        throw InvalidInput(where + ": unknown key \"" + clean_text(key, 100) +
                           "\"; use progress, result, retry (with in), snooze or discard");
      }
    }
    const int decisions = static_cast<int>(message.contains("retry")) + static_cast<int>(message.contains("snooze")) +
                          static_cast<int>(message.contains("discard"));
    if (decisions > 1) throw InvalidInput(where + ": at most one of retry, snooze and discard");
    if (message.contains("in") && !message.contains("retry")) throw InvalidInput(where + ".in: only with retry");
    // Validate the whole message before any of it takes effect.
    std::optional<Outcome> decision;
    if (message.contains("retry")) {
      std::optional<Millis> in;
      if (message.contains("in")) in = control_delay(message.at("in"), where + ".in");
      decision = Outcome::retry("retry requested: " + control_reason(message.at("retry")), in);
    } else if (message.contains("snooze")) {
      decision = Outcome::snooze(control_delay(message.at("snooze"), where + ".snooze"));
    } else if (message.contains("discard")) {
      decision = Outcome::fail("discarded: " + control_reason(message.at("discard")));
    }
    if (message.contains("progress") && progress_) progress_(message.at("progress"));
    if (message.contains("result")) result_ = message.at("result");
    if (decision) decision_ = std::move(decision);
  } catch (const InvalidInput& e) {
    broken(e.what());
  }
}

Outcome ControlChannel::decide(Outcome by_exit) const {
  if (!error_.empty()) return Outcome::fail(error_);
  if (decision_) return *decision_;
  if (by_exit.kind() == Outcome::Kind::complete && result_) return Outcome::complete(*result_);
  return by_exit;
}

}  // namespace docket
