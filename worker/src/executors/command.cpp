#include <signal.h>

#include <cstring>

#include "executors/executors.hpp"
#include "executors/process.hpp"

extern char** environ;

namespace docket {

std::string tail(const std::string& text, std::size_t max) {
  std::size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  std::size_t start = text.find_first_not_of(" \t\r\n");
  std::string out = text.substr(start, end - start + 1);
  if (out.size() > max) out = "..." + out.substr(out.size() - max);
  return out;
}

Handler command_handler(const CommandExecutor& spec) {
  return [spec](JobContext& ctx) -> Outcome {
    const Job& job = ctx.job();
    const Json input = {{"id", job.id},     {"kind", job.kind},       {"queue", job.queue},
                        {"args", job.args}, {"attempt", job.attempt}, {"max_retries", job.max_retries}};
    ProcessSpec p;
    p.argv = spec.argv;
    p.stdin_data = input.dump() + "\n";
    const std::map<std::string, std::string> job_env = {{"DOCKET_JOB_ID", std::to_string(job.id)},
                                                        {"DOCKET_JOB_KIND", job.kind},
                                                        {"DOCKET_ATTEMPT", std::to_string(job.attempt)},
                                                        {"DOCKET_QUEUE", job.queue}};
    auto overridden = [&](const char* entry) {
      const char* eq = std::strchr(entry, '=');
      const std::string name(entry, eq ? static_cast<std::size_t>(eq - entry) : std::strlen(entry));
      return job_env.contains(name) || spec.env.contains(name);
    };
    for (char** e = environ; e && *e; ++e) {
      if (!overridden(*e)) p.env.emplace_back(*e);
    }
    for (const auto& [k, v] : spec.env) p.env.push_back(k + "=" + v);
    for (const auto& [k, v] : job_env) p.env.push_back(k + "=" + v);

    const ProcessResult r = run_process(p, ctx.stop_token());
    if (!r.start_error.empty()) return Outcome::retry(r.start_error);
    const std::string err = tail(r.stderr_tail);
    auto with_stderr = [&](const std::string& msg) { return err.empty() ? msg : msg + ": " + err; };
    if (r.exited && r.exit_code == 0) {
      const std::string out = tail(r.stdout_data, r.stdout_data.size());
      if (out.empty() || r.stdout_truncated) return Outcome::complete();
      Json result = Json::parse(out, nullptr, false);
      return Outcome::complete(result.is_discarded() ? Json() : result);
    }
    if (r.exited && r.exit_code == 75) return Outcome::retry(with_stderr("exit 75 (retry requested)"));
    if (r.exited) return Outcome::retry(with_stderr("exit " + std::to_string(r.exit_code)));
    return Outcome::retry(with_stderr(std::string("killed by signal ") + std::to_string(r.signal) + " (" +
                                      (::strsignal(r.signal) ? ::strsignal(r.signal) : "?") + ")"));
  };
}

}  // namespace docket
