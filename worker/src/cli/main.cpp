// The docket binary: one entry point, a subcommand per task.
#include <iostream>

#include "cli/commands.hpp"
#include "docket/errors.hpp"

namespace {
/// The documented exit code of an error (README: CLI).
int exit_code_for(const std::exception& e) {
  using namespace docket;
  using namespace docket::cli;
  if (dynamic_cast<const InvalidInput*>(&e) || dynamic_cast<const ConfigError*>(&e)) return kBadInput;
  if (dynamic_cast<const NotFound*>(&e)) return kNotFound;
  if (dynamic_cast<const Conflict*>(&e)) return kConflict;
  if (dynamic_cast<const Unavailable*>(&e)) return kUnavailable;
  if (dynamic_cast<const SchemaMismatch*>(&e)) return kSchema;
  return kError;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace docket;
  using namespace docket::cli;
  CLI::App app{
      "Docket: a PostgreSQL-backed job queue and worker pool.\n"
      "Without DATABASE_URL, commands use the embedded PostgreSQL that `docket dev` runs in ./.docket."};
  app.set_version_flag("--version", std::string("docket ") + DOCKET_VERSION);
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_option("--config", global.config_path, "TOML config file (see README: Configuration)");
  app.add_option("--database-url", global.database_url, "libpq URI or conninfo (default: $DATABASE_URL)");
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error (default info)");
  app.add_option("--log-format", global.log_format, "text or json (default text)");
  Action action;
  add_run_commands(app, global, action);
  add_job_commands(app, global, action);
  add_stats_command(app, global, action);
  add_schedule_commands(app, global, action);
  // Global options are accepted after the subcommand too: `docket worker --config docket.toml`.
  std::function<void(CLI::App*)> fall_through = [&](CLI::App* parent) {
    for (CLI::App* sub : parent->get_subcommands({})) {
      sub->fallthrough();
      fall_through(sub);
    }
  };
  fall_through(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kBadInput;
  }
  if (!action) return kOk;
  try {
    return action();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return exit_code_for(e);
  }
}
