#pragma once
// Subcommand registration: each adds its CLI11 subcommand and sets `action` when chosen.
#include <CLI/CLI.hpp>
#include <functional>

#include "cli/context.hpp"

namespace docket::cli {

using Action = std::function<int()>;

void add_job_commands(CLI::App& app, GlobalOptions& global, Action& action);
void add_run_commands(CLI::App& app, GlobalOptions& global, Action& action);
void add_stats_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_schedule_commands(CLI::App& app, GlobalOptions& global, Action& action);

}  // namespace docket::cli
