// docket stats [--watch]: what an on-call person looks at first, from one stats document.
#include <chrono>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands.hpp"
#include "cli/table.hpp"
#include "docket/client.hpp"

namespace docket::cli {

namespace {

/// "12.3s", "4m05s", "2h10m", or "-" for null.
std::string age(const Json& seconds) {
  if (!seconds.is_number()) return "-";
  const double s = seconds.get<double>();
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  }
  return buf;
}

/// Milliseconds as "37ms", "1.2s", or "-" for null.
std::string millis(const Json& ms) {
  if (!ms.is_number()) return "-";
  const double v = ms.get<double>();
  char buf[32];
  if (v < 1000) {
    std::snprintf(buf, sizeof buf, "%.0fms", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fs", v / 1000);
  }
  return buf;
}

std::string number(const Json& v) {
  return v.is_number_integer() ? std::to_string(v.get<std::int64_t>()) : "-";
}

/// A keyed kind's per-key state: "args.tenant 1/1, 3 at limit" (busiest key's running of its max).
std::string per_key(const Json& s) {
  if (!s.value("partition", Json()).is_string()) return "-";
  const auto& max = s.at("max_running_per_key");
  return s.at("partition").get<std::string>() + " " + number(s.at("max_key_running")) + "/" +
         (max.is_number() ? number(max) : std::string("any")) + ", " + number(s.at("keys_at_limit")) + " at limit";
}

std::string joined(const Json& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n.get<std::string>();
  return out.empty() ? "-" : out;
}

/// Schedules listed in full by docket stats; `docket schedules` lists them all.
constexpr int kStatsSchedules = 20;

/// Renders the stats document (Client::stats) as tables: queues, kinds, workers, unserved, stuck.
void print_stats(const Json& stats, std::ostream& out) {
  Table q({"QUEUE", "AVAILABLE", "RUNNING", "WAITING", "OLDEST_AVAILABLE", "PAUSED"});
  for (const auto& s : stats.at("queues")) {
    q.add({s.at("queue"), number(s.at("available")), number(s.at("running")), number(s.at("waiting")),
           age(s.at("oldest_available_age_s")), s.at("paused").get<bool>() ? "yes" : "no"});
  }
  q.print(out);
  if (!stats.at("kinds").empty()) {
    out << '\n';
    Table k({"KIND", "RUNNING", "MAX_RUNNING", "RATE", "TOKENS", "PER_KEY", "AT_LIMIT", "DONE_5M", "FAILED_5M",
             "DONE_1H", "FAILED_1H", "FAIL%", "RUN_P50", "RUN_P95", "WAIT_P50", "WAIT_P95", "KEEP_DONE",
             "KEEP_FAILED"});
    for (const auto& s : stats.at("kinds")) {
      char rate[16];
      std::snprintf(rate, sizeof rate, "%.1f", s.at("failure_rate_1h").get<double>() * 100);
      const auto& rl = s.at("rate_limit");
      const auto& rp = s.at("rate_period_s");
      const std::string tokens = s.at("rate_tokens").is_number()
                                     ? std::to_string(static_cast<long long>(s.at("rate_tokens").get<double>())) + "/" +
                                           std::to_string(static_cast<long long>(s.at("rate_burst").get<double>()))
                                     : "-";
      k.add({s.at("kind"), number(s.at("running")), number(s.at("max_running")),
             rate_text(rl.is_number() ? std::optional<int>(rl.get<int>()) : std::nullopt,
                       rp.is_number() ? std::optional<double>(rp.get<double>()) : std::nullopt),
             tokens, per_key(s), s.at("at_limit").get<bool>() ? "yes" : "no", number(s.at("completed_5m")),
             number(s.at("failed_5m")), number(s.at("completed_1h")), number(s.at("failed_1h")), rate,
             millis(s.at("run_p50_ms")), millis(s.at("run_p95_ms")), millis(s.at("wait_p50_ms")),
             millis(s.at("wait_p95_ms")), age(s.value("retain_completed_s", Json())),
             age(s.value("retain_failed_s", Json()))});
    }
    k.print(out);
  }
  out << '\n';
  Table w({"WORKER", "HOST", "PID", "QUEUES", "KINDS", "IN_USE", "HEARTBEAT"});
  for (const auto& s : stats.at("workers")) {
    w.add({s.at("name"), s.at("host"), number(s.at("pid")), joined(s.at("queues")), one_line(joined(s.at("kinds")), 40),
           number(s.at("running")) + "/" + number(s.at("concurrency")) +
               (s.at("stopping").get<bool>() ? " stopping" : ""),
           age(s.at("heartbeat_age_s")) + " ago"});
  }
  if (w.empty()) {
    out << "no live workers\n";
  } else {
    w.print(out);
  }
  for (const auto& u : stats.at("unserved")) {
    out << "\nUNSERVED: " << number(u.at("jobs")) << " waiting job(s) of kind " << u.at("kind").get<std::string>()
        << " in queue " << u.at("queue").get<std::string>() << " (" << number(u.at("due")) << " due, oldest due "
        << age(u.at("oldest_due_age_s")) << "): " << u.at("reason").get<std::string>();
  }
  if (!stats.at("unserved").empty()) out << '\n';
  if (stats.contains("schedules") && !stats.at("schedules").at("first").empty()) {
    const Json& sc = stats.at("schedules");
    out << "\nSCHEDULES: " << number(sc.at("enabled")) << " enabled, " << number(sc.at("paused")) << " paused, "
        << number(sc.at("late")) << " late";
    const std::size_t shown = sc.at("first").size();
    if (static_cast<std::int64_t>(shown) < sc.at("enabled").get<std::int64_t>() + sc.at("paused").get<std::int64_t>()) {
      out << " (the first " << shown << " by name; docket schedules lists all)";
    }
    out << '\n';
    Table t({"SCHEDULE", "KIND", "ENABLED", "NEXT_RUN", "LAST_SLOT", "LAST_JOB", "STATE"});
    for (const auto& r : sc.at("first")) {
      t.add({r.at("name"), r.at("kind"), r.at("enabled").get<bool>() ? "yes" : "no",
             r.at("next_run_at").is_string() ? short_time(r.at("next_run_at")) : "-",
             r.at("last_slot").is_string() ? short_time(r.at("last_slot")) : "-", number(r.at("last_job_id")),
             r.at("last_job_state").is_string() ? r.at("last_job_state").get<std::string>() : "-"});
    }
    t.print(out);
  }
  if (!stats.at("stuck").empty()) {
    out << "\nSTUCK (running past their timeout or their worker's lease):\n";
    Table s({"ID", "KIND", "QUEUE", "ATTEMPT", "STARTED", "WORKER"});
    for (const auto& j : stats.at("stuck")) {
      s.add({number(j.at("id")), j.at("kind"), j.at("queue"), number(j.at("attempt")),
             j.at("started_at").is_string() ? short_time(j.at("started_at")) : "-",
             j.value("worker_name", Json()).is_string() ? j.at("worker_name").get<std::string>() : "-"});
    }
    s.print(out);
  }
}

}  // namespace

void add_stats_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand(
      "stats", "Queues, kinds (quotas, throughput, run and wait times), workers, stuck jobs and unserved work");
  auto watch = std::make_shared<bool>(false);
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->add_flag("--watch,-w", *watch, "Redraw every second until Ctrl-C (with --json: a JSON line per second)");
  cmd->callback([&, watch] {
    action = [&, watch] {
      auto client = cli_client(global);
      for (;;) {
        Json stats = client->stats();
        // Schedules: counts per state and the first few with next/last slot and last job state.
        const ScheduleCounts counts = client->schedule_counts();
        stats["schedules"] = {{"enabled", counts.enabled},
                              {"paused", counts.paused},
                              {"late", counts.late},
                              {"first", client->schedules(kStatsSchedules)}};
        if (global.json) {
          std::cout << stats.dump() << std::endl;
        } else {
          std::ostringstream screen;
          print_stats(stats, screen);
          // Home and clear, then the whole screen in one write: no flicker.
          std::cout << (*watch ? "\x1b[H\x1b[2J" : "") << screen.str() << std::flush;
        }
        if (!*watch) return kOk;
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    };
  });
}

}  // namespace docket::cli
