#include "pgbouncer.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace docket::test {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPgBouncer = "/usr/sbin/pgbouncer";

/// A TCP port free right now on 127.0.0.1 (the kernel's pick).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free TCP port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

void ensure_server_role(PgCluster& cluster) {
  pqxx::connection admin(cluster.url("postgres"));
  pqxx::nontransaction tx(admin);
  // Concurrent test processes may race to create it: either error means it exists.
  tx.exec(std::string("DO $$ BEGIN CREATE ROLE ") + PgBouncer::kServerRole +
          " LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
}

}  // namespace

bool pgbouncer_available() {
  return ::access(kPgBouncer, X_OK) == 0;
}

PgBouncer::PgBouncer(const std::string& database, const std::string& pool_mode, int pool_size) {
  auto& cluster = PgCluster::shared();
  ensure_server_role(cluster);
  const int port = free_port();
  const std::string socket_dir = cluster.cluster().socket_dir().string();
  // auth_type=any with a fixed user: clients are not asked for anything and every server
  // connection logs in as kServerRole over the cluster's unix socket.
  write_file(dir_ / "pgbouncer.ini",
             "[databases]\n" + database + " = host=" + socket_dir + " dbname=" + database + " user=" + kServerRole +
                 "\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = " + std::to_string(port) +
                 "\nunix_socket_dir =\nauth_type = any\npool_mode = " + pool_mode +
                 "\ndefault_pool_size = " + std::to_string(pool_size) +
                 "\nmin_pool_size = 0\nreserve_pool_size = 0\nmax_client_conn = 2000\nmax_db_connections = " +
                 std::to_string(pool_size) + "\nlogfile = " + (dir_ / "pgbouncer.log").string() +
                 "\npidfile = " + (dir_ / "pgbouncer.pid").string() +
                 "\nignore_startup_parameters = extra_float_digits\nserver_reset_query = DISCARD ALL\n"
                 "server_lifetime = 3600\nserver_idle_timeout = 600\nquery_wait_timeout = 120\n"
                 "log_connections = 0\nlog_disconnections = 0\n");
  std::vector<std::string> argv = {kPgBouncer};
  if (::geteuid() == 0) {
    // PgBouncer refuses to run as root: as the cluster's own OS user, which may read this dir.
    fs::permissions(dir_.path(), fs::perms::all);
    fs::permissions(dir_ / "pgbouncer.ini", fs::perms::all);
    argv.insert(argv.end(), {"-u", "postgres"});
  }
  argv.push_back((dir_ / "pgbouncer.ini").string());
  child_ = std::make_unique<Child>(argv, std::map<std::string, std::string>{}, dir_ / "stdout.log");
  url_ = "postgresql://" + std::string(kServerRole) + "@127.0.0.1:" + std::to_string(port) + "/" + database;
  const bool up = wait_until(
      [&] {
        try {
          pqxx::connection c(url_);
          pqxx::nontransaction tx(c);
          tx.exec("SELECT 1");
          return true;
        } catch (...) {
          return false;
        }
      },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
  if (!up) throw std::runtime_error("PgBouncer did not start: " + log_text());
}

PgBouncer::~PgBouncer() {
  if (child_) {
    child_->signal(SIGINT);  // PgBouncer: SIGINT is a safe shutdown
    if (!child_->wait(std::chrono::seconds(5))) child_->signal(SIGKILL);
  }
}

std::string PgBouncer::log_text() const {
  std::string out;
  for (const char* name : {"pgbouncer.log", "stdout.log"}) {
    std::error_code ec;
    if (fs::exists(dir_ / name, ec)) out += read_file(dir_ / name);
  }
  return out;
}

}  // namespace docket::test
