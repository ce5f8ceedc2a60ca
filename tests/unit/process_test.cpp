#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "executors/process.hpp"

using namespace docket;

namespace {
ProcessResult sh(const std::string& script, const std::string& input = "", std::stop_token stop = {}) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin", "FOO=bar"};
  spec.stdin_data = input;
  spec.kill_grace = std::chrono::milliseconds(500);
  return run_process(spec, stop);
}
}  // namespace

TEST(Process, CapturesExitCodeStdoutAndStderr) {
  const auto r = sh("read line; echo \"got $line $FOO\"; echo oops >&2; exit 3", "hello\n");
  ASSERT_TRUE(r.started) << r.start_error;
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.stdout_data, "got hello bar\n");
  EXPECT_EQ(r.stderr_tail, "oops\n");
}

TEST(Process, LargeStdinAndStdoutDoNotDeadlock) {
  const std::string big(3 << 20, 'x');
  ProcessSpec spec;
  spec.argv = {"/bin/cat"};
  spec.stdin_data = big;
  spec.max_stdout = 1 << 20;
  const auto r = run_process(spec, {});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data.size(), 1u << 20);
  EXPECT_TRUE(r.stdout_truncated);
}

TEST(Process, MissingProgramIsAStartError) {
  ProcessSpec spec;
  spec.argv = {"definitely-not-a-program-xyz"};
  const auto r = run_process(spec, {});
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.start_error.find("not found"), std::string::npos);
}

TEST(Process, StopRequestTerminatesTheWholeProcessGroup) {
  std::stop_source stop;
  const auto marker = "/tmp/docket-process-test-" + std::to_string(::getpid());
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  // A background grandchild that would touch the marker after 2s if it survived.
  const auto r = sh("(sleep 2; touch " + marker + ") & sleep 30", "", stop.get_token());
  stopper.join();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.stop_requested);
  EXPECT_TRUE(r.signaled || r.exited);
  EXPECT_LT(took, std::chrono::seconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a grandchild outlived the stop";
  std::filesystem::remove(marker);
}

TEST(Process, IgnoringSigtermGetsSigkillAfterGrace) {
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto r = sh("trap '' TERM; sleep 30", "", stop.get_token());
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(r.signaled);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(Process, ManyConcurrentRunsEachSeeTheirOwnEof) {
  // Pipes of concurrent jobs must not leak into each other's processes (EOF would never come).
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      const auto r = sh("cat; echo " + std::to_string(i), "in" + std::to_string(i) + "\n");
      if (r.exit_code == 0 && r.stdout_data == "in" + std::to_string(i) + "\n" + std::to_string(i) + "\n") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
}
