#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "core/url.hpp"
#include "docket/embedded.hpp"
#include "docket/errors.hpp"

extern char** environ;

namespace docket::embedded {

namespace fs = std::filesystem;

namespace {

struct OsUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};

/// The user PostgreSQL runs as: ourselves, or `name` when we are root (initdb refuses root).
OsUser run_as(const std::string& name) {
  OsUser u{::getuid(), ::getgid(), ""};
  if (::geteuid() != 0) return u;
  const passwd* pw = ::getpwnam(name.c_str());
  if (!pw) {
    throw Error("running as root, PostgreSQL must run as an unprivileged user, but user \"" + name +
                "\" does not exist (the Debian postgresql package creates it: apt-get install postgresql)");
  }
  return {pw->pw_uid, pw->pw_gid, name};
}

/// Runs argv as `user`; output goes to `log` (or is inherited when empty). Returns the exit status.
int spawn(const std::vector<std::string>& argv, const OsUser& user, const fs::path& log) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    if (!log.empty()) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
    }
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (::geteuid() == 0 && user.uid != 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0) ::_exit(126);
    }
    // Unblock signals the parent may have blocked for its own signal thread.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// True when `user` can create files in `dir` (checked in a child that switches to that user).
bool writable_by(const fs::path& dir, const OsUser& user) {
  if (::geteuid() != 0 || user.uid == 0) return ::access(dir.c_str(), W_OK | X_OK) == 0;
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0) ::_exit(2);
    ::_exit(::access(dir.c_str(), W_OK | X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void chown_to(const fs::path& p, const OsUser& user) {
  if (::geteuid() == 0 && user.uid != 0) {
    if (::chown(p.c_str(), user.uid, user.gid) != 0) {
      throw Error("cannot chown " + p.string() + " to " + user.name + ": " + std::strerror(errno));
    }
  }
}

}  // namespace

fs::path find_pg_bin() {
  if (const char* env = std::getenv("DOCKET_PG_BIN"); env && *env) return env;
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    if (fs::exists(entry.path() / "bin" / "initdb")) found.push_back(entry.path() / "bin");
  }
  if (!found.empty()) {
    std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
      return std::stoi(a.parent_path().filename().string()) < std::stoi(b.parent_path().filename().string());
    });
    return found.back();
  }
  for (const char* dir : {"/usr/local/bin", "/usr/bin"}) {
    if (fs::exists(fs::path(dir) / "initdb")) return dir;
  }
  throw Error(
      "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `make deps` "
      "(Debian package postgresql) or set DOCKET_PG_BIN, or set DATABASE_URL to use an existing server");
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  options_.dir = fs::absolute(options_.dir);
  data_dir_ = options_.dir / "pgdata";
  socket_dir_ = options_.dir / "run";
  // A unix socket path is limited to 107 bytes: fall back to a short directory under /tmp.
  if ((socket_dir_ / ".s.PGSQL.5432").string().size() > 100) {
    socket_dir_ =
        fs::path("/tmp") / ("docket-" + std::to_string(std::hash<std::string>{}(options_.dir.string()) % 1000000007));
  }
}

fs::path Cluster::socket_dir() const {
  return socket_dir_;
}
fs::path Cluster::data_dir() const {
  return data_dir_;
}
fs::path Cluster::log_file() const {
  return options_.dir / "postgres.log";
}

std::string Cluster::url(const std::string& database) const {
  return "postgresql:///" + url_encode(database) + "?host=" + url_encode(socket_dir_.string(), "/") + "&user=postgres";
}

int Cluster::pg_ctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {(find_pg_bin() / "pg_ctl").string(), "-D", data_dir_.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, run_as(options_.os_user), options_.quiet ? log_file().string() + ".ctl" : "");
}

void Cluster::ensure_initialized() {
  if (fs::exists(data_dir_ / "PG_VERSION")) return;
  const OsUser user = run_as(options_.os_user);
  fs::create_directories(options_.dir);
  fs::create_directories(socket_dir_);
  chown_to(options_.dir, user);
  chown_to(socket_dir_, user);
  if (!writable_by(options_.dir, user)) {
    throw Error("PostgreSQL runs as user " + user.name + ", who cannot write " + options_.dir.string() +
                " (a parent directory is not accessible to it): run from a directory " + user.name +
                " can reach, such as one under /tmp or /srv, or set DATABASE_URL");
  }
  fs::create_directories(data_dir_);
  chown_to(data_dir_, user);
  ::chmod(data_dir_.c_str(), 0700);
  const std::vector<std::string> argv = {(find_pg_bin() / "initdb").string(),
                                         "-D",
                                         data_dir_.string(),
                                         "-U",
                                         "postgres",
                                         "--auth=trust",
                                         "-E",
                                         "UTF8",
                                         "--locale=C.UTF-8",
                                         "--no-sync"};
  if (spawn(argv, user, options_.dir / "initdb.log") != 0) {
    throw Error("initdb failed; see " + (options_.dir / "initdb.log").string());
  }
  std::ofstream conf(data_dir_ / "postgresql.conf", std::ios::app);
  conf << "\n# --- docket embedded cluster ---\n"
       << "listen_addresses = ''\n"
       << "unix_socket_directories = '" << socket_dir_.string() << "'\n"
       << "max_connections = 200\n";
  for (const auto& [k, v] : options_.settings) conf << k << " = " << v << "\n";
}

bool Cluster::running() const {
  if (!fs::exists(data_dir_ / "PG_VERSION")) return false;
  return pg_ctl({"status"}) == 0;
}

void Cluster::start() {
  ensure_initialized();
  if (running()) return;
  const OsUser user = run_as(options_.os_user);
  fs::create_directories(socket_dir_);
  chown_to(socket_dir_, user);
  const std::string log = log_file().string();
  { std::ofstream touch(log, std::ios::app); }
  chown_to(log, user);
  if (pg_ctl({"-l", log, "-w", "-t", "60", "start"}) != 0) {
    throw Error("PostgreSQL did not start; see " + log);
  }
}

void Cluster::stop(bool fast) {
  if (!running()) return;
  pg_ctl({"-m", fast ? "fast" : "smart", "-w", "-t", "60", "stop"});
}

void Cluster::restart() {
  if (pg_ctl({"-m", "fast", "-w", "-t", "60", "-l", log_file().string(), "restart"}) != 0) {
    throw Error("PostgreSQL did not restart; see " + log_file().string());
  }
}

ClusterOptions dev_cluster_options() {
  ClusterOptions o;
  o.dir = fs::current_path() / ".docket";
  return o;
}

std::string dev_cluster_url_if_running() {
  Cluster c(dev_cluster_options());
  if (!fs::exists(c.data_dir() / "postmaster.pid")) return "";
  return c.running() ? c.url() : "";
}

}  // namespace docket::embedded
