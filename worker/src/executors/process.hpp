#pragma once
// Runs one command for a job, under a small supervisor ("shim") process so that the command and
// everything it starts never outlive the worker:
//   worker ──fork──> shim (own process group, PR_SET_PDEATHSIG=SIGHUP, child subreaper)
//                      └──fork/exec──> command (its own process group)
// When the worker dies, even by SIGKILL, the kernel sends the shim SIGHUP and the shim kills the
// command's whole process group. A stop request (timeout, cancel, shutdown) sends SIGTERM to the
// group, then SIGKILL after a grace period.
#include <chrono>
#include <cstddef>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace docket {

struct ProcessSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  ///< the complete environment, "NAME=value"
  std::string stdin_data;
  std::size_t max_stdout = 1 << 20;    ///< more is read and dropped
  std::size_t max_stderr_tail = 8192;  ///< only the last bytes are kept
  std::chrono::milliseconds kill_grace{5000};
  /// When set, the command gets a pipe on its fd 3 (the control channel) and each line written
  /// there is passed here, without its newline, while the command runs. A line longer than
  /// `max_control_line` is passed as its first bytes with `too_long`; the rest of it is skipped.
  std::function<void(std::string_view line, bool too_long)> on_control_line;
  std::size_t max_control_line = 1 << 20;
};

struct ProcessResult {
  bool started = false;
  std::string start_error;  ///< why it did not start (program not found, exec failed)
  bool exited = false;
  int exit_code = -1;
  bool signaled = false;
  int signal = 0;
  bool stop_requested = false;  ///< we asked it to stop
  std::string stdout_data;
  bool stdout_truncated = false;
  std::string stderr_tail;
};

/// Runs the process to completion (or until `stop` and its grace period). Never throws for
/// anything the program does; start failures are reported in the result.
ProcessResult run_process(const ProcessSpec& spec, const std::stop_token& stop);

/// Finds `program` on PATH (from `env`, else the process's) unless it contains a '/'.
/// Returns "" when it is not an executable file.
std::string resolve_program(const std::string& program, const std::vector<std::string>& env);

}  // namespace docket
