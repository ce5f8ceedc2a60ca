#include <signal.h>

#include <algorithm>
#include <cstring>

#include "core/log.hpp"
#include "core/text.hpp"
#include "docket/json.hpp"
#include "executors/control.hpp"
#include "executors/executors.hpp"
#include "executors/process.hpp"

extern char** environ;

namespace docket {

std::string tail(const std::string& text, std::size_t max) {
  std::size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  std::size_t start = text.find_first_not_of(" \t\r\n");
  return clean_text(std::string_view(text).substr(start, end - start + 1), max, Keep::tail);
}

Outcome complete_without_result(const Job& job, const std::string& reason, std::string_view output) {
  Json trace = {{"docket_result_dropped", reason}};
  if (!output.empty()) trace["output"] = clean_text(output, kDroppedOutputMax, Keep::head);
  log::warn("job.result_dropped", {{"job_id", job.id},
                                   {"kind", job.kind},
                                   {"queue", job.queue},
                                   {"attempt", job.attempt},
                                   {"worker", job.worker_id},
                                   {"reason", reason}});
  return Outcome::complete(std::move(trace));
}

Outcome complete_with_output(const Job& job, const std::string& output, const std::string& what) {
  if (output.find_first_not_of(" \t\r\n") == std::string::npos) return Outcome::complete();
  std::string error;
  if (auto result = try_parse_json(output, what, &error)) return Outcome::complete(std::move(*result));
  // Well-formed JSON the bounded parser refuses (too deep, numbers beyond 64 bits) fails for good:
  // the work is done, and a rerun would answer the same. Json::accept only checks the syntax, with
  // nlohmann's iterative parser: no DOM, no recursion. Other text is not a result: the job says so.
  if (Json::accept(output)) return Outcome::fail(error);
  return complete_without_result(job, what + " is not JSON", output);
}

namespace {

/// Worker variables every command gets: what programs need to find things and format text.
bool inherited_env_name(std::string_view name) {
  static const std::vector<std::string_view> kInherited = {"PATH", "HOME", "LANG", "TZ", "TMPDIR"};
  return std::find(kInherited.begin(), kInherited.end(), name) != kInherited.end() || name.rfind("LC_", 0) == 0;
}

/// A command's environment: the few variables every program expects, the names the kind passes
/// on, the kind's env, the job's DOCKET_* variables. Nothing else of the worker's (DATABASE_URL,
/// DOCKET_API_TOKENS, cloud credentials) reaches a job program.
std::vector<std::string> command_env(const CommandExecutor& spec, const std::map<std::string, std::string>& job_env) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (!eq) continue;
    const std::string name(*e, static_cast<std::size_t>(eq - *e));
    const bool passed = std::find(spec.env_pass.begin(), spec.env_pass.end(), name) != spec.env_pass.end();
    if (passed || inherited_env_name(name)) env[name] = eq + 1;
  }
  if (!env.contains("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& [k, v] : spec.env) env[k] = v;
  for (const auto& [k, v] : job_env) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

Handler command_handler(const CommandExecutor& spec) {
  return [spec](JobContext& ctx) -> Outcome {
    const Job& job = ctx.job();
    const Json input = {{"id", job.id},     {"kind", job.kind},       {"queue", job.queue},
                        {"args", job.args}, {"attempt", job.attempt}, {"max_retries", job.max_retries}};
    ProcessSpec p;
    p.argv = spec.argv;
    p.stdin_data = input.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    p.env = command_env(spec, {{"DOCKET_JOB_ID", std::to_string(job.id)},
                               {"DOCKET_JOB_KIND", job.kind},
                               {"DOCKET_ATTEMPT", std::to_string(job.attempt)},
                               {"DOCKET_QUEUE", job.queue},
                               {"DOCKET_CONTROL_FD", "3"}});
    ControlChannel control([&ctx](Json value) { ctx.progress(std::move(value)); });
    p.on_control_line = [&control](std::string_view line, bool too_long) { control.line(line, too_long); };
    p.max_control_line = kMaxControlLine;

    const ProcessResult r = run_process(p, ctx.stop_token());
    if (!r.start_error.empty()) return Outcome::retry(r.start_error);
    return control.decide(exit_outcome(job, r, control));
  };
}

Outcome exit_outcome(const Job& job, const ProcessResult& r, const ControlChannel& control) {
  const std::string err = tail(r.stderr_tail);
  auto with_stderr = [&](const std::string& msg) { return err.empty() ? msg : msg + ": " + err; };
  if (r.exited && r.exit_code == 0) {
    if (control.has_result()) return Outcome::complete(control.result());
    if (r.stdout_truncated) {
      return complete_without_result(
          job, "the command's stdout is larger than its " + std::to_string(ProcessSpec{}.max_stdout >> 20) + " MiB cap",
          r.stdout_data);
    }
    return complete_with_output(job, r.stdout_data, "the command's stdout");
  }
  if (r.exited && r.exit_code == kExitRetry) return Outcome::retry(with_stderr("exit 75 (retry requested)"));
  if (r.exited && r.exit_code == kExitDiscard) return Outcome::fail(with_stderr("exit 76 (discard requested)"));
  if (r.exited && r.exit_code == kExitSnooze) return Outcome::snooze(kExitSnoozeDelay);
  if (r.exited) return Outcome::retry(with_stderr("exit " + std::to_string(r.exit_code)));
  return Outcome::retry(with_stderr(std::string("killed by signal ") + std::to_string(r.signal) + " (" +
                                    (::strsignal(r.signal) ? ::strsignal(r.signal) : "?") + ")"));
}

}  // namespace docket
