#pragma once
// What every subcommand needs: the merged configuration and a database URL.
#include <string>

#include "docket/client.hpp"
#include "docket/config.hpp"

namespace docket::cli {

struct GlobalOptions {
  std::string config_path;
  std::string database_url;
  std::string log_level;
  std::string log_format;
  bool json = false;
};

/// Loads --config (if any), applies DOCKET_* and DATABASE_URL, then the flags; validates; sets up logging.
Config load_config(const GlobalOptions& options);

/// The database to talk to: --database-url, DATABASE_URL, the config, else the running embedded
/// dev cluster of this directory. Throws with instructions when there is none.
std::string database_url(const Config& config);

/// A client for one-shot commands (one connection), on the database of `options`.
std::unique_ptr<Client> cli_client(const GlobalOptions& options);

/// Process exit codes, documented in the README.
enum ExitCode : int {
  kOk = 0,
  kError = 1,
  kBadInput = 2,
  kNotFound = 3,
  kConflict = 4,
  kUnavailable = 5,
  kSchema = 6,
  kTimedOut = 124,  ///< `docket wait`: the job was still unfinished at --timeout (as timeout(1))
};

}  // namespace docket::cli
