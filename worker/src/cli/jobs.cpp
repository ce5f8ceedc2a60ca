// docket enqueue | jobs | job | cancel | retry | limit | pause | resume | stats
#include <algorithm>
#include <chrono>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/table.hpp"
#include "docket/client.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "docket/time.hpp"

namespace docket::cli {

namespace {

/// docket enqueue's uniqueness and result options, as typed (checked in the action).
struct UniqueOptions {
  std::string unique_for;
  std::vector<std::string> unique_states;
  std::string result_ttl;
};

std::int64_t parse_id(const std::string& text) {
  try {
    std::size_t used = 0;
    const long long id = std::stoll(text, &used);
    if (used == text.size() && id > 0) return id;
  } catch (...) {
  }
  throw InvalidInput("job id must be a positive integer, got \"" + text + "\"");
}

std::string last_error(const JobRecord& j) {
  if (!j.errors.is_array() || j.errors.empty()) return "";
  return j.errors.back().value("error", "");
}

/// The time that matters in the job's state, said with its meaning: when it runs while it
/// waits, when it started while it runs, when it finished once it has.
std::string state_time(const JobRecord& j) {
  switch (j.state) {
    case JobState::available:
      return "ready " + short_time(j.run_at);
    case JobState::scheduled:
    case JobState::retryable:
      return "runs " + short_time(j.run_at);
    case JobState::running:
      return "started " + (j.started_at ? short_time(*j.started_at) : "-");
    case JobState::completed:
    case JobState::failed:
    case JobState::cancelled:
      return "finished " + (j.finished_at ? short_time(*j.finished_at) : "-");
  }
  return "-";
}

/// The error that explains the state: the last attempt's for a job waiting to retry or that
/// failed or was cancelled; none for a job that is waiting, running or completed.
std::string state_error(const JobRecord& j) {
  switch (j.state) {
    case JobState::retryable:
    case JobState::failed:
    case JobState::cancelled:
      return last_error(j);
    case JobState::available:
    case JobState::scheduled:
    case JobState::running:
    case JobState::completed:
      return "";
  }
  return "";
}

void print_job(const JobRecord& j) {
  auto line = [](const char* key, const std::string& value) {
    std::cout << key << std::string(13 - std::string(key).size(), ' ') << value << '\n';
  };
  line("id", std::to_string(j.id));
  line("kind", j.kind);
  line("queue", j.queue);
  line("state", std::string(to_string(j.state)) + (j.cancel_requested_at ? " (cancel requested)" : ""));
  line("attempt", std::to_string(j.attempt) + " of " + std::to_string(j.max_retries + 1));
  line("priority", std::to_string(j.priority));
  line("args", one_line(j.args.dump(), 200));
  line("run_at", short_time(j.run_at));
  line("inserted_at", short_time(j.inserted_at));
  line("started_at", j.started_at ? short_time(*j.started_at) : "-");
  line("finished_at", j.finished_at ? short_time(*j.finished_at) : "-");
  if (j.unique_key) line("unique_key", *j.unique_key);
  if (j.worker) line("worker", *j.worker);
  if (!j.result.is_null()) line("result", one_line(j.result.dump(), 200));
  if (j.result_expired_at) line("result", "expired at " + *j.result_expired_at);
  if (!j.progress.is_null()) line("progress", one_line(j.progress.dump(), 200));
  if (j.errors.is_array() && !j.errors.empty()) {
    std::cout << "errors\n";
    for (const auto& e : j.errors) {
      std::cout << "  attempt " << e.value("attempt", 0) << "  " << short_time(e.value("at", "")) << "  "
                << one_line(e.value("error", ""), 160) << '\n';
    }
  }
}

/// The per-key limits of a kind in the limits table: "1 of 1, 10/1m, 3 keys at limit".
std::string per_key_text(const KindLimit& k) {
  if (!k.partition) return "-";
  std::string out = std::to_string(k.max_key_running) + " of " +
                    (k.max_running_per_key ? std::to_string(*k.max_running_per_key) : std::string("any"));
  if (k.rate_per_key) out += ", " + rate_text(k.rate_per_key, k.rate_per_key_period_s);
  return out + ", " + std::to_string(k.keys_at_limit) + " keys at limit";
}

/// What `docket limit KIND --partition ...` set: ", at most 2 running and 10/1m per key".
std::string per_key_text(const PartitionLimit& p) {
  std::string out;
  if (p.max_running_per_key) out += ", at most " + std::to_string(*p.max_running_per_key) + " running";
  if (p.rate_per_key) out += (out.empty() ? ", " : " and ") + *p.rate_per_key;
  return out.empty() ? "" : out + " per key";
}

/// Registers a subcommand that takes one job id and a client; `run` does the rest.
void add_id_command(CLI::App& app, GlobalOptions& global, Action& action, const char* name, const char* description,
                    const std::function<int(Client&, std::int64_t)>& run) {
  auto* cmd = app.add_subcommand(name, description);
  auto id = std::make_shared<std::string>();
  cmd->add_option("id", *id, "Job id")->required();
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, id, run] {
    action = [&, id, run] {
      const auto job_id = parse_id(*id);
      auto client = cli_client(global);
      return run(*client, job_id);
    };
  });
}

/// docket enqueue KIND [ARGS]: enqueues one job and prints its id.
void add_enqueue_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("enqueue", "Enqueue a job: docket enqueue KIND ['{\"json\":\"args\"}']");
  auto kind = std::make_shared<std::string>();
  auto args = std::make_shared<std::string>("{}");
  auto queue = std::make_shared<std::string>();
  auto priority = std::make_shared<int>(0);
  auto run_at = std::make_shared<std::string>();
  auto max_retries = std::make_shared<std::optional<int>>();  // unset: the kind's default
  auto unique_key = std::make_shared<std::string>();
  auto timeout = std::make_shared<std::string>();
  auto unique = std::make_shared<UniqueOptions>();
  cmd->add_option("kind", *kind, "Job kind (which handler runs it)")->required();
  cmd->add_option("args", *args, "Job arguments: a JSON object (default {})");
  auto* queue_opt =
      cmd->add_option("--queue,-q", *queue, "Queue (default: the kind's queue from its config, else default)");
  cmd->add_option("--priority,-p", *priority, "0 runs first, up to 1000 (default 0)");
  cmd->add_option("--run-at", *run_at, "When to run: RFC 3339 time or a delay like +30s (default now)");
  cmd->add_option("--max-retries", *max_retries, "Retries after the first attempt (default: the kind's, else 20)");
  cmd->add_option("--unique-key", *unique_key, "At most one unfinished job per key: returns the existing one");
  cmd->add_option("--timeout", *timeout, "This job's run timeout, like 90s or 2h (default: the kind's)");
  cmd->add_option("--unique-for", unique->unique_for,
                  "Dedup over this period (10m): a job with the key made within it is returned");
  cmd->add_option("--unique-states", unique->unique_states,
                  "The states that dedup, comma-separated; must include available,scheduled,running,retryable")
      ->delimiter(',');
  cmd->add_option("--result-ttl", unique->result_ttl,
                  "Keep the result this long after completion (default: the kind's)");
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, kind, args, queue, queue_opt, priority, run_at, max_retries, unique_key, timeout, unique] {
    const bool queue_given = queue_opt->count() > 0;
    action = [&, kind, args, queue, queue_given, priority, run_at, max_retries, unique_key, timeout, unique] {
      EnqueueRequest r;
      r.kind = *kind;
      r.args = parse_json(*args, "args are not valid JSON");
      if (queue_given) r.queue = *queue;
      r.priority = *priority;
      if (!run_at->empty()) {
        r.run_at = parse_time_field(*run_at, "--run-at", true);
      }
      if (*max_retries) {
        if (**max_retries < 0) {
          throw InvalidInput("--max-retries must be >= 0, got " + std::to_string(**max_retries) +
                             " (leave it out for the kind's default)");
        }
        r.max_retries = *max_retries;
      }
      if (!unique_key->empty()) r.unique_key = *unique_key;
      if (!timeout->empty()) {
        try {
          r.timeout = parse_duration(*timeout, "--timeout");
        } catch (const ConfigError& e) {
          throw InvalidInput(e.what());
        }
      }
      const auto duration = [](const std::string& text, const char* flag) {
        try {
          return parse_duration(text, flag);
        } catch (const ConfigError& e) {
          throw InvalidInput(e.what());
        }
      };
      if (!unique->unique_for.empty()) r.unique_for = duration(unique->unique_for, "--unique-for");
      if (!unique->result_ttl.empty()) r.result_ttl = duration(unique->result_ttl, "--result-ttl");
      if (!unique->unique_states.empty()) {
        r.unique_states = unique->unique_states;
        check_unique_states(*r.unique_states, "--unique-states");
      }
      check_enqueue_request(r);  // names a bad range (--timeout, --unique-for ...) before any connection
      auto client = cli_client(global);
      const auto res = client->enqueue(r);
      if (res.warning) {
        // The job is in, but nothing will run it until a worker for it starts: say so now, not
        // after it has waited for hours (stdout still carries only the id).
        std::cerr << "warning: job " << res.id << ": " << *res.warning
                  << "; it waits until one does (docket stats lists unserved work)\n";
      }
      if (global.json) {
        Json out{{"id", res.id}, {"created", res.created}};
        if (res.warning) out["warnings"] = Json::array({*res.warning});
        std::cout << out.dump() << '\n';
      } else if (res.created) {
        std::cout << res.id << '\n';
      } else {
        // stdout carries only the id (`id=$(docket enqueue ...)`); the notice goes to stderr.
        std::cout << res.id << '\n';
        std::cerr << "note: job " << res.id << " is an existing job "
                  << (unique_key->empty() ? std::string("with this kind's unique key (or collection)")
                                          : "with unique key \"" + *unique_key + "\"")
                  << "; nothing new was enqueued\n";
      }
      return kOk;
    };
  });
}

/// docket jobs: lists jobs, newest first, filtered by kind, key, queue or state.
void add_jobs_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("jobs", "List jobs, newest first");
  auto kind = std::make_shared<std::string>();
  auto queue = std::make_shared<std::string>();
  auto state = std::make_shared<std::string>();
  auto key = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(20);
  auto after = std::make_shared<long long>(0);
  cmd->add_option("--kind,-k", *kind, "Only this kind");
  cmd->add_option("--unique-key", *key, "Only the jobs made with this unique key (finished ones too)");
  cmd->add_option("--queue,-q", *queue, "Only this queue");
  cmd->add_option("--state,-s", *state,
                  "Only this state: available, scheduled, running, retryable, completed, failed, cancelled");
  cmd->add_option("--limit,-n", *limit, "How many (default 20)");
  cmd->add_option("--after", *after, "Page: jobs older than this id");
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, kind, queue, state, key, limit, after] {
    action = [&, kind, queue, state, key, limit, after] {
      JobFilter f;
      if (!kind->empty()) f.kind = *kind;
      if (!key->empty()) f.unique_key = *key;
      if (!queue->empty()) f.queue = *queue;
      if (!state->empty()) {
        f.state = parse_job_state(*state);
        if (!f.state) {
          std::string names;
          for (const auto& n : job_state_names()) names += (names.empty() ? "" : ", ") + n;
          throw InvalidInput("unknown state \"" + *state + "\"; use one of: " + names);
        }
      }
      if (*limit < 0) throw InvalidInput("--limit must be >= 0, got " + std::to_string(*limit));
      f.limit = std::min(*limit, 10000);
      if (*after < 0) throw InvalidInput("--after must be a job id");
      if (*after > 0) f.after = *after;
      auto client = cli_client(global);
      const auto jobs = client->jobs(f);
      if (global.json) {
        std::cout << Json(jobs).dump() << '\n';
        return kOk;
      }
      Table t({"ID", "KIND", "QUEUE", "STATE", "ATTEMPT", "WHEN", "ERROR"});
      for (const auto& j : jobs) {
        t.add({std::to_string(j.id), j.kind, j.queue, std::string(to_string(j.state)),
               std::to_string(j.attempt) + "/" + std::to_string(j.max_retries + 1), state_time(j),
               one_line(state_error(j), 60)});
      }
      t.print(std::cout);
      return kOk;
    };
  });
}

/// docket job ID | --key K: shows one job in full.
void add_job_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand(
      "job",
      "Show one job: state, attempts, errors, result (--key: the newest job with that unique key; exit 3 "
      "when there is none)");
  auto id = std::make_shared<std::string>();
  auto key = std::make_shared<std::string>();
  auto* id_opt = cmd->add_option("id", *id, "Job id");
  auto* key_opt = cmd->add_option("--key", *key, "The newest job made with this unique key, in any state");
  id_opt->excludes(key_opt);
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, id, key, id_opt, key_opt] {
    const bool by_key = key_opt->count() > 0;
    if (!by_key && id_opt->count() == 0) throw CLI::RequiredError("id or --key");
    action = [&, id, key, by_key] {
      std::optional<JobRecord> job;
      if (by_key) {
        if (key->empty()) throw InvalidInput("--key must not be empty");
        auto client = cli_client(global);
        job = client->job_by_key(*key);
        if (!job) throw NotFound("no job with unique key \"" + *key + "\"");
      } else {
        const auto job_id = parse_id(*id);
        auto client = cli_client(global);
        job = client->job(job_id);
        if (!job) throw NotFound("no job with id " + std::to_string(job_id));
      }
      if (global.json) {
        std::cout << Json(*job).dump() << '\n';
      } else {
        print_job(*job);
      }
      return kOk;
    };
  });
}

/// docket wait ID: waits for a job to finish and prints it; the exit code says how it ended.
void add_wait_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand(
      "wait",
      "Wait for a job to finish and print it as JSON: exit 0 completed, 1 failed or cancelled, 124 still "
      "unfinished at --timeout, 2 bad input or no such job");
  auto id = std::make_shared<std::string>();
  auto timeout = std::make_shared<std::string>("30s");
  cmd->add_option("id", *id, "Job id")->required();
  cmd->add_option("--timeout", *timeout, "How long to wait (250ms, 30s, 10m; at most 24h; default 30s)");
  cmd->callback([&, id, timeout] {
    action = [&, id, timeout] {
      const auto job_id = parse_id(*id);
      Millis left{0};
      try {
        left = parse_duration(*timeout, "--timeout");
      } catch (const ConfigError& e) {
        throw InvalidInput(e.what());
      }
      if (left > std::chrono::hours(24)) throw InvalidInput("--timeout must be at most 24h, got " + *timeout);
      auto client = cli_client(global);
      // One wait of at most kMaxWait at a time, so a long --timeout needs no longer server-side wait.
      const auto deadline = std::chrono::steady_clock::now() + left;
      std::optional<JobRecord> job;
      for (;;) {
        const auto now = std::chrono::steady_clock::now();
        const auto step = std::clamp(std::chrono::duration_cast<Millis>(deadline - now), Millis(0), Millis(kMaxWait));
        job = client->wait(job_id, step);
        if (!job) {
          std::cerr << "error: no job with id " << job_id << '\n';
          return kBadInput;
        }
        if (is_finished(job->state) || std::chrono::steady_clock::now() >= deadline) break;
      }
      std::cout << Json(*job).dump() << '\n';
      if (job->state == JobState::completed) return kOk;
      if (is_finished(job->state)) return kError;  // failed or cancelled
      return kTimedOut;
    };
  });
}

/// docket cancel ID: cancels a job, or asks its worker to stop it when it runs.
void add_cancel_command(CLI::App& app, GlobalOptions& global, Action& action) {
  add_id_command(
      app, global, action, "cancel", "Cancel a job (a running one is stopped by its worker)",
      [&global](Client& client, std::int64_t id) {
        const auto r = client.cancel(id);
        if (r == CancelResult::already_finished) {
          throw Conflict("job " + std::to_string(id) + " already finished; nothing to cancel");
        }
        const bool running = r == CancelResult::cancel_requested;
        if (global.json) {
          std::cout << Json{{"id", id}, {"result", running ? "cancel_requested" : "cancelled"}}.dump() << '\n';
        } else if (running) {
          std::cout << "job " << id << " is running: its worker has been asked to stop it\n";
        } else {
          std::cout << "job " << id << " cancelled\n";
        }
        return kOk;
      });
}

/// docket retry ID: makes a job available to run again now.
void add_retry_command(CLI::App& app, GlobalOptions& global, Action& action) {
  add_id_command(app, global, action, "retry", "Run a job again now (failed, cancelled, completed or waiting)",
                 [&global](Client& client, std::int64_t id) {
                   client.retry(id);
                   if (global.json) {
                     std::cout << Json{{"id", id}, {"result", "available"}}.dump() << '\n';
                   } else {
                     std::cout << "job " << id << " is available again\n";
                   }
                   return kOk;
                 });
}

/// docket crawls: lists crawls and their progress, newest first.
void add_crawls_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("crawls", "List crawls and their progress, newest first");
  auto collection = std::make_shared<std::string>();
  auto status = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(20);
  cmd->add_option("--collection", *collection, "Only this collection");
  cmd->add_option("--status", *status, "Only this status: waiting, crawling, retrying, finalizing, done, failed");
  cmd->add_option("--limit,-n", *limit, "How many (default 20)");
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, collection, status, limit] {
    action = [&, collection, status, limit] {
      CrawlFilter f;
      if (!collection->empty()) f.collection = *collection;
      if (!status->empty()) f.status = *status;
      if (*limit < 0) throw InvalidInput("--limit must be >= 0, got " + std::to_string(*limit));
      f.limit = std::min(*limit, 10000);
      auto client = cli_client(global);
      const auto crawls = client->crawls(f);
      if (global.json) {
        std::cout << Json(crawls).dump() << '\n';
        return kOk;
      }
      Table t({"ID", "COLLECTION", "STATUS", "PAGES", "ITEMS", "JOB", "UPDATED", "LAST ERROR"});
      for (const auto& c : crawls) {
        t.add({std::to_string(c.id), c.collection, c.status, std::to_string(c.pages), std::to_string(c.items),
               std::to_string(c.job_id), short_time(c.updated_at), one_line(c.last_error.value_or(""), 60)});
      }
      t.print(std::cout);
      return kOk;
    };
  });
}

/// docket crawl ID: shows one crawl in full.
void add_crawl_command(CLI::App& app, GlobalOptions& global, Action& action) {
  add_id_command(app, global, action, "crawl", "Show one crawl: status, pages, items, where it resumes, last error",
                 [&global](Client& client, std::int64_t id) {
                   const auto c = client.crawl(id);
                   if (!c) throw NotFound("no crawl with id " + std::to_string(id));
                   if (global.json) {
                     std::cout << Json(*c).dump() << '\n';
                     return kOk;
                   }
                   auto line = [](const char* key, const std::string& value) {
                     std::cout << key << std::string(13 - std::string(key).size(), ' ') << value << '\n';
                   };
                   line("id", std::to_string(c->id));
                   line("collection", c->collection);
                   line("kind", c->kind);
                   line("status", c->status);
                   line("pages", std::to_string(c->pages));
                   line("items", std::to_string(c->items));
                   line("job", std::to_string(c->job_id) + " (" + c->job_state.value_or("gone") + ", attempt " +
                                   std::to_string(c->attempt) + ")");
                   if (c->next_url) line("next_url", *c->next_url);
                   if (c->last_error) line("last_error", one_line(*c->last_error, 200));
                   line("started_at", c->started_at ? short_time(*c->started_at) : "-");
                   line("updated_at", short_time(c->updated_at));
                   line("finished_at", c->finished_at ? short_time(*c->finished_at) : "-");
                   return kOk;
                 });
}

/// docket limit: sets or lists kinds' quotas, rates and keyed limits, or a kind's busiest keys.
void add_limit_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand(
      "limit",
      "Set a kind's global quota and rate: docket limit KIND [N|none] [--rate 100/1m|none] [--burst N] "
      "(a quota holds across worker restarts until docket limit KIND --reset); keyed limits with "
      "--partition args.tenant|none [--max-running-per-key N] [--rate-per-key N/PERIOD] [--burst-per-key N], set "
      "together; --keys lists a keyed kind's busiest keys; no args lists them with their source");
  auto kind = std::make_shared<std::string>();
  auto value = std::make_shared<std::string>();
  auto reset = std::make_shared<bool>(false);
  auto rate = std::make_shared<std::string>();
  auto burst = std::make_shared<std::optional<int>>();
  cmd->add_option("kind", *kind, "Kind");
  cmd->add_option("max_running", *value, "Most jobs of the kind running at once across all workers, or none");
  cmd->add_flag("--reset", *reset, "Clear the operator's limit: the workers' config (max_running) applies again");
  cmd->add_option("--rate", *rate, "Most jobs of the kind started per period across all workers (100/1m), or none");
  cmd->add_option("--burst", *burst, "The rate's bucket: starts allowed at once (default one second's worth)");
  auto keyed = std::make_shared<PartitionLimit>();
  auto partition = std::make_shared<std::string>();
  auto keys = std::make_shared<bool>(false);
  cmd->add_option("--partition", *partition,
                  "Path into args whose value is the key of the per-key limits (args.tenant), or none");
  cmd->add_option("--max-running-per-key", keyed->max_running_per_key, "Most running jobs of one key");
  cmd->add_option("--rate-per-key", keyed->rate_per_key, "Most starts per period of one key (10/1m)");
  cmd->add_option("--burst-per-key", keyed->burst_per_key, "Each key's bucket (default one second's worth)");
  cmd->add_flag("--keys", *keys, "List the kind's busiest keys: running, tokens, held back");
  cmd->add_flag("--json", global.json, "Print JSON");
  cmd->callback([&, kind, value, reset, rate, burst, keyed, partition, keys] {
    action = [&, kind, value, reset, rate, burst, keyed, partition, keys] {
      auto client = cli_client(global);
      if (kind->empty()) {
        const auto limits = client->limits();
        if (global.json) {
          std::cout << Json(limits).dump() << '\n';
          return kOk;
        }
        Table t({"KIND", "RUNNING", "MAX_RUNNING", "SOURCE", "CONFIG", "MAX_RETRIES", "RATE", "TOKENS", "PARTITION",
                 "PER_KEY", "AT_LIMIT"});
        const auto num = [](std::optional<int> n) { return n ? std::to_string(*n) : std::string("-"); };
        for (const auto& k : limits) {
          t.add({k.kind, std::to_string(k.running), num(k.max_running), k.source.value_or("-"),
                 num(k.config_max_running), num(k.max_retries), rate_text(k.rate_limit, k.rate_period_s),
                 k.rate_tokens ? std::to_string(static_cast<long long>(*k.rate_tokens)) + "/" +
                                     std::to_string(static_cast<long long>(k.rate_burst.value_or(0)))
                               : "-",
                 k.partition.value_or("-"), per_key_text(k), k.at_limit ? "yes" : "no"});
        }
        t.print(std::cout);
        return kOk;
      }
      if (*keys) {
        const auto hot = client->hot_keys(*kind, 20);
        if (global.json) {
          std::cout << Json(hot).dump() << '\n';
          return kOk;
        }
        Table t({"KEY", "RUNNING", "TOKENS", "AVAILABLE", "AT_LIMIT"});
        for (const auto& k : hot) {
          t.add({k.key.empty() ? "(default)" : k.key, std::to_string(k.running),
                 k.rate_tokens ? std::to_string(static_cast<long long>(*k.rate_tokens)) : "-",
                 std::to_string(k.available), k.at_limit ? "yes" : "no"});
        }
        t.print(std::cout);
        return kOk;
      }
      const bool keyed_change =
          !partition->empty() || keyed->max_running_per_key || keyed->rate_per_key || keyed->burst_per_key;
      if (keyed_change) {
        if (partition->empty())
          throw InvalidInput(
              "--max-running-per-key, --rate-per-key and --burst-per-key need --partition (the keyed "
              "limits are set together)");
        if (*partition != "none") keyed->partition = *partition;
        // Checked before any of the command's settings is written: a refused one changes nothing.
        client->check_partition(*keyed);
        client->set_partition(*kind, *keyed);
        std::cout << (keyed->partition ? *kind + " jobs are keyed by " + *keyed->partition + per_key_text(*keyed)
                                       : "no keyed limits on " + *kind)
                  << '\n';
        if (value->empty() && !*reset && rate->empty()) return kOk;
      }
      if (burst->has_value() && rate->empty()) throw InvalidInput("--burst needs --rate");
      if (*reset && !value->empty()) throw InvalidInput("give either a limit or --reset, not both");
      if (!rate->empty()) {
        const std::optional<std::string> r = *rate == "none" ? std::nullopt : std::optional<std::string>(*rate);
        client->set_rate(*kind, r, *burst);
        std::cout << (r ? "at most " + *r + " " + *kind + " jobs start" : "no rate limit on " + *kind) << '\n';
        if (value->empty() && !*reset) return kOk;
      }
      if (*reset) {
        const bool cleared = client->reset_limit(*kind);
        std::optional<KindLimit> now;
        for (const auto& k : client->limits()) {
          if (k.kind == *kind) now = k;
        }
        const std::string applies = now && now->max_running
                                        ? "at most " + std::to_string(*now->max_running) + " " + *kind +
                                              " jobs run at once (source: " + now->source.value_or("config") + ")"
                                        : "no limit on " + *kind;
        std::cout << (cleared ? "" : "no operator limit was set; ") << applies << '\n';
        // The reset also put the workers' TOML keyed limits back (or none).
        if (now && now->partition) {
          std::cout << *kind << " jobs are keyed by " << *now->partition
                    << " (running of max per key: " << per_key_text(*now) << ")\n";
        }
        return kOk;
      }
      if (value->empty())
        throw InvalidInput("give a limit: docket limit " + *kind + " N (or none), --reset, or --rate N/PERIOD|none");
      std::optional<int> limit;
      if (*value != "none") {
        try {
          std::size_t used = 0;
          const int n = std::stoi(*value, &used);
          if (used != value->size()) throw std::invalid_argument("x");
          limit = n;
        } catch (...) {
          throw InvalidInput("max_running must be a number >= 0 or none, got \"" + *value + "\"");
        }
      }
      client->set_limit(*kind, limit);
      std::cout << (limit ? "at most " + std::to_string(*limit) + " " + *kind + " jobs run at once"
                          : "no limit on " + *kind)
                << " (source: operator; holds until docket limit " << *kind << " --reset)\n";
      return kOk;
    };
  });
}

/// docket pause|resume QUEUE: stops or restarts the claiming of a queue's jobs.
void add_queue_state_command(CLI::App& app, GlobalOptions& global, Action& action, bool pause) {
  const char* name = pause ? "pause" : "resume";
  auto* cmd = app.add_subcommand(
      name, pause ? "Pause a queue: running jobs finish, nothing new starts" : "Resume a paused queue");
  auto queue = std::make_shared<std::string>();
  cmd->add_option("queue", *queue, "Queue")->required();
  cmd->callback([&, queue, pause] {
    action = [&, queue, pause] {
      auto client = cli_client(global);
      if (pause) {
        client->pause(*queue);
      } else {
        client->resume(*queue);
      }
      std::cout << "queue " << *queue << (pause ? " paused" : " resumed") << '\n';
      return kOk;
    };
  });
}

}  // namespace

void add_job_commands(CLI::App& app, GlobalOptions& global, Action& action) {
  add_enqueue_command(app, global, action);
  add_jobs_command(app, global, action);
  add_job_command(app, global, action);
  add_wait_command(app, global, action);
  add_cancel_command(app, global, action);
  add_retry_command(app, global, action);
  add_crawls_command(app, global, action);
  add_crawl_command(app, global, action);
  add_limit_command(app, global, action);
  add_queue_state_command(app, global, action, true);
  add_queue_state_command(app, global, action, false);
}

}  // namespace docket::cli
