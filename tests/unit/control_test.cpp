// The control channel of command and url kinds (executors/control.hpp): each message's effect,
// the fd 3 pipe of run_process, and every way a hostile program can break the protocol.
#include <gtest/gtest.h>

#include "executors/control.hpp"
#include "executors/process.hpp"

using namespace docket;
using namespace std::chrono_literals;

namespace {

/// A channel that records the progress values it was given.
struct Recorded {
  std::vector<Json> progress;
  ControlChannel channel{[this](Json v) { progress.push_back(std::move(v)); }};
};

/// Runs `script` under /bin/sh with a control pipe; returns the lines (and too_long flags) seen.
std::vector<std::pair<std::string, bool>> control_lines(const std::string& script) {
  std::vector<std::pair<std::string, bool>> lines;
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.max_control_line = 16;
  spec.on_control_line = [&](std::string_view line, bool too_long) { lines.emplace_back(std::string(line), too_long); };
  const ProcessResult r = run_process(spec, {});
  EXPECT_TRUE(r.exited) << r.start_error;
  return lines;
}

}  // namespace

TEST(Control, ProgressResultAndTheLastDecisionWin) {
  Recorded r;
  r.channel.line(R"({"progress": {"page": 1}})");
  r.channel.line("");
  r.channel.line(R"({"progress": {"page": 2}, "result": [1, 2]})");
  ASSERT_EQ(r.progress.size(), 2u);
  EXPECT_EQ(r.progress[1], (Json{{"page", 2}}));
  // No decision: the exit code's outcome stands, with the control result instead of its own.
  EXPECT_EQ(r.channel.decide(Outcome::complete(Json("stdout"))).result(), Json::array({1, 2}));
  EXPECT_EQ(r.channel.decide(Outcome::retry("exit 1")).kind(), Outcome::Kind::retry);
  r.channel.line(R"({"snooze": "10m"})");
  r.channel.line(R"({"retry": "busy", "in": "30s"})");
  const Outcome o = r.channel.decide(Outcome::complete());
  EXPECT_EQ(o.kind(), Outcome::Kind::retry);
  EXPECT_EQ(o.error(), "retry requested: busy");
  EXPECT_EQ(o.delay(), std::optional<std::chrono::milliseconds>(30s));
  r.channel.line(R"({"discard": "cannot parse row 7"})");
  EXPECT_EQ(r.channel.decide(Outcome::complete()).kind(), Outcome::Kind::fail);
  EXPECT_EQ(r.channel.decide(Outcome::complete()).error(), "discarded: cannot parse row 7");
}

TEST(Control, DelaysAreCappedAtADayAndNumbersAreSeconds) {
  Recorded a;
  a.channel.line(R"({"snooze": "400d"})");
  EXPECT_EQ(a.channel.decide(Outcome::complete()).delay(), std::optional<std::chrono::milliseconds>(24h));
  Recorded b;
  b.channel.line(R"({"retry": "x", "in": 90})");
  EXPECT_EQ(b.channel.decide(Outcome::complete()).delay(), std::optional<std::chrono::milliseconds>(90s));
  Recorded c;
  c.channel.line(R"({"retry": "x", "in": 1e300})");
  EXPECT_EQ(c.channel.decide(Outcome::complete()).delay(), std::optional<std::chrono::milliseconds>(24h));
}

TEST(Control, EveryBrokenMessageFailsForGoodNamingTheLineAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"oops", "control line 1"},
      {"[1]", "control line 1: a control message is a JSON object"},
      {R"({"snoze": "1m"})", "control line 1: unknown key \"snoze\""},
      {R"({"snooze": "soon"})", "control line 1.snooze"},
      {R"({"snooze": -5})", "control line 1.snooze: a delay is >= 0 seconds"},
      {R"({"snooze": "-5s"})", "control line 1.snooze"},
      {R"({"snooze": true})", "control line 1.snooze: a delay is a string"},
      {R"({"in": "5s"})", "control line 1.in: only with retry"},
      {R"({"retry": "a", "discard": "b"})", "control line 1: at most one of retry, snooze and discard"},
      {std::string(100, '[') + std::string(100, ']'), "control line 1"},
      {R"({"result": 123456789012345678901234567890})", "control line 1"},
  };
  for (const auto& [line, expected] : cases) {
    Recorded r;
    r.channel.line(line);
    r.channel.line(R"({"progress": 1, "result": 2})");  // nothing after a broken line counts
    const Outcome o = r.channel.decide(Outcome::complete(Json("stdout")));
    EXPECT_EQ(o.kind(), Outcome::Kind::fail) << line;
    EXPECT_EQ(o.error().rfind(expected, 0), 0u) << line << " -> " << o.error();
    EXPECT_TRUE(r.progress.empty()) << line;
  }
  Recorded long_line;
  long_line.channel.line("{\"progress\": \"aaaa", true);
  EXPECT_EQ(long_line.channel.decide(Outcome::complete()).error(), "control line 1: longer than 1048576 bytes");
  Recorded many;
  for (std::size_t i = 0; i <= kMaxControlLines; ++i) many.channel.line(R"({"progress": 1})");
  EXPECT_EQ(many.progress.size(), kMaxControlLines);
  EXPECT_EQ(many.channel.decide(Outcome::complete()).error(), "control channel: more than 100000 lines");
}

TEST(Control, UrlBodiesAreControlObjectsOnlyWhenEveryKeyIsOne) {
  EXPECT_TRUE(ControlChannel::is_control_object(Json{{"snooze", "1m"}}));
  EXPECT_TRUE(ControlChannel::is_control_object(Json{{"result", 1}, {"progress", 2}}));
  EXPECT_FALSE(ControlChannel::is_control_object(Json{{"result", 1}, {"took_ms", 2}}));
  EXPECT_FALSE(ControlChannel::is_control_object(Json::object()));
  EXPECT_FALSE(ControlChannel::is_control_object(Json::array({1})));
}

TEST(Control, TheCommandsFd3IsThePipeAndLinesAreSplitAndBounded) {
  // Lines across writes, a blank one, one too long (first bytes only, the rest skipped), and a
  // last line without its newline.
  const auto lines = control_lines(
      "printf 'one\\ntw' >&3; sleep 0.1; printf 'o\\n\\n' >&3; printf '0123456789abcdefXYZ\\nafter\\nlast' >&3");
  const std::vector<std::pair<std::string, bool>> expected = {
      {"one", false}, {"two", false}, {"", false}, {"0123456789abcdef", true}, {"after", false}, {"last", false}};
  EXPECT_EQ(lines, expected);
  // Without on_control_line a command has no fd 3.
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo x >&3 && echo open || echo closed"};
  spec.env = {"PATH=/usr/bin:/bin"};
  EXPECT_EQ(run_process(spec, {}).stdout_data, "closed\n");
  // The control pipe is not given to the shim's other descriptors: fd 4 is closed in the command.
  EXPECT_TRUE(control_lines("echo x >&4 && echo open >&3 || echo closed >&3") ==
              (std::vector<std::pair<std::string, bool>>{{"closed", false}}));
}
