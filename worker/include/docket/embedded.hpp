#pragma once
// A private PostgreSQL cluster run by initdb + pg_ctl: the zero-config default of `docket dev`
// and the throwaway clusters the tests use. Unix socket only; run as an unprivileged OS user
// when we are root (initdb refuses root).
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace docket::embedded {

struct ClusterOptions {
  std::filesystem::path dir;                    ///< holds pgdata/, run/ (socket), postgres.log
  std::string os_user = "postgres";             ///< used only when running as root
  std::map<std::string, std::string> settings;  ///< extra postgresql.conf settings
  bool quiet = true;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  /// initdb when the data directory does not exist yet.
  void ensure_initialized();
  /// Starts the server (initializing first if needed) and waits until it accepts connections.
  void start();
  void stop(bool fast = true);
  void restart();
  bool running() const;
  /// libpq URI for a database of this cluster.
  std::string url(const std::string& database = "postgres") const;
  /// The directory holding the unix socket.
  std::filesystem::path socket_dir() const;
  std::filesystem::path data_dir() const;
  std::filesystem::path log_file() const;

 private:
  int pg_ctl(const std::vector<std::string>& args) const;
  ClusterOptions options_;
  std::filesystem::path data_dir_;
  std::filesystem::path socket_dir_;
};

/// The directory with initdb/pg_ctl/postgres (newest /usr/lib/postgresql/N/bin, or PATH).
std::filesystem::path find_pg_bin();
/// The embedded cluster of `docket dev` for the current directory (./.docket).
ClusterOptions dev_cluster_options();
/// The URL of the running dev cluster, or "" when it is not running.
std::string dev_cluster_url_if_running();

}  // namespace docket::embedded
