#include "cli/context.hpp"

#include "core/log.hpp"
#include "docket/embedded.hpp"
#include "docket/errors.hpp"

namespace docket::cli {

Config load_config(const GlobalOptions& options) {
  Config config = options.config_path.empty() ? Config{} : Config::load_file(options.config_path);
  config.apply_process_env();
  if (!options.database_url.empty()) config.database_url = options.database_url;
  if (!options.log_level.empty()) config.log.level = options.log_level;
  if (!options.log_format.empty()) config.log.format = options.log_format;
  config.validate();
  set_pooler(config.pooler);
  log::setup(config.log.level, config.log.format);
  log::set_log_jobs(config.log.jobs);
  return config;
}

std::unique_ptr<Client> cli_client(const GlobalOptions& options) {
  const Config config = load_config(options);
  ClientOptions o{1, "docket-cli", true};
  o.listen_url = config.worker.listen_url;  // where `docket wait` LISTENs around a transaction pooler
  return std::make_unique<Client>(database_url(config), o);
}

std::string database_url(const Config& config) {
  if (!config.database_url.empty()) return config.database_url;
  std::string dev = embedded::dev_cluster_url_if_running();
  if (!dev.empty()) return dev;
  throw ConfigError(
      "no database: set DATABASE_URL (or pass --database-url), or run `docket dev` in this directory "
      "(another terminal) to start the embedded PostgreSQL that other commands then use");
}

}  // namespace docket::cli
