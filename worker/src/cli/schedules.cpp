// docket schedules | docket schedule add|rm|pause|resume|run
#include <iostream>

#include "cli/commands.hpp"
#include "cli/table.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"

namespace docket::cli {

namespace {

std::string text_or_dash(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  return "-";
}

std::string time_or_dash(const Json& v) {
  return v.is_string() ? short_time(v.get<std::string>()) : "-";
}

void print_schedules(const Json& rows) {
  Table t({"NAME", "CRON", "TZ", "KIND", "ENABLED", "NEXT_RUN", "LAST_RUN", "LAST_JOB", "STATE", "SKIPPED"});
  for (const auto& s : rows) {
    t.add({s.at("name"), s.at("cron"), s.at("tz"), s.at("kind"), s.at("enabled").get<bool>() ? "yes" : "no",
           time_or_dash(s.at("next_run_at")), time_or_dash(s.at("last_run_at")), text_or_dash(s.at("last_job_id")),
           text_or_dash(s.at("last_job_state")), text_or_dash(s.at("skipped"))});
  }
  t.print(std::cout);
}

/// `docket schedule VERB NAME` for the verbs that take only a name.
void add_name_verb(CLI::App* parent, GlobalOptions& global, Action& action, const std::string& verb,
                   const std::string& help, const std::function<int(Client&, const std::string&)>& run) {
  auto* cmd = parent->add_subcommand(verb, help);
  auto name = std::make_shared<std::string>();
  cmd->add_option("name", *name, "Schedule name")->required();
  cmd->callback([&, name, run] { action = [&, name, run] { return run(*cli_client(global), *name); }; });
}

/// docket schedules: lists every schedule with its next and last run.
void add_schedules_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("schedules", "List schedules: next and last run, last job and its state");
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&] {
    action = [&] {
      const Json rows = cli_client(global)->schedules();
      if (global.json) {
        std::cout << rows.dump() << '\n';
      } else {
        print_schedules(rows);
      }
      return kOk;
    };
  });
}

/// docket schedule add NAME CRON KIND [ARGS]: creates or updates a schedule.
void add_schedule_add_command(CLI::App* schedule, GlobalOptions& global, Action& action) {
  auto* cmd = schedule->add_subcommand(
      "add", "Create or update a schedule: docket schedule add NAME CRON KIND ['{\"json\":\"args\"}']");
  auto spec = std::make_shared<ScheduleSpec>();
  auto args = std::make_shared<std::string>("{}");
  auto queue = std::make_shared<std::string>();
  auto spread = std::make_shared<std::string>();
  auto max_retries = std::make_shared<int>(-1);
  auto disabled = std::make_shared<bool>(false);
  cmd->add_option("name", spec->name, "Schedule name (unique)")->required();
  cmd->add_option("cron", spec->cron, "\"*/5 * * * *\", @hourly, @daily, \"@every 10m\" ...")->required();
  cmd->add_option("kind", spec->kind, "Job kind each slot enqueues")->required();
  cmd->add_option("args", *args, "Job arguments: a JSON object (default {})");
  cmd->add_option("--tz", spec->tz, "IANA time zone the expression is read in (default UTC)");
  cmd->add_option("--queue,-q", *queue, "Queue of its jobs (default: default)");
  cmd->add_option("--spread", *spread, "Shift the slots by a fixed offset in [0, spread) from the name, e.g. 4h");
  cmd->add_option("--on-overlap", spec->on_overlap, "skip (default), allow or replace (cancel the previous job)");
  cmd->add_option("--on-missed", spec->on_missed, "After downtime: skip (default), latest or all");
  cmd->add_option("--priority,-p", spec->priority, "0 runs first, up to 1000 (default 0)");
  cmd->add_option("--max-retries", *max_retries, "Retries after the first attempt (default: the kind's)");
  cmd->add_flag("--disabled", *disabled, "Create it paused");
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, spec, args, queue, spread, max_retries, disabled] {
    action = [&, spec, args, queue, spread, max_retries, disabled] {
      ScheduleSpec s = *spec;
      s.args = parse_json(*args, "args");
      if (!queue->empty()) s.queue = *queue;
      if (!spread->empty()) s.spread = parse_duration(*spread, "--spread");
      if (*max_retries != -1) {
        if (*max_retries < 0) throw InvalidInput("--max-retries must be >= 0, got " + std::to_string(*max_retries));
        s.max_retries = *max_retries;
      }
      s.enabled = !*disabled;
      const Json row = cli_client(global)->schedule(s);
      if (global.json) {
        std::cout << row.dump() << '\n';
      } else {
        std::cout << "schedule " << s.name << ": next run " << time_or_dash(row.at("next_run_at")) << " UTC\n";
      }
      return kOk;
    };
  });
}

/// docket schedule rm NAME: deletes a schedule.
void add_schedule_rm_command(CLI::App* schedule, GlobalOptions& global, Action& action) {
  add_name_verb(schedule, global, action, "rm", "Delete a schedule (its jobs stay)",
                [](Client& c, const std::string& n) {
                  if (!c.unschedule(n)) throw NotFound("no schedule named " + n);
                  std::cout << "schedule " << n << " deleted\n";
                  return kOk;
                });
}

/// docket schedule pause NAME: stops a schedule's slots from running.
void add_schedule_pause_command(CLI::App* schedule, GlobalOptions& global, Action& action) {
  add_name_verb(schedule, global, action, "pause", "Pause a schedule: no slot runs until resumed",
                [](Client& c, const std::string& n) {
                  c.pause_schedule(n);
                  std::cout << "schedule " << n << " paused\n";
                  return kOk;
                });
}

/// docket schedule resume NAME: runs a paused schedule again from its next slot.
void add_schedule_resume_command(CLI::App* schedule, GlobalOptions& global, Action& action) {
  add_name_verb(schedule, global, action, "resume", "Resume a schedule from its next slot after now",
                [](Client& c, const std::string& n) {
                  c.resume_schedule(n);
                  std::cout << "schedule " << n << " resumed\n";
                  return kOk;
                });
}

/// docket schedule run NAME: enqueues the schedule's job now.
void add_schedule_run_command(CLI::App* schedule, GlobalOptions& global, Action& action) {
  add_name_verb(schedule, global, action, "run",
                "Enqueue the schedule's job now (the next slot does not move); prints its id",
                [](Client& c, const std::string& n) {
                  const auto id = c.run_schedule_now(n);
                  if (!id)
                    throw Conflict("schedule " + n + ": its kind's unique job is still unfinished; nothing enqueued");
                  std::cout << *id << '\n';
                  return kOk;
                });
}

}  // namespace

void add_schedule_commands(CLI::App& app, GlobalOptions& global, Action& action) {
  add_schedules_command(app, global, action);
  auto* schedule = app.add_subcommand("schedule", "Manage schedules: add, rm, pause, resume, run");
  schedule->require_subcommand(1);
  add_schedule_add_command(schedule, global, action);
  add_schedule_rm_command(schedule, global, action);
  add_schedule_pause_command(schedule, global, action);
  add_schedule_resume_command(schedule, global, action);
  add_schedule_run_command(schedule, global, action);
}

}  // namespace docket::cli
