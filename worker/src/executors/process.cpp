#include "executors/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stop_token>

#include "core/wake.hpp"

extern char** environ;

namespace docket {

namespace {

/// Records the shim writes to the worker on the status pipe.
struct StatusRecord {
  std::int32_t type;   // kStarted, kExited, kSpawnFailed
  std::int32_t value;  // command pid, wait status, errno
};
constexpr std::int32_t kStarted = 1;
constexpr std::int32_t kExited = 2;
constexpr std::int32_t kSpawnFailed = 3;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
  return true;
}

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// --- code that runs in the forked shim: async-signal-safe calls only ---------------------------

void write_status(int fd, std::int32_t type, std::int32_t value) {
  StatusRecord r{type, value};
  [[maybe_unused]] auto n = ::write(fd, &r, sizeof r);
}

long monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

[[noreturn]] void run_shim(pid_t worker_pid, const char* path, char* const* argv, char* const* envp, int in_read,
                           int out_write, int err_write, int status_write, int control_write, long grace_ms) {
  sigset_t waited;
  ::sigemptyset(&waited);
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT, SIGQUIT}) ::sigaddset(&waited, s);
  ::sigprocmask(SIG_SETMASK, &waited, nullptr);
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  if (::getppid() != worker_pid) ::_exit(70);  // the worker died before we armed PDEATHSIG
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // fork() copied every descriptor of the worker, including other jobs' pipe ends; holding them
  // would keep those jobs from ever seeing EOF. Keep ours as 0-4 and close all the rest.
  // (Pipe descriptors are >= 3, so moving them to 0-2 first never clobbers one we still need; the
  // control pipe is first copied above 10, out of the way of the dup2 onto 3.)
  const int control = control_write >= 0 ? ::fcntl(control_write, F_DUPFD_CLOEXEC, 10) : -1;
  ::dup2(in_read, 0);
  ::dup2(out_write, 1);
  ::dup2(err_write, 2);
  if (status_write != 3) ::dup2(status_write, 3);
  if (control >= 0) ::dup2(control, 4);
  ::close_range(control >= 0 ? 5 : 4, ~0U, 0);
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  if (control >= 0) ::fcntl(4, F_SETFD, FD_CLOEXEC);
  status_write = 3;

  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    write_status(status_write, kSpawnFailed, errno);
    ::_exit(71);
  }
  const pid_t cmd = ::fork();
  if (cmd == 0) {
    ::setpgid(0, 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigemptyset(&dfl.sa_mask);
    for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) ::sigaction(s, &dfl, nullptr);
    // The control pipe becomes the command's fd 3 (dup2 clears close-on-exec; 4 closes at exec).
    if (control >= 0) ::dup2(4, 3);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(path, argv, envp);
    const int err = errno;
    [[maybe_unused]] auto n = ::write(exec_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  if (cmd < 0) {
    write_status(status_write, kSpawnFailed, errno);
    ::_exit(71);
  }
  ::setpgid(cmd, cmd);
  ::close(exec_pipe[1]);
  // Only the command holds its stdio (and control pipe) now, so their EOF is the command's.
  ::close(0);
  ::close(1);
  ::close(2);
  if (control >= 0) ::close(4);
  int exec_errno = 0;
  const ssize_t got = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  ::close(exec_pipe[0]);
  if (got == sizeof exec_errno) {
    ::waitpid(cmd, nullptr, 0);
    write_status(status_write, kSpawnFailed, exec_errno);
    ::_exit(72);
  }
  write_status(status_write, kStarted, cmd);

  int cmd_status = 0;
  long kill_at = -1;
  for (;;) {
    siginfo_t info;
    int sig;
    if (kill_at >= 0) {
      const long left = kill_at - monotonic_ms();
      if (left <= 0) {
        ::kill(-cmd, SIGKILL);
        kill_at = -1;
        continue;
      }
      timespec ts{left / 1000, (left % 1000) * 1000000};
      sig = ::sigtimedwait(&waited, &info, &ts);
    } else {
      sig = ::sigwaitinfo(&waited, &info);
    }
    if (sig < 0) continue;  // EINTR or the grace timeout (handled above)
    if (sig == SIGCHLD) {
      bool done = false;
      int st = 0;
      pid_t w;
      while ((w = ::waitpid(-1, &st, WNOHANG)) > 0) {
        if (w == cmd) {
          cmd_status = st;
          done = true;
        }
      }
      if (done) break;
    } else if (sig == SIGHUP) {
      // The worker is gone: nothing of this job may outlive it.
      ::kill(-cmd, SIGKILL);
      ::_exit(73);
    } else if (kill_at < 0) {
      ::kill(-cmd, SIGTERM);
      kill_at = monotonic_ms() + grace_ms;
    }
  }
  // Whatever the command left behind in its group goes with it; reap what we adopted.
  ::kill(-cmd, SIGKILL);
  const long reap_until = monotonic_ms() + 200;
  while (monotonic_ms() < reap_until) {
    if (::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD) break;
    timespec ts{0, 5000000};
    ::nanosleep(&ts, nullptr);
  }
  write_status(status_write, kExited, cmd_status);
  ::_exit(0);
}

std::string env_value(const std::vector<std::string>& env, const std::string& name) {
  for (const auto& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      return e.substr(name.size() + 1);
    }
  }
  const char* v = std::getenv(name.c_str());
  return v ? v : "";
}

}  // namespace

std::string resolve_program(const std::string& program, const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0 ? program : "";
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

ProcessResult run_process(const ProcessSpec& spec, const std::stop_token& stop) {
  ProcessResult result;
  if (spec.argv.empty()) {
    result.start_error = "empty command";
    return result;
  }
  const std::string path = resolve_program(spec.argv[0], spec.env);
  if (path.empty()) {
    result.start_error = "program not found or not executable: " + spec.argv[0];
    return result;
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  const bool with_control = static_cast<bool>(spec.on_control_line);
  Fd in_r, in_w, out_r, out_w, err_r, err_w, status_r, status_w, ctl_r, ctl_w;
  if (!make_pipe(in_r, in_w) || !make_pipe(out_r, out_w) || !make_pipe(err_r, err_w) ||
      !make_pipe(status_r, status_w) || (with_control && !make_pipe(ctl_r, ctl_w))) {
    result.start_error = std::string("cannot create pipes: ") + std::strerror(errno);
    return result;
  }
  Wake stop_event;
  const pid_t worker_pid = ::getpid();
  const long grace_ms = spec.kill_grace.count();

  const pid_t shim = ::fork();
  if (shim < 0) {
    result.start_error = std::string("fork failed: ") + std::strerror(errno);
    return result;
  }
  if (shim == 0) {
    run_shim(worker_pid, path.c_str(), argv.data(), envp.data(), in_r.get(), out_w.get(), err_w.get(), status_w.get(),
             ctl_w.get(), grace_ms);
  }
  in_r.reset();
  out_w.reset();
  err_w.reset();
  status_w.reset();
  ctl_w.reset();
  for (int fd : {in_w.get(), out_r.get(), err_r.get(), status_r.get()}) set_nonblocking(fd);
  if (with_control) set_nonblocking(ctl_r.get());

  std::stop_callback on_stop(stop, [&] { stop_event.signal(); });

  std::size_t written = 0;
  if (spec.stdin_data.empty()) in_w.reset();
  pid_t cmd_pid = -1;
  bool have_status = false, status_eof = false, out_eof = false, err_eof = false, term_sent = false;
  bool ctl_eof = !with_control, ctl_skipping = false;
  std::string ctl_line;  // the control line being read, at most max_control_line bytes
  int wait_status = 0;
  using Clock = std::chrono::steady_clock;
  Clock::time_point force_kill_at = Clock::time_point::max();
  Clock::time_point drain_until = Clock::time_point::max();
  char buf[65536];

  auto read_into = [&](int fd, bool& eof, auto&& sink) {
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        sink(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) eof = true;
      if (n < 0 && errno == EINTR) continue;
      return;
    }
  };

  for (;;) {
    if ((have_status || status_eof) && ((out_eof && err_eof && ctl_eof) || Clock::now() >= drain_until)) break;
    pollfd fds[6];
    int n = 0;
    const int i_in = in_w.get() >= 0 ? n : -1;
    if (i_in >= 0) fds[n++] = {in_w.get(), POLLOUT, 0};
    const int i_out = !out_eof ? n : -1;
    if (i_out >= 0) fds[n++] = {out_r.get(), POLLIN, 0};
    const int i_err = !err_eof ? n : -1;
    if (i_err >= 0) fds[n++] = {err_r.get(), POLLIN, 0};
    const int i_ctl = !ctl_eof ? n : -1;
    if (i_ctl >= 0) fds[n++] = {ctl_r.get(), POLLIN, 0};
    const int i_status = !status_eof ? n : -1;
    if (i_status >= 0) fds[n++] = {status_r.get(), POLLIN, 0};
    const int i_stop = !term_sent ? n : -1;
    if (i_stop >= 0) fds[n++] = {stop_event.fd(), POLLIN, 0};

    int timeout_ms = -1;
    const auto now = Clock::now();
    for (auto deadline : {force_kill_at, drain_until}) {
      if (deadline != Clock::time_point::max()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        const int ms = static_cast<int>(std::max<long long>(0, left));
        timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
      }
    }
    const int ready = ::poll(fds, static_cast<nfds_t>(n), timeout_ms);
    if (ready < 0 && errno != EINTR) break;

    if (i_in >= 0 && (fds[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = ::write(in_w.get(), spec.stdin_data.data() + written, spec.stdin_data.size() - written);
      if (w > 0) written += static_cast<std::size_t>(w);
      // Done, or the command closed its stdin (EPIPE): either way we are finished writing.
      if (written >= spec.stdin_data.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) in_w.reset();
    }
    if (i_out >= 0 && fds[i_out].revents) {
      read_into(out_r.get(), out_eof, [&](const char* data, std::size_t len) {
        const std::size_t room = spec.max_stdout - std::min(spec.max_stdout, result.stdout_data.size());
        if (len > room) result.stdout_truncated = true;
        result.stdout_data.append(data, std::min(len, room));
      });
    }
    if (i_err >= 0 && fds[i_err].revents) {
      read_into(err_r.get(), err_eof, [&](const char* data, std::size_t len) {
        result.stderr_tail.append(data, len);
        if (result.stderr_tail.size() > 2 * spec.max_stderr_tail) {
          result.stderr_tail.erase(0, result.stderr_tail.size() - spec.max_stderr_tail);
        }
      });
    }
    if (i_ctl >= 0 && fds[i_ctl].revents) {
      read_into(ctl_r.get(), ctl_eof, [&](const char* data, std::size_t len) {
        for (std::string_view rest(data, len); !rest.empty();) {
          const std::size_t nl = rest.find('\n');
          const std::string_view piece = rest.substr(0, nl);
          if (!ctl_skipping) {
            const std::size_t room = spec.max_control_line - std::min(spec.max_control_line, ctl_line.size());
            ctl_line.append(piece.substr(0, room));
            if (piece.size() > room) {
              spec.on_control_line(ctl_line, true);
              ctl_line.clear();
              ctl_skipping = true;
            }
          }
          if (nl == std::string_view::npos) break;
          if (!ctl_skipping) spec.on_control_line(ctl_line, false);
          ctl_line.clear();
          ctl_skipping = false;
          rest.remove_prefix(nl + 1);
        }
      });
      if (ctl_eof && !ctl_line.empty()) spec.on_control_line(ctl_line, false);  // a last line without '\n'
    }
    if (i_status >= 0 && fds[i_status].revents) {
      StatusRecord r{};
      for (;;) {
        const ssize_t got = ::read(status_r.get(), &r, sizeof r);
        if (got == sizeof r) {
          if (r.type == kStarted) {
            cmd_pid = r.value;
            result.started = true;
          } else if (r.type == kExited) {
            have_status = true;
            wait_status = r.value;
          } else if (r.type == kSpawnFailed) {
            result.start_error = std::string("cannot start ") + spec.argv[0] + ": " + std::strerror(r.value);
            have_status = true;
          }
          continue;
        }
        if (got == 0) status_eof = true;
        break;
      }
      if (have_status || status_eof) drain_until = std::min(drain_until, Clock::now() + std::chrono::seconds(1));
    }
    if (i_stop >= 0 && (fds[i_stop].revents & POLLIN)) {
      stop_event.drain();
      result.stop_requested = true;
      term_sent = true;
      ::kill(shim, SIGTERM);
      force_kill_at = Clock::now() + spec.kill_grace + std::chrono::seconds(2);
    }
    if (Clock::now() >= force_kill_at) {
      // The shim did not finish within its grace: take both down ourselves.
      ::kill(shim, SIGKILL);
      if (cmd_pid > 0) ::kill(-cmd_pid, SIGKILL);
      force_kill_at = Clock::time_point::max();
    }
  }
  int shim_status = 0;
  while (::waitpid(shim, &shim_status, 0) < 0 && errno == EINTR) {
  }
  if (result.stderr_tail.size() > spec.max_stderr_tail) {
    result.stderr_tail.erase(0, result.stderr_tail.size() - spec.max_stderr_tail);
  }
  if (have_status && result.start_error.empty()) {
    if (WIFEXITED(wait_status)) {
      result.exited = true;
      result.exit_code = WEXITSTATUS(wait_status);
    } else if (WIFSIGNALED(wait_status)) {
      result.signaled = true;
      result.signal = WTERMSIG(wait_status);
    }
  } else if (!have_status && result.start_error.empty()) {
    result.signaled = true;
    result.signal = SIGKILL;
  }
  return result;
}

}  // namespace docket
